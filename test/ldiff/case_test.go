package ldiff

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vigil-ha/vigil/test/difftest"
)

// A case is one ldirectord.cf and the world it runs against, described by
// whole-line comments the cf carries (ldirectord ignores them):
//
//	# ldiff: serve ADDR:PORT[=KIND]...   real servers to run (KIND http, https, 404 or tcp)
//	# ldiff: down ADDR:PORT...           an event: these go down, the tables settle, they come back
//	# ldiff: passes N                    check passes after an event before the table may settle (default 2)
//
// A NAME.ldiff file holds the same lines and `# ldiff: file PATH` naming a
// cf elsewhere in the repository (Debian's example under bin/samples).
type caseDef struct {
	Name   string
	Path   string // the cf ldirectord reads
	Data   []byte
	Serve  []server
	Downs  [][]string
	Passes int
}

type server struct {
	Addr string // "192.168.6.2:80"
	Kind string // http, 404, tcp
}

const directive = "# ldiff:"

// serverKinds: an HTTP server answering "Test Page", the same over TLS
// (a self-signed certificate), one answering 404, and a TCP server that
// closes every connection at once.
var serverKinds = map[string]bool{"http": true, "https": true, "404": true, "tcp": true}

func loadCase(path, repo string) (*caseDef, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	name := difftest.CaseName(path, "ldiff")
	c := &caseDef{Name: name, Path: path, Data: b, Passes: 2}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, ok := strings.CutPrefix(sc.Text(), directive)
		if !ok {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil, fmt.Errorf("%s:%d: empty directive", path, n)
		}
		switch f[0] {
		case "serve":
			for _, s := range f[1:] {
				addr, kind, _ := strings.Cut(s, "=")
				if kind == "" {
					kind = "http"
				}
				if _, err := netip.ParseAddrPort(addr); err != nil || !serverKinds[kind] {
					return nil, fmt.Errorf("%s:%d: serve %q: want ADDR:PORT[=http|https|404|tcp]", path, n, s)
				}
				c.Serve = append(c.Serve, server{addr, kind})
			}
		case "down":
			c.Downs = append(c.Downs, f[1:])
		case "passes":
			if len(f) != 2 {
				return nil, fmt.Errorf("%s:%d: passes N", path, n)
			}
			if c.Passes, err = strconv.Atoi(f[1]); err != nil || c.Passes < 1 {
				return nil, fmt.Errorf("%s:%d: passes N", path, n)
			}
		case "file":
			if len(f) != 2 {
				return nil, fmt.Errorf("%s:%d: file PATH", path, n)
			}
			c.Path = filepath.Join(repo, f[1])
			if c.Data, err = os.ReadFile(c.Path); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s:%d: unknown directive %q", path, n, f[0])
		}
	}
	// @TESTDATA@ is the absolute testdata directory (external checks'
	// scripts), the same for both tools.
	td, err := filepath.Abs(filepath.Join(filepath.Dir(path), ".."))
	if err != nil {
		return nil, err
	}
	c.Data = bytes.ReplaceAll(c.Data, []byte("@TESTDATA@"), []byte(td))
	for _, d := range c.Downs {
		for _, a := range d {
			if !c.serves(a) {
				return nil, fmt.Errorf("%s: down %s: not served", path, a)
			}
		}
	}
	return c, nil
}

func (c *caseDef) serves(addr string) bool {
	for _, s := range c.Serve {
		if s.Addr == addr {
			return true
		}
	}
	return false
}

// canon is a table in one comparable form: one line per service
// ("TCP 10.0.0.1:80 rr persistent 300 mask 255.255.255.0") and one per
// real, prefixed with its service's key ("TCP 10.0.0.1:80 -> 10.0.0.2:80
// gate w=1"), sorted.
func canonShim(t *shimTable) []string {
	var out []string
	for _, s := range t.Services {
		key := strings.ToUpper(s.Proto) + " " + s.Addr
		if s.V6 {
			key += " IPv6"
		}
		line := key + " " + s.Scheduler
		if s.Persistent > 0 {
			line += fmt.Sprintf(" persistent %d mask %s", s.Persistent, s.Netmask)
		}
		out = append(out, line)
		for _, d := range s.Dests {
			out = append(out, canonDest(key, d.Addr, d.Forward, d.Weight, d.Upper, d.Lower))
		}
	}
	sort.Strings(out)
	return out
}

func canonDest(key, addr, fwd string, w, upper, lower int) string {
	s := fmt.Sprintf("%s -> %s %s w=%d", key, addr, fwd, w)
	if upper != 0 || lower != 0 {
		s += fmt.Sprintf(" u=%d l=%d", upper, lower)
	}
	return s
}

// diffLines lists what only one side has.
func diffLines(ld, vg []string) []string {
	in := func(s []string, x string) bool {
		i := sort.SearchStrings(s, x)
		return i < len(s) && s[i] == x
	}
	var out []string
	for _, x := range ld {
		if !in(vg, x) {
			out = append(out, "only ldirectord: "+x)
		}
	}
	for _, x := range vg {
		if !in(ld, x) {
			out = append(out, "only vigil: "+x)
		}
	}
	return out
}
