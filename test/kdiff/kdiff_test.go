// The differential test of `vigil import keepalived`'s parser against
// Debian's real keepalived 2.2.7 (issue 23): every file — Debian's 25
// shipped samples and a generated corpus (each keyword the importer maps,
// edge values, malformed lines: corpus.go) — goes through keepalived's
// config test (`keepalived -t -f FILE`, in private network, mount and
// PID namespaces whose only links are veth pairs named eth0…eth3, as the
// samples use) and through the import, and the two must agree on
// whether the file is accepted and, when both refuse it, on the lines
// they refuse (where keepalived names them). The differences found must be exactly those listed in
// testdata/known-differences.txt, each with its reason (the README's
// "Migrating" section lists them too): `go test ./test/kdiff -update`
// rewrites the list's entries.
package kdiff

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/internal/instances"
	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/legacy"
	"github.com/vigil-ha/vigil/test/difftest"
)

// keepalivedBin is Debian's keepalived, unpacked by `make deps` (never
// installed: the package would start a daemon on the host); its
// libraries are installed by `make deps`.
func keepalivedBin(t *testing.T) string {
	p := difftest.Sample(t, "keepalived", "usr/sbin/keepalived")
	if out, err := exec.Command("ldd", p).CombinedOutput(); err != nil || strings.Contains(string(out), "not found") {
		t.Fatalf("keepalived's libraries are missing (`make deps` installs them): %v\n%s", err, out)
	}
	return p
}

// kaSide is what keepalived's config test said of a file.
type kaSide struct {
	exit  int
	lines []int // the lines its messages name
	msgs  []string
}

// lineRE finds the line keepalived names: "(FILE: Line 12) …" or
// "(Line 12) …".
var lineRE = regexp.MustCompile(`\((?:[^():]*: )?Line (\d+)\)`)

// runKeepalived runs `keepalived -t -f` on every file in one set of
// namespaces (a config test only parses and checks: it starts nothing,
// and the namespaces go with it).
func runKeepalived(t *testing.T, bin string, files []string) map[string]kaSide {
	out := t.TempDir()
	var script strings.Builder
	script.WriteString(`set -e
mount -t tmpfs tmpfs /run
ip link set lo up
ip link add eth0 type veth peer name eth1
ip link add eth2 type veth peer name eth3
set +e
i=0
for f in "$@"; do
	"$KA" -t -f "$f" >"$OUT/$i.out" 2>&1
	echo $? >"$OUT/$i.rc"
	i=$((i+1))
done
`)
	cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", script.String(), "sh"}, files...)...)
	cmd.Env = append(os.Environ(), "KA="+bin, "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("keepalived -t: %v\n%s", err, b)
	}
	res := map[string]kaSide{}
	for i, f := range files {
		rc, err := os.ReadFile(filepath.Join(out, strconv.Itoa(i)+".rc"))
		if err != nil {
			t.Fatal(err)
		}
		text, err := os.ReadFile(filepath.Join(out, strconv.Itoa(i)+".out"))
		if err != nil {
			t.Fatal(err)
		}
		var s kaSide
		s.exit, _ = strconv.Atoi(strings.TrimSpace(string(rc)))
		for _, l := range strings.Split(strings.TrimSpace(string(text)), "\n") {
			if l == "" {
				continue
			}
			s.msgs = append(s.msgs, l)
			if m := lineRE.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				if !slices.Contains(s.lines, n) {
					s.lines = append(s.lines, n)
				}
			}
		}
		sort.Ints(s.lines)
		res[f] = s
	}
	return res
}

// vigilSide is what `vigil import keepalived` said of a file.
type vigilSide struct {
	refused bool
	lines   []int // the lines of its ERROR entries
	check   string
}

// kaAuthkeys is the secret given to files without auth_pass, as an
// operator passes one with --authkeys.
var kaAuthkeys = []byte("auth 1\n1 sha256 0123456789abcdef0123456789abcdef\n")

