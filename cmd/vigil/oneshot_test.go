package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/internal/testutil/builtintest"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/resources/script"
)

// The one-shot commands' lines: every mistake is refused before anything
// runs, with the argument it concerns named, and the command's own exit
// code. (What they run is tested against the real binary, agents and
// scripts in test/lab/oneshot_test.go.)

func TestParseResourceLine(t *testing.T) {
	l, err := parseResourceLine([]string{"ocf:heartbeat:Dummy", "start", "state=/tmp/x", "fake=a=b", "empty="})
	if err != nil || l.target != "ocf:heartbeat:Dummy" || l.action != "start" ||
		l.params["state"] != "/tmp/x" || l.params["fake"] != "a=b" || l.params["empty"] != "" || len(l.params) != 3 {
		t.Fatalf("%+v %v", l, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "want TYPE|GROUP/ID ACTION [NAME=VALUE...], got 0 argument(s)"},
		{[]string{"Dummy"}, "got 1 argument(s)"},
		{[]string{"", "start"}, "argument 1: empty TYPE|GROUP/ID"},
		{[]string{"Dummy", "frobnicate"}, `argument 2 "frobnicate": unknown action (one of start, stop, monitor, status, reload, validate-all, validate, meta-data)`},
		{[]string{"Dummy", "start", "state"}, `argument 3 "state": want NAME=VALUE`},
		{[]string{"Dummy", "start", "a=1", "=x"}, `argument 4 "=x": parameter name "" must be letters, digits and '_'`},
		{[]string{"Dummy", "start", "a-b=1"}, `argument 3 "a-b=1": parameter name "a-b" must be`},
		{[]string{"Dummy", "start", "a=1", "a=2"}, `argument 4 "a=2": parameter a given twice`},
		{[]string{"Dummy", "start", "a=", "a=2"}, `argument 4 "a=2": parameter a given twice`},
	} {
		if _, err := parseResourceLine(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestIsGroupID(t *testing.T) {
	for s, want := range map[string]bool{
		"lvs/IPaddr_10.0.0.3":       true,
		"web/d1":                    true,
		"ocf:heartbeat:Dummy":       false,
		"IPaddr::10.0.0.3/24/eth0":  false,
		"10.0.0.3/24":               false,
		"10.0.0.3/24/eth0":          false,
		"2001:db8::5/64":            false,
		"httpd::conf/a":             false,
		"Dummy":                     false,
		"lsb:apache2":               false,
		"mon_lvs/mon_lvs":           true,
		"ldirectord/ldirectord_www": true,
	} {
		if got := isGroupID(s); got != want {
			t.Errorf("isGroupID(%q) = %v", s, got)
		}
	}
}

func TestResourceRunErrors(t *testing.T) {
	cfg := testutil.ConfigCopy(t, "../../etc/examples/pair-witness")
	args := codeArgs
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"resource"}, args, "usage: vigil resource run"},
		{[]string{"resource", "frob"}, args, "usage: vigil resource run"},
		{[]string{"resource", "run", "Dummy"}, args, "vigil resource run: want TYPE|GROUP/ID ACTION"},
		{[]string{"resource", "run", "Dummy", "start", "x"}, args, `argument 3 "x": want NAME=VALUE`},
		{[]string{"resource", "run", "--bogus", "Dummy", "start"}, args, "flag provided but not defined: -bogus"},
		{[]string{"resource", "run", "Dummy", "start", "--timeout", "soon"}, args, `invalid value "soon" for flag -timeout`},
		{[]string{"resource", "run", "lvs/x", "start", "--id", "y", "-c", cfg}, args, "--id is for TYPE; lvs/x names its resource"},
		{[]string{"resource", "run", "ocf:x", "start"}, codeConfigured, `argument 1 "ocf:x": unknown resource type "ocf:x"`},
		{[]string{"resource", "run", "nope/x", "monitor", "-c", cfg, "--node", "lvs1"}, codeConfigured, `no group "nope" in ` + cfg + "/resources.toml (groups: lvs)"},
		{[]string{"resource", "run", "lvs/x", "monitor", "-c", cfg, "--node", "lvs1"}, codeConfigured, `group lvs has no resource "x" (it has IPaddr_10.0.0.3, ldirectord_www, mon_lvs)`},
		{[]string{"resource", "run", "lvs/x", "monitor", "-c", filepath.Join(cfg, "none")}, codeConfigured, "ha.toml: cannot read"},
		{[]string{"resource", "run", "lvs/x", "monitor", "-c", cfg, "--node", "nobody"}, codeConfigured, "nobody"},
		{[]string{"resource", "run", "ldirectord", "validate-all", "config=nope", "-c", cfg}, codeConfigured, `ldirectord instance "nope": open ` + cfg + "/nope.toml"},
		{[]string{"resource", "run", "mon", "validate-all", "config=../x", "-c", cfg}, codeConfigured, "config=../x: want the plain name of an instance file"},
	} {
		code, out, errs := vigil(tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%q: exit %d, want %d with %q; got\n%s%s", tc.args, code, tc.code, tc.want, out, errs)
		}
	}
	// --json: the error in JSON on stdout, with the exit code.
	code, out, _ := vigil("resource", "run", "Dummy", "start", "x", "--json")
	var je jsonError
	if err := json.Unmarshal([]byte(out), &je); err != nil || code != args || je.Exit != args || !strings.Contains(je.Error, `argument 3 "x"`) {
		t.Errorf("--json error: exit %d %q %v", code, out, err)
	}
}

