// The differential test of Vigil's OCF adapter against Pacemaker 2.1.5's
// own runner (issue 23): each case runs one agent operation through
// `crm_resource --force-start|--force-stop|--force-check|--validate
// --class ocf --provider P --agent T --option k=v…` (which needs no
// cluster and no CIB: crm_resource runs the agent itself through
// libcrmservice, as pacemaker-execd would) and through `vigil resource
// run --json --id test ocf:P:T ACTION k=v…` (the real adapter in its
// plugin subprocess). Pacemaker looks for agents only under its built-in
// /usr/lib/ocf/resource.d, so every run is in a private mount namespace
// where the case's own resource.d is bound over it: the host's stays
// untouched. The agents record their argv, whole environment, cwd, umask
// and stdin, and exit as the case says; resource-agents' Dummy runs with
// its state file in the case's directory. What is compared: the calls,
// the environment, cwd, umask and stdin the agents saw, and the OCF code
// each runner reported. The differences found must be exactly those in
// testdata/known-differences.txt, with their reasons (the README's
// "Migrating" section lists them too): `go test ./test/ocfdiff -update`
// rewrites the list's entries.
package ocfdiff

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/test/difftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ocfCase is one operation and how the agent behaves in it.
type ocfCase struct {
	name   string
	agent  string // provider:type
	action string // start, stop, monitor, validate-all, meta-data
	params []string
	// exit is what the recording agent does in its action: a code
	// (also a non-numeric or out-of-range one) or "sleep" (outlive
	// the timeout).
	exit     string
	interval string // monitor: its interval ("10s"); "" is a probe
	timeout  string // the operation's timeout ("" is each runner's default)
	env      bool   // compare the whole environment (once is enough)
	// meta compares the OCF_RESKEY_CRM_meta_* attributes too (the cases
	// about interval and timeout); every case compares the parameters.
	meta bool
}

const rec = "ocfdiff:Rec"

var cases = func() []ocfCase {
	var cs []ocfCase
	for _, act := range []string{"start", "stop", "monitor"} {
		for code := 0; code <= 9; code++ {
			cs = append(cs, ocfCase{name: fmt.Sprintf("%s-exit-%d", act, code), agent: rec, action: act, exit: strconv.Itoa(code), params: []string{"p=1"}})
		}
	}
	return append(cs,
		ocfCase{name: "start-env", agent: rec, action: "start", params: []string{"p=one", "other=two words"}, env: true},
		ocfCase{name: "monitor-exit-190-degraded", agent: rec, action: "monitor", exit: "190", params: []string{"p=1"}},
		ocfCase{name: "start-exit-42", agent: rec, action: "start", exit: "42", params: []string{"p=1"}},
		ocfCase{name: "start-exit-300", agent: rec, action: "start", exit: "300", params: []string{"p=1"}},
		ocfCase{name: "start-exit-nonnumeric", agent: rec, action: "start", exit: "abc", params: []string{"p=1"}},
		ocfCase{name: "start-missing-required", agent: rec, action: "start"},
		ocfCase{name: "start-default-from-meta-data", agent: rec, action: "start", params: []string{"p=1"}},
		ocfCase{name: "start-unknown-parameter", agent: rec, action: "start", params: []string{"p=1", "nosuch=x"}},
		ocfCase{name: "validate-fails", agent: rec, action: "validate-all", exit: "6", params: []string{"p=1"}},
		ocfCase{name: "validate-ok", agent: rec, action: "validate-all", params: []string{"p=1"}},
		ocfCase{name: "monitor-probe", agent: rec, action: "monitor", params: []string{"p=1"}, meta: true},
		ocfCase{name: "monitor-interval", agent: rec, action: "monitor", interval: "10s", params: []string{"p=1"}, meta: true},
		ocfCase{name: "start-timeout", agent: rec, action: "start", timeout: "7s", params: []string{"p=1"}, meta: true},
		ocfCase{name: "start-slow-killed", agent: rec, action: "start", timeout: "1s", exit: "sleep", params: []string{"p=1"}, meta: true},
		ocfCase{name: "meta-data", agent: rec, action: "meta-data", meta: true},
		ocfCase{name: "meta-data-malformed", agent: "ocfdiff:BadMeta", action: "meta-data"},
		ocfCase{name: "dummy-probe", agent: "heartbeat:Dummy", action: "monitor", params: []string{"state=@DIR@/Dummy.state"}},
		ocfCase{name: "dummy-start", agent: "heartbeat:Dummy", action: "start", params: []string{"state=@DIR@/Dummy.state"}},
		ocfCase{name: "dummy-validate-unwritable", agent: "heartbeat:Dummy", action: "validate-all", params: []string{"state=/nonexistent/dir/Dummy.state"}},
	)
}()

