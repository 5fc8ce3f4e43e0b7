package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/resources/ldirectord/spec"
)

func TestLdirectordDefaults(t *testing.T) {
	in, err := ParseLdirectord("www.toml", []byte(`
checktimeout = 3
[[virtual]]
address = "10.0.0.3:80"
  [[virtual.real]]
  address = "192.168.6.2"
[[virtual]]
address = "10.0.0.3:53"
negotiatetimeout = "500ms"
checktype = "connect"
  [[virtual.real]]
  address = "192.168.6.2:53"
  forward = "masq"
  weight = 0
[[virtual]]
fwmark = 7
persistent = 300
netmask = "255.255.255.0"
checktype = "ping"
`))
	if err != nil {
		t.Fatal(err)
	}
	v := in.Virtual[0]
	// LEGACY.md §5.2–5.4: wrr, negotiate over http for port 80, request /,
	// checkinterval 10, failurecount 1, quiescent no; negotiatetimeout
	// falls back to the global checktimeout; a bare real takes the port.
	if in.Backend != "auto" || v.Scheduler != "wrr" || v.CheckType != "negotiate" || v.Service != "http" || v.Request != "/" ||
		v.CheckInterval.D().Seconds() != 10 || v.FailureCount != 1 || *v.Quiescent || v.NegotiateTimeout.D().Seconds() != 3 ||
		v.Real[0].Address != "192.168.6.2:80" || v.Real[0].Forward != "gate" || *v.Real[0].Weight != 1 || v.Protocol != "tcp" {
		t.Errorf("virtual 0: %+v real %+v", v, v.Real[0])
	}
	v = in.Virtual[1]
	if v.Protocol != "udp" || v.CheckTimeout.D().Milliseconds() != 500 || *v.Real[0].Weight != 0 {
		t.Errorf("virtual 1 (port 53 → udp; checktimeout from the virtual's negotiatetimeout): %+v", v)
	}
	v = in.Virtual[2]
	if s := v.DirectorService(); v.Protocol != "fwm" || s.Persistent != 300 || s.Netmask != 24 {
		t.Errorf("virtual 2: %+v %+v", v, s)
	}
}