// runVigil imports path as `vigil import keepalived --node lvs1 --peer
// lvs2 --address …` does (the import itself, in process: the command
// only reads the files and writes the result), then checks the result as
// `vigil config check` would.
func runVigil(t *testing.T, path string) vigilSide {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in := legacy.KeepalivedInput{Path: path, Data: data, Node: "lvs1", Peer: "lvs2", ReadFile: os.ReadFile, Glob: filepath.Glob,
		Addresses: map[string]string{"lvs1": "10.0.0.1", "lvs2": "10.0.0.2"}}
	if !strings.Contains(string(data), "auth_pass") {
		in.Authkeys, in.AuthkeysPath = kaAuthkeys, "authkeys"
	}
	k, err := legacy.ImportKeepalived(in)
	var s vigilSide
	for _, e := range k.Report.Entries {
		if e.Outcome == legacy.Invalid && !slices.Contains(s.lines, e.Line) {
			s.lines = append(s.lines, e.Line)
		}
	}
	sort.Ints(s.lines)
	if err != nil {
		s.refused = true
		return s
	}
	dir := t.TempDir()
	for name, b := range k.Files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := config.Load(dir, instances.Options("lvs1")); err != nil {
		s.check = err.Error()
	}
	return s
}

// compare says how the two sides differ on one file, or "".
func compare(ka kaSide, vg vigilSide) string {
	kaRefuses := ka.exit != 0
	switch {
	case vg.check != "":
		return "vigil's import passes, its check refuses"
	case kaRefuses && !vg.refused:
		return fmt.Sprintf("keepalived refuses (exit %d, lines %v), vigil accepts", ka.exit, ka.lines)
	case !kaRefuses && vg.refused:
		return fmt.Sprintf("keepalived accepts, vigil refuses (lines %v)", vg.lines)
	case kaRefuses && len(ka.lines) > 0 && !slices.Equal(ka.lines, vg.lines):
		// Where keepalived names no line (a message about an instance
		// or a virtual server as a whole), only the verdicts compare.
		return fmt.Sprintf("both refuse, keepalived at lines %v (exit %d), vigil at lines %v", ka.lines, ka.exit, vg.lines)
	}
	return ""
}

const knownHeader = `# Differences between Debian's keepalived 2.2.7 config test
# (keepalived -t) and vigil import keepalived found by
# TestKeepalivedParserDifferential: "FILE: what each side did". Each
# group's comment says why it stays; the README's "Migrating" section
# lists them too. The test fails when this set changes.

`

func TestKeepalivedParserDifferential(t *testing.T) {
	if why := nstest.NetnsMissing(); why != "" {
		t.Fatal(why)
	}
	bin := keepalivedBin(t)
	samples, _ := filepath.Glob(filepath.Join(difftest.RepoRoot(), "bin/samples/usr/share/doc/keepalived/samples/keepalived.conf*"))
	if len(samples) != 25 {
		t.Fatalf("%d of Debian's 25 keepalived samples (`make deps` unpacks them)", len(samples))
	}
	// The corpus is written out under names that say what each case is.
	dir := t.TempDir()
	files := map[string]string{} // path → name in the list
	var paths []string
	for _, p := range samples {
		files[p] = "samples/" + filepath.Base(p)
		paths = append(paths, p)
	}
	for _, c := range corpus() {
		p := filepath.Join(dir, c.name+".conf")
		if _, dup := files[p]; dup {
			t.Fatalf("corpus case %s twice", c.name)
		}
		if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		files[p] = c.name
		paths = append(paths, p)
	}
	ka := runKeepalived(t, bin, paths)
	var found []string
	agree := 0
	for _, p := range paths {
		if d := compare(ka[p], runVigil(t, p)); d != "" {
			found = append(found, files[p]+": "+d)
			if testing.Verbose() {
				t.Logf("%s: %s\n  keepalived: %s", files[p], d, strings.Join(ka[p].msgs, "\n  keepalived: "))
			}
		} else {
			agree++
		}
	}
	t.Logf("%d files, %d agree, %d differ", len(paths), agree, len(found))
	difftest.Check(t, knownHeader, found)
}
