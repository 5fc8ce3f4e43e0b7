package config

import (
	"bytes"
	"reflect"
	"strings"
)

// reloadable are the ha.toml keys `vigil reload` applies to a running
// daemon; every other change needs a restart.
var reloadable = map[string]bool{"alert": true, "alert_dir": true, "smtp_relay": true, "mail_from": true}

// RestartNeeded lists the settings that differ between a running
// configuration and a newly loaded one and that a reload cannot apply:
// the membership, the media, the timings Raft and the leases are built
// on, the secret, the paths the daemon holds open. resources.toml, the
// instance files and the alert settings reload.
func RestartNeeded(running, loaded *Config) []string {
	var out []string
	a, b := reflect.ValueOf(running.HA), reflect.ValueOf(loaded.HA)
	for i := range a.NumField() {
		key := strings.Split(a.Type().Field(i).Tag.Get("toml"), ",")[0]
		if reloadable[key] || key == "node" {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, HAFile+": "+key)
		}
	}
	if running.Self != loaded.Self {
		out = append(out, HAFile+": this node's name, address or role")
	}
	if (running.Auth == nil) != (loaded.Auth == nil) || running.Auth != nil && !bytes.Equal(running.Auth.Secret.Bytes(), loaded.Auth.Secret.Bytes()) {
		out = append(out, "authkeys: the cluster secret")
	}
	return out
}
