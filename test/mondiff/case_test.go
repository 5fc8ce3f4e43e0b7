package mondiff

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/test/difftest"
)

// A case is one mon.cf and the behaviour of its monitors, described by
// whole-line comments (mon ignores them):
//
//	# mondiff: plan GROUP:SERVICE STEP...  the monitor's exit per run: CODE[:SUMMARY] ('+' is a space); the last repeats
//	# mondiff: runs N                      monitor runs of every planned service to compare (default 6)
//	# mondiff: file PATH                   the cf is PATH (Debian's), these lines adjust it
//	# mondiff: replace 'OLD' 'NEW'         replace text of that file (shorter intervals)
//	# mondiff: missing NAME...             scripts not to install (a monitor or alert that is not there)
//	# mondiff: untagged GROUP:SERVICE...   outputs without their run number (observe_detail compares them whole)
//
// A file named bad-*.cf is malformed: only what each tool refuses is
// compared.
type caseDef struct {
	Name     string
	Path     string // the file both tools are said to read
	Data     []byte
	Plans    map[string][]string
	Runs     int
	Bad      bool
	Missing  map[string]bool
	Untagged []string
}

const directive = "# mondiff:"

func loadCase(path string) (*caseDef, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	name := difftest.CaseName(path, "mondiff")
	c := &caseDef{Name: name, Path: path, Data: b, Plans: map[string][]string{}, Missing: map[string]bool{}, Runs: 6, Bad: strings.HasPrefix(name, "bad-")}
	var replaces [][2]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), directive)
		if !ok {
			continue
		}
		f, err := monitors.Words(line)
		if err != nil || len(f) == 0 {
			return nil, fmt.Errorf("%s:%d: bad directive", path, n)
		}
		switch f[0] {
		case "plan":
			if len(f) < 3 || !strings.Contains(f[1], ":") {
				return nil, fmt.Errorf("%s:%d: plan GROUP:SERVICE STEP", path, n)
			}
			c.Plans[f[1]] = f[2:]
		case "untagged":
			c.Untagged = append(c.Untagged, f[1:]...)
		case "missing":
			for _, n := range f[1:] {
				c.Missing[n] = true
			}
		case "runs":
			if len(f) != 2 {
				return nil, fmt.Errorf("%s:%d: runs N", path, n)
			}
			if c.Runs, err = strconv.Atoi(f[1]); err != nil || c.Runs < 1 {
				return nil, fmt.Errorf("%s:%d: runs N", path, n)
			}
		case "file":
			if len(f) != 2 {
				return nil, fmt.Errorf("%s:%d: file PATH", path, n)
			}
			c.Path = f[1]
			if c.Data, err = readMaybeGzip(c.Path); err != nil {
				return nil, err
			}
		case "replace":
			if len(f) != 3 {
				return nil, fmt.Errorf("%s:%d: replace OLD NEW", path, n)
			}
			replaces = append(replaces, [2]string{f[1], f[2]})
		default:
			return nil, fmt.Errorf("%s:%d: unknown directive %q", path, n, f[0])
		}
	}
	for _, r := range replaces {
		if !bytes.Contains(c.Data, []byte(r[0])) {
			return nil, fmt.Errorf("%s: replace: %q is not in %s", path, r[0], c.Path)
		}
		c.Data = bytes.ReplaceAll(c.Data, []byte(r[0]), []byte(r[1]))
	}
	if !c.Bad && len(c.Plans) == 0 {
		return nil, fmt.Errorf("%s: no plan: nothing to wait for", path)
	}
	return c, nil
}

// readMaybeGzip reads a file, gunzipped when it ends in .gz (Debian's
// doc examples).
func readMaybeGzip(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(path, ".gz") {
		return b, err
	}
	z, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer z.Close()
	return io.ReadAll(io.LimitReader(z, 1<<20))
}

// pathKeys are the globals naming files or directories: each side gets
// its own copy of them under its root, colon lists element by element.
var pathKeys = map[string]bool{"alertdir": true, "mondir": true, "logdir": true, "statedir": true, "cfbasedir": true,
	"authfile": true, "historicfile": true, "pidfile": true, "userfile": true, "monerrfile": true, "basedir": true}

var globalRE = regexp.MustCompile(`^(\s*)([a-z_]+)(\s*=\s*)(.*?)\s*$`)

// relocate rewrites the cf for a side whose root is root, creates the
// directories and scripts it names, and returns the new text. Monitors
// and alerts go in the last directory of mondir and alertdir, so that a
// path list read as one path shows.
func relocate(data []byte, root, recorder string, missing map[string]bool) ([]byte, error) {
	var out bytes.Buffer
	dirs := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if m := globalRE.FindStringSubmatch(l); m != nil && pathKeys[m[2]] {
			parts := strings.Split(m[4], ":")
			for i, p := range parts {
				if filepath.IsAbs(p) {
					parts[i] = root + p
				}
			}
			dirs[m[2]] = parts
			l = m[1] + m[2] + m[3] + strings.Join(parts, ":")
		}
		out.WriteString(l + "\n")
	}
	if len(dirs["mondir"]) == 0 || len(dirs["alertdir"]) == 0 {
		return nil, fmt.Errorf("a case must set mondir and alertdir (mon's defaults are relative to its basedir)")
	}
	for _, k := range []string{"alertdir", "mondir", "logdir", "statedir", "cfbasedir"} {
		for _, d := range dirs[k] {
			if filepath.IsAbs(d) {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return nil, err
				}
			}
		}
	}
	cfbase := root + "/etc/mon"
	if d := dirs["cfbasedir"]; len(d) > 0 {
		cfbase = d[0]
	}
	auth := filepath.Join(cfbase, "auth.cf")
	if a := dirs["authfile"]; len(a) > 0 {
		auth = a[0]
		if !filepath.IsAbs(auth) {
			auth = filepath.Join(cfbase, auth)
		}
	}
	for _, d := range []string{cfbase, filepath.Dir(auth)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// mon reads its client permissions at start: Debian's own.
	perms, err := os.ReadFile("/etc/mon/auth.cf")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(auth, perms, 0o644); err != nil {
		return nil, err
	}
	monitors, alerts := scripts(data)
	link := func(dir string, names []string) error {
		for _, n := range names {
			if missing[n] {
				continue
			}
			if err := os.Symlink(recorder, filepath.Join(dir, n)); err != nil && !os.IsExist(err) {
				return err
			}
		}
		return nil
	}
	md, ad := dirs["mondir"], dirs["alertdir"]
	if err := link(md[len(md)-1], monitors); err != nil {
		return nil, err
	}
	if err := link(ad[len(ad)-1], alerts); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// scripts lists the monitors and alerts a cf names.
func scripts(data []byte) (mons, alerts []string) {
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f, err := monitors.Words(strings.TrimSpace(sc.Text()))
		if err != nil || len(f) < 2 {
			continue
		}
		switch f[0] {
		case "monitor":
			n := strings.TrimSuffix(f[1], ";;")
			if !seen[n] && n != "" && !strings.Contains(n, "/") {
				seen[n] = true
				mons = append(mons, n)
			}
		case "alert", "upalert", "startupalert":
			w := f[1:]
			if strings.HasPrefix(w[0], "exit=") && len(w) > 1 {
				w = w[1:]
			}
			if n := w[0]; !seen[n] && !strings.Contains(n, "/") && !strings.HasPrefix(n, "exit=") {
				seen[n] = true
				alerts = append(alerts, n)
			}
		}
	}
	sort.Strings(mons)
	sort.Strings(alerts)
	return mons, alerts
}
