package legacy

import (
	"os"
	"testing"

	"github.com/vigil-ha/vigil/internal/testutil"

	"github.com/vigil-ha/vigil/cluster/config"
)

func seedFile(f *testing.F, path string) {
	if b, err := os.ReadFile(path); err == nil {
		f.Add(b)
	}
}

// An import never panics, nor does the check `vigil import` runs on what
// it writes (which reports, e.g., a real listed twice, as config check does).
func FuzzImportLdirectord(f *testing.F) {
	seedFile(f, "testdata/seed/ldirectord.cf")
	f.Add([]byte("virtual=10.0.0.3:80\n\treal=10.0.0.1->10.0.0.3:80 masq 2 \"/\", \"x\" l:1 u:2\n\tchecktype=3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			toml, _, err := ImportLdirectord("ld.cf", data)
			if err != nil {
				return
			}
			_, _ = config.ParseLdirectord("ld.toml", toml)
		})
	})
}

func FuzzImportMon(f *testing.F) {
	seedFile(f, "testdata/seed/mon.cf")
	f.Add([]byte("hostgroup g a\n\nwatch g\n    service s\n    interval 1m\n    monitor m ;;\n    period p: wd {Mon}\n    alert x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			_, _, _ = ImportMon("mon.cf", data)
		})
	})
}

func FuzzImportHeartbeat(f *testing.F) {
	seedFile(f, "testdata/seed/ha.cf")
	f.Add([]byte("node a b\nkeepalive 500ms\nucast eth0 10.0.0.2\nmcast eth0 239.0.0.1 694 1 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			_, _ = ImportHeartbeat(HeartbeatInput{HACf: data, HAResources: data, Authkeys: data,
				Addresses: map[string]string{"a": "10.0.0.1", "b": "10.0.0.2"}})
		})
	})
}

func FuzzImportKeepalived(f *testing.F) {
	seedFile(f, "../bin/samples/usr/share/doc/keepalived/samples/keepalived.conf.sample")
	f.Add([]byte("vrrp_instance A { state MASTER\n virtual_ipaddress {\n10.0.0.3/24 dev eth0 }}\nvirtual_server 10.0.0.3 80 { real_server 10.0.0.4 80 { HTTP_GET { url { path / status_code 200-299 } } } }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			k, err := ImportKeepalived(KeepalivedInput{Path: "k.conf", Data: data, Node: "n1"})
			if err != nil {
				return
			}
			for name, b := range k.Files {
				if name == config.ResourcesFile {
					_, _ = config.ParseResources(name, b, &config.HA{Nodes: []config.Node{{Name: "n1"}}})
				} else {
					_, _ = config.ParseLdirectord(name, b)
				}
			}
		})
	})
}