func TestLdirectordErrors(t *testing.T) {
	base := "[[virtual]]\naddress = \"10.0.0.3:80\"\n  [[virtual.real]]\n  address = \"192.168.6.2:80\"\n"
	cases := []struct {
		name, src string
		want      []string
	}{
		{"unknown global", "checktimout = 3\n" + base, []string{"www.toml:1: checktimout: unknown key"}},
		{"unknown in real", base + "  wieght = 5\n", []string{"www.toml:5: virtual[0].real[0].wieght: unknown key"}},
		{"bad scheduler", strings.Replace(base, "\n  [[", "\nscheduler = \"RR\"\n  [[", 1), []string{"www.toml:3: virtual[0].scheduler: \"RR\" is not a scheduler"}},
		{"bad forward", base + "  forward = \"direct\"\n", []string{"www.toml:5: virtual[0].real[0].forward: must be gate, masq or ipip"}},
		{"gate port mapping", strings.Replace(base, "192.168.6.2:80", "192.168.6.2:8080", 1), []string{"www.toml:4: virtual[0].real[0].address: a gate (direct routing) real server gets the virtual's port 80"}},
		{"bad address", strings.Replace(base, "10.0.0.3:80", "10.0.0.3", 1), []string{"www.toml:2: virtual[0].address: \"10.0.0.3\": want IP:PORT"}},
		{"duplicate virtual", base + base, []string{"www.toml:6: virtual[1].address: duplicate virtual service TCP  10.0.0.3:80"}},
		{"netmask as length", strings.Replace(base, "\n  [[", "\npersistent = 60\nnetmask = \"24\"\n  [[", 1), []string{"www.toml:4: virtual[0].netmask: \"24\": an IPv4 netmask is a dotted quad"}},
		{"unsupported negotiate", strings.NewReplacer("10.0.0.3:80", "10.0.0.3:21", "192.168.6.2:80", "192.168.6.2").Replace(base), []string{"www.toml:1: virtual[0].service: the ftp negotiate check is not built in"}},
		{"external without command", strings.Replace(base, "\n  [[", "\nchecktype = \"external\"\n  [[", 1), []string{"www.toml:1: virtual[0].checkcommand: is required"}},
		{"bad receive", base + "  receive = \"(\"\n", []string{"www.toml:5: virtual[0].real[0].receive: not a regular expression"}},
		{"bad duration", "checkinterval = \"soon\"\n" + base, []string{"www.toml:1: checkinterval"}},
		{"fwmark on userspace", "backend = \"userspace\"\n[[virtual]]\nfwmark = 3\n", []string{"www.toml:3: virtual[0].fwmark: firewall-mark services need kernel IPVS"}},
		{"bad fallback", "fallback = \"127.0.0.1:80 direct\"\n" + base, []string{"www.toml:1: fallback: fallback \"127.0.0.1:80 direct\": forward method must be gate, masq or ipip"}},
		{"bad digest", strings.Replace(base, "\n  [[", "\ndigest = \"abc\"\n  [[", 1), []string{"www.toml:3: virtual[0].digest: must be an MD5 digest"}},
		{"sync unknown key", base + "[sync]\ninterface = \"eth1\"\nsyncid = 7\n", []string{"www.toml:7: sync.syncid: unknown key"}},
		{"sync without interface", base + "[sync]\nport = 8848\n", []string{"www.toml:5: sync.interface: is required"}},
		{"sync bad values", base + "[sync]\ninterface = \"eth1/x\"\nsync_id = 256\ngroup = \"10.0.0.1\"\nport = 70000\nttl = 0\nmaxlen = 100\nsync_version = 2\n", []string{
			"www.toml:6: sync.interface: \"eth1/x\" is not an interface name",
			"www.toml:7: sync.sync_id: must be 0..255",
			"www.toml:8: sync.group: \"10.0.0.1\" is not a multicast address",
			"www.toml:9: sync.port: must be 1..65535",
			"www.toml:11: sync.maxlen: must be 1024..65507",
			"www.toml:12: sync.sync_version: must be 0 or 1"}},
		{"sync interface too long", base + "[sync]\ninterface = \"averyveryverylongname\"\n", []string{"www.toml:6: sync.interface: \"averyveryverylongname\" is not an interface name"}},
		{"stateless needs mh", strings.Replace(base, "\n  [[", "\nstateless = true\nmh_port = true\n  [[", 1), []string{
			"www.toml:3: virtual[0].stateless: needs scheduler = \"mh\"",
			"www.toml:4: virtual[0].mh_port: is a flag of the mh scheduler"}},
		{"mh_fallback needs mh", strings.Replace(base, "\n  [[", "\nscheduler = \"sh\"\nmh_fallback = true\n  [[", 1), []string{"www.toml:4: virtual[0].mh_fallback: is a flag of the mh scheduler"}},
		{"stateless keeps no state", strings.Replace(base, "\n  [[", "\nscheduler = \"mh\"\nstateless = true\npersistent = 60\n  [[", 1) + "  upper = 100\n", []string{
			"www.toml:5: virtual[0].persistent: stateless mode keeps no per-director state",
			"www.toml:8: virtual[0].real[0].upper: stateless mode: a connection threshold"}},
		{"stateless on userspace", "backend = \"userspace\"\n" + strings.Replace(base, "\n  [[", "\nscheduler = \"mh\"\nstateless = true\n  [[", 1), []string{"www.toml:5: virtual[0].stateless: stateless failover is kernel IPVS's"}},
		{"stateless not a bool", strings.Replace(base, "\n  [[", "\nscheduler = \"mh\"\nstateless = \"yes\"\n  [[", 1), []string{"www.toml:4: virtual.stateless: incompatible types"}},
		{"sync on userspace", "backend = \"userspace\"\n" + base + "[sync]\ninterface = \"eth1\"\n", []string{"www.toml:6: sync: connection sync is kernel IPVS's"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLdirectord("www.toml", []byte(tc.src))
			wantErrors(t, err, tc.want)
		})
	}
}

