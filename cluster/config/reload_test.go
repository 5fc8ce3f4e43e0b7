package config

import (
	"strings"
	"testing"
	"time"
)

func TestRestartNeeded(t *testing.T) {
	base := func() *Config {
		return &Config{HA: HA{Cluster: "c", Keepalive: Duration(time.Second), Nodes: []Node{{Name: "n1", Address: "10.0.0.1"}}},
			Self: Node{Name: "n1", Address: "10.0.0.1"}, Auth: &Authkeys{Secret: NewSecret([]byte("s1"))},
			Resources: Resources{Groups: []Group{{Name: "g"}}}}
	}
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"nothing", func(c *Config) {}, ""},
		{"groups and alerts reload", func(c *Config) {
			c.Resources.Groups = nil
			c.HA.Alerts = []AlertRoute{{Send: []string{"log"}}}
			c.HA.MailFrom, c.HA.SMTPRelay, c.HA.AlertDir = "x@y", "relay:25", []string{"/a"}
		}, ""},
		{"timing", func(c *Config) { c.HA.Keepalive = Duration(2 * time.Second) }, "ha.toml: keepalive"},
		{"nodes", func(c *Config) { c.HA.Nodes = append(c.HA.Nodes, Node{Name: "n2"}) }, "ha.toml: nodes"},
		{"media and failback", func(c *Config) { c.HA.UCast = []UCast{{}}; c.HA.AutoFailback = true }, "ha.toml: auto_failback, ha.toml: ucast"},
		{"secret", func(c *Config) { c.Auth = &Authkeys{Secret: NewSecret([]byte("s2"))} }, "authkeys: the cluster secret"},
		{"self", func(c *Config) { c.Self.Role = "witness" }, "ha.toml: this node's name, address or role"},
	} {
		c := base()
		tc.change(c)
		if got := strings.Join(RestartNeeded(base(), c), ", "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