// recAgent records one call and behaves as its control file says. It
// prints a line on stdout and an exit reason on stderr in every action.
const recAgent = `#!/bin/sh
R=@REC@
{ printf 'CALL %s' "$0"; for a; do printf ' %s' "$a"; done; echo
  echo "CWD $(pwd)"; echo "UMASK $(umask)"; echo "STDIN $(readlink /proc/$$/fd/0)"
  env | LC_ALL=C sort | sed 's/^/ENV /'; echo END; } > $R/tmp.$$
cat $R/tmp.$$ >> $R/log; rm -f $R/tmp.$$
if [ "$1" = meta-data ]; then cat $R/meta.xml; exit 0; fi
echo "stdout of $1"
echo "ocf-exit-reason:reason of $1" >&2
c=$(cat $R/ctl/$1 2>/dev/null)
case $c in
sleep) sleep 60; exit 0;;
"") exit 0;;
esac
exit $c
`

// recDummy is resource-agents' Dummy, recording each call's action, the
// interval it was given and its exit code (the file is writable for
// all: ocf-tester runs one action as an unprivileged user).
const recDummy = `#!/bin/sh
/usr/lib/ocf/resource.d/heartbeat/Dummy "$@"; rc=$?
echo "$1 ${OCF_RESKEY_CRM_meta_interval:-unset} $rc" >> @REC@/seq
exit $rc
`

// badMeta prints meta-data that is not XML.
const badMeta = `#!/bin/sh
[ "$1" = meta-data ] && { echo '<resource-agent name="BadMeta"><parameters><parameter name="x">'; exit 0; }
exit 0
`

const metaXML = `<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Rec" version="1.0">
<version>1.0</version>
<longdesc lang="en">Records its calls.</longdesc>
<shortdesc lang="en">recording agent</shortdesc>
<parameters>
<parameter name="p" required="1" unique="1"><longdesc lang="en">p</longdesc><shortdesc lang="en">required</shortdesc><content type="string"/></parameter>
<parameter name="d" required="0" unique="0"><longdesc lang="en">d</longdesc><shortdesc lang="en">defaulted</shortdesc><content type="string" default="dflt"/></parameter>
</parameters>
<actions>
<action name="start" timeout="20s"/>
<action name="stop" timeout="20s"/>
<action name="monitor" timeout="20s" interval="10s" depth="0"/>
<action name="meta-data" timeout="5s"/>
<action name="validate-all" timeout="20s"/>
</actions>
</resource-agent>
`

