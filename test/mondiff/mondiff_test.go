// The differential test of Vigil's mon against Debian's real mon 1.3.6
// (issue 23): for each mon.cf of testdata/cases (and Debian's shipped
// /etc/mon/mon.cf), the real mon runs in a network namespace of its own
// and Vigil's mon engine runs the same file as `vigil import mon` turns
// it, both with recording monitor and alert scripts (cmd/monrec) whose
// exits follow the case's plan. What each did is compared run by run:
// which monitors ran with which argv, environment and stdin, and which
// alerts and upalerts went out after which run, with which argv,
// environment (MON_*) and stdin. Malformed files (bad-*.cf) compare what
// each refuses, at which line. The differences found must be exactly
// those listed in testdata/known-differences.txt (each with its reason;
// the README's "Migrating" section lists them too): `go test
// ./test/mondiff -update` rewrites the list's entries.
package mondiff

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/instances"
	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/legacy"
	"github.com/vigil-ha/vigil/resources/mon"
	"github.com/vigil-ha/vigil/test/difftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const monPath = "/usr/sbin/mon"

const knownHeader = `# Differences between Debian's mon 1.3.6 and Vigil's mon found by
# TestMonDifferential: "CASE: what differs". Each group's comment says
# why it stays; the README's "Migrating" section lists them too. The test
# fails when this set changes.

`

func TestMonDifferential(t *testing.T) {
	if _, err := os.Stat(monPath); err != nil {
		t.Fatalf("Debian's mon is not installed (`make deps` installs it): %v", err)
	}
	nn := nstest.NewNetns(t)
	paths := difftest.Cases(t, "mondiff")
	recorder := filepath.Join(difftest.Build(t, "./test/mondiff/cmd/monrec"), "monrec")
	// Cases wait on mon's one-second loop: many at once, but not so many
	// that Perl's start-ups crowd two cores.
	found := difftest.NewDiffs(8)
	for _, p := range paths {
		c, err := loadCase(p)
		if err != nil {
			t.Fatal(err)
		}
		ns := nn.Add(c.Name)
		dir := t.TempDir()
		found.Go(func() {
			diffs, log, err := runCase(c, ns, dir, recorder)
			if err != nil {
				t.Errorf("case %s: %v\n%s", c.Name, err, strings.Join(log, "\n"))
				return
			}
			if testing.Verbose() {
				t.Logf("case %s:\n  %s", c.Name, strings.Join(log, "\n  "))
			}
			found.Add(c.Name, diffs)
		})
	}
	found.Check(t, knownHeader)
}

