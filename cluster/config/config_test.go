package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/testutil"
)

const baseHA = `cluster = "lvs"
keepalive = "100ms"
deadtime = "500ms"

[[nodes]]
name = "lvs1"
address = "10.0.0.1"

[[nodes]]
name = "lvs2"
address = "10.0.0.2"

[[ucast]]

[[serial]]
device = "/dev/ttyS0"
baud = 115200
`

// quietPair makes baseHA's pair one that fails over (no warning about it).
const quietPair = "two_node = true\nping_nodes = [\"10.0.0.254\"]\n"

// TestHAErrors checks that every class of error names the right file, line
// and key.
func TestHAErrors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // "line: key: substring"
	}{
		{"syntax", "cluster = \"lvs\nkeepalive = 1", []string{"1: cluster: "}},
		{"unknown top key", "frobnicate = 1\n" + baseHA, []string{"1: frobnicate: unknown key"}},
		{"unknown key in a table", baseHA + "frobnicate = 1\n", []string{"18: serial[0].frobnicate: unknown key"}},
		{"unknown key in second node", strings.Replace(baseHA, "address = \"10.0.0.2\"", "adress = \"10.0.0.2\"", 1),
			[]string{"11: nodes[1].adress: unknown key", "9: nodes[1].address: is required"}},
		{"wrong type", strings.Replace(baseHA, `cluster = "lvs"`, `cluster = 5`, 1), []string{"1: cluster: incompatible types"}},
		{"duration without unit", strings.Replace(baseHA, `keepalive = "100ms"`, `keepalive = 100`, 1), []string{"2: keepalive: duration 100 has no unit"}},
		{"bad duration", strings.Replace(baseHA, `keepalive = "100ms"`, `keepalive = "fast"`, 1), []string{"2: keepalive: invalid duration \"fast\""}},
		{"duplicate node name", strings.Replace(baseHA, `name = "lvs2"`, `name = "lvs1"`, 1), []string{"10: nodes[1].name: duplicate node name \"lvs1\" (also nodes[0].name, line 6)"}},
		{"duplicate address", strings.Replace(baseHA, `"10.0.0.2"`, `"10.0.0.1"`, 1), []string{"11: nodes[1].address: duplicate address 10.0.0.1"}},
		{"bad address", strings.Replace(baseHA, `"10.0.0.2"`, `"10.0.0.256"`, 1), []string{"11: nodes[1].address: \"10.0.0.256\" is not an IP address"}},
		{"deadtime too close", strings.Replace(baseHA, `deadtime = "500ms"`, `deadtime = "250ms"`, 1), []string{"3: deadtime: 250ms is not comfortably above keepalive 100ms"}},
		{"initdead below deadtime", baseHA[:len(`cluster = "lvs"`)+1] + "initdead = \"200ms\"\n" + baseHA[len(`cluster = "lvs"`)+1:], []string{"2: initdead: initdead 200ms is smaller than deadtime 500ms"}},
		{"warntime outside", strings.Replace(baseHA, `deadtime = "500ms"`, "deadtime = \"500ms\"\nwarntime = \"600ms\"", 1), []string{"4: warntime: warntime 600ms must lie between"}},
		{"no media", strings.Split(baseHA, "[[ucast]]")[0], []string{"0: : no heartbeat medium"}},
		{"bad baud", strings.Replace(baseHA, "baud = 115200", "baud = 12345", 1), []string{"17: serial[0].baud: 12345 is not a supported rate"}},
		{"bad mcast group", baseHA + "[[mcast]]\ngroup = \"10.1.1.1\"\ninterface = \"eth1\"\n", []string{"19: mcast[0].group: \"10.1.1.1\" is not an IPv4 multicast group"}},
		{"bcast without interface", baseHA + "[[bcast]]\nport = 695\n", []string{"18: bcast[0].interface: is required"}},
		{"bad port", strings.Replace(baseHA, "[[ucast]]", "[[ucast]]\nport = 70000", 1), []string{"14: ucast[0].port: 70000 is not a port"}},
		{"bad ucast peer", strings.Replace(baseHA, "[[ucast]]", "[[ucast]]\npeers = [\"10.0.0.2\", \"nope\"]", 1), []string{"14: ucast[0].peers[1]: \"nope\" is not an IP address"}},
		{"bad role", strings.Replace(baseHA, `address = "10.0.0.2"`, "address = \"10.0.0.2\"\nrole = \"arbiter\"", 1), []string{"12: nodes[1].role: \"arbiter\" is not a role"}},
		{"missing cluster", strings.Replace(baseHA, `cluster = "lvs"`, ``, 1), []string{"0: cluster: is required"}},
		{"node not listed", "node = \"lvs9\"\n" + baseHA, []string{"1: node: \"lvs9\" is not one of the [[nodes]]"}},
		{"bad ping node", "ping_nodes = [\"10.0.0.254\", \"router\"]\n" + baseHA, []string{"1: ping_nodes[1]: \"router\" is not an IP address"}},
		{"two_node with three nodes", "two_node = true\n" + baseHA + "[[nodes]]\nname = \"lvs3\"\naddress = \"10.0.0.3\"\n", []string{"1: two_node: needs exactly two [[nodes]], both members"}},
		{"two_node with a witness", "two_node = true\n" + strings.Replace(baseHA, `address = "10.0.0.2"`, "address = \"10.0.0.2\"\nrole = \"witness\"", 1), []string{"1: two_node: needs exactly two [[nodes]], both members"}},
		{"bad fence plugin", baseHA + "[fence]\nplugin = \"../ipmi\"\n", []string{"19: fence.plugin: \"../ipmi\" is not a plugin name"}},
		{"bad fence timeout", baseHA + "[fence]\nplugin = \"ipmi\"\ntimeout = \"-1s\"\n", []string{"20: fence.timeout: duration must not be negative"}},
		{"unknown fence key", baseHA + "[fence]\nplugin = \"ipmi\"\nhost = \"bmc\"\n", []string{"20: fence.host: unknown key"}},
		{"bad alert kind", baseHA + "[[alert]]\nevents = [\"node\", \"nodes\"]\nsend = [\"log\"]\n", []string{"19: alert[0].events[1]: \"nodes\" is not an event kind"}},
		{"alert without send", baseHA + "[[alert]]\nevents = [\"node\"]\n", []string{"18: alert[0].send: is required"}},
		{"webhook without URL", baseHA + "[[alert]]\nsend = [\"log\", \"webhook\"]\n", []string{"19: alert[0].send[1]: webhook needs exactly one argument"}},
		{"mail without recipient", baseHA + "[[alert]]\nsend = [\"mail\"]\n", []string{"19: alert[0].send[0]: mail needs at least one recipient"}},
		{"unbalanced quote", baseHA + "[[alert]]\nsend = [\"file.alert 'x\"]\n", []string{"19: alert[0].send[0]: "}},
		{"mon-only alert", baseHA + "[[alert]]\nsend = [\"ipvs -V 10.0.0.3:80\"]\n", []string{"19: alert[0].send[0]: ipvs is a mon alert"}},
		{"unknown alert key", baseHA + "[[alert]]\nsend = [\"log\"]\nupalerts = false\n", []string{"20: alert[0].upalerts: unknown key"}},
		{"address_lifetime in fractions", "address_lifetime = \"1500ms\"\n" + baseHA, []string{"1: address_lifetime: 1.5s: want whole seconds from 1s to 1h"}},
		{"address_lifetime too short", "address_lifetime = \"500ms\"\n" + baseHA, []string{"1: address_lifetime: 500ms: want whole seconds"}},
		{"explicit zero address_lifetime", "address_lifetime = \"0s\"\n" + baseHA, []string{"1: address_lifetime: must be greater than zero"}},
		{"rt_priority out of range", "rt_priority = 100\n" + baseHA, []string{"1: rt_priority: 100 is out of range: 1..99"}},
		{"bad smtp relay", "smtp_relay = \"mail.example.com\"\n" + baseHA, []string{"1: smtp_relay: \"mail.example.com\" is not host:port"}},
		{"explicit zero keepalive", strings.Replace(baseHA, `keepalive = "100ms"`, `keepalive = "0s"`, 1), []string{"2: keepalive: must be greater than zero (leave it out for the default)"}},
		{"explicit zero lease", "lease = \"0ms\"\n" + baseHA, []string{"1: lease: must be greater than zero"}},
		{"explicit zero fence timeout", baseHA + "[fence]\nplugin = \"ipmi\"\ntimeout = \"0s\"\n", []string{"20: fence.timeout: must be greater than zero"}},
		{"serial cable with one end", strings.Replace(baseHA, "baud = 115200", "baud = 115200\nnodes = [\"lvs1\"]", 1), []string{"18: serial[0].nodes: a serial cable joins two nodes"}},
		{"serial cable to an unknown node", strings.Replace(baseHA, "baud = 115200", "baud = 115200\nnodes = [\"lvs1\", \"lvs3\"]", 1), []string{"18: serial[0].nodes: \"lvs3\" is not one of the [[nodes]]"}},
		{"serial cable looped", strings.Replace(baseHA, "baud = 115200", "baud = 115200\nnodes = [\"lvs1\", \"lvs1\"]", 1), []string{"18: serial[0].nodes: \"lvs1\" at both ends"}},
		{"relative serial device", strings.Replace(baseHA, `"/dev/ttyS0"`, `"../../etc/passwd"`, 1), []string{"16: serial[0].device: \"../../etc/passwd\" is not a device"}},
		{"serial device with ..", strings.Replace(baseHA, `"/dev/ttyS0"`, `"/dev/../etc/passwd"`, 1), []string{"16: serial[0].device: \"/dev/../etc/passwd\" is not a device"}},
		{"deep nesting", "x = " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "\n" + baseHA, []string{"1: arrays or inline tables nested deeper than 32 levels"}},
		{"pprof without metrics", "metrics_pprof = true\n" + baseHA, []string{"1: metrics_pprof: needs metrics_listen"}},
		{"pprof not a bool", "metrics_listen = \"127.0.0.1:9470\"\nmetrics_pprof = \"yes\"\n" + baseHA, []string{"2: metrics_pprof: incompatible types"}},
		{"pprof misspelt", "metrics_listen = \"127.0.0.1:9470\"\nmetrics_prof = true\n" + baseHA, []string{"2: metrics_prof: unknown key"}},
		{"web view without metrics", "web_view = true\n" + baseHA, []string{"1: web_view: needs metrics_listen"}},
		{"web view not a bool", "metrics_listen = \"127.0.0.1:9470\"\nweb_view = \"on\"\n" + baseHA, []string{"2: web_view: incompatible types"}},
		{"web view misspelt", "metrics_listen = \"127.0.0.1:9470\"\nwebview = true\n" + baseHA, []string{"2: webview: unknown key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseHA("ha.toml", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			got := flatten(err)
			for _, w := range tc.want {
				want := "ha.toml:" + w
				if strings.HasPrefix(w, "0: ") {
					want = "ha.toml: " + strings.TrimPrefix(w, "0: ")
					want = strings.Replace(want, ": : ", ": ", 1)
				}
				if !containsPrefix(got, want) {
					t.Errorf("missing error %q\n got: %q", want, got)
				}
			}
		})
	}
}

