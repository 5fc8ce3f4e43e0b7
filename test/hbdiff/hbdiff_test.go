// The differential test of Vigil's heartbeat adapter against Debian's real
// heartbeat 3.0.6 (issue 23): each case's haresources runs under the real
// heartbeat daemon — in private mount, UTS, network and PID namespaces
// whose /etc/ha.d is the case's own directory, as node hbnode1 of a pair
// whose peer hbnode2 is dead: its groups are taken over by mach_down
// (LEGACY.md §2.4; hbnode1's own groups go through a request path that
// loses the group when two scripts write heartbeat's FIFO at once, a
// race §2.6 records and a busy machine makes common) — and under
// Vigil's local resource manager with the real heartbeat and ocf plugins
// (in the same kind of namespaces, with the same /etc/ha.d), as the
// daemon runs a group: a probe, the start, the stop at shutdown. The
// resource scripts record their argv, environment, working directory,
// umask and stdin, and exit with the codes the case gives them; real OCF
// agents (resource-agents' Dummy) run through heartbeat's own OCF wrapper.
// What is compared: the calls each side made, in order; the environment,
// cwd, umask and stdin the scripts saw; and how each side read the text
// a status printed (ResourceManager's status command against Vigil's
// monitor). The differences found must be exactly those listed in
// testdata/known-differences.txt, with their reasons (the README's
// "Migrating" section lists them too): `go test ./test/hbdiff -update`
// rewrites the list's entries.
package hbdiff

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/internal/testutil/builtintest"
	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/test/difftest"
)

// The test binary serves Vigil's built-in plugins, so the inner process's
// plugin host runs them in real subprocesses.
func TestMain(m *testing.M) {
	builtintest.ServeBuiltin()
	goleak.VerifyTestMain(m)
}

// hbCase is one haresources file and how its scripts behave.
type hbCase struct {
	name string
	// haresources is the file's text; its groups are hbnode2's, the
	// peer that never runs, so hbnode1 takes them over.
	haresources string
	// ctl gives a script's action its outcome: "Rec2.start" → "1" makes
	// Rec2's start exit 1 (after doing its work); for status, the text
	// after the code's line replaces what status prints.
	ctl map[string]string
	// running are the resources (script name and args joined by ".")
	// already running when the node starts.
	running []string
	// files are extra files under ha.d (conf/OCF/...); @REC@ in them is
	// the recording directory.
	files map[string]string
	// env compares the scripts' environment too (once is enough).
	env bool
}

var cases = []hbCase{
	{name: "group", env: true,
		haresources: "# a group of three: args first, the action last\nhbnode2 Rec1::a Rec2::b::x Rec3\n"},
	{name: "already-running", running: []string{"Rec2.b"},
		haresources: "hbnode2 Rec1::a Rec2::b Rec3\n"},
	{name: "start-fails", ctl: map[string]string{"Rec2.start": "1"},
		haresources: "hbnode2 Rec1 Rec2 Rec3\n"},
	{name: "first-start-fails", ctl: map[string]string{"Rec1.start": "7"},
		haresources: "hbnode2 Rec1 Rec2\n"},
	{name: "stop-fails", ctl: map[string]string{"Rec1.stop": "1"},
		haresources: "hbnode2 Rec1 Rec2\n"},
	{name: "status-exit-ignored", ctl: map[string]string{"Rec1.status": "3\nsvc Running"},
		haresources: "hbnode2 Rec1 Rec2\n"},
	{name: "status-silent", ctl: map[string]string{"Rec1.status": "0\n"},
		haresources: "hbnode2 Rec1 Rec2\n"},
	{name: "continuation",
		haresources: "hbnode2 Rec1::a \\\n\tRec2::b\n\n"},
	{name: "ocf-dummy",
		haresources: "hbnode2 Rec1 OCF::Dummy::d1 Rec2\n",
		files:       map[string]string{"conf/OCF/Dummy/d1": "state=@REC@/state/Dummy-d1\n"}},
	{name: "ocf-dummy-fails",
		haresources: "hbnode2 Rec1 OCF::Dummy::d1 Rec2\n",
		files:       map[string]string{"conf/OCF/Dummy/d1": "state=/nonexistent/dir/Dummy-d1\n"}},
}

