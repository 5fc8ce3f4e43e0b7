// Package difftest is the harness the differential tests share
// (test/ldiff, test/hbdiff, test/kdiff, test/mondiff: each runs a real
// Debian tool and Vigil on the same input): where the repository and
// Debian's unpacked samples are, building helper commands, the inner
// process (the test binary run again inside namespaces the outer test
// made), running cases at once while collecting what differs, and
// checking that against the test's list of known differences.
package difftest

import (
	"bufio"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-ha/vigil/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/known-differences.txt with the differences found (keeping the reasons of those already listed)")

// KnownFile is each test's list of the differences that stay, beside it.
const KnownFile = "testdata/known-differences.txt"

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Sample is the path of rel in Debian's packages that `make samples`
// unpacks under bin/samples (never installed: they would start daemons);
// the test fails, saying so, when it is not there.
func Sample(t testing.TB, what, rel string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(), "bin/samples", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Debian's %s is not unpacked (`make deps` runs `make samples`): %v", what, err)
	}
	return p
}

// Build builds the repository's packages pkgs ("./cmd/vigil") into a
// temporary directory and returns it.
func Build(t testing.TB, pkgs ...string) string {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", append([]string{"build", "-o", bin + "/"}, pkgs...)...)
	build.Dir = RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Cases lists the test's cases, testdata/cases/*.cf and *.EXT (ext
// without the dot), sorted; the test fails when there are none.
func Cases(t testing.TB, ext string) []string {
	t.Helper()
	paths, _ := filepath.Glob("testdata/cases/*.cf")
	more, _ := filepath.Glob("testdata/cases/*." + ext)
	paths = append(paths, more...)
	sort.Strings(paths)
	if len(paths) == 0 {
		t.Fatal("no cases in testdata/cases")
	}
	return paths
}

// CaseName is a case file's name without .cf or .EXT.
func CaseName(path, ext string) string {
	return strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".cf"), "."+ext)
}

// Inner is a test of this binary that an outer test runs as a process of
// its own, in namespaces it made, so that every socket and mount of the
// process is there. Env is set in the inner process only (to what it is
// to do); go test runs every test in both processes, so each skips the
// other's.
type Inner struct {
	Test  string // the inner test, "TestInNamespace"
	Outer string // the test that runs it
	Env   string
}

// SkipOuter skips the outer test in the inner process.
func (in Inner) SkipOuter(t testing.TB) {
	t.Helper()
	if os.Getenv(in.Env) != "" {
		t.Skip("inner process")
	}
}

// Value is Env's value in the inner process; elsewhere it skips t.
func (in Inner) Value(t testing.TB) string {
	t.Helper()
	v := os.Getenv(in.Env)
	if v == "" {
		t.Skipf("run by %s inside its namespaces", in.Outer)
	}
	return v
}

// Argv is the command line that runs the inner test alone, verbose; the
// caller puts what enters the namespaces in front of it and in.Env into
// its environment.
func (in Inner) Argv() ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{self, "-test.run=^" + in.Test + "$", "-test.count=1", "-test.v"}, nil
}

// Diffs runs cases at once and collects their differences, each as
// "CASE: DIFFERENCE".
type Diffs struct {
	mu    sync.Mutex
	found map[string]bool
	wg    sync.WaitGroup
	slots chan struct{} // nil: no bound
}

// NewDiffs runs at most parallel cases at a time (0: all at once): cases
// that wait on a tool's timers can overlap, but Perl's start-ups crowd a
// small machine.
func NewDiffs(parallel int) *Diffs {
	d := &Diffs{found: map[string]bool{}}
	if parallel > 0 {
		d.slots = make(chan struct{}, parallel)
	}
	return d
}

// Go runs one case in a goroutine of its own, when a slot is free.
func (d *Diffs) Go(run func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if d.slots != nil {
			d.slots <- struct{}{}
			defer func() { <-d.slots }()
		}
		run()
	}()
}

// Add records case name's differences.
func (d *Diffs) Add(name string, diffs []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range diffs {
		d.found[name+": "+s] = true
	}
}

// Check waits for the cases and, unless one failed, checks what they
// found against the list (header opens it; see Check).
func (d *Diffs) Check(t *testing.T, header string) {
	t.Helper()
	d.wg.Wait()
	if t.Failed() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	list := make([]string, 0, len(d.found))
	for s := range d.found {
		list = append(list, s)
	}
	Check(t, header, list)
}

// Check compares the differences found with KnownFile, which header
// opens, or rewrites the file with -update (testutil.Known).
func Check(t *testing.T, header string, found []string) {
	t.Helper()
	slices.Sort(found)
	testutil.Known{File: KnownFile, Header: header}.Check(t, found, *update)
}

// Call is one call a recording script logged: a "CALL $0 args…" line,
// then "CWD dir", "UMASK mask", "STDIN what fd 0 is", "ENV name=value"
// lines, "END".
type Call struct {
	Argv              string // $0 and args
	Cwd, Umask, Stdin string
	Env               map[string]string
}

// ReadCalls reads a recording script's log at path: its calls, in
// segments split at lines equal to sep (always at least one segment; a
// log that is not there has no calls). norm, if not nil, rewrites each
// line first (a test's one place for what must differ, such as its
// temporary directory).
func ReadCalls(path, sep string, norm func(string) string) ([][]Call, error) {
	segs := [][]Call{nil}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return segs, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var c *Call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if norm != nil {
			l = norm(l)
		}
		k, v, _ := strings.Cut(l, " ")
		cur := &segs[len(segs)-1]
		switch {
		case sep != "" && l == sep:
			segs, c = append(segs, nil), nil
		case k == "CALL":
			*cur = append(*cur, Call{Argv: v, Env: map[string]string{}})
			c = &(*cur)[len(*cur)-1]
		case c == nil:
		case k == "CWD":
			c.Cwd = v
		case k == "UMASK":
			c.Umask = v
		case k == "STDIN":
			c.Stdin = v
		case k == "ENV":
			name, val, _ := strings.Cut(v, "=")
			c.Env[name] = val
		}
	}
	return segs, sc.Err()
}

// WriteFiles writes files (a path below dir → its text), making their
// directories, each file with mode(path).
func WriteFiles(t testing.TB, dir string, files map[string]string, mode func(path string) os.FileMode) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), mode(name)); err != nil {
			t.Fatal(err)
		}
	}
}