// A huge value is named by its start and size in an error, never echoed
// whole.
func TestErrorsClipValues(t *testing.T) {
	name := strings.Repeat("x", 2<<20)
	_, _, err := ParseHA("ha.toml", []byte(strings.Replace(baseHA, `cluster = "lvs"`, `cluster = "`+name+`"`, 1)))
	if err == nil {
		t.Fatal("a 2 MB cluster name was accepted")
	}
	msg := err.Error()
	if len(msg) > 2000 || !strings.Contains(msg, "ha.toml:1: cluster: ") || !strings.HasSuffix(msg, " bytes)") {
		t.Errorf("error is %d bytes: %.300q", len(msg), msg)
	}
}

// Nesting and key counts that made the position scanner quadratic are
// refused (too deep) or handled in one pass (many unknown keys, each
// reported on its own line).
func TestPathologicalInput(t *testing.T) {
	deep := "[[group]]\nname = \"g\"\nresources = [" + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "]\n"
	_, err := ParseResources("resources.toml", []byte(deep), testHA(t), testKinds)
	if got := flatten(err); len(got) != 1 || !strings.HasPrefix(got[0], "resources.toml:3: arrays or inline tables nested deeper than 32 levels") {
		t.Errorf("deep nesting: %q", got)
	}
	var b strings.Builder
	b.WriteString(baseHA)
	for i := range 20000 {
		fmt.Fprintf(&b, "[[alert]]\nsend = [\"log\"]\nfrob%d = 1\n", i)
	}
	_, _, err = ParseHA("ha.toml", []byte(b.String()))
	got := flatten(err)
	if len(got) != 20000 || !strings.HasPrefix(got[0], "ha.toml:20: alert[0].frob0: unknown key") || !strings.HasPrefix(got[19999], "ha.toml:60017: alert[19999].frob19999: unknown key") {
		t.Errorf("%d errors, first %q", len(got), got[:min(2, len(got))])
	}
	big := make([]byte, MaxFileSize+1)
	if _, _, err := ParseHA("ha.toml", big); err == nil || !strings.Contains(err.Error(), "not a configuration file") {
		t.Errorf("oversized file: %v", err)
	}
}

