// The differential test of Vigil's ldirectord against Debian's real
// ldirectord (issue 23): for each ldirectord.cf of
// testdata/cases (and Debian's shipped example), the real ldirectord runs
// in a network namespace with a recording ipvsadm, the same file goes
// through `vigil import ldirectord` and Vigil's engine runs it against the
// same real servers, and the two tables are compared after start, after
// real servers go down and come back, and after stop. The differences
// found must be exactly those listed in testdata/known-differences.txt
// (each with its reason; the README's "Migrating" section lists them
// too): `go test ./test/ldiff -update` rewrites the list's entries.
package ldiff

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/nstest"
)

var update = flag.Bool("update", false, "rewrite testdata/known-differences.txt with the differences found (keeping the reasons of those already listed)")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ldirectordPath is Debian's ldirectord, unpacked by `make samples`; its
// Perl modules are the package's dependencies, installed by `make deps`.
func ldirectordPath(t *testing.T) string {
	p := filepath.Join(repoRoot(), "bin/samples/usr/sbin/ldirectord")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Debian's ldirectord is not unpacked (`make deps` runs `make samples`): %v", err)
	}
	if out, err := exec.Command("perl", "-e", "use Socket6; use LWP::UserAgent; use IO::Socket::INET6; use Mail::Send; use Net::DNS").CombinedOutput(); err != nil {
		t.Fatalf("ldirectord's Perl modules are missing (`make deps` installs them): %v\n%s", err, out)
	}
	return p
}

const knownFile = "testdata/known-differences.txt"

// knownHeader opens the list (a comment block of its own: no entries).
const knownHeader = `# Differences between Debian's ldirectord 4.12 and Vigil found by
# TestLdirectordDifferential: "CASE: PHASE: what only one side did". Each
# group's comment says why it stays; the README's "Migrating" section
# lists them too. The test fails when this set changes.

`

// known reads the list: "CASE: DIFFERENCE" lines, each group of them
// preceded by "# reason" comment lines that explain it.
func known() (map[string]string, error) {
	f, err := os.Open(knownFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	var reason []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#"):
			reason = append(reason, l)
		case strings.TrimSpace(l) == "":
			reason = nil
		default:
			if len(reason) == 0 {
				return nil, fmt.Errorf("%s: %q has no reason (a # line above it)", knownFile, l)
			}
			out[l] = strings.Join(reason, "\n")
		}
	}
	return out, sc.Err()
}

func TestLdirectordDifferential(t *testing.T) {
	if os.Getenv(envCase) != "" {
		t.Skip("inner process")
	}
	nn := nstest.NewNetns(t)
	ld := ldirectordPath(t)
	paths, _ := filepath.Glob("testdata/cases/*.cf")
	more, _ := filepath.Glob("testdata/cases/*.ldiff")
	paths = append(paths, more...)
	sort.Strings(paths)
	if len(paths) == 0 {
		t.Fatal("no cases in testdata/cases")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The import is the command operators run; the recording ipvsadm is
	// a small binary of its own (ldirectord calls it often).
	bin := t.TempDir()
	vigil, shim := filepath.Join(bin, "vigil"), filepath.Join(bin, "ipvsadm")
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/vigil", "./test/ldiff/cmd/ipvsadm")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var (
		mu    sync.Mutex
		found = map[string]bool{}
		wg    sync.WaitGroup
		// Cases mostly wait for ldirectord's one-second passes: run many
		// at once, but not so many that Perl's start-ups crowd two cores.
		slots = make(chan struct{}, 8)
	)
	for _, p := range paths {
		c, err := loadCase(p, repoRoot())
		if err != nil {
			t.Fatal(err)
		}
		ns := nn.Add(c.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			out := filepath.Join(t.TempDir(), "result.json")
			cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^TestInNamespace$", "-test.count=1", "-test.v")
			abs, _ := filepath.Abs(p)
			cmd.Env = append(os.Environ(), envCase+"="+abs, envOut+"="+out, envLD+"="+ld, envBin+"="+vigil, envShim+"="+shim, "VIGIL_LDIFF_REPO="+repoRoot())
			b, err := cmd.CombinedOutput()
			var res result
			if err == nil {
				var rb []byte
				if rb, err = os.ReadFile(out); err == nil {
					err = json.Unmarshal(rb, &res)
				}
			}
			if err != nil {
				t.Errorf("case %s: %v\n%s", c.Name, err, b)
				return
			}
			if testing.Verbose() {
				t.Logf("case %s:\n  %s", c.Name, strings.Join(res.Log, "\n  "))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range res.Diffs {
				found[c.Name+": "+d] = true
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want, err := known()
	if err != nil && !*update {
		t.Fatal(err)
	}
	if *update {
		writeKnown(t, found, want)
		return
	}
	var missing, extra []string
	for d := range want {
		if !found[d] {
			missing = append(missing, d)
		}
	}
	for d := range found {
		if _, ok := want[d]; !ok {
			extra = append(extra, d)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	for _, d := range extra {
		t.Errorf("new difference (fix it, or list it with its reason in %s and the README's Migrating section): %s", knownFile, d)
	}
	for _, d := range missing {
		t.Errorf("listed difference no longer seen (remove it from %s and the README): %s", knownFile, d)
	}
}

// writeKnown rewrites the list: the differences found, grouped under the
// reasons they had, new ones under "# REASON?" for a person to write.
func writeKnown(t *testing.T, found map[string]bool, old map[string]string) {
	groups := map[string][]string{}
	for d := range found {
		r, ok := old[d]
		if !ok {
			r = "# REASON? (new)"
		}
		groups[r] = append(groups[r], d)
	}
	reasons := make([]string, 0, len(groups))
	for r := range groups {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	var b strings.Builder
	b.WriteString(knownHeader)
	for _, r := range reasons {
		slices.Sort(groups[r])
		fmt.Fprintf(&b, "%s\n%s\n\n", r, strings.Join(groups[r], "\n"))
	}
	if err := os.WriteFile(knownFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