// The built-in Dummy plugin in a real subprocess (this test binary as
// `vigil plugin serve resource dummy`): start, monitor, stop, and a
// parameter the plugin refuses.
func TestResourceRunBuiltinDummy(t *testing.T) {
	state := "state=" + filepath.Join(t.TempDir(), "d.state")
	for _, step := range []struct {
		action string
		code   int
		want   string
	}{
		{"monitor", 7, "d1 monitor: 7 OCF_NOT_RUNNING (not running)"},
		{"start", 0, "d1 start: 0 OCF_SUCCESS (success)\n  via plugin dummy, agent Dummy"},
		{"monitor", 0, "d1 monitor: 0 OCF_SUCCESS"},
		{"stop", 0, "d1 stop: 0 OCF_SUCCESS"},
		{"monitor", 7, "OCF_NOT_RUNNING"},
		{"meta-data", 0, `<resource-agent name="Dummy" version="1.0">`},
	} {
		code, out, errs := vigil("resource", "run", "--id", "d1", "Dummy", step.action, state)
		if code != step.code || !strings.Contains(out, step.want) {
			t.Errorf("%s: exit %d, want %d with %q; got\n%s%s", step.action, code, step.code, step.want, out, errs)
		}
	}
	code, out, errs := vigil("resource", "run", "IPaddr", "validate-all", "ip=10.0.0.300")
	if code != codeConfigured || !strings.Contains(out, "IPaddr_10.0.0.300 validate-all: 6 OCF_ERR_CONFIGURED") {
		t.Errorf("IPaddr with a bad ip: exit %d\n%s%s", code, out, errs)
	}
}

const (
	codeArgs       = int(pb.Code_ERR_ARGS)
	codeConfigured = int(pb.Code_ERR_CONFIGURED)
)