// setup writes the case's resource.d (bound over /usr/lib/ocf/resource.d
// in the runs' mount namespaces), its recording directory and an empty
// working directory, fresh for one side's run.
func setup(t *testing.T, dir string, c ocfCase) {
	t.Helper()
	r := filepath.Join(dir, "rec")
	dummy, err := os.ReadFile("/usr/lib/ocf/resource.d/heartbeat/Dummy")
	if err != nil {
		t.Fatalf("resource-agents' Dummy (`make deps`): %v", err)
	}
	files := map[string]string{
		"resource.d/ocfdiff/Rec":      strings.ReplaceAll(recAgent, "@REC@", r),
		"resource.d/ocfdiff/BadMeta":  badMeta,
		"resource.d/heartbeat/Dummy":  string(dummy),
		"resource.d/ocfdiff/RecDummy": strings.ReplaceAll(recDummy, "@REC@", r),
		"rec/meta.xml":                metaXML,
	}
	if c.exit != "" {
		files["rec/ctl/"+c.action] = c.exit + "\n"
	}
	difftest.WriteFiles(t, dir, files, func(name string) os.FileMode {
		if strings.HasPrefix(name, "resource.d/") {
			return 0o755 // the agents
		}
		return 0o644
	})
	for _, d := range []string{"cwd", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// nsRun binds the case's resource.d over Pacemaker's fixed agent
// directory in a private mount namespace (a PID namespace too, so an
// agent left sleeping ends with the run) and runs the command from the
// case's working directory with an environment of PATH only, as an init
// system would start either runner.
const nsRun = `set -e
mount --make-rprivate /
mount --bind "$DIR/resource.d" /usr/lib/ocf/resource.d
cd "$DIR/cwd"
umask 022
set +e
env -i "$BASEPATH" "$@"
echo "EXIT $?"
`

func runNS(dir string, argv ...string) (string, error) {
	cmd := exec.Command("unshare", append([]string{"--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", nsRun, "sh"}, argv...)...)
	cmd.Env = append(os.Environ(), "DIR="+dir, "BASEPATH="+monitors.BasePath)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func params(c ocfCase, dir string) []string {
	var out []string
	for _, p := range c.params {
		out = append(out, strings.ReplaceAll(p, "@DIR@", dir))
	}
	return out
}

// pacemakerArgv is crm_resource's command for the case.
func pacemakerArgv(c ocfCase, dir string) []string {
	prov, typ, _ := strings.Cut(c.agent, ":")
	if c.action == "meta-data" {
		return []string{"crm_resource", "--show-metadata", "ocf:" + c.agent}
	}
	mode := map[string]string{"start": "--force-start", "stop": "--force-stop", "monitor": "--force-check", "validate-all": "--validate"}[c.action]
	argv := []string{"crm_resource", mode, "--class", "ocf", "--provider", prov, "--agent", typ}
	if c.timeout != "" {
		argv = append(argv, "--timeout", c.timeout)
	}
	for _, p := range params(c, dir) {
		argv = append(argv, "--option", p)
	}
	if c.interval != "" {
		// crm_resource has no interval of its own for --force-check: the
		// executor passes it as this meta attribute.
		ms, _ := strconv.Atoi(strings.TrimSuffix(c.interval, "s"))
		argv = append(argv, "--option", fmt.Sprintf("CRM_meta_interval=%d", ms*1000))
	}
	return argv
}

// vigilArgv is `vigil resource run`'s command for the case.
func vigilArgv(c ocfCase, bin, dir string) []string {
	argv := []string{filepath.Join(bin, "vigil"), "resource", "run", "--json", "-c", filepath.Join(dir, "etc"), "--id", "test"}
	if c.timeout != "" {
		argv = append(argv, "--timeout", c.timeout)
	}
	if c.interval != "" {
		argv = append(argv, "--interval", c.interval)
	}
	return append(append(argv, "ocf:"+c.agent, c.action), params(c, dir)...)
}

// outcome is what a runner reported.
type outcome struct {
	code    string // the OCF code, or what the runner said instead
	meaning string
	// reason is the agent's exit reason as the runner reports it;
	// output whether it shows the agent's stdout and stderr.
	reason string
	output bool
}

var (
	pcmkReturned = regexp.MustCompile(`returned (-?\d+) \((.*?)(?:: (.*))?\)\n`)
	pcmkNotRun   = regexp.MustCompile(`could not be executed \(([^:)]*)`)
)

// pacemakerOutcome reads crm_resource's "Operation … returned N (text: reason)".
func pacemakerOutcome(c ocfCase, out string) outcome {
	exit := lastExit(out)
	if c.action == "meta-data" {
		if exit == "0" && strings.Contains(out, "<resource-agent") {
			return outcome{code: "meta-data printed"}
		}
		return outcome{code: "meta-data refused, exit " + exit}
	}
	if m := pcmkReturned.FindStringSubmatch(out); m != nil {
		return outcome{code: m[1], meaning: strings.TrimSpace(m[2]), reason: m[3], output: shows(out, c.action)}
	}
	if m := pcmkNotRun.FindStringSubmatch(out); m != nil {
		return outcome{code: "not run, exit " + exit, meaning: m[1]}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "crm_resource: ") {
			return outcome{code: "no code, exit " + exit, meaning: strings.TrimPrefix(l, "crm_resource: ")}
		}
	}
	return outcome{code: "no code, exit " + exit}
}

// vigilOutcome reads `resource run --json`.
func vigilOutcome(c ocfCase, out string) outcome {
	exit := lastExit(out)
	var js struct {
		Code    *int   `json:"code"`
		Meaning string `json:"meaning"`
		Error   string `json:"error"`
		Meta    string `json:"meta_data"`
		Reason  string `json:"reason"`
		Output  string `json:"output"`
	}
	if i, j := strings.Index(out, "{"), strings.LastIndex(out, "}"); i >= 0 && j > i {
		_ = json.Unmarshal([]byte(out[i:j+1]), &js)
	}
	if c.action == "meta-data" {
		if exit == "0" && strings.Contains(js.Meta, "<resource-agent") {
			return outcome{code: "meta-data printed"}
		}
		return outcome{code: "meta-data refused, exit " + exit}
	}
	if js.Code != nil && js.Error == "" {
		return outcome{code: strconv.Itoa(*js.Code), meaning: js.Meaning, reason: js.Reason, output: shows(js.Output, c.action)}
	}
	if strings.Contains(js.Error, "deadline exceeded") {
		return outcome{code: "not run, exit " + exit, meaning: "timed out"}
	}
	return outcome{code: "no code, exit " + exit, meaning: js.Error}
}

// shows reports whether a runner's report holds the recording agent's
// stdout line and its exit reason line from stderr.
func shows(out, action string) bool {
	return strings.Contains(out, "stdout of "+action) && strings.Contains(out, "ocf-exit-reason:reason of "+action)
}

func lastExit(out string) string {
	i := strings.LastIndex(out, "EXIT ")
	if i < 0 {
		return "?"
	}
	return strings.TrimSpace(strings.SplitN(out[i+5:], "\n", 2)[0])
}

// call is one recorded agent call.
type call = difftest.Call

// readCalls reads a recording agent's log, with the one normalisation
// of what must differ: each side's case directory.
func readCalls(path, dir string) ([]call, error) {
	segs, err := difftest.ReadCalls(path, "", func(l string) string { return strings.ReplaceAll(l, dir, "DIR") })
	if err != nil {
		return nil, err
	}
	return segs[0], nil
}

// side is one runner's run of a case.
type side struct {
	calls []call
	out   outcome
}

func compare(c ocfCase, p, v side) []string {
	var diffs []string
	// The codes are compared; the words differ throughout (Pacemaker's
	// "ok", "error", Vigil's ocf-returncodes names) and are shown only.
	if p.out.code != v.out.code {
		diffs = append(diffs, fmt.Sprintf("reported: pacemaker %s (%s), vigil %s (%s)", p.out.code, p.out.meaning, v.out.code, v.out.meaning))
	}
	// What the operator is told besides the code: the exit reason and
	// the agent's own output (the recording agent prints both).
	if c.agent == rec && p.out.reason != v.out.reason {
		diffs = append(diffs, fmt.Sprintf("exit reason: pacemaker %q, vigil %q", p.out.reason, v.out.reason))
	}
	if c.agent == rec && p.out.output != v.out.output {
		diffs = append(diffs, fmt.Sprintf("agent output shown: pacemaker %t, vigil %t", p.out.output, v.out.output))
	}
	seq := func(cs []call) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.Argv)
		}
		return strings.Join(s, ", ")
	}
	if a, b := seq(p.calls), seq(v.calls); a != b {
		diffs = append(diffs, fmt.Sprintf("calls: pacemaker [%s], vigil [%s]", a, b))
	}
	if len(p.calls) == 0 || len(v.calls) == 0 {
		return diffs
	}
	// The operation's own call is the last (a runner may ask for
	// meta-data first).
	pc, vc := p.calls[len(p.calls)-1], v.calls[len(v.calls)-1]
	for _, f := range []struct{ what, a, b string }{{"cwd", pc.Cwd, vc.Cwd}, {"umask", pc.Umask, vc.Umask}, {"stdin", pc.Stdin, vc.Stdin}} {
		if c.env && f.a != f.b {
			diffs = append(diffs, fmt.Sprintf("%s: pacemaker %s, vigil %s", f.what, f.a, f.b))
		}
	}
	keys := map[string]bool{}
	for k := range pc.Env {
		keys[k] = true
	}
	for k := range vc.Env {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if k == "_" || k == "PWD" || k == "SHLVL" || k == "OLDPWD" {
			continue // the shell's own
		}
		// The parameters are every case's; meta attributes those of
		// the cases about them; the rest of the environment (also
		// Pacemaker's own OCF_RESKEY_crm_feature_set) is compared once.
		switch {
		case c.env:
		case strings.HasPrefix(k, "OCF_RESKEY_CRM_meta_"):
			if !c.meta {
				continue
			}
		case !strings.HasPrefix(k, "OCF_RESKEY_") || k == "OCF_RESKEY_crm_feature_set":
			continue
		}
		a, ina := pc.Env[k]
		b, inb := vc.Env[k]
		switch {
		case ina && inb && a == b:
		case !inb:
			diffs = append(diffs, fmt.Sprintf("env %s: only pacemaker (%s)", k, a))
		case !ina:
			diffs = append(diffs, fmt.Sprintf("env %s: only vigil (%s)", k, b))
		default:
			diffs = append(diffs, fmt.Sprintf("env %s: pacemaker %s, vigil %s", k, a, b))
		}
	}
	return diffs
}

