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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/test/difftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ldirectordPath is Debian's ldirectord, unpacked by `make samples`; its
// Perl modules are the package's dependencies, installed by `make deps`.
func ldirectordPath(t *testing.T) string {
	p := difftest.Sample(t, "ldirectord", "usr/sbin/ldirectord")
	if out, err := exec.Command("perl", "-e", "use Socket6; use LWP::UserAgent; use IO::Socket::INET6; use Mail::Send; use Net::DNS").CombinedOutput(); err != nil {
		t.Fatalf("ldirectord's Perl modules are missing (`make deps` installs them): %v\n%s", err, out)
	}
	return p
}

// knownHeader opens the list (a comment block of its own: no entries).
const knownHeader = `# Differences between Debian's ldirectord 4.12 and Vigil found by
# TestLdirectordDifferential: "CASE: PHASE: what only one side did". Each
# group's comment says why it stays; the README's "Migrating" section
# lists them too. The test fails when this set changes.

`

func TestLdirectordDifferential(t *testing.T) {
	inner.SkipOuter(t)
	nn := nstest.NewNetns(t)
	ld := ldirectordPath(t)
	paths := difftest.Cases(t, "ldiff")
	argv, err := inner.Argv()
	if err != nil {
		t.Fatal(err)
	}
	// The import is the command operators run; the recording ipvsadm is
	// a small binary of its own (ldirectord calls it often).
	bin := difftest.Build(t, "./cmd/vigil", "./test/ldiff/cmd/ipvsadm")
	vigil, shim := filepath.Join(bin, "vigil"), filepath.Join(bin, "ipvsadm")
	// Cases mostly wait for ldirectord's one-second passes: run many at
	// once, but not so many that Perl's start-ups crowd two cores.
	found := difftest.NewDiffs(8)
	for _, p := range paths {
		c, err := loadCase(p, difftest.RepoRoot())
		if err != nil {
			t.Fatal(err)
		}
		ns := nn.Add(c.Name)
		found.Go(func() {
			out := filepath.Join(t.TempDir(), "result.json")
			cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
			abs, _ := filepath.Abs(p)
			cmd.Env = append(os.Environ(), envCase+"="+abs, envOut+"="+out, envLD+"="+ld, envBin+"="+vigil, envShim+"="+shim, "VIGIL_LDIFF_REPO="+difftest.RepoRoot())
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
			found.Add(c.Name, res.Diffs)
		})
	}
	found.Check(t, knownHeader)
}
