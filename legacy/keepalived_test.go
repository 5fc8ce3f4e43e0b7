package legacy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/internal/instances"
)

// keepalivedSamples are the sample configurations of Debian's keepalived
// 2.2.7 package, unpacked (not installed) by `make deps`.
const keepalivedSamples = "../bin/samples/usr/share/doc/keepalived/samples"

// kaAuthkeys is the secret the tests give files without auth_pass.
var kaAuthkeys = []byte("auth 1\n1 sha256 0123456789abcdef0123456789abcdef\n")

// importKeepalived imports path as lvs1's file of a pair with lvs2
// (addresses given, as a file with multicast VRRP needs) and checks the
// result as `vigil import` does.
func importKeepalived(t *testing.T, path string, data []byte) *Keepalived {
	t.Helper()
	in := KeepalivedInput{Path: path, Data: data, Node: "lvs1", Peer: "lvs2", ReadFile: os.ReadFile, Glob: filepath.Glob,
		Addresses: map[string]string{"lvs1": "10.0.0.1", "lvs2": "10.0.0.2"}}
	if !strings.Contains(string(data), "auth_pass") {
		in.Authkeys, in.AuthkeysPath = kaAuthkeys, "authkeys"
	}
	k, err := ImportKeepalived(in)
	if err != nil {
		k.Write(os.Stderr)
		t.Fatalf("%s: %v", path, err)
	}
	checkKeepalived(t, path, k, "lvs1")
	return k
}

// checkKeepalived writes the result into a directory and loads it as
// `vigil config check` does, as node.
func checkKeepalived(t *testing.T, path string, k *Keepalived, node string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, k.Files)
	cfg, err := config.Load(dir, instances.Options(node))
	if err != nil {
		t.Fatalf("%s: the import does not pass the check: %v\nha.toml:\n%s\nresources.toml:\n%s", path, err, k.Files["ha.toml"], k.Files["resources.toml"])
	}
	return cfg
}

// Every sample Debian ships imports, and the result passes the check;
// directives Vigil has no counterpart for are reported, never dropped
// silently.
func TestKeepalivedDebianSamples(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(keepalivedSamples, "keepalived.conf*"))
	if len(paths) < 20 {
		t.Fatalf("keepalived's samples are missing under %s (make deps unpacks Debian's keepalived package there)", keepalivedSamples)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		k := importKeepalived(t, p, data)
		statements := 0
		for _, line := range strings.Split(string(data), "\n") {
			if f := kaTokens(line); len(f) > 0 && f[0] != "}" && f[0] != "{" {
				statements++
			}
		}
		// At most one entry a statement, plus the file's own: the pair
		// (two_node) and the secret (authkeys).
		if len(k.Entries) == 0 || len(k.Entries) > statements+3 {
			t.Errorf("%s: %d report entries for %d statements", p, len(k.Entries), statements)
		}
	}

	// The main sample, in detail.
	k := importKeepalived(t, "keepalived.conf.sample", read(t, filepath.Join(keepalivedSamples, "keepalived.conf.sample")))
	res, ld := string(k.Files["resources.toml"]), string(k.Files["lvs.toml"])
	for _, want := range []string{`name = "VI_1"`, `{ cidr_netmask = "32", ip = "192.168.200.11", nic = "eth0" }`, `ip = "192.168.200.13"`, `{ type = "ldirectord", params = { config = "lvs" } }`} {
		if !strings.Contains(res, want) {
			t.Errorf("resources.toml lacks %s:\n%s", want, res)
		}
	}
	if e := outcome(&k.Report, "vrrp_instance VI_1"); e.Outcome != Caveat || !strings.Contains(e.Note, "BACKUP here") || !strings.Contains(res, "name = \"VI_1\"\nnode = \"lvs2\"") {
		t.Errorf("no instance starts as MASTER here, yet the group does not prefer the other router, with a caveat: %+v\n%s", e, res)
	}
	for _, want := range []string{`address = "10.10.10.2:1358"`, `scheduler = "rr"`, `persistent = "50s"`, `checktype = "negotiate"`, `service = "http"`,
		`request = "/testurl3/test.jsp"`, `digest = "640205b7b0fc66c1ea91c463fac6334d"`, `fallback = "192.168.200.200:1358 masq"`, `forward = "masq"`, `checkinterval = "6s"`} {
		if !strings.Contains(ld, want) {
			t.Errorf("lvs.toml lacks %s:\n%s", want, ld)
		}
	}
	for directive, want := range map[string]Outcome{"nopreempt": Mapped, "192.168.200.11": Caveat, "smtp_connect_timeout 30": Unsupported, "lb_kind NAT": Mapped} {
		if e := outcome(&k.Report, directive); e.Outcome != want {
			t.Errorf("%s: %s (%s), want %s", directive, e.Outcome, e.Note, want)
		}
	}

	// Sync groups: the instances that fail over together are one group.
	k = importKeepalived(t, "sync", read(t, filepath.Join(keepalivedSamples, "keepalived.conf.vrrp.sync")))
	res = string(k.Files["resources.toml"])
	if strings.Count(res, "[[group]]") != 2 || !strings.Contains(res, "name = \"G1\"\nnode = \"lvs1\"") || strings.Count(res, "type = \"IPaddr\"") != 9 {
		t.Errorf("sync groups:\n%s", res)
	}
}

