package legacy

import (
	"bytes"
	"strings"
	"testing"
)

// longComment is one comment line longer than bufio.Scanner's default
// limit (64 KiB), which used to end parsing silently at that line.
var longComment = []byte("# " + strings.Repeat("x", 100<<10) + "\n")

// A line over 64 KiB is read whole: what follows it is imported too.
func TestLongLines(t *testing.T) {
	seed := "testdata/seed/"
	h, err := ImportHeartbeat(HeartbeatInput{
		HACf: append(append([]byte{}, longComment...), read(t, seed+"ha.cf")...), HACfPath: "ha.cf",
		HAResources: append(append([]byte{}, longComment...), read(t, seed+"haresources")...), HAResourcesPath: "haresources",
		Authkeys: append(append([]byte{}, longComment...), read(t, seed+"authkeys")...), AuthkeysPath: "authkeys",
		Addresses: map[string]string{"lvs1": "10.0.0.1", "lvs2": "10.0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	if res := h.Files["resources.toml"]; !bytes.Contains(res, []byte("IPaddr::10.0.0.3/24/eth0")) {
		t.Errorf("haresources after a long line: the group is missing:\n%s", res)
	}
	if ha := h.Files["ha.toml"]; !bytes.Contains(ha, []byte(`keepalive = "200ms"`)) {
		t.Errorf("ha.cf after a long line: keepalive is missing:\n%s", ha)
	}
	if ak := h.Files["authkeys"]; !bytes.Contains(ak, []byte("auth ")) {
		t.Errorf("authkeys after a long line: the key is missing")
	}
	ld, _, err := ImportLdirectord("ldirectord.cf", append(append([]byte{}, longComment...), read(t, seed+"ldirectord.cf")...))
	if err != nil || !bytes.Contains(ld, []byte("10.0.0.3:80")) {
		t.Errorf("ldirectord.cf after a long line: %v\n%s", err, ld)
	}
	mon, _, err := ImportMon("mon.cf", append(append([]byte{}, longComment...), read(t, seed+"mon.cf")...))
	if err != nil || !bytes.Contains(mon, []byte("http.monitor")) {
		t.Errorf("mon.cf after a long line: %v\n%s", err, mon)
	}
}

// An include of a file that is no keepalived configuration (here a
// shadow-like file) never echoes its lines into the report.
func TestKeepalivedIncludeNotEchoed(t *testing.T) {
	secret := "root:$6$rounds=5000$c2FsdHNhbHQ$hashhashhashhash:19000:0:99999:7:::"
	files := map[string][]byte{
		"/etc/keepalived/keepalived.conf": []byte("include /etc/shadowish\n"),
		"/etc/shadowish":                  []byte(secret + "\ndaemon:*:19000:0:99999:7:::\n"),
	}
	k, err := ImportKeepalived(KeepalivedInput{Path: "/etc/keepalived/keepalived.conf", Data: files["/etc/keepalived/keepalived.conf"], Node: "lvs1",
		ReadFile: func(p string) ([]byte, error) { return files[p], nil },
		Glob:     func(p string) ([]string, error) { return []string{p}, nil }})
	var out bytes.Buffer
	k.Report.Write(&out)
	if err == nil {
		t.Error("a file of unknown lines was accepted")
	}
	for _, leak := range []string{"$6$", "hashhash", "daemon:*", "19000"} {
		if strings.Contains(out.String(), leak) || err != nil && strings.Contains(err.Error(), leak) {
			t.Errorf("the report echoes the included file (%q):\n%s\n%v", leak, out.String(), err)
		}
	}
	if !strings.Contains(out.String(), "/etc/shadowish:1") {
		t.Errorf("the report does not say where the refused lines are:\n%s", out.String())
	}
}
