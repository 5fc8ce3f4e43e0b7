package legacy

import (
	"strings"
	"testing"
)

// Debian's /etc/default/ipvsadm as shipped (DAEMON none) gives no [sync]
// table; master and backup give the same one; what ipvsadm would refuse
// is an error at its line.
func TestImportIpvsadmDefaults(t *testing.T) {
	const debian = "# ipvsadm\n\n# if you want to start ipvsadm on boot set this to true\nAUTO=\"false\"\n\n# daemon method (none|master|backup)\nDAEMON=\"none\"\n\n# use interface (eth0,eth1...)\nIFACE=\"eth0\"\t\n\n# syncid to use\n# (0 means no filtering of syncids happen, that is the default)\n# SYNCID=\"0\"\n"
	for _, tc := range []struct {
		name, src, want, errAt string
	}{
		{"debian as shipped", debian, "", ""},
		{"master", strings.Replace(debian, `DAEMON="none"`, `DAEMON="master"`, 1), "[sync]\ninterface = \"eth0\"\n", ""},
		{"backup, syncid", "DAEMON=backup\nIFACE=bond0\nSYNCID=12\n", "[sync]\ninterface = \"bond0\"\nsync_id = 12\n", ""},
		{"syncid 0: derived", "DAEMON=master\nIFACE=eth1\nSYNCID=\"0\"\n", "[sync]\ninterface = \"eth1\"\n", ""},
		{"bad daemon", "DAEMON=slave\nIFACE=eth1\n", "", "f:1: DAEMON"},
		{"no interface", "DAEMON=master\n", "", "f:1: IFACE"},
		{"syncid too big", "DAEMON=master\nIFACE=eth1\nSYNCID=300\n", "", "f:3: SYNCID"},
	} {
		got, r := ImportIpvsadmDefaults("f", []byte(tc.src))
		err := r.Err()
		switch {
		case tc.errAt != "" && (err == nil || !strings.Contains(err.Error(), tc.errAt) || got != ""):
			t.Errorf("%s: %q, %v; want an error at %s and nothing", tc.name, got, err, tc.errAt)
		case tc.errAt == "" && (err != nil || !strings.HasSuffix(got, tc.want) || (tc.want == "") != (got == "")):
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