// [sync] defaults are the kernel's; an unset sync_id is derived from the
// cluster and group names by the loader (the same on every node), a set
// one is kept.
func TestLdirectordSync(t *testing.T) {
	in, err := ParseLdirectord("www.toml", []byte("[sync]\ninterface = \"eth1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	y := in.Sync
	if y.Group != "224.0.0.81" || y.Port != 8848 || y.TTL != 1 || y.MaxLen != 0 || *y.SyncVersion != 1 || y.SyncID != nil {
		t.Fatalf("defaults: %+v", y)
	}
	in, err = ParseLdirectord("www.toml", []byte("[sync]\ninterface = \"eth1\"\ngroup = \"FF02::51\"\nsync_id = 0\nsync_version = 0\n"))
	if err != nil || in.Sync.Group != "ff02::51" || *in.Sync.SyncID != 0 || *in.Sync.SyncVersion != 0 {
		t.Fatalf("%+v %v", in, err)
	}
	if a, b := spec.DeriveSyncID("lvs", "www"), spec.DeriveSyncID("lvs", "mail"); a == b || a < 1 || a > 255 {
		t.Fatalf("derived ids %d %d", a, b)
	}
	// FNV-1a of "lvs/www" is 0xbaac2ae0 (the derivation is documented:
	// keep it stable, or nodes of mixed versions disagree).
	if got := spec.DeriveSyncID("lvs", "www"); got != 0xbaac2ae0%255+1 {
		t.Fatalf("DeriveSyncID(lvs, www) = %d", got)
	}

	dir := testutil.ConfigCopy(t, "../../etc/examples/pair-witness")
	www := filepath.Join(dir, "www.toml")
	orig, _ := os.ReadFile(www)
	load := func(extra string) spec.Instance {
		t.Helper()
		if err := os.WriteFile(www, append(append([]byte(nil), orig...), extra...), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(dir, testOptions("lvs1"))
		if err != nil {
			t.Fatal(err)
		}
		var in spec.Instance
		g := c.Resources.Groups[0]
		if err := json.Unmarshal([]byte(g.Resources[1].Params[spec.ParamName]), &in); err != nil {
			t.Fatal(err)
		}
		if in.Sync == nil || in.Sync.SyncID == nil {
			t.Fatalf("no sync id: %+v", in.Sync)
		}
		if want := spec.DeriveSyncID(c.HA.Cluster, g.Name); extra == "\n[sync]\ninterface = \"eth1\"\n" && *in.Sync.SyncID != want {
			t.Fatalf("sync id %d, want %d derived from %q/%q", *in.Sync.SyncID, want, c.HA.Cluster, g.Name)
		}
		return in
	}
	load("\n[sync]\ninterface = \"eth1\"\n")
	if in := load("\n[sync]\ninterface = \"eth1\"\nsync_id = 9\n"); *in.Sync.SyncID != 9 {
		t.Fatalf("set sync id not kept: %d", *in.Sync.SyncID)
	}
}

// wantErrors checks err's messages against prefixes, one each, in order.
func wantErrors(t *testing.T, err error, want []string) {
	t.Helper()
	got := flatten(err)
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("got %q, want prefix %q", got[i], want[i])
		}
	}
}

// An ldirectord resource carries its instance (from NAME.toml or inline)
// to the plugin as normalised JSON.
func TestLdirectordInstanceLoaded(t *testing.T) {
	dir := testutil.ConfigCopy(t, "../../etc/examples/pair-witness")
	c, err := Load(dir, testOptions("lvs1"))
	if err != nil {
		t.Fatal(err)
	}
	var in spec.Instance
	r := c.Resources.Groups[0].Resources[1]
	if err := json.Unmarshal([]byte(r.Params[spec.ParamName]), &in); err != nil {
		t.Fatalf("%s: %v", r.ID, err)
	}
	if len(in.Virtual) != 1 || in.Virtual[0].Scheduler != "wlc" || len(in.Virtual[0].Real) != 2 || in.Virtual[0].FailureCount != 2 {
		t.Fatalf("%+v", in)
	}

	// Inline instead of www.toml; an error inside names resources.toml.
	if err := os.Remove(filepath.Join(dir, "www.toml")); err != nil {
		t.Fatal(err)
	}
	res, _ := os.ReadFile(filepath.Join(dir, ResourcesFile))
	inline := string(res) + "\n[ldirectord.www]\ncheckinterval = 2\n[[ldirectord.www.virtual]]\naddress = \"10.0.0.3:443\"\nservice = \"https\"\n"
	if err := os.WriteFile(filepath.Join(dir, ResourcesFile), []byte(inline), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(dir, testOptions("lvs1")); err != nil {
		t.Fatal(err)
	}
	in = spec.Instance{}
	_ = json.Unmarshal([]byte(c.Resources.Groups[0].Resources[1].Params[spec.ParamName]), &in)
	if len(in.Virtual) != 1 || in.Virtual[0].Service != "https" || in.Virtual[0].CheckInterval.D().Seconds() != 2 {
		t.Fatalf("inline: %+v", in)
	}
	bad := strings.Replace(inline, "service = \"https\"", "servce = \"https\"", 1)
	_ = os.WriteFile(filepath.Join(dir, ResourcesFile), []byte(bad), 0o644)
	_, err = Load(dir, testOptions("lvs1"))
	if err == nil || !strings.Contains(err.Error(), "resources.toml:") || !strings.Contains(err.Error(), "ldirectord.www.virtual[0].servce: unknown key") {
		t.Fatalf("got %v", err)
	}
}

// Config reads instances only through the kinds it is given (the core
// imports no resource package): without ldirectord's, an ldirectord
// resource is an error at its line, never a resource without its spec;
// ParseResources without kinds leaves inline tables unread, not unknown.
func TestInstancesNeedTheirKind(t *testing.T) {
	dir := testutil.ConfigCopy(t, "../../etc/examples/pair-witness")
	_, err := Load(dir, Options{Node: "lvs1"})
	if err == nil || !strings.Contains(err.Error(), "resources.toml:") || !strings.Contains(err.Error(), "group[0].resources[1]: ldirectord instances cannot be read") {
		t.Fatalf("no kinds: %v", err)
	}
	res, _ := os.ReadFile(filepath.Join(dir, ResourcesFile))
	inline := string(res) + "\n[ldirectord.www]\ncheckinterval = 2\n"
	if _, err := ParseResources("resources.toml", []byte(inline), testHA(t), nil); err != nil {
		t.Errorf("inline table without kinds: %v", err)
	}
	_, err = ParseResources("resources.toml", []byte(inline+"[ldirectord.www.bogus]\n"), testHA(t), testKinds)
	if err == nil || !strings.Contains(err.Error(), "ldirectord.www.bogus: unknown key") {
		t.Errorf("inline table with kinds: %v", err)
	}
	// A value where a table belongs is an error at its key.
	_, err = ParseResources("resources.toml", append(res, "\n[ldirectord]\nwww = 5\n"...), testHA(t), testKinds)
	if err == nil || !strings.Contains(err.Error(), "ldirectord.www") {
		t.Errorf("a number for an instance: %v", err)
	}
}