// statusRows are LEGACY.md §2.5's table: what a status prints and exits.
var statusRows = []struct{ out, code string }{
	{"foo is running", "0"}, {"foo Running", "3"}, {"foo is not running", "0"}, {"foo is NOT   RUNNING", "0"},
	{"OK", "1"}, {"foo is stopped", "0"}, {"", "0"}, {"foo notrunning", "0"}, {"NOT OK", "0"}, {"ok", "0"},
	{"foo dead but pid file exists", "0"},
}

// recScript records one call and behaves as the case's ctl says. One
// append per call keeps the records whole.
const recScript = `#!/bin/sh
R=@REC@
n=${0##*/}
i=0; key=$n; act=
for a; do i=$((i+1)); if [ $i -lt $# ]; then key="$key.$a"; else act=$a; fi; done
t=$R/tmp.$$
{ printf 'CALL %s' "$0"; for a; do printf ' %s' "$a"; done; echo
  echo "CWD $(pwd)"; echo "UMASK $(umask)"; echo "STDIN $(readlink /proc/$$/fd/0)"
  env | LC_ALL=C sort | sed 's/^/ENV /'; echo END; } > $t
cat $t >> $R/log; rm -f $t
c=$R/ctl/$n.$act
case $act in
start) touch "$R/state/$key";;
stop) rm -f "$R/state/$key";;
status)
	if [ -f $c ]; then sed 1d $c; exit $(head -1 $c); fi
	if [ -e "$R/state/$key" ]; then echo "$key is running"; else echo "$key is stopped"; fi
	exit 0;;
esac
[ -f $c ] && { sed 1d $c; exit $(head -1 $c); }
exit 0
`

// haCF is node hbnode1's ha.cf: the pair's peer never answers, so after
// initdead heartbeat takes every group. The log is where the driver
// watches heartbeat's progress.
const haCF = `logfile @DIR@/ha-log
keepalive 200ms
deadtime 1
warntime 500ms
initdead 1
udpport 694
ucast lo 127.0.0.1
auto_failback on
node hbnode1
node hbnode2
`

