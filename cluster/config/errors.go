package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Error is one problem in a configuration file. Every error names the file,
// the line (0 when the problem is not tied to one line) and the key, so that
// an operator can go straight to it.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", clip(e.Key, maxEcho))
	}
	fmt.Fprintf(&b, ": %s", clip(e.Msg, 4*maxEcho))
	return b.String()
}

// maxEcho bounds how much of a key or value an error repeats: a 2 MB
// name is shown by its start and its size, not whole.
const maxEcho = 128

// clip shortens s to at most n bytes (on a rune boundary), saying how
// long it was.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

// Errors collects every problem found, so that one `vigil config check`
// shows them all instead of one per run.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// errSink accumulates errors for one file, resolving key paths to lines.
type errSink struct {
	file string
	pos  *positions
	errs Errors
}

func (s *errSink) add(key, format string, args ...any) {
	s.errs = append(s.errs, &Error{File: s.file, Line: s.pos.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// uniqueName checks that a name at key is present, well formed and not
// used before; seen maps each name to the key of its first use.
func (s *errSink) uniqueName(key, what, name string, seen map[string]string) {
	switch {
	case name == "":
		s.add(key, "is required")
	case !nameRE.MatchString(name):
		s.add(key, "%q is not a valid %s (letters, digits, '.', '_', '-'; at most 63)", name, what)
	default:
		if first, dup := seen[name]; dup {
			s.add(key, "duplicate %s %q (also %s, line %d)", what, name, first, s.pos.line(first))
		} else {
			seen[name] = key
		}
	}
}

// sorted returns the errors in line order, the order an operator reads
// the file in.
func (s *errSink) sorted() Errors {
	sort.SliceStable(s.errs, func(i, j int) bool { return s.errs[i].Line < s.errs[j].Line })
	return s.errs
}

var lastKeyRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

// decodeError turns a BurntSushi/toml error into an *Error with the file,
// line and key it concerns.
func decodeError(file string, err error) *Error {
	if pe, ok := err.(toml.ParseError); ok {
		return &Error{File: file, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
	}
	msg := err.Error()
	if m := lastKeyRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Key: m[2], Msg: m[3]}
	}
	return &Error{File: file, Msg: strings.TrimPrefix(msg, "toml: ")}
}