// keepalived's syntax and the mapping, one rule at a time.
func TestKeepalivedRules(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string][]byte{"vs-web.conf": []byte(`virtual_server 10.0.0.3 80
{
    lb_algo wlc ! a comment
    lb_kind DR   # another
    inhibit_on_failure
    real_server 10.0.1.1 80 { weight 3
        MISC_CHECK {
            misc_path "/usr/local/bin/check web"
            misc_timeout 5
        }
    }
    real_server 10.0.1.2 80 {
        TCP_CHECK { connect_timeout 2 }
    }
}
virtual_server fwmark 7 {
    real_server 10.0.1.3 { }
}
virtual_server 10.0.0.4 80 {
    mh-port
    lvs_sched mh
    mh-port
    flag-1
    real_server 10.0.1.4 80 { }
}
`)})
	conf := []byte(`vrrp_instance WEB{ state MASTER
    version 3
    interface eth0
    virtual_router_id 9
    advert_int 0.1
    priority 150
    garp_master_repeat 4
    virtual_ipaddress { 10.0.0.3/24 dev eth1 label eth1:web
    }
}
include vs-*.conf
`)
	k := importKeepalived(t, filepath.Join(dir, "keepalived.conf"), conf)
	res, ld := string(k.Files["resources.toml"]), string(k.Files["lvs.toml"])
	for _, want := range []string{"name = \"WEB\"\nnode = \"lvs1\"", `{ arp_count = "4", cidr_netmask = "24", ip = "10.0.0.3", label = "eth1:web", nic = "eth1" }`, `config = "lvs"`} {
		if !strings.Contains(res, want) {
			t.Errorf("resources.toml lacks %s:\n%s", want, res)
		}
	}
	for _, want := range []string{`checktype = "external"`, `checkcommand = "/usr/local/bin/check web"`, `checktimeout = "5s"`, `quiescent = true`,
		`scheduler = "wlc"`, "address = \"10.0.1.1:80\"\n  forward = \"gate\"\n  weight = 3", "fwmark = 7", "address = \"10.0.1.3\"\n  forward = \"masq\""} {
		if !strings.Contains(ld, want) {
			t.Errorf("lvs.toml lacks %s:\n%s", want, ld)
		}
	}
	// VRRPv3's master-down interval at priority 150: 300 ms + 106/256 ×
	// 100 ms, below the 3.5 keepalives Vigil's lease needs.
	if e := outcome(&k.Report, "advert_int 0.1"); e.Outcome != Caveat || !strings.Contains(e.Note, `keepalive = "100ms"`) || !strings.Contains(e.Note, "takes over after 341ms") ||
		!strings.Contains(e.Note, `deadtime = "350ms"`) || !strings.Contains(string(k.Files["ha.toml"]), "deadtime = \"350ms\"") {
		t.Errorf("advert_int: %s %s", e.Outcome, e.Note)
	}
	// mh's flags, when named after the scheduler (as keepalived reads them).
	if !strings.Contains(ld, "scheduler = \"mh\"\nmh_port = true\nmh_fallback = true\n") {
		t.Errorf("mh flags:\n%s", ld)
	}
	var mhPort []string
	for _, e := range k.Report.Entries {
		if strings.HasPrefix(e.Directive, "mh-port") {
			mhPort = append(mhPort, string(e.Outcome)+": "+e.Note)
		}
	}
	if len(mhPort) != 2 || !strings.Contains(mhPort[0], "only applies to the mh scheduler") || !strings.Contains(mhPort[1], "mh_port = true") {
		t.Errorf("mh-port before and after lvs_sched: %q", mhPort)
	}
	if e := outcome(&k.Report, "TCP_CHECK"); e.Outcome != Caveat {
		t.Errorf("a second real's own check: %s %s", e.Outcome, e.Note)
	}

	// What keepalived refuses too: nothing is written. The input is
	// otherwise complete, so the error is the one named.
	for bad, want := range map[string]string{
		"vrrp_instance A {\n interface eth0\n":             "missing '}'s",
		"frobnicate 1\n":                                   "Unknown keyword 'frobnicate'",
		"vrrp_instance A { virtual_router_id 300 }\n":      "must be 1..255",
		"virtual_server 10.0.0.3 80 { lb_kind MASQ }\n":    "unknown [MASQ] routing method",
		"vrrp_instance A { virtual_ipaddress { nope } }\n": `"nope" is not an address`,
		"}\n":                                    "an extra '}'",
		"vrrp_instance A { advert_int 500ms }\n": `advert_int "500ms"`,
		"vrrp_instance A { version 4 }\n":        "version is 2 or 3",
		"global_defs { vrrp_version 1 }\n":       "vrrp_version is 2 or 3",
		"vrrp_instance A { authentication { auth_pass x\n frob y } }\n": "Unknown keyword 'frob'",
	} {
		in := kaPairInput([]byte(bad), nil)
		in.Authkeys, in.AuthkeysPath = kaAuthkeys, "authkeys"
		if _, err := ImportKeepalived(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", bad, err, want)
		}
	}
}

