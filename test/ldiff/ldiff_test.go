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
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/internal/testutil"
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
	list := make([]string, 0, len(found))
	for d := range found {
		list = append(list, d)
	}
	testutil.Known{File: knownFile, Header: knownHeader}.Check(t, list, *update)
}