func TestAdHocResource(t *testing.T) {
	for _, tc := range []struct {
		typ    string
		params map[string]string
		id     string
		wantID string
		plugin string
	}{
		{"ocf:heartbeat:Dummy", map[string]string{"state": "/x"}, "", "Dummy", "ocf"},
		{"ocf:heartbeat:Dummy", nil, "d1", "d1", "ocf"},
		{"IPaddr", map[string]string{"ip": "10.0.0.3"}, "", "IPaddr_10.0.0.3", "ipaddr"},
		{"IPaddr::10.0.0.3/24/eth0", nil, "", "IPaddr_10.0.0.3", "ipaddr"},
		{"10.0.0.3/24", nil, "", "IPaddr_10.0.0.3", "ipaddr"},
		{"httpd::a::b", nil, "", "httpd_a_b", "heartbeat"},
		{"lvs", nil, "", "lvs", "heartbeat"},
		{"lsb:apache2", nil, "", "apache2", "lsb"},
		{"Dummy", nil, "", "Dummy", "dummy"},
		{"plugin:pager", nil, "", "pager", "pager"},
	} {
		p := map[string]string{}
		for k, v := range tc.params {
			p[k] = v
		}
		r, err := adHoc(t.TempDir(), tc.typ, tc.id, p)
		if err != nil {
			t.Errorf("%s: %v", tc.typ, err)
			continue
		}
		b, _ := r.Bind()
		if r.ID != tc.wantID || b.Plugin != tc.plugin {
			t.Errorf("%s: id %q plugin %q, want %q %q", tc.typ, r.ID, b.Plugin, tc.wantID, tc.plugin)
		}
	}
	// ldirectord and mon instances come from DIR/NAME.toml, checked as
	// config check checks them.
	dir := testutil.ConfigCopy(t, "../../etc/examples/pair-witness")
	r, err := adHoc(dir, "ldirectord", "", map[string]string{"config": "www"})
	if err != nil || r.ID != "ldirectord_www" || !strings.Contains(r.Params["spec"], "10.0.0.3:80") {
		t.Errorf("ldirectord config=www: %v %+v", err, r)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.toml"), []byte("bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := adHoc(dir, "mon", "", map[string]string{"config": "bad"}); err == nil || !strings.Contains(err.Error(), "bad.toml:1: bogus: unknown key") {
		t.Errorf("a bad instance file: %v", err)
	}
}

func TestMonitorRunErrors(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"monitor"}, exitBadLine, "usage: vigil monitor run"},
		{[]string{"monitor", "run"}, exitBadLine, "no monitor: give its line, quoted as one argument"},
		{[]string{"monitor", "run", "tcp.monitor", "-p", "80", "--", "h"}, exitBadLine, "flag provided but not defined: -p"},
		{[]string{"monitor", "run", "tcp.monitor", "80", "--", "h"}, exitBadLine, `argument "80": the monitor line is one argument`},
		{[]string{"monitor", "run", "tcp.monitor"}, exitBadLine, `no hosts: give them after --, or end the monitor line with ";;"`},
		{[]string{"monitor", "run", `tcp.monitor "-p`, "--", "h"}, exitBadLine, `monitor line "tcp.monitor \"-p": unterminated quote`},
		{[]string{"monitor", "run", "  ", "--", "h"}, exitBadLine, `monitor line "  ": empty`},
		{[]string{"monitor", "run", "tcp.monitor", "--", "h", "a b"}, exitBadLine, `host 2 "a b": one host name or address per argument`},
		{[]string{"monitor", "run", "-e", "lower=1", "tcp.monitor", "--", "h"}, exitBadLine, "-e lower: variable names are upper case letters"},
		{[]string{"monitor", "run", "-e", "NOVALUE", "tcp.monitor", "--", "h"}, exitBadLine, `-e "NOVALUE": want VAR=value`},
		{[]string{"monitor", "run", "-g", "a b", "tcp.monitor", "--", "h"}, exitBadLine, "-g: host group names are letters"},
		{[]string{"monitor", "run", "-s", "a/b", "tcp.monitor", "--", "h"}, exitBadLine, "-s: service names are letters"},
		{[]string{"monitor", "run", "../x.monitor", "--", "h"}, exitBadLine, "the monitor line:"},
		{[]string{"monitor", "run", "tcp -z 1", "--", "h"}, exitBadLine, "the monitor line:"},
		{[]string{"monitor", "run", "--mondir", empty, "gone.monitor", "--", "h"}, exitNotFound, "gone.monitor not found in " + empty},
		{[]string{"monitor", "run", "--mondir", "", "x.monitor", "--", "h"}, exitBadLine, "no directory"},
	} {
		code, out, errs := vigil(tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%q: exit %d, want %d with %q; got\n%s%s", tc.args, code, tc.code, tc.want, out, errs)
		}
	}
	code, out, _ := vigil("monitor", "run", "--json", "--mondir", empty, "gone.monitor", "--", "h")
	var je jsonError
	if err := json.Unmarshal([]byte(out), &je); err != nil || code != exitNotFound || je.Exit != exitNotFound {
		t.Errorf("--json: exit %d %q", code, out)
	}
}