// The ldirectord.cf Debian's ldirectord package ships as its example
// (unpacked by make deps like keepalived's): imported as ldirectord reads
// it, and checked.
func TestLdirectordDebianExample(t *testing.T) {
	path := "../bin/samples/usr/share/doc/ldirectord/examples/ldirectord.cf"
	toml, r, err := ImportLdirectord(path, read(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := instances.ParseLdirectord("ldirectord.toml", toml); err != nil {
		t.Fatalf("%v\n%s", err, toml)
	}
	for _, want := range []string{`address = "192.168.6.240:80"`, `scheduler = "rr"`, `service = "http"`, `request = "index.html"`, `receive = "Test Page"`,
		`virtualhost = "www.x.y.z"`, `fallback = "127.0.0.1:80 gate"`, "address = \"192.168.6.6:80\"\n  forward = \"gate\"\n  weight = 1", `checkinterval = "1s"`} {
		if !strings.Contains(string(toml), want) {
			t.Errorf("lacks %s:\n%s", want, toml)
		}
	}
	if e := outcome(r, "autoreload=yes"); e.Outcome != Caveat {
		t.Errorf("autoreload: %+v", e)
	}
}

// lvs_sync_daemon becomes the ldirectord instance's [sync] table: the
// interface, keepalived's sync id (given, else the named instance's
// virtual_router_id) and the Linux 4.3 options; a bad option is ignored
// and reported as keepalived ignores it; the deprecated per-instance
// lvs_sync_daemon_interface maps the same way.
func TestKeepalivedSyncDaemon(t *testing.T) {
	const rest = `vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    virtual_ipaddress { 10.0.0.3/24 dev eth0 }
    %s
}
virtual_server 10.0.0.3 80 {
    lb_kind NAT
    real_server 10.0.1.1 80 { TCP_CHECK { } }
}
`
	cases := []struct {
		name, globals, inInstance string
		want                      []string
		absent                    string
		note                      string
	}{
		{"every option", "lvs_sync_daemon eth1 VI_1 maxlen 1400 port 8900 ttl 2 group 239.1.2.3", "",
			[]string{"[sync]\ninterface = \"eth1\"\nsync_id = 51\ngroup = \"239.1.2.3\"\nport = 8900\nttl = 2\nmaxlen = 1400\n"}, "", "daemons follow group VI_1"},
		{"id keyword", "lvs_sync_daemon eth1 VI_1 id 7", "", []string{"sync_id = 7\n"}, "port =", ""},
		{"bare id, the older form", "lvs_sync_daemon eth1 VI_1 9 ttl 3", "", []string{"sync_id = 9\n", "ttl = 3\n"}, "", ""},
		{"bad option ignored", "lvs_sync_daemon eth1 VI_1 ttl 300 group 10.0.0.1 frob", "", []string{"interface = \"eth1\"\nsync_id = 51\n"}, "ttl =",
			"ignored as keepalived ignores them: ttl 300, group 10.0.0.1, frob"},
		{"unknown instance", "lvs_sync_daemon eth1 VI_9", "", []string{"[sync]\ninterface = \"eth1\"\n"}, "sync_id", "no vrrp_instance VI_9"},
		{"deprecated per-instance form", "", "lvs_sync_daemon_interface eth2", []string{"[sync]\ninterface = \"eth2\"\nsync_id = 51\n"}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := fmt.Sprintf("global_defs {\n    %s\n}\n"+rest, c.globals, c.inInstance)
			k := importKeepalived(t, "keepalived.conf", []byte(conf))
			ld := string(k.Files["lvs.toml"])
			for _, w := range c.want {
				if !strings.Contains(ld, w) {
					t.Errorf("lvs.toml lacks %q:\n%s", w, ld)
				}
			}
			if c.absent != "" && strings.Contains(ld, c.absent) {
				t.Errorf("lvs.toml has %q:\n%s", c.absent, ld)
			}
			if c.note != "" {
				found := false
				for _, e := range k.Report.Entries {
					found = found || strings.Contains(e.Note, c.note)
				}
				if !found {
					var b strings.Builder
					k.Write(&b)
					t.Errorf("no report note %q:\n%s", c.note, b.String())
				}
			}
			// The loader accepts it and fills the sync id.
			cfg := checkKeepalived(t, "keepalived.conf", k, "lvs1")
			for _, g := range cfg.Resources.Groups {
				for _, r := range g.Resources {
					if js := r.Params["spec"]; js != "" && !strings.Contains(js, `"sync_id":`) {
						t.Errorf("no sync id reaches the plugin: %s", js)
					}
				}
			}
		})
	}
	// What keepalived refuses: an interface name longer than IFNAMSIZ-1.
	in := kaPairInput([]byte("global_defs { lvs_sync_daemon averyveryverylongname VI_1 }\n"), nil)
	in.Authkeys, in.AuthkeysPath = kaAuthkeys, "authkeys"
	if _, err := ImportKeepalived(in); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("long interface: %v", err)
	}
}
