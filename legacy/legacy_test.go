package legacy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/internal/instances"
	ldspec "github.com/vigil-ha/vigil/resources/ldirectord/spec"
	monspec "github.com/vigil-ha/vigil/resources/mon/spec"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (Debian's heartbeat and mon packages: make deps installs them)", err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// uncomment enables the example lines that start with one of prefixes
// ("#node\tken3"), as an operator does with Debian's annotated samples.
func uncomment(data []byte, prefixes ...string) []byte {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, "#"+p) {
				l = l[1:]
				break
			}
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n"))
}

// write puts imported files in a fresh directory as `vigil import` does.
func write(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		mode := os.FileMode(0o644)
		if name == "authkeys" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// outcome is the last word on a directive (a later note may add a caveat).
func outcome(r *Report, directive string) Entry {
	var last Entry
	for _, e := range r.Entries {
		if strings.HasPrefix(e.Directive, directive) {
			last = e
		}
	}
	return last
}

// Debian's ha.cf, haresources and authkeys as shipped enable nothing:
// heartbeat refuses them (no node, no medium, no key); so does the import.
func TestHeartbeatDebianExampleAsShipped(t *testing.T) {
	_, err := ImportHeartbeat(HeartbeatInput{HACf: read(t, "/usr/share/doc/heartbeat/ha.cf.gz"), HACfPath: "ha.cf",
		HAResources: read(t, "/usr/share/doc/heartbeat/haresources.gz"), Authkeys: read(t, "/usr/share/doc/heartbeat/authkeys"), AuthkeysPath: "authkeys"})
	for _, want := range []string{"ha.cf names no node", "No heartbeat media defined", `no "auth N" line`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

// Debian's samples with their Linux lines enabled import into a
// configuration that passes Vigil's check, with each directive accounted
// for.
func TestHeartbeatDebianExampleEnabled(t *testing.T) {
	hacf := uncomment(read(t, "/usr/share/doc/heartbeat/ha.cf.gz"), "keepalive", "deadtime", "warntime", "initdead", "udpport", "baud",
		"serial\t/dev/ttyS0", "bcast\teth0", "mcast eth0", "ucast eth0", "node\t", "ping 10", "respawn hacluster", "apiauth ipfail gid",
		"watchdog", "hopfudge", "deadping", "realtime", "debug 1", "compression\t", "logfile", "stonith_host *")
	haresources := bytes.ReplaceAll(uncomment(read(t, "/usr/share/doc/heartbeat/haresources.gz"), "node1  10.0.0.170"), []byte("node1  10.0.0.170"), []byte("ken3  10.0.0.170"))
	authkeys := bytes.Replace(uncomment(read(t, "/usr/share/doc/heartbeat/authkeys"), "auth 1", "1 crc", "2 sha1", "3 md5"), []byte("auth 1"), []byte("auth 2"), 1)
	h, err := ImportHeartbeat(HeartbeatInput{HACf: hacf, HACfPath: "ha.cf", HAResources: haresources, HAResourcesPath: "haresources",
		Authkeys: authkeys, AuthkeysPath: "authkeys", Addresses: map[string]string{"ken3": "192.168.1.1", "kathy": "192.168.1.2"}})
	if err != nil {
		t.Fatal(err)
	}
	var rep strings.Builder
	h.Report.Write(&rep)
	t.Logf("report:\n%s", rep.String())
	if strings.Contains(rep.String(), "HI!") {
		t.Error("the report shows a secret")
	}
	for directive, want := range map[string]Outcome{
		"keepalive 2": Mapped, "node\tken3": Mapped, "bcast\teth0": Mapped, "mcast eth0": Mapped, "ucast eth0": Mapped,
		"serial\t/dev/ttyS0": Mapped, "respawn": Unsupported, "watchdog": Unsupported, "stonith_host": Unsupported,
		"logfacility": Unsupported, "deadping": Caveat, "1 crc": Unsupported, "2 sha1": Caveat, "3 md5": Unsupported,
		"ken3 10.0.0.170 Filesystem": Mapped,
	} {
		if got := outcome(&h.Report, directive); got.Outcome != want {
			t.Errorf("%q: %+v, want %s", directive, got, want)
		}
	}
	dir := t.TempDir()
	write(t, dir, h.Files)
	cfg, err := config.Load(dir, instances.Options("ken3"))
	if err != nil {
		t.Fatalf("imported configuration:\n%v\n%s", err, h.Files["ha.toml"])
	}
	ha := cfg.HA
	if ha.Keepalive.D().String() != "2s" || ha.Deadtime.D().String() != "30s" || ha.Warntime.D().String() != "10s" || ha.Initdead.D().String() != "2m0s" || !ha.AutoFailback {
		t.Errorf("timing: %+v", ha)
	}
	if len(ha.Serial) != 1 || ha.Serial[0].Baud != 19200 || len(ha.BCast) != 1 || ha.BCast[0].Port != 694 || len(ha.MCast) != 1 || ha.MCast[0].Group != "225.0.0.1" ||
		len(ha.UCast) != 1 || strings.Join(ha.UCast[0].Peers, ",") != "192.168.1.2" || strings.Join(ha.PingNodes, ",") != "10.10.10.254" {
		t.Errorf("media:\n%s", h.Files["ha.toml"])
	}
	g := cfg.Resources.Groups[0]
	if len(cfg.Resources.Groups) != 1 || g.Node != "ken3" || g.Resources[0].Params["ip"] != "10.0.0.170" ||
		g.Resources[1].Params["script"] != "Filesystem" || strings.Join(g.Resources[1].Args, " ") != "/dev/sda1 /data1 ext2" {
		t.Errorf("group: %+v", g)
	}
	if cfg.Auth.Secret.Empty() || string(cfg.Auth.Secret.Bytes()) != "HI!" {
		t.Error("the selected key (2 sha1) is not the cluster secret")
	}
}

// What heartbeat refuses, the import refuses, naming file and line.
func TestHeartbeatRefusals(t *testing.T) {
	base := "node a b\nucast eth0 10.0.0.2\n"
	addrs := map[string]string{"a": "10.0.0.1", "b": "10.0.0.2"}
	key := []byte("auth 1\n1 sha1 0123456789abcdef\n")
	for _, tc := range []struct{ name, hacf, auth, want string }{
		{"case-sensitive directive", base + "KeepAlive 1\n", "", "ha.cf:3: KeepAlive 1: heartbeat refuses it too: Illegal directive [KeepAlive]"},
		{"seconds suffix", base + "keepalive 2s\n", "", `ha.cf:3: keepalive 2s: "2s": heartbeat accepts only`},
		{"mcast without ttl", base + "mcast eth0 239.0.0.1 694\n", "", "ha.cf:3: mcast eth0 239.0.0.1 694: mcast takes: dev group port ttl loop"},
		{"bad boolean", base + "auto_failback maybe\n", "", `ha.cf:3: auto_failback maybe: "maybe" is not a boolean`},
		{"key before auth", base, "1 sha1 0123456789abcdef\nauth 1\n", "authkeys:2: auth: Auth Key [1] not found"},
		{"crc selected", base, "auth 1\n1 crc\n", "authkeys:2: 1 crc: crc has no secret"},
		{"sha1 without key", base, "auth 1\n1 sha1\n", "authkeys:2: 1 sha1: Auth method [sha1] requires a key"},
		{"unknown method", base, "auth 1\n1 SHA1 x\n", "authkeys:2: 1 SHA1: Invalid authtype [SHA1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := key
			if tc.auth != "" {
				auth = []byte(tc.auth)
			}
			_, err := ImportHeartbeat(HeartbeatInput{HACf: []byte(tc.hacf), HACfPath: "ha.cf", Authkeys: auth, AuthkeysPath: "authkeys", Addresses: addrs})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %q", err, tc.want)
			}
		})
	}
	// Times: bare seconds, ms and us; commas separate values; '#' anywhere
	// starts a comment; the last value wins.
	h, err := ImportHeartbeat(HeartbeatInput{HACf: []byte("node a,b # two nodes\nkeepalive 0.5\ndeadtime 3 2500ms\nwarntime 900000us\nucast eth0 10.0.0.2\n"),
		HACfPath: "ha.cf", Authkeys: key, Addresses: addrs})
	if err != nil {
		t.Fatal(err)
	}
	ha, _, err := config.ParseHA("ha.toml", h.Files["ha.toml"])
	if err != nil {
		t.Fatal(err)
	}
	if len(ha.Nodes) != 2 || ha.Keepalive.D().String() != "500ms" || ha.Deadtime.D().String() != "2.5s" || ha.Warntime.D().String() != "900ms" {
		t.Errorf("%s", h.Files["ha.toml"])
	}
}

// The seed setup, written out as heartbeat, ldirectord and mon read it,
// imports into one directory that passes the check, with the same group,
// virtual service and watches.
func TestSeedImport(t *testing.T) {
	dir := t.TempDir()
	seed := "testdata/seed/"
	h, err := ImportHeartbeat(HeartbeatInput{HACf: read(t, seed+"ha.cf"), HACfPath: "ha.cf", HAResources: read(t, seed+"haresources"),
		HAResourcesPath: "haresources", Authkeys: read(t, seed+"authkeys"), AuthkeysPath: "authkeys",
		Addresses: map[string]string{"lvs1": "10.0.0.1", "lvs2": "10.0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, h.Files)
	ld, rep, err := ImportLdirectord("ldirectord.cf", read(t, seed+"ldirectord.cf"))
	if err != nil {
		t.Fatal(err)
	}
	if e := outcome(rep, "autoreload"); e.Outcome != Caveat {
		t.Errorf("autoreload: %+v", e)
	}
	mon, mrep, err := ImportMon("mon.cf", read(t, seed+"mon.cf"))
	if err != nil {
		t.Fatal(err)
	}
	if e := outcome(mrep, "maxprocs"); e.Outcome != Unsupported {
		t.Errorf("maxprocs: %+v", e)
	}
	write(t, dir, map[string][]byte{"ldirectord.toml": ld, "mon.toml": mon})
	cfg, err := config.Load(dir, instances.Options("lvs1"))
	if err != nil {
		t.Fatalf("%v\n%s\n%s\n%s", err, h.Files["resources.toml"], ld, mon)
	}
	// heartbeat lowercases node names; the group is the haresources line.
	if n := cfg.HA.Nodes; len(n) != 2 || n[1].Name != "lvs2" || cfg.HA.AutoFailback || cfg.HA.Keepalive.D().String() != "200ms" || cfg.HA.Deadtime.D().String() != "1s" {
		t.Errorf("ha.toml:\n%s", h.Files["ha.toml"])
	}
	g := cfg.Resources.Groups[0]
	var ids []string
	for _, r := range g.Resources {
		ids = append(ids, r.ID)
	}
	if g.Node != "lvs1" || strings.Join(ids, " ") != "IPaddr_10.0.0.3 ldirectord_ldirectord mon_mon" {
		t.Errorf("group %s on %s: %v", g.Name, g.Node, ids)
	}
	var in ldspec.Instance
	if err := json.Unmarshal([]byte(g.Resources[1].Params[ldspec.ParamName]), &in); err != nil {
		t.Fatal(err)
	}
	// What ldirectord would program (LEGACY §5.6): -A -t 10.0.0.3:80 -s wlc,
	// -a … -r 192.168.6.2:80 -g -w 5 (and .3), the fallback only while no
	// real is up, HTTP checks of /.testpage for "test page" every 1 s.
	v := in.Virtual[0]
	if v.Address != "10.0.0.3:80" || v.Scheduler != "wlc" || v.Protocol != "tcp" || v.Service != "http" || v.Request != "/.testpage" ||
		v.Receive != "test page" || v.CheckInterval.D().String() != "1s" || v.CheckTimeout.D().String() != "3s" || v.Fallback != "127.0.0.1:80 gate" ||
		len(v.Real) != 2 || v.Real[0].Address != "192.168.6.2:80" || *v.Real[0].Weight != 5 || v.Real[1].Forward != "gate" || v.Quiescent == nil || *v.Quiescent {
		t.Errorf("virtual: %+v\n%s", v, ld)
	}
	var m monspec.Instance
	if err := json.Unmarshal([]byte(g.Resources[2].Params[monspec.ParamName]), &m); err != nil {
		t.Fatal(err)
	}
	p := m.Watches[0].Services[0].Periods[0]
	if len(m.Watches) != 2 || m.Hostgroups["rs2"][0] != "192.168.6.3" || m.Watches[0].Services[0].Monitor != "http.monitor -u /.testpage" ||
		p.Alert[1] != "ipvs -P tcp -V 10.0.0.3:80 -R 192.168.6.2 -W 5 -F gate" || p.AlertEvery != "10m" {
		t.Errorf("mon: %+v\n%s", m, mon)
	}
}

// ldirectord's own rules: indentation, quoting, ranges, refusals.
func TestLdirectordRules(t *testing.T) {
	good := "checkinterval=2\nvirtual=10.0.0.3:http\n\treal=10.0.0.10->10.0.0.12:80 masq 3 \"/x\", \"ok\" l:5 u:100\n\treal=10.0.0.20 gate\n    checktype=connect # a comment\n" +
		"virtual=42\n\treal=10.0.0.10 gate\n\tservice=ftp\n"
	toml, rep, in := checked(t, ImportLdirectord, "ld.cf", good, instances.ParseLdirectord)
	v := in.Virtual[0]
	if len(v.Real) != 4 || v.Real[2].Address != "10.0.0.12:80" || v.Real[0].Receive != "ok" || v.Real[0].Lower != 5 || v.Real[0].Upper != 100 ||
		v.Real[3].Address != "10.0.0.20:80" || v.CheckType != "connect" || v.Scheduler != "wrr" {
		t.Errorf("%+v\n%s", v, toml)
	}
	if fw := in.Virtual[1]; fw.FWMark != 42 || fw.CheckType != "connect" || outcome(rep, "service=ftp").Outcome != Caveat {
		t.Errorf("fwmark virtual: %+v", fw)
	}
	refuses(t, ImportLdirectord, "ld.cf", []struct{ src, want string }{
		{"virtual=10.0.0.3:80\n  real=10.0.0.2 gate\n", "ld.cf:2: real=10.0.0.2 gate: ldirectord: Unknown command"},
		{"virtual=10.0.0.3:80\n\trequest=index.html\n", "request must be double-quoted"},
		{"virtual=10.0.0.3:80\n\treal=10.0.0.2:80\n", "the forward method is required"},
		{"virtual=10.0.0.3:80\n\treal=10.0.0.2 direct\n", "forward method must be gate, masq or ipip"},
		{"quiescent=no # c\n", "must be 'yes' or 'no'"},
		{"connecttimeout=3\n", "ldirectord refuses it too"},
		{"virtual=[::1]:80\n", `please use "virtual6"`},
		{"virtual=10.0.0.3:80\n\tnetmask=24\n", "dotted-quad"},
	})
}

// mon's example configuration and Debian's /etc/mon/mon.cf import; mon's
// own refusals are refused.
func TestMonExamples(t *testing.T) {
	for _, path := range []string{"/usr/share/doc/mon/examples/example.cf.gz", "/etc/mon/mon.cf"} {
		toml, rep, err := ImportMon(path, read(t, path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if _, err := instances.ParseMon("mon.toml", toml); err != nil {
			t.Errorf("%s: the import does not pass the check: %v\n%s", path, err, toml)
		}
		if rep.Count(Mapped) == 0 {
			t.Errorf("%s: nothing mapped", path)
		}
	}
	refuses(t, ImportMon, "mon.cf", []struct{ src, want string }{
		{"watch g\n    service s\n    interval 30\n    monitor x\n", "invalid time interval '30'"},
		{"frobnicate = 1\n", "unknown variable 'frobnicate'"},
		{"watch g\n    service s\n    monitor x\n    foo=bar\n", "a variable name is upper case"},
		{"watch g\n    service s\n    monitor x\n    period\n    alert a\n    monitor y\n", "unknown syntax [monitor y]"},
		{"watch g\nwatch g\n", "watch 'g' already defined"},
		// Found by test/mondiff: refused by mon at the line, so at import.
		{"watch g\n    service s\n    monitor x\n    period wd {Funday}\n", "mon.cf:4: period wd {Funday}: malformed period"},
		{"watch g\n    service s\n    monitor x\n    period\n    alert a\n    period\n", "mon.cf:6: period: period '' already defined"},
		{"watch g\n    service s\n    monitor x\n    period\n    alertafter 1d\n", "mon.cf:5: alertafter 1d: invalid interval specification"},
		{"watch g\n    service s\n    interval 1m\n    monitor x\n    period\n    alertafter 3 1m\n", "not sensible"},
		{"watch g\n    service s\n    monitor x\n    period\n    alertevery 1h bogus\n", "mon.cf:5: alertevery"},
		{"watch g\n    service s\n    monitor x\n    dep_behavior x\n", "mon.cf:4: dep_behavior x: unknown dependency behavior"},
		{"dep_behavior = q\n", "unknown dependency behavior 'q'"},
	})
	// Found by test/mondiff: mondir and alertdir are colon lists; mon's
	// cfbasedir is MON_CFBASEDIR; without statedir and logdir, mon's own
	// (Debian's) reach the scripts; alertafter 0 holds nothing back.
	toml, rep, in := checked(t, ImportMon, "mon.cf", "mondir = /a:/b\nalertdir = /c\ncfbasedir = /etc/x\n\nwatch g\n    service s\n    interval 1s\n    monitor m\n    period\n    alertafter 0\n    alert a\n", instances.ParseMon)
	if fmt.Sprintf("%v %v %s %s %s", in.MonDir, in.AlertDir, in.CfBaseDir, in.StateDir, in.LogDir) != "[/a /b] [/c] /etc/x /var/lib/mon /var/log/mon" ||
		in.Watches[0].Services[0].Periods[0].AlertAfter != "" {
		t.Errorf("%+v\n%s", in, toml)
	}
	// A depend list without operators is a Perl syntax error to mon.
	_, rep, _ = ImportMon("mon.cf", []byte("watch g\n    service s\n    interval 1s\n    monitor m\n    depend g:a g:b\n    period\n    alert a\n"))
	if e := outcome(rep, "depend g:a g:b"); e.Outcome != Caveat || !strings.Contains(e.Note, "never alerts") {
		t.Errorf("%+v", e)
	}
	// Without a blank line after a hostgroup, mon takes the watch lines
	// as hosts; so does the import, with a caveat.
	_, rep, _ = ImportMon("mon.cf", []byte("hostgroup g a b\nwatch g\n"))
	if e := outcome(rep, "watch g"); e.Outcome != Caveat || !regexp.MustCompile(`blank line`).MatchString(e.Note) {
		t.Errorf("%+v", e)
	}
}

// A heartbeat pair becomes a two_node pair, and the import says what
// that changes: heartbeat's survivor took over after initdead or
// deadtime whatever silenced its peer; Vigil's asks its ping nodes, and
// without one waits for `vigil takeover` — and which line changes that.
func TestHeartbeatPairNote(t *testing.T) {
	key := []byte("auth 1\n1 sha1 0123456789abcdef\n")
	addrs := map[string]string{"a": "10.0.0.1", "b": "10.0.0.2"}
	for _, tc := range []struct {
		hacf string
		want []string
	}{
		{"node a b\nucast eth0 10.0.0.2\ndeadtime 10\ninitdead 25\n", []string{"initdead (25s, at boot)", "ha.cf's ping directive", "both nodes do", "vigil takeover", `ping_nodes = ["ROUTER"]`}},
		{"node a b\nucast eth0 10.0.0.2\nping 10.0.0.254\n", []string{"a ping node (10.0.0.254)", "never give two holders"}},
	} {
		h, err := ImportHeartbeat(HeartbeatInput{HACf: []byte(tc.hacf), HACfPath: "ha.cf", Authkeys: key, Addresses: addrs})
		if err != nil {
			t.Fatal(err)
		}
		e := outcome(&h.Report, "node a b")
		for _, w := range tc.want {
			if e.Outcome != Caveat || e.Line != 1 || !strings.Contains(e.Note, w) {
				t.Errorf("%q: %+v lacks %q", tc.hacf, e, w)
			}
		}
		if ha, _, err := config.ParseHA("ha.toml", h.Files["ha.toml"]); err != nil || !ha.TwoNode {
			t.Errorf("%v\n%s", err, h.Files["ha.toml"])
		}
	}
}

// What the differential test against Debian's ldirectord (test/ldiff)
// found the import must keep: a gate real's own port as its check port,
// the IPv6 directives, fallbacks per family, combined checks, cleanstop,
// names from /etc/hosts and /etc/services, https verification.
func TestLdirectordAsTheRealOne(t *testing.T) {
	src := "fallback=127.0.0.1\nfallback6=[::1]:80 masq\ncleanstop=no\n" +
		"virtual=10.0.0.3:www\n\treal=10.0.0.10:8080 gate 2\n\treal=10.0.0.11:8080 ipip\n\treal=10.0.0.12:8080 masq\n\tchecktype=3\n" +
		"virtual=7\n\treal=10.0.0.10 gate\n\tchecktype=connect\n" +
		"virtual6=[fd00::1]:443\n\treal6=[fd00::2]:443 masq\n" +
		"virtual=localhost:8080\n\treal=localhost:8080 masq\n\tchecktype=connect\n"
	toml, rep, in := checked(t, ImportLdirectord, "ld.cf", src, instances.ParseLdirectord)
	v := in.Virtual[0]
	if v.Address != "10.0.0.3:80" || v.CheckType != "combined" || v.Connects != 3 || v.Service != "http" || *v.CleanStop ||
		v.Real[0].Address != "10.0.0.10:80" || v.Real[0].CheckPort != 8080 || v.Real[1].Address != "10.0.0.11:80" || v.Real[1].CheckPort != 8080 ||
		v.Real[2].Address != "10.0.0.12:8080" || v.Real[2].CheckPort != 0 || v.Fallback != "127.0.0.1 gate" && v.Fallback != "127.0.0.1" {
		t.Errorf("virtual 0: %+v\n%s", v, toml)
	}
	if fw := in.Virtual[1]; fw.Fallback != "" {
		t.Errorf("a firewall mark got the global fallback %q (ldirectord gives it none)", fw.Fallback)
	}
	if v6 := in.Virtual[2]; v6.Address != "[fd00::1]:443" || v6.Real[0].Address != "[fd00::2]:443" || v6.Fallback != "[::1]:80 masq" ||
		v6.Service != "https" || v6.TLSVerify != "chain" {
		t.Errorf("virtual6: %+v\n%s", v6, toml)
	}
	if lh := in.Virtual[3]; lh.Address != "127.0.0.1:8080" || lh.Real[0].Address != "127.0.0.1:8080" || outcome(rep, "virtual=localhost:8080").Outcome != Caveat {
		t.Errorf("host names: %+v\n%s", lh, toml)
	}
	refuses(t, ImportLdirectord, "ld.cf", []struct{ src, want string }{
		{"virtual6=[fd00::1]:80\n\treal=[fd00::2]:80 gate\n", `please use "real6"`},
		{"virtual6=[fd00::1]:80\n\tnetmask=255.255.255.0\n", "a prefix length between 1 and 128"},
		{"virtual=10.0.0.3:80\n\treal6=[fd00::2]:80 gate\n", `please use "real"`},
		{"virtual=10.0.0.3:80\n\treal=no-such-host.invalid:80 gate\n", "not an address, nor a name in /etc/hosts"},
		{"autoreload=maybe\n", "must be 'yes' or 'no'"},
		{"cleanstop=maybe\n", "must be 'yes' or 'no'"},
		{"virtual=10.0.0.3:80\n\tops=maybe\n", "must be 'yes' or 'no'"},
		{"virtual=10.0.0.3:80\n\tservice=gopher\n", "service must be"},
		{"virtual=10.0.0.3:80\n\treceive=\"\"\n", "an empty receive"},
	})
}

// OCF::TYPE::INSTANCE takes its parameters from heartbeat's
// conf/OCF/TYPE/INSTANCE, as the OCF wrapper read them; what only the
// shell could expand is left for the operator, and said.
func TestHeartbeatOCFConf(t *testing.T) {
	conf := map[string]string{
		"Dummy/d1": "# Dummy's state\nstate=/var/run/d1.state  # here\n  export fake='yes'\nop_sleep=\"2\"\nbad=$HOME/x\n",
	}
	h, err := ImportHeartbeat(HeartbeatInput{HACf: []byte("node a\nnode b\nucast eth0 10.0.0.2\n"), HACfPath: "ha.cf",
		HAResources: []byte("a OCF::Dummy::d1 OCF::Dummy::none\n"), HAResourcesPath: "haresources",
		Authkeys: []byte("auth 1\n1 sha1 0123456789abcdef0123\n"), AuthkeysPath: "authkeys",
		Addresses: map[string]string{"a": "10.0.0.1", "b": "10.0.0.2"},
		OCFConf: func(agent, instance string) ([]byte, error) {
			if c, ok := conf[agent+"/"+instance]; ok {
				return []byte(c), nil
			}
			return nil, os.ErrNotExist
		}})
	if err != nil {
		t.Fatal(err)
	}
	res := string(h.Files["resources.toml"])
	if !strings.Contains(res, `"OCF::Dummy::d1::state=/var/run/d1.state::fake=yes::op_sleep=2", "OCF::Dummy::none"`) {
		t.Errorf("resources.toml:\n%s", res)
	}
	e := outcome(&h.Report, "a OCF::Dummy::d1")
	if e.Outcome != Caveat || !strings.Contains(e.Note, "not imported (shell expansion or quoting): bad") || !strings.Contains(e.Note, "conf/OCF/Dummy/none") {
		t.Errorf("report: %+v", e)
	}
	dir := t.TempDir()
	write(t, dir, h.Files)
	cfg, err := config.Load(dir, instances.Options("a"))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Resources.Groups[0].Resources[0]; r.Type != "ocf:heartbeat:Dummy" || r.ID != "d1" || r.Params["state"] != "/var/run/d1.state" {
		t.Errorf("resource %+v", r)
	}
}

// importer is ImportLdirectord or ImportMon.
type importer func(file string, data []byte) ([]byte, *Report, error)

// checked imports src as file and parses the result as `vigil config
// check` does (parse); either failing ends the test.
func checked[T any](t *testing.T, imp importer, file, src string, parse func(string, []byte) (T, error)) ([]byte, *Report, T) {
	t.Helper()
	toml, rep, err := imp(file, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	in, err := parse(strings.TrimSuffix(file, ".cf")+".toml", toml)
	if err != nil {
		t.Fatalf("%v\n%s", err, toml)
	}
	return toml, rep, in
}

// refuses checks that imp refuses each case's src, read as file, with an
// error saying want.
func refuses(t *testing.T, imp importer, file string, cases []struct{ src, want string }) {
	t.Helper()
	for _, tc := range cases {
		if _, _, err := imp(file, []byte(tc.src)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}