// runCase runs one case on both sides and returns the differences.
func runCase(c *caseDef, ns, dir, recorder string) (diffs, log []string, err error) {
	sides := map[string]string{"mon": filepath.Join(dir, "mon"), "vigil": filepath.Join(dir, "vigil")}
	cfs := map[string]string{}
	for name, side := range sides {
		for _, d := range []string{"n", "plan", "events", "root", "untagged"} {
			if err := os.MkdirAll(filepath.Join(side, d), 0o755); err != nil {
				return nil, nil, err
			}
		}
		if err := os.WriteFile(filepath.Join(side, "mondiff.side"), nil, 0o644); err != nil {
			return nil, nil, err
		}
		for _, k := range c.Untagged {
			if err := os.WriteFile(filepath.Join(side, "untagged", k), nil, 0o644); err != nil {
				return nil, nil, err
			}
		}
		for k, steps := range c.Plans {
			if err := os.WriteFile(filepath.Join(side, "plan", k), []byte(strings.Join(steps, " ")), 0o644); err != nil {
				return nil, nil, err
			}
		}
		data, err := relocate(c.Data, filepath.Join(side, "root"), recorder, c.Missing)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", c.Path, err)
		}
		cf := filepath.Join(side, "mon.cf")
		if err := os.WriteFile(cf, data, 0o644); err != nil {
			return nil, nil, err
		}
		cfs[name] = cf
	}

	// What each refuses: mon stops at the first error, naming its line;
	// Vigil's import names file:line, then the result must pass the
	// configuration check.
	vigilData, _ := os.ReadFile(cfs["vigil"])
	toml, _, ierr := legacy.ImportMon(c.Path, vigilData)
	vigilLine := 0
	if ierr != nil {
		// The first error is where the import stops reading sense.
		first, _, _ := strings.Cut(ierr.Error(), "\n")
		vigilLine = errLine(first)
		log = append(log, "vigil import: "+ierr.Error())
	} else if _, perr := instances.ParseMon(c.Name+".toml", toml); perr != nil {
		ierr = perr
		log = append(log, "vigil config check: "+perr.Error())
	}

	m, err := startMon(ns, sides["mon"], cfs["mon"])
	if err != nil {
		return nil, log, err
	}
	defer m.stop()
	deadline := time.Now().Add(30 * time.Second)
	// mon refuses before it writes its pid file; accepting is the pid
	// file, or the first monitor run.
	monLine, monErr := 0, ""
	for {
		if m.exited() {
			monErr = strings.TrimSpace(m.out.String())
			monLine = errLine(monErr)
			log = append(log, "mon: "+monErr)
			break
		}
		if _, err := os.Stat(m.pidfile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, log, fmt.Errorf("mon neither started nor refused the file in 30s: %s", m.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	switch {
	case monErr != "" && ierr != nil:
		if monLine != vigilLine {
			diffs = append(diffs, fmt.Sprintf("config: both refuse, mon at line %d, vigil at line %d", monLine, vigilLine))
		}
		return diffs, log, nil
	case monErr != "":
		return append(diffs, "config: mon refuses, vigil accepts"), log, nil
	case ierr != nil:
		return append(diffs, "config: mon accepts, vigil refuses"), log, nil
	case c.Bad:
		diffs = append(diffs, "config: both accept")
	}

	in, err := instances.ParseMon(c.Name+".toml", toml)
	if err != nil {
		return nil, log, err
	}
	e := mon.NewEngine(in, mon.Options{})
	closed := false
	defer func() {
		if !closed {
			e.Close()
		}
	}()

	// Both run until every planned service has started the run after
	// the last one compared (so the alerts of that one are out), within
	// a deadline derived from the longest interval.
	longest := time.Second
	for _, w := range in.Watches {
		for _, s := range w.Services {
			longest = max(longest, s.Interval.Duration, s.FailureInterval.Duration)
		}
	}
	// mon's loop counts whole seconds, at least one a pass; a busy machine
	// stretches both.
	deadline = time.Now().Add(time.Duration(c.Runs+2) * (longest + time.Second) * 4)
	for {
		// Vigil's own count, so that a monitor it cannot find still ends
		// the wait.
		vruns := map[string]int{}
		for _, st := range e.Status() {
			vruns[st.Service] = st.Runs
		}
		// Every service Vigil runs (planned or not) and mon can run.
		keys := map[string]bool{}
		for k := range c.Plans {
			keys[k] = true
		}
		for _, w := range in.Watches {
			for _, sv := range w.Services {
				if name, _, _ := strings.Cut(sv.Monitor, " "); !c.Missing[name] {
					keys[w.Group+":"+sv.Name] = true
				}
			}
		}
		var behind []string
		for k := range keys {
			b, _ := os.ReadFile(filepath.Join(sides["mon"], "n", k))
			if n, _ := strconv.Atoi(string(b)); n <= c.Runs || vruns[k] <= c.Runs {
				behind = append(behind, fmt.Sprintf("%s (mon %d, vigil %d)", k, n, vruns[k]))
			}
		}
		done := len(behind) == 0
		if done {
			break
		}
		if m.exited() {
			return nil, log, fmt.Errorf("mon exited: %s", m.out.String())
		}
		if time.Now().After(deadline) {
			sort.Strings(behind)
			return nil, log, fmt.Errorf("not every service ran %d times on both sides before the deadline: %s", c.Runs+1, strings.Join(behind, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.stop()
	e.Close()
	closed = true

	evs := map[string]map[string]event{}
	for name, side := range sides {
		evs[name], err = readEvents(side, c.Runs)
		if err != nil {
			return nil, log, err
		}
		ids := make([]string, 0, len(evs[name]))
		for id := range evs[name] {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		log = append(log, name+": "+strings.Join(ids, "; "))
	}
	return append(diffs, compare(evs["mon"], evs["vigil"])...), log, nil
}

var lineRE = regexp.MustCompile(`(?:line |:)(\d+)`)

// errLine is the line number an error names: mon's "…, line N", Vigil's
// "FILE:N: …".
func errLine(s string) int {
	first, _, _ := strings.Cut(s, "\n")
	// mon may warn before its error.
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "cf error") {
			first = l
			break
		}
	}
	if i := strings.LastIndex(first, "line "); i >= 0 {
		n, _ := strconv.Atoi(strings.TrimRight(first[i+5:], ". \n"))
		return n
	}
	if m := lineRE.FindStringSubmatch(first); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// monProc is the real mon, run as a child in the case's namespace.
type monProc struct {
	cmd     *exec.Cmd
	out     *syncBuf
	pidfile string
	done    chan struct{}
	once    sync.Once
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 1<<16 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startMon(ns, side, cf string) (*monProc, error) {
	m := &monProc{out: &syncBuf{}, pidfile: filepath.Join(side, "mon.pid"), done: make(chan struct{})}
	// Only mon's own variables reach its scripts: a bare environment.
	m.cmd = exec.Command("ip", "netns", "exec", ns, "env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		monPath, "-c", cf, "-B", filepath.Join(side, "root/etc/mon"), "-P", m.pidfile)
	m.cmd.Dir = side
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	// Its own process group: the alerts it forks go with it.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	return m, nil
}

func (m *monProc) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// stop ends mon and whatever it forked, by its process group.
func (m *monProc) stop() {
	m.once.Do(func() {
		pg := m.cmd.Process.Pid
		_ = syscall.Kill(-pg, syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pg, syscall.SIGKILL)
			<-m.done
		}
		// Alerts mon forked before it ended finish their recording (they
		// read stdin to EOF and exit); only then are stragglers killed.
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if syscall.Kill(-pg, 0) != nil {
				return // the group is empty
			}
		}
		_ = syscall.Kill(-pg, syscall.SIGKILL)
	})
}

// event is one recorded call, normalised.
type event struct {
	Argv  []string
	Env   map[string]string
	Stdin string
}

type rawEvent struct {
	Kind  string            `json:"kind"`
	Name  string            `json:"name"`
	Key   string            `json:"key"`
	Run   int               `json:"run"`
	Argv  []string          `json:"argv"`
	Env   map[string]string `json:"env"`
	Stdin string            `json:"stdin"`
}

// runTagRE is the run number monrec puts in its output (compared as the
// event's run, not as text).
var runTagRE = regexp.MustCompile(` run=\d+`)

// timeVars hold times (time(2)): compared as set or not.
var timeVars = map[string]bool{"MON_LAST_FAILURE": true, "MON_FIRST_FAILURE": true, "MON_LAST_SUCCESS": true, "MON_FIRST_SUCCESS": true}

// readEvents loads a side's calls of runs 0..runs (0: before the first
// run, startup alerts), keyed "run N G:S monitor NAME" or "after run N
// G:S TYPE NAME".
func readEvents(side string, runs int) (map[string]event, error) {
	files, _ := filepath.Glob(filepath.Join(side, "events", "*.json"))
	sort.Strings(files)
	root := filepath.Join(side, "root")
	out := map[string]event{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r rawEvent
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if r.Run > runs {
			continue
		}
		norm := func(s string) string { return runTagRE.ReplaceAllString(strings.ReplaceAll(s, root, "ROOT"), "") }
		e := event{Env: map[string]string{}, Stdin: norm(r.Stdin)}
		for i, a := range r.Argv {
			if i > 0 && r.Argv[i-1] == "-t" && r.Kind == "alert" {
				a = "T"
			}
			e.Argv = append(e.Argv, norm(a))
		}
		for k, v := range r.Env {
			if timeVars[k] && v != "" && v != "0" {
				v = "T"
			}
			// The harness gives mon -B ROOT/etc/mon for its default
			// cfbasedir, which is /etc/mon.
			if k == "MON_CFBASEDIR" && v == "/etc/mon" {
				v = root + v
			}
			e.Env[k] = norm(v)
		}
		id := fmt.Sprintf("run %d %s monitor %s", r.Run, r.Key, r.Name)
		if r.Kind == "alert" {
			id = fmt.Sprintf("after run %d %s %s %s", r.Run, r.Key, r.Env["MON_ALERTTYPE"], r.Name)
		}
		for n := 2; ; n++ {
			if _, dup := out[id]; !dup {
				break
			}
			id = strings.TrimSuffix(id, fmt.Sprintf(" #%d", n-1)) + fmt.Sprintf(" #%d", n)
		}
		out[id] = e
	}
	return out, nil
}

// compare lists what differs: calls only one side made, then each
// field of the calls both made.
func compare(m, v map[string]event) []string {
	var out []string
	short := func(s string) string {
		if len(s) > 80 {
			s = s[:77] + "..."
		}
		return strconv.Quote(s)
	}
	for id, me := range m {
		ve, ok := v[id]
		if !ok {
			out = append(out, id+": only mon")
			continue
		}
		if a, b := strings.Join(me.Argv, " "), strings.Join(ve.Argv, " "); a != b {
			out = append(out, fmt.Sprintf("%s: argv: mon %s, vigil %s", id, short(a), short(b)))
		}
		if me.Stdin != ve.Stdin {
			out = append(out, fmt.Sprintf("%s: stdin: mon %s, vigil %s", id, short(me.Stdin), short(ve.Stdin)))
		}
		keys := map[string]bool{}
		for k := range me.Env {
			keys[k] = true
		}
		for k := range ve.Env {
			keys[k] = true
		}
		for k := range keys {
			a, aok := me.Env[k]
			b, bok := ve.Env[k]
			switch {
			case aok && bok && a == b:
			case !aok:
				out = append(out, fmt.Sprintf("%s: env %s: mon unset, vigil %s", id, k, short(b)))
			case !bok:
				out = append(out, fmt.Sprintf("%s: env %s: mon %s, vigil unset", id, k, short(a)))
			default:
				out = append(out, fmt.Sprintf("%s: env %s: mon %s, vigil %s", id, k, short(a), short(b)))
			}
		}
	}
	for id := range v {
		if _, ok := m[id]; !ok {
			out = append(out, id+": only vigil")
		}
	}
	// A call one side repeats a varying number of times (a service the
	// other never runs) is one difference, however many.
	seen := map[string]bool{}
	uniq := out[:0]
	for _, d := range out {
		d = repeatRE.ReplaceAllString(d, ": only")
		if !seen[d] {
			seen[d] = true
			uniq = append(uniq, d)
		}
	}
	sort.Strings(uniq)
	return uniq
}

var repeatRE = regexp.MustCompile(` #\d+: only`)
