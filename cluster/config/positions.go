package config

import (
	"regexp"
	"strconv"
	"strings"
)

// positions maps key paths to the line they are written on. BurntSushi/toml
// keeps key positions private, so after it has accepted a file we walk the
// same bytes once more with this small scanner to be able to say "line 12"
// for semantic errors (duplicates, timing) too.
//
// Paths name array elements with an index: "nodes[1].address",
// "group[0].resources[2]". The scanner only runs on input the TOML decoder
// accepted, but it must never panic or loop on anything (it is fuzzed).
type positions struct {
	exact map[string]int
	// byLoose lists the exact paths of each index-free path, in file order.
	byLoose map[string][]string
	// deep is the line where arrays or inline tables first nest deeper
	// than MaxNesting (0: they do not); the scanner stops there.
	deep int
}

// MaxNesting bounds how deep arrays and inline tables may nest in a
// configuration file. No Vigil key needs more than a few levels; a bound
// keeps the scan linear in the file's size whatever it holds.
const MaxNesting = 32

// maxPathLen bounds the key paths the scanner records: a longer path
// (absurdly long key names) is not recorded, so that errors under it name
// its closest recorded parent, and the work stays linear in the input.
const maxPathLen = 1024

// tooLong stands for a path longer than maxPathLen: never recorded, and
// every path under it is too long as well.
const tooLong = "\x00"

var indexRE = regexp.MustCompile(`\[\d+\]`)

func stripIndices(path string) string { return indexRE.ReplaceAllString(path, "") }

// line returns the line of key, or of its closest enclosing key, or 0.
func (p *positions) line(key string) int {
	if p == nil || key == "" {
		return 0
	}
	for k := key; k != ""; k = parentPath(k) {
		if l, ok := p.exact[k]; ok {
			return l
		}
	}
	if ks := p.byLoose[stripIndices(key)]; len(ks) > 0 {
		return p.exact[ks[0]]
	}
	return 0
}

func parentPath(k string) string {
	if strings.HasSuffix(k, "]") {
		if i := strings.LastIndexByte(k, '['); i > 0 {
			return k[:i]
		}
	}
	if i := strings.LastIndexByte(k, '.'); i > 0 {
		return k[:i]
	}
	return ""
}

func scanPositions(src []byte) *positions {
	s := &posScanner{src: src, line: 1, p: &positions{exact: map[string]int{}, byLoose: map[string][]string{}}, aot: map[string]int{}}
	s.document()
	return s.p
}

type posScanner struct {
	src   []byte
	i     int
	line  int
	p     *positions
	aot   map[string]int // exact array-of-tables path → number of elements so far
	depth int            // arrays and inline tables open around the scanner
}

func (s *posScanner) record(path string) {
	if path == "" || path == tooLong {
		return
	}
	if _, ok := s.p.exact[path]; !ok {
		s.p.exact[path] = s.line
		lp := stripIndices(path)
		s.p.byLoose[lp] = append(s.p.byLoose[lp], path)
	}
}

func (s *posScanner) eof() bool { return s.i >= len(s.src) }
func (s *posScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *posScanner) advance() {
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

func (s *posScanner) hasPrefix(p string) bool {
	return strings.HasPrefix(string(s.src[s.i:min(len(s.src), s.i+len(p))]), p)
}

// skip passes over blanks, and also newlines and comments when multiline.
func (s *posScanner) skip(multiline bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '\n' && multiline:
			s.advance()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		default:
			return
		}
	}
}

func (s *posScanner) document() {
	prefix := ""
	for !s.eof() {
		start := s.i
		s.skip(true)
		if s.eof() {
			return
		}
		switch {
		case s.hasPrefix("[["):
			s.i += 2
			segs := s.key()
			prefix = s.resolve(segs, true)
			s.record(prefix)
			s.skipLine()
		case s.peek() == '[':
			s.i++
			segs := s.key()
			prefix = s.resolve(segs, false)
			s.record(prefix)
			s.skipLine()
		default:
			segs := s.key()
			s.skip(false)
			if s.peek() == '=' && len(segs) > 0 {
				s.i++
				path := join(prefix, strings.Join(segs, "."))
				s.record(path)
				s.value(path)
			}
			s.skipLine()
		}
		if s.i == start { // no progress: never loop
			s.advance()
		}
	}
}

