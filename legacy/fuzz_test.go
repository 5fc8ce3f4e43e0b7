package legacy

import (
	"os"
	"testing"

	"github.com/vigil-ha/vigil/internal/instances"
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
			_, _ = instances.ParseLdirectord("ld.toml", toml)
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
	f.Add([]byte("node a b\na OCF::Dummy::d1 OCF::x::y::z\nstate=/x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			_, _ = ImportHeartbeat(HeartbeatInput{HACf: data, HAResources: data, Authkeys: data,
				Addresses: map[string]string{"a": "10.0.0.1", "b": "10.0.0.2"},
				// Every OCF::TYPE::INSTANCE reads the input as its conf file.
				OCFConf: func(string, string) ([]byte, error) { return data, nil }})
		})
	})
}

func FuzzImportKeepalived(f *testing.F) {
	seedFile(f, "../bin/samples/usr/share/doc/keepalived/samples/keepalived.conf.sample")
	seedFile(f, "../bin/samples/usr/share/doc/keepalived/samples/keepalived.conf.vrrp")
	f.Add([]byte("vrrp_instance A { state MASTER\n virtual_ipaddress {\n10.0.0.3/24 dev eth0 }}\nvirtual_server 10.0.0.3 80 { real_server 10.0.0.4 80 { HTTP_GET { url { path / status_code 200-299 } } } }\n"))
	f.Add([]byte("global_defs { vrrp_version 3\n notification_email { a@b }\n smtp_server 10.0.0.9 }\nvrrp_instance A { state BACKUP\n priority 90\n advert_int 0.05\n nopreempt\n preempt_delay 5\n unicast_src_ip 10.0.0.1\n unicast_peer { 10.0.0.2 }\n authentication { auth_type PASS\n auth_pass \"a long one\" }\n virtual_ipaddress { 10.0.0.3 }}\n"))
	seedFile(f, "../bin/samples/usr/share/doc/keepalived/samples/keepalived.conf.vrrp.lvs_syncd")
	f.Add([]byte("global_defs { lvs_sync_daemon eth1 A 7 maxlen 1400 port 8900 ttl 300 group 239.1.2.3 frob }\nvrrp_instance A { virtual_router_id 9\n virtual_ipaddress {\n10.0.0.3/24 dev eth0 }}\nvirtual_server 10.0.0.3 80 { real_server 10.0.0.4 80 { } }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			// The file is both routers' (its own peer file): every path
			// through the pair's mapping runs.
			k, err := ImportKeepalived(KeepalivedInput{Path: "k.conf", Data: data, Node: "n1", Peer: "n2", PeerPath: "p.conf", PeerData: data,
				Addresses: map[string]string{"n1": "10.0.0.1", "n2": "10.0.0.2"}})
			if err != nil {
				return
			}
			var ha *config.HA
			if ha, _, err = config.ParseHA(config.HAFile, k.Files[config.HAFile]); err != nil {
				return
			}
			for name, b := range k.Files {
				switch name {
				case config.HAFile:
				case "authkeys":
					_, _, _ = config.ParseAuthkeys(name, b)
				case config.ResourcesFile:
					_, _ = config.ParseResources(name, b, ha, instances.Builtin())
				default:
					_, _ = instances.ParseLdirectord(name, b)
				}
			}
		})
	})
}