// setup writes the case's ha.d (a copy of Debian's /etc/ha.d plus ha.cf,
// authkeys, haresources and the recording scripts) and its recording
// directory, fresh for one side's run.
func setup(t *testing.T, dir string, c hbCase) {
	t.Helper()
	rec := filepath.Join(dir, "rec")
	if out, err := exec.Command("cp", "-a", "/etc/ha.d", filepath.Join(dir, "ha.d")).CombinedOutput(); err != nil {
		t.Fatalf("copying Debian's /etc/ha.d (package heartbeat, `make deps`): %v\n%s", err, out)
	}
	files := map[string]string{
		"ha.cf":       strings.ReplaceAll(haCF, "@DIR@", dir),
		"authkeys":    "auth 1\n1 sha1 hbdiff-secret-key-0123456789\n",
		"haresources": c.haresources,
	}
	for name, text := range c.files {
		files[name] = strings.ReplaceAll(text, "@REC@", rec)
	}
	for _, s := range []string{"Rec1", "Rec2", "Rec3"} {
		files["resource.d/"+s] = strings.ReplaceAll(recScript, "@REC@", rec)
	}
	difftest.WriteFiles(t, filepath.Join(dir, "ha.d"), files, func(name string) os.FileMode {
		switch {
		case strings.HasPrefix(name, "resource.d/"):
			return 0o755
		case name == "authkeys":
			return 0o600
		}
		return 0o644
	})
	for _, d := range []string{"ctl", "state"} {
		if err := os.MkdirAll(filepath.Join(rec, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range c.ctl {
		if err := os.WriteFile(filepath.Join(rec, "ctl", k), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range c.running {
		if err := os.WriteFile(filepath.Join(rec, "state", r), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// nsPrelude makes a namespace look like node hbnode1's own machine: the
// case's ha.d as /etc/ha.d, fresh /run and /var/lib/heartbeat. The
// namespaces are unshare's (no name to clean up): they end with the
// driver, and so does every process left in them.
const nsPrelude = `set -e
mount --make-rprivate /
mount --bind "$DIR/ha.d" /etc/ha.d
mount -t tmpfs tmpfs /run
mkdir -p /run/heartbeat /run/resource-agents
mount -t tmpfs tmpfs /var/lib/heartbeat
mkdir -p /var/lib/heartbeat/cores/root /var/lib/heartbeat/cores/hacluster /var/lib/heartbeat/cores/nobody
hostname hbnode1
ip link set lo up
`

// heartbeatDriver runs the real daemon as an init system would (an
// environment of PATH only), waits until ResourceManager acquires the
// group, then stops it; heartbeat itself delays its shutdown until the
// acquisition is over, then releases every group. Polls, with a
// deadline far beyond heartbeat's own timing (initdead 1 s).
const heartbeatDriver = nsPrelude + `
wait_log() { i=0; until grep -q "$1" "$DIR/ha-log" 2>/dev/null; do
	i=$((i+1)); [ $i -lt 300 ] || { echo "timeout waiting for: $1" >&2; cat "$DIR/ha-log" >&2; exit 1; }; sleep 0.1; done; }
env -i "$BASEPATH" /usr/libexec/heartbeat/heartbeat
wait_log "Acquiring resource group"
kill -TERM $(cat /run/heartbeat.pid)
wait_log "All HA resources relinquished"
`

// statusDriver asks ResourceManager, as heartbeat does, whether Rec1 is
// held, for every row of statusRows (the control file is the row).
const statusDriver = nsPrelude + `
for row in $ROWS; do
	cp "$DIR/rows/$row" "$DIR/rec/ctl/Rec1.status"
	rc=0; env -i "$BASEPATH" HA_RESOURCEDIR=/etc/ha.d/resource.d /usr/share/heartbeat/ResourceManager status Rec1 >/dev/null 2>&1 || rc=$?
	echo "$row $rc" >> "$DIR/status-result"
done
`

// runNS runs script with args in fresh namespaces with DIR set.
func runNS(dir, script string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("unshare", append([]string{"--mount", "--uts", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", script, "sh"}, args...)...)
	cmd.Env = append(append(os.Environ(), "DIR="+dir, "BASEPATH="+monitors.BasePath), env...)
	return cmd.CombinedOutput()
}

// runHeartbeat runs the case under the real heartbeat. heartbeat's own
// race (LEGACY.md §2.6: two writers on its FIFO) is told apart from a
// result by its log line, and the run is repeated in a fresh directory.
// The race shows as "NV failure" and a group never started, or, seen on a
// loaded CI machine, as "msg2string: Message with zero fields" and a
// shutdown that never completes.
func runHeartbeat(t *testing.T, dir string, c hbCase) ([]byte, error) {
	var out []byte
	var err error
	for try := 0; try < 3; try++ {
		if try > 0 {
			if err := os.RemoveAll(dir); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			setup(t, dir, c)
		}
		out, err = runNS(dir, heartbeatDriver, nil)
		if log, _ := os.ReadFile(filepath.Join(dir, "ha-log")); err == nil || !fifoRace(string(log)) {
			return out, err
		}
	}
	return out, err
}

// fifoRace tells heartbeat's FIFO race by what it logs.
func fifoRace(log string) bool {
	return strings.Contains(log, "NV failure") || strings.Contains(log, "Message with zero fields")
}

// inner is TestVigilSide, run by TestHeartbeatDifferential in a case's
// namespaces with envDir set to the case's directory.
var inner = difftest.Inner{Test: "TestVigilSide", Outer: "TestHeartbeatDifferential", Env: envDir}

// runVigil runs Vigil's side of a case (mode: envMode) for dir in the
// namespaces.
func runVigil(dir, mode string) ([]byte, error) {
	argv, err := inner.Argv()
	if err != nil {
		return nil, err
	}
	return runNS(dir, nsPrelude+`exec "$@"`, []string{envDir + "=" + dir, envMode + "=" + mode}, argv...)
}

const (
	envDir  = "HBDIFF_DIR"
	envMode = "HBDIFF_MODE"
)

// call is one recorded script call.
type call = difftest.Call

// probeEnd ends the calls of Vigil's probe in a record.
const probeEnd = "PROBE-END"

// readCalls reads a record: the calls before probeEnd (if it is there)
// and those after.
func readCalls(path string) (probe, calls []call, err error) {
	segs, err := difftest.ReadCalls(path, probeEnd, nil)
	if err != nil {
		return nil, nil, err
	}
	if len(segs) > 1 {
		probe = segs[0]
	}
	return probe, segs[len(segs)-1], nil
}

// short is a call as "Rec1 a start" (heartbeat writes resource.d's path
// with a doubled slash on some paths: the script is the same).
func short(c call) string {
	f := strings.Fields(c.Argv)
	if len(f) == 0 {
		return ""
	}
	f[0] = filepath.Base(f[0])
	return strings.Join(f, " ")
}

// result is one side's run of a case.
type result struct {
	probe, calls []call
	dir          string // the case's directory, read as DIR
}

// compare lists what only one side did, as "WHAT: heartbeat …, vigil …".
func compare(c hbCase, hb, vg result) []string {
	var diffs []string
	seq := func(calls []call) string {
		var s []string
		for _, c := range calls {
			s = append(s, short(c))
		}
		return strings.Join(s, ", ")
	}
	if a, b := seq(hb.calls), seq(vg.calls); a != b {
		diffs = append(diffs, fmt.Sprintf("calls: heartbeat [%s], vigil [%s]", a, b))
	}
	// What every case shares is compared once, in the case that
	// compares the environment: Vigil's probe when the node starts, and
	// where the scripts ran.
	if !c.env {
		return diffs
	}
	if a, b := seq(hb.probe), seq(vg.probe); a != b {
		diffs = append(diffs, fmt.Sprintf("probe: heartbeat [%s], vigil [%s]", a, b))
	}
	for _, what := range []string{"cwd", "umask", "stdin"} {
		get := func(r result) string {
			set := map[string]bool{}
			for _, c := range r.calls {
				set[map[string]string{"cwd": c.Cwd, "umask": c.Umask, "stdin": c.Stdin}[what]] = true
			}
			return strings.Join(slices.Sorted(maps.Keys(set)), " ")
		}
		if a, b := get(hb), get(vg); a != b {
			diffs = append(diffs, fmt.Sprintf("%s: heartbeat %s, vigil %s", what, a, b))
		}
	}
	return append(diffs, compareEnv(hb, vg)...)
}

// compareEnv compares the environment of the start and stop calls (the
// initial probe has heartbeat's HA_DONTASK on top). Values the two sides
// cannot share are read as classes: heartbeat exports every ha.cf
// directive, and the fields of the cluster message that triggered the
// call, as HA_<lower-case name> (HA_keepalive, HA_src, HA_ld …).
func compareEnv(hb, vg result) []string {
	collect := func(r result) map[string]map[string]bool {
		out := map[string]map[string]bool{}
		for _, c := range r.calls {
			act := short(c)[strings.LastIndex(short(c), " ")+1:]
			for k, v := range c.Env {
				if k == "_" || k == "PWD" || k == "SHLVL" || k == "OLDPWD" {
					continue // the shell's own
				}
				if act == "status" && k != "HA_DONTASK" {
					continue
				}
				if strings.HasPrefix(k, "HA_") && len(k) > 3 && k[3] >= 'a' && k[3] <= 'z' {
					k, v = "HA_<ha.cf directive or message field>", "…"
				}
				// heartbeat writes HA_DIR/resource.d with a doubled
				// slash on some paths: the same directory.
				v = strings.ReplaceAll(strings.ReplaceAll(v, r.dir, "DIR"), "//", "/")
				if k == "PATH" {
					v = dedupPath(v)
				}
				if out[k] == nil {
					out[k] = map[string]bool{}
				}
				out[k][v] = true
			}
		}
		return out
	}
	a, b := collect(hb), collect(vg)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		av, bv := strings.Join(slices.Sorted(maps.Keys(a[k])), " | "), strings.Join(slices.Sorted(maps.Keys(b[k])), " | ")
		switch {
		case av == bv:
		case b[k] == nil:
			diffs = append(diffs, fmt.Sprintf("env %s: only heartbeat (%s)", k, av))
		case a[k] == nil:
			diffs = append(diffs, fmt.Sprintf("env %s: only vigil (%s)", k, bv))
		default:
			diffs = append(diffs, fmt.Sprintf("env %s: heartbeat %s, vigil %s", k, av, bv))
		}
	}
	return diffs
}

// dedupPath keeps each directory's first place: every shellfuncs a
// script chain sources puts heartbeat's directories in front again.
func dedupPath(p string) string {
	var out []string
	for _, d := range strings.Split(p, ":") {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return strings.Join(out, ":")
}

const knownHeader = `# Differences between Debian's heartbeat 3.0.6 (with resource-agents
# 4.12) and Vigil's heartbeat adapter found by TestHeartbeatDifferential:
# "CASE: WHAT: heartbeat …, vigil …". Each group's comment says why it
# stays; the README's "Migrating" section lists them too. The test fails
# when this set changes.

`

func TestHeartbeatDifferential(t *testing.T) {
	inner.SkipOuter(t)
	if why := nstest.NetnsMissing(); why != "" {
		t.Fatal(why)
	}
	for _, p := range []string{"/usr/libexec/heartbeat/heartbeat", "/usr/share/heartbeat/ResourceManager", "/usr/lib/ocf/resource.d/heartbeat/Dummy"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: Debian's heartbeat and resource-agents are installed by `make deps`", err)
		}
	}
	// Every case waits mostly for heartbeat's timers: run them all at
	// once, each side in namespaces of its own.
	found := difftest.NewDiffs(0)
	for _, c := range cases {
		found.Go(func() {
			var herr, verr error
			var hout, vout []byte
			hdir, vdir := t.TempDir(), t.TempDir()
			hb, vg := result{dir: hdir}, result{dir: vdir}
			setup(t, hdir, c)
			setup(t, vdir, c)
			var side sync.WaitGroup
			side.Add(2)
			go func() {
				defer side.Done()
				hout, herr = runHeartbeat(t, hdir, c)
				if herr == nil {
					hb.probe, hb.calls, herr = readCalls(filepath.Join(hdir, "rec", "log"))
				}
			}()
			go func() {
				defer side.Done()
				vout, verr = runVigil(vdir, "group")
				if verr == nil {
					vg.probe, vg.calls, verr = readCalls(filepath.Join(vdir, "rec", "log"))
				}
			}()
			side.Wait()
			if herr != nil {
				t.Errorf("%s: heartbeat: %v\n%s", c.name, herr, hout)
				return
			}
			if verr != nil {
				t.Errorf("%s: vigil: %v\n%s", c.name, verr, vout)
				return
			}
			if len(hb.calls) == 0 {
				t.Errorf("%s: heartbeat called no script", c.name)
			}
			found.Add(c.name, compare(c, hb, vg))
		})
	}
	// How a status's text and exit code are read.
	found.Go(func() {
		diffs, err := compareStatus(t)
		if err != nil {
			t.Error(err)
			return
		}
		found.Add("status", diffs)
	})
	found.Check(t, knownHeader)
}

// compareStatus runs ResourceManager's status and Vigil's monitor on a
// script printing each row of statusRows.
func compareStatus(t *testing.T) ([]string, error) {
	hdir, vdir := t.TempDir(), t.TempDir()
	c := hbCase{name: "status", haresources: "hbnode2 Rec1\n"}
	var rows []string
	for _, dir := range []string{hdir, vdir} {
		setup(t, dir, c)
		if err := os.MkdirAll(filepath.Join(dir, "rows"), 0o755); err != nil {
			return nil, err
		}
		rows = rows[:0]
		for i, r := range statusRows {
			name := fmt.Sprintf("row%02d", i)
			rows = append(rows, name)
			if err := os.WriteFile(filepath.Join(dir, "rows", name), []byte(r.code+"\n"+r.out+"\n"), 0o644); err != nil {
				return nil, err
			}
		}
	}
	if out, err := runNS(hdir, statusDriver, []string{"ROWS=" + strings.Join(rows, " ")}); err != nil {
		return nil, fmt.Errorf("ResourceManager status: %v\n%s", err, out)
	}
	if out, err := runVigil(vdir, "status"); err != nil {
		return nil, fmt.Errorf("vigil: %v\n%s", err, out)
	}
	read := func(dir string) (map[string]string, error) {
		b, err := os.ReadFile(filepath.Join(dir, "status-result"))
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			row, rc, _ := strings.Cut(l, " ")
			// ResourceManager: 0 held, 3 not; Vigil: SUCCESS or NOT_RUNNING.
			switch rc {
			case "0", "SUCCESS":
				out[row] = "held"
			case "3", "NOT_RUNNING":
				out[row] = "not held"
			default:
				out[row] = rc
			}
		}
		return out, nil
	}
	a, err := read(hdir)
	if err != nil {
		return nil, err
	}
	b, err := read(vdir)
	if err != nil {
		return nil, err
	}
	var diffs []string
	for i, r := range statusRows {
		row := rows[i]
		if a[row] == "" {
			return nil, fmt.Errorf("ResourceManager gave no answer for %q", r.out)
		}
		if a[row] != b[row] {
			diffs = append(diffs, fmt.Sprintf("%q exit %s: heartbeat %s, vigil %s", r.out, r.code, a[row], b[row]))
		}
	}
	return diffs, nil
}