// resolve turns header segments into an exact path, giving array-of-tables
// elements their current index; for a [[header]] the last segment opens a
// new element.
func (s *posScanner) resolve(segs []string, newElem bool) string {
	path := ""
	for i, seg := range segs {
		path = join(path, seg)
		if i == len(segs)-1 && newElem {
			n := s.aot[path]
			s.aot[path] = n + 1
			return index(path, n)
		}
		if n, ok := s.aot[path]; ok {
			path = index(path, n-1)
		}
	}
	return path
}

// index names element n of the array at path.
func index(path string, n int) string {
	if path == tooLong {
		return tooLong
	}
	return path + "[" + strconv.Itoa(n) + "]"
}

func join(prefix, k string) string {
	switch {
	case prefix == tooLong || len(prefix)+len(k) >= maxPathLen:
		return tooLong
	case prefix == "":
		return k
	}
	return prefix + "." + k
}

func (s *posScanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		if s.peek() == '#' {
			s.skip(false)
			continue
		}
		s.advance()
	}
}

// key reads a dotted key (bare or quoted segments).
func (s *posScanner) key() []string {
	var segs []string
	for !s.eof() {
		s.skip(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			start := s.i + 1
			s.str()
			end := max(start, s.i-1)
			segs = append(segs, string(s.src[start:end]))
		case isBare(c):
			start := s.i
			for !s.eof() && isBare(s.peek()) {
				s.i++
			}
			segs = append(segs, string(s.src[start:s.i]))
		default:
			return segs
		}
		s.skip(false)
		if s.peek() != '.' {
			return segs
		}
		s.i++
	}
	return segs
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// str passes over one string of any of TOML's four kinds.
func (s *posScanner) str() {
	q := s.peek()
	if s.hasPrefix(strings.Repeat(string(q), 3)) {
		s.i += 3
		for !s.eof() && !s.hasPrefix(strings.Repeat(string(q), 3)) {
			if q == '"' && s.peek() == '\\' {
				s.advance()
				if s.eof() {
					return
				}
			}
			s.advance()
		}
		s.i = min(len(s.src), s.i+3)
		for !s.eof() && s.peek() == q { // up to two quotes may close the string
			s.i++
		}
		return
	}
	s.i++
	for !s.eof() && s.peek() != q && s.peek() != '\n' {
		if q == '"' && s.peek() == '\\' {
			s.i++
			if s.eof() || s.peek() == '\n' {
				return
			}
		}
		s.i++
	}
	if !s.eof() && s.peek() == q {
		s.i++
	}
}

func (s *posScanner) value(path string) {
	s.skip(false)
	if c := s.peek(); c == '[' || c == '{' {
		if s.depth >= MaxNesting {
			s.p.deep = s.line
			s.i = len(s.src) // stop: the caller refuses the file
			return
		}
		s.depth++
		defer func() { s.depth-- }()
	}
	switch c := s.peek(); c {
	case '"', '\'':
		s.str()
	case '[':
		s.i++
		for n := 0; !s.eof(); n++ {
			s.skip(true)
			if s.eof() || s.peek() == ']' {
				break
			}
			start := s.i
			elem := index(path, n)
			s.record(elem)
			s.value(elem)
			s.skip(true)
			if s.peek() == ',' {
				s.i++
			} else if s.i == start {
				s.advance()
			}
		}
		if !s.eof() {
			s.i++
		}
	case '{':
		s.i++
		for !s.eof() {
			s.skip(false)
			if s.eof() || s.peek() == '}' || s.peek() == '\n' {
				break
			}
			start := s.i
			segs := s.key()
			s.skip(false)
			if s.peek() == '=' && len(segs) > 0 {
				s.i++
				k := join(path, strings.Join(segs, "."))
				s.record(k)
				s.value(k)
			}
			s.skip(false)
			if s.peek() == ',' {
				s.i++
			} else if s.i == start {
				s.advance()
			}
		}
		if !s.eof() && s.peek() == '}' {
			s.i++
		}
	default:
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.i++
		}
	}
}