func TestAlertTestErrors(t *testing.T) {
	empty := t.TempDir()
	stdin = strings.NewReader("")
	defer func() { stdin = os.Stdin }()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"alert"}, exitBadLine, "usage: vigil alert test"},
		{[]string{"alert", "test"}, exitBadLine, "no alert: give an alert line"},
		{[]string{"alert", "test", `file.alert "x`}, exitBadLine, "alert line: unterminated quote"},
		{[]string{"alert", "test", "exit=1"}, exitBadLine, "alert line: exit=1 selects exit values but names no alert"},
		{[]string{"alert", "test", "../x.alert"}, exitBadLine, "alert line:"},
		{[]string{"alert", "test", "--type", "bogus", "log"}, exitBadLine, `--type "bogus": one of failure, up, startup, test`},
		{[]string{"alert", "test", "-u", "--type", "failure", "log"}, exitBadLine, "-u and --type failure disagree"},
		{[]string{"alert", "test", "-t", "-5", "log"}, exitBadLine, "-t -5: want seconds since the epoch"},
		{[]string{"alert", "test", "-t", "soon", "log"}, exitBadLine, `invalid value "soon" for flag -t`},
		{[]string{"alert", "test", "-g", "a b", "log"}, exitBadLine, "-g: host group names are letters"},
		{[]string{"alert", "test", "--alertdir", empty, "gone.alert"}, exitNotFound, "gone.alert not found in " + empty},
		{[]string{"alert", "test", "--", "ipvs", "-V", "10.0.0.3:80"}, exitError, "ipvs: no daemon to reach"},
		{[]string{"alert", "test", "--", "webhook"}, exitError, "webhook wants one argument, the URL"},
	} {
		code, out, errs := vigil(tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%q: exit %d, want %d with %q; got\n%s%s", tc.args, code, tc.code, tc.want, out, errs)
		}
	}
	stdin = strings.NewReader(strings.Repeat("x", 70<<10))
	if code, _, errs := vigil("alert", "test", "log"); code != exitBadLine || !strings.Contains(errs, "stdin: more than 65536 bytes") {
		t.Errorf("oversized stdin: exit %d %s", code, errs)
	}
}

// A built-in plugin's meta-data is printed in the OCF shape, which the
// OCF adapter's own parser reads back.
func TestMetaDataXML(t *testing.T) {
	m := &pb.Meta{Name: "IPaddr", Version: "1.0", Description: "floating <VIP> & more",
		Parameters: []*pb.Parameter{{Name: "ip", Description: "the address", Type: "string", Required: true, Unique: true},
			{Name: "arp_count", Default: "5", Type: "integer"}},
		Actions: []*pb.Action{{Name: "start", TimeoutMs: 20000}, {Name: "monitor", TimeoutMs: 20000, IntervalMs: 10000}}}
	doc := metaDataXML(m)
	got, err := script.ParseOCFMetaData(doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if got.Name != "IPaddr" || got.Description != m.Description || len(got.Parameters) != 2 || !got.Parameters[0].Required ||
		!got.Parameters[0].Unique || got.Parameters[1].Default != "5" || len(got.Actions) != 2 || got.Actions[1].IntervalMs != 10000 {
		t.Errorf("read back: %+v\n%s", got, doc)
	}
}

func TestOCFNames(t *testing.T) {
	for c, want := range map[pb.Code]string{0: "OCF_SUCCESS", 7: "OCF_NOT_RUNNING", 9: "OCF_FAILED_MASTER", 42: "OCF_ERR_GENERIC", -1: "OCF_ERR_GENERIC"} {
		if got, _ := ocfName(c); got != want {
			t.Errorf("%d: %s, want %s", c, got, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote([]string{"/x/file.alert", "-h", "a b", "", "it's", "k=v"}); got != `/x/file.alert -h 'a b' '' 'it'\''s' k=v` {
		t.Errorf("%s", got)
	}
}

// The one-shot lines are parsed before anything runs: no input panics.
func FuzzResourceLine(f *testing.F) {
	f.Add("ocf:heartbeat:Dummy\x00start\x00state=/x")
	f.Add("lvs/IPaddr_10.0.0.3\x00monitor")
	f.Add("IPaddr::10.0.0.3/24/eth0\x00stop\x00a=b=c")
	f.Fuzz(func(t *testing.T, line string) {
		testutil.Quick("resource line", []byte(line), func() {
			args := strings.Split(line, "\x00")
			if l, err := parseResourceLine(args); err == nil {
				_ = isGroupID(l.target)
			}
		})
	})
}

// TestMain lets this test binary stand in for `vigil plugin serve` should
// a test start a built-in plugin (resource run does).
func TestMain(m *testing.M) {
	builtintest.ServeBuiltin()
	goleak.VerifyTestMain(m)
}