// control_socket naming a file that is not a socket is refused by the
// check, and the daemon's Listen refuses to replace it (it used to delete
// it).
func TestControlSocketNotASocket(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "important")
	if err := os.WriteFile(victim, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"ha.toml":  quietPair + "control_socket = \"" + victim + "\"\n" + baseHA,
		"authkeys": "auth 1\n1 sha256 0123456789abcdef0123\n",
	})
	_, err := Load(dir, testOptions("lvs1"))
	if got := flatten(err); len(got) != 1 || !strings.HasPrefix(got[0], filepath.Join(dir, "ha.toml")+":3: control_socket: "+victim+" exists and is not a socket (a regular file)") {
		t.Errorf("got %q", got)
	}
}

// A line longer than authkeys allows is an error on that line, never a
// silent end of the file (the key after it used to be ignored).
func TestAuthkeysLongLine(t *testing.T) {
	data := "# " + strings.Repeat("x", 100<<10) + "\nauth 1\n1 sha256 0123456789abcdef0123\n"
	_, _, err := ParseAuthkeys("authkeys", []byte(data))
	if got := flatten(err); len(got) != 1 || !strings.HasPrefix(got[0], "authkeys:1: cannot read past this line") {
		t.Errorf("got %q", got)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func flatten(err error) []string {
	var es Errors
	if errors.As(err, &es) {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.Error()
		}
		return out
	}
	return []string{err.Error()}
}

func containsPrefix(list []string, p string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func TestHADefaults(t *testing.T) {
	ha, warns, err := ParseHA("ha.toml", []byte(quietPair+baseHA))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("unexpected warnings %q", warns)
	}
	if ha.Warntime.D() != 250*time.Millisecond || ha.Initdead.D() != time.Second {
		t.Errorf("warntime %s initdead %s, want deadtime/2 and 2×deadtime", ha.Warntime, ha.Initdead)
	}
	if ha.UCast[0].Port != DefaultPort || ha.Nodes[0].Role != "member" || ha.Raft.Port != DefaultRaftPort {
		t.Errorf("defaults not applied: %+v", ha)
	}
	if ha.MetricsListen != "" || ha.MetricsPprof || ha.WebView {
		t.Errorf("metrics on by default: %q pprof %v web view %v", ha.MetricsListen, ha.MetricsPprof, ha.WebView)
	}
	// Without deadtime: VRRP's master-down, and the lease (3 beats, as
	// much as a steady one needs) and warntime derived from it.
	ha, _, err = ParseHA("ha.toml", []byte(strings.Replace(quietPair+baseHA, "deadtime = \"500ms\"\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if ha.Deadtime.D() != 350*time.Millisecond || ha.Lease.D() != 300*time.Millisecond || ha.Warntime.D() != 175*time.Millisecond {
		t.Errorf("keepalive 100ms alone: deadtime %s lease %s warntime %s, want 350ms, 300ms, 175ms", ha.Deadtime, ha.Lease, ha.Warntime)
	}
	// A deadtime of 3.2 beats is valid, with a warning: its lease (2.7
	// beats) may lapse between echoes.
	_, warns, err = ParseHA("ha.toml", []byte(strings.Replace(quietPair+baseHA, "deadtime = \"500ms\"", "deadtime = \"320ms\"", 1)))
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0], "lapses between echoes") {
		t.Errorf("deadtime 3.2 beats: %v, warnings %q", err, warns)
	}
}

// metrics_pprof and web_view are off unless set, and set only with
// metrics_listen.
func TestMetricsPprof(t *testing.T) {
	ha, _, err := ParseHA("ha.toml", []byte("metrics_listen = \"127.0.0.1:9470\"\nmetrics_pprof = true\nweb_view = true\n"+quietPair+baseHA))
	if err != nil {
		t.Fatal(err)
	}
	if !ha.MetricsPprof || !ha.WebView || ha.MetricsListen != "127.0.0.1:9470" {
		t.Errorf("metrics_pprof, web_view not read: %q pprof %v web view %v", ha.MetricsListen, ha.MetricsPprof, ha.WebView)
	}
}

func TestHAWarnings(t *testing.T) {
	src := quietPair + strings.Replace(baseHA, `keepalive = "100ms"`, `keepalive = "10ms"`, 1)
	src = strings.Replace(src, `deadtime = "500ms"`, `deadtime = "50ms"`, 1)
	src = strings.Replace(src, "baud = 115200", "baud = 9600", 1)
	_, warns, err := ParseHA("ha.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "serial /dev/ttyS0 at 9600 baud") {
		t.Errorf("want one serial capacity warning, got %q", warns)
	}
}

const baseRes = `[[group]]
name = "lvs"
node = "lvs1"
resources = [
  "IPaddr::10.0.0.3/24/eth0/10.0.0.255",
  "ldirectord::www",
  "mon",
  "lvs",
  "10.0.0.4",
  { type = "script", id = "web", params = { script = "httpd" }, args = ["a", "b"] },
]
`

func testHA(t *testing.T) *HA {
	ha, _, err := ParseHA("ha.toml", []byte(baseHA))
	if err != nil {
		t.Fatal(err)
	}
	return ha
}

func TestResourcesNormalise(t *testing.T) {
	r, err := ParseResources("resources.toml", []byte(baseRes), testHA(t), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Groups[0].Resources
	want := []Resource{
		{ID: "IPaddr_10.0.0.3", Type: "IPaddr", Params: map[string]string{"ip": "10.0.0.3", "cidr_netmask": "24", "nic": "eth0", "broadcast": "10.0.0.255"}},
		{ID: "ldirectord_www", Type: "ldirectord", Params: map[string]string{"config": "www"}},
		{ID: "mon", Type: "mon", Params: map[string]string{}},
		{ID: "lvs", Type: "script", Params: map[string]string{"script": "lvs"}},
		{ID: "IPaddr_10.0.0.4", Type: "IPaddr", Params: map[string]string{"ip": "10.0.0.4"}},
		{ID: "web", Type: "script", Params: map[string]string{"script": "httpd"}, Args: []string{"a", "b"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d resources, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Type != want[i].Type || !equalMap(got[i].Params, want[i].Params) || strings.Join(got[i].Args, ",") != strings.Join(want[i].Args, ",") {
			t.Errorf("resource %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// The IPaddr forms heartbeat's wrapper accepts (LEGACY.md 2.1).
func TestIPaddrShorthand(t *testing.T) {
	for in, want := range map[string]map[string]string{
		"10.0.0.3":                            {"ip": "10.0.0.3"},
		"10.0.0.3/24":                         {"ip": "10.0.0.3", "cidr_netmask": "24"},
		"IPaddr::10.0.0.3/24/eth0":            {"ip": "10.0.0.3", "cidr_netmask": "24", "nic": "eth0"},
		"IPaddr2::10.0.0.3/24/eth0:0":         {"ip": "10.0.0.3", "cidr_netmask": "24", "nic": "eth0:0"},
		"135.9.8.7/24/135.9.8.210":            {"ip": "135.9.8.7", "cidr_netmask": "24", "broadcast": "135.9.8.210"},
		"IPaddr::10.0.0.3/24/eth0/10.0.0.255": {"ip": "10.0.0.3", "cidr_netmask": "24", "nic": "eth0", "broadcast": "10.0.0.255"},
		"fd00::3/64/eth1":                     {"ip": "fd00::3", "cidr_netmask": "64", "nic": "eth1"},
		"IPaddr::fd00::3":                     {"ip": "fd00::3"},
		"IPaddr2::2001:db8::1/64":             {"ip": "2001:db8::1", "cidr_netmask": "64"},
	} {
		r, err := ParseShorthand(in)
		if err != nil || r.Type != TypeIPaddr || !equalMap(r.Params, want) {
			t.Errorf("%s: got %+v, %v; want IPaddr %v", in, r, err, want)
		}
	}
}

func equalMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestResourcesErrors(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"duplicate group", baseRes + "[[group]]\nname = \"lvs\"\nnode = \"lvs2\"\nresources = [\"x\"]\n", []string{"13: group[1].name: duplicate group name \"lvs\" (also group[0].name, line 2)"}},
		{"duplicate resource id", baseRes + "[[group]]\nname = \"g2\"\nnode = \"lvs2\"\nresources = [\n  \"ldirectord::www\"\n]\n", []string{"16: group[1].resources[0]: duplicate resource id \"ldirectord_www\""}},
		{"unknown node", strings.Replace(baseRes, `node = "lvs1"`, `node = "lvs7"`, 1), []string{"3: group[0].node: \"lvs7\" is not one of the [[nodes]]"}},
		{"bad ip shorthand", strings.Replace(baseRes, "IPaddr::10.0.0.3/24", "IPaddr::10.0.0.300/24", 1), []string{"5: group[0].resources[0]: IPaddr: \"10.0.0.300\" is not an IP address"}},
		{"bad netmask", strings.Replace(baseRes, "10.0.0.3/24", "10.0.0.3/33", 1), []string{"5: group[0].resources[0]: IPaddr: netmask \"33\""}},
		{"empty field", strings.Replace(baseRes, `"ldirectord::www"`, `"ldirectord::"`, 1), []string{"6: group[0].resources[1]: \"ldirectord::\" has an empty field"}},
		{"unknown table key", strings.Replace(baseRes, `id = "web"`, `id = "web", prio = 5`, 1), []string{"10: group[0].resources[5].prio: unknown key"}},
		{"table without type", strings.Replace(baseRes, `type = "script", `, ``, 1), []string{"10: group[0].resources[5].type: is required"}},
		{"number entry", strings.Replace(baseRes, `"mon",`, `42,`, 1), []string{"7: group[0].resources[2]: must be a string"}},
		{"unknown group key", strings.Replace(baseRes, `node = "lvs1"`, "node = \"lvs1\"\nstickiness = 1", 1), []string{"4: group[0].stickiness: unknown key"}},
		{"unknown type", strings.Replace(baseRes, `type = "script", `, `type = "apache", `, 1), []string{`10: group[0].resources[5].type: unknown resource type "apache"`}},
		{"ocf without provider", strings.Replace(baseRes, `type = "script", `, `type = "ocf:Dummy", `, 1), []string{`10: group[0].resources[5].type: unknown resource type "ocf:Dummy"`}},
		{"OCF shorthand without instance", strings.Replace(baseRes, `"mon",`, `"OCF::Dummy",`, 1), []string{`7: group[0].resources[2]: "OCF::Dummy": want OCF::TYPE::INSTANCE`}},
		{"no resources", "[[group]]\nname = \"g\"\nnode = \"lvs1\"\n", []string{"1: group[0].resources: a group needs at least one resource"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseResources("resources.toml", []byte(tc.src), testHA(t), testKinds)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			got := flatten(err)
			for _, w := range tc.want {
				if !containsPrefix(got, "resources.toml:"+w) {
					t.Errorf("missing %q\n got: %q", "resources.toml:"+w, got)
				}
			}
		})
	}
}

func TestAuthkeys(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"ok", "# c\nauth 2\n1 sha256 one-secret-that-is-long\n2 sha256 two secret with spaces # cut\n", ""},
		{"crc", "auth 1\n1 crc\n", "authkeys:2: 1: crc authenticates nothing"},
		{"auth after key", "1 sha256 abcdefabcdefabcdef\nauth 1\n", "authkeys:1: 1: key line before \"auth N\""},
		{"no auth", "", "authkeys: auth: no \"auth N\" line"},
		{"undefined key", "auth 3\n1 sha256 abcdefabcdefabcdef\n", "authkeys:1: auth: auth 3 selects a key that is not defined"},
		{"missing secret", "auth 1\n1 sha1\n", "authkeys:2: 1: method sha1 needs a secret"},
		{"bad number", "auth 16\n", "authkeys:1: auth: \"16\" is not a key number 0..15"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ak, _, err := ParseAuthkeys("authkeys", []byte(tc.src))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if ak.KeyID != 2 || string(ak.Secret.Bytes()) != "two secret with spaces" {
					t.Errorf("got key %d %q", ak.KeyID, ak.Secret.Bytes())
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestAuthkeysPermissions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "authkeys")
	if err := os.WriteFile(p, []byte("auth 1\n1 sha256 0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadAuthkeys(p); err != nil {
		t.Fatalf("0600 refused: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := ReadAuthkeys(p)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: got %v, want refusal", mode, err)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret([]byte("hunter2-hunter2"))
	for _, out := range []string{s.String(), s.GoString(), s.LogValue().String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked: %q", out)
		}
	}
}

// TestExamplesLoad keeps the shipped example configurations valid.
func TestExamplesLoad(t *testing.T) {
	for _, tc := range []struct{ dir, node string }{
		{"../../etc/vigil", "lvs1"},
		{"../../etc/examples/three-node", "node3"},
		{"../../etc/examples/pair-witness", "witness"},
	} {
		c, err := Load(testutil.ConfigCopy(t, tc.dir), testOptions(tc.node))
		if err != nil {
			t.Errorf("%s: %v", tc.dir, err)
			continue
		}
		if c.Self.Name != tc.node || len(c.Resources.Groups) == 0 {
			t.Errorf("%s: self %q, %d groups", tc.dir, c.Self.Name, len(c.Resources.Groups))
		}
	}
}

func TestLoadReportsAllFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(HAFile, baseHA, 0o644)
	write("authkeys", "auth 1\n1 sha256 0123456789abcdef0123\n", 0o644)
	write(ResourcesFile, strings.Replace(baseRes, "lvs1", "nobody", 1), 0o644)
	_, err := Load(dir, testOptions("lvs2"))
	got := flatten(err)
	if len(got) != 2 || !strings.Contains(got[0], "authkeys: mode 0644") || !strings.Contains(got[1], "resources.toml:3: group[0].node") {
		t.Errorf("got %q", got)
	}
	_, err = Load(dir, testOptions("lvs9"))
	if err == nil || !strings.Contains(err.Error(), "ha.toml: node: this node \"lvs9\" (from --node)") {
		t.Errorf("got %v", err)
	}
}

func TestBind(t *testing.T) {
	cases := []struct {
		entry              string
		plugin, agent, env string
	}{
		{"10.0.0.3/24/eth0", "ipaddr", "IPaddr", "ip=10.0.0.3 cidr_netmask=24 nic=eth0"},
		{"ldirectord::www", "ldirectord", "ldirectord", "config=www"},
		{"lvs", "heartbeat", "lvs", ""},
		{"Delay::5::0", "heartbeat", "Delay", "args=5,0"},
		{"OCF::Dummy::d1::state=/tmp/d1", "ocf", "heartbeat:Dummy", "state=/tmp/d1"},
	}
	for _, c := range cases {
		r, err := ParseShorthand(c.entry)
		if err != nil {
			t.Fatalf("%s: %v", c.entry, err)
		}
		b, err := r.Bind()
		if err != nil {
			t.Fatalf("%s: %v", c.entry, err)
		}
		var env []string
		for _, k := range []string{"ip", "cidr_netmask", "nic", "config", "state"} {
			if v, ok := b.Params[k]; ok {
				env = append(env, k+"="+v)
			}
		}
		if len(b.Args) > 0 {
			env = append(env, "args="+strings.Join(b.Args, ","))
		}
		if b.Plugin != c.plugin || b.Agent != c.agent || strings.Join(env, " ") != c.env || b.Params["script"] != "" {
			t.Errorf("%s: bound to %s/%s %v, want %s/%s %s", c.entry, b.Plugin, b.Agent, b.Params, c.plugin, c.agent, c.env)
		}
	}
	for typ, plugin := range map[string]string{"ocf:pacemaker:Stateful": "ocf", "lsb:apache2": "lsb", "plugin:counter": "counter", "Dummy": "dummy"} {
		if b, err := (Resource{Type: typ}).Bind(); err != nil || b.Plugin != plugin {
			t.Errorf("%s: %v %v", typ, b, err)
		}
	}
	for _, typ := range []string{"ocf:a:b:c", "lsb:", "plugin:../x", "ocf::x", "nonsense"} {
		if _, err := (Resource{Type: typ}).Bind(); err == nil {
			t.Errorf("%s bound", typ)
		}
	}
}

// An alert route takes every kind and recoveries by default; a script
// not (yet) installed warns, since a package may bring it later.
func TestAlertRouteDefaults(t *testing.T) {
	ha, warns, err := ParseHA("ha.toml", []byte(baseHA+"[[alert]]\nsend = [\"nosuch.alert -x\", \"log\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := ha.Alerts[0]
	if strings.Join(r.Events, ",") != strings.Join(AlertKinds, ",") || r.Upalert == nil || !*r.Upalert {
		t.Errorf("defaults: %+v", r)
	}
	if !containsPrefix(warns, "ha.toml: line 19: alert[0].send[0]: nosuch.alert not found in /etc/vigil/alert.d:/usr/lib/mon/alert.d") {
		t.Errorf("warnings: %q", warns)
	}
	if ha.SMTPRelay != "127.0.0.1:25" || ha.MailFrom != "vigil@lvs" {
		t.Errorf("mail defaults: %q %q", ha.SMTPRelay, ha.MailFrom)
	}
}

// TestTwoNodeSettings checks what an operator is told about a pair without
// a witness, and the fence defaults.
func TestTwoNodeSettings(t *testing.T) {
	for _, tc := range []struct {
		name, prefix, warning string
	}{
		{"pair without witness or two_node", "", "two members and no witness"},
		{"two_node without tie-breakers", "two_node = true\n", "two_node without ping_nodes or [fence]"},
		{"two_node with ping nodes", "two_node = true\nping_nodes = [\"10.0.0.254\"]\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, warns, err := ParseHA("ha.toml", []byte(tc.prefix+baseHA))
			if err != nil {
				t.Fatal(err)
			}
			if tc.warning == "" && len(warns) != 0 || tc.warning != "" && (len(warns) != 1 || !strings.Contains(warns[0], tc.warning)) {
				t.Fatalf("warnings %q, want %q", warns, tc.warning)
			}
		})
	}
	ha, _, err := ParseHA("ha.toml", []byte("two_node = true\n"+baseHA+"[fence]\nplugin = \"ipmi\"\nparams = { bmc = \"10.0.9.1\" }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f := ha.Fence; f.Timeout.D() != DefaultFenceTimeout || f.Delay.D() != 500*time.Millisecond || f.Params["bmc"] != "10.0.9.1" {
		t.Fatalf("fence defaults: %+v", f)
	}
}