const knownHeader = `# Differences between Pacemaker 2.1.5's crm_resource (running one OCF
# agent operation without a cluster) and Vigil's OCF adapter (vigil
# resource run) found by TestOCFDifferential: "CASE: WHAT: pacemaker …,
# vigil …". Each group's comment says why it stays; the README's
# "Migrating" section lists them too. The test fails when this set
# changes.

`

func TestOCFDifferential(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("ocfdiff needs root: it binds its agents over /usr/lib/ocf/resource.d in private mount namespaces")
	}
	for _, p := range []string{"/usr/sbin/crm_resource", "/usr/lib/ocf/resource.d/heartbeat/Dummy"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: Debian's pacemaker-cli-utils and resource-agents are installed by `make deps`", err)
		}
	}
	bin := difftest.Build(t, "./cmd/vigil")
	// Each case waits mostly for its processes to start: two at a time
	// keep a two-core machine usable.
	found := difftest.NewDiffs(2)
	for _, c := range cases {
		found.Go(func() {
			pdir, vdir := t.TempDir(), t.TempDir()
			setup(t, pdir, c)
			setup(t, vdir, c)
			pout, err := runNS(pdir, pacemakerArgv(c, pdir)...)
			if err != nil {
				t.Errorf("%s: pacemaker: %v\n%s", c.name, err, pout)
				return
			}
			vout, err := runNS(vdir, vigilArgv(c, bin, vdir)...)
			if err != nil {
				t.Errorf("%s: vigil: %v\n%s", c.name, err, vout)
				return
			}
			p, v := side{out: pacemakerOutcome(c, pout)}, side{out: vigilOutcome(c, vout)}
			if p.calls, err = readCalls(filepath.Join(pdir, "rec", "log"), pdir); err == nil {
				v.calls, err = readCalls(filepath.Join(vdir, "rec", "log"), vdir)
			}
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				return
			}
			if testing.Verbose() {
				t.Logf("%s:\npacemaker: %s\nvigil: %s", c.name, pout, vout)
			}
			found.Add(c.name, compare(c, p, v))
		})
	}
	found.Go(func() {
		diffs, err := compareOCFTester(t, bin)
		if err != nil {
			t.Error(err)
			return
		}
		found.Add("ocf-tester-dummy", diffs)
	})
	found.Check(t, knownHeader)
}

// seqStep is one recorded call of RecDummy: action, interval, exit code.
type seqStep struct{ action, interval, code string }

func readSeq(path string) ([]seqStep, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []seqStep
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 {
			out = append(out, seqStep{f[0], f[1], f[2]})
		}
	}
	return out, nil
}

// compareOCFTester runs resource-agents' ocf-tester on Dummy (through
// RecDummy), the reference for the lifecycle an agent must pass and the
// codes expected at each step, then runs the same sequence of
// operations through `vigil resource run`, one command each, on a state
// file of its own, and compares the code each step gave and, for the
// monitors, the interval the agent saw (ocf-tester exports one interval
// for every action; only a monitor's means anything).
func compareOCFTester(t *testing.T, bin string) ([]string, error) {
	tdir, vdir := t.TempDir(), t.TempDir()
	c := ocfCase{name: "ocf-tester-dummy"}
	for _, dir := range []string{tdir, vdir} {
		setup(t, dir, c)
		if err := os.WriteFile(filepath.Join(dir, "rec", "seq"), nil, 0o666); err != nil {
			return nil, err
		}
		if err := os.Chmod(filepath.Join(dir, "rec", "seq"), 0o666); err != nil {
			return nil, err
		}
	}
	out, err := runNS(tdir, "ocf-tester", "-n", "test", "-o", "state="+filepath.Join(tdir, "Dummy.state"), "/usr/lib/ocf/resource.d/ocfdiff/RecDummy")
	if err != nil || lastExit(out) != "0" {
		return nil, fmt.Errorf("ocf-tester on Dummy: %v\n%s", err, out)
	}
	want, err := readSeq(filepath.Join(tdir, "rec", "seq"))
	if err != nil {
		return nil, err
	}
	// Vigil's side: the same operations in order, in one namespace,
	// each command's exit status being the OCF code it reports.
	script := `for step; do
	set -- $step
	iv=""; [ "$1" = monitor ] && [ "$2" != unset ] && iv="--interval $2ms"
	"$VIGIL" resource run -c "$DIR/etc" --id test $iv ocf:ocfdiff:RecDummy "$1" state="$DIR/Dummy.state" >/dev/null 2>&1
	echo "STEP $1 $?"
done`
	var steps []string
	for _, s := range want {
		steps = append(steps, s.action+" "+s.interval)
	}
	out, err = runNS(vdir, append([]string{"env", "VIGIL=" + filepath.Join(bin, "vigil"), "DIR=" + vdir, "sh", "-c", script, "sh"}, steps...)...)
	if err != nil {
		return nil, fmt.Errorf("vigil: %v\n%s", err, out)
	}
	var reported []string
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "STEP "); ok {
			reported = append(reported, rest)
		}
	}
	got, err := readSeq(filepath.Join(vdir, "rec", "seq"))
	if err != nil {
		return nil, err
	}
	if len(reported) != len(want) {
		return nil, fmt.Errorf("vigil ran %d of ocf-tester's %d steps:\n%s", len(reported), len(want), out)
	}
	// Which of Vigil's steps reached the agent, in order.
	var diffs []string
	g := 0
	for i, w := range want {
		act, code, _ := strings.Cut(reported[i], " ")
		var seen *seqStep
		if g < len(got) && got[g].action == act {
			seen = &got[g]
			g++
		}
		switch {
		case seen == nil:
			diffs = append(diffs, fmt.Sprintf("step %d %s: ocf-tester ran it (agent exit %s), vigil did not run the agent (exit %s)", i+1, w.action, w.code, code))
		case code != w.code:
			diffs = append(diffs, fmt.Sprintf("step %d %s: ocf-tester agent exit %s, vigil reported %s", i+1, w.action, w.code, code))
		case act == "monitor" && seen.interval != w.interval:
			diffs = append(diffs, fmt.Sprintf("step %d monitor: interval ocf-tester %s, vigil %s", i+1, w.interval, seen.interval))
		}
	}
	return diffs, nil
}
