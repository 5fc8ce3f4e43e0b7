// Package legacy reads the configuration files of the tools Vigil
// replaces — heartbeat's ha.cf, haresources and authkeys, ldirectord.cf,
// mon.cf, keepalived.conf — with their own parsers' rules (LEGACY.md), and writes Vigil's
// TOML, with a report of what became of every directive.
package legacy

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Outcome is what became of one directive.
type Outcome string

const (
	Mapped      Outcome = "mapped"
	Caveat      Outcome = "caveat"      // mapped, but not quite the same: read the note
	Unsupported Outcome = "unsupported" // dropped: the note says why
	Invalid     Outcome = "ERROR"       // the old tool would refuse it too; nothing is written
)

// Entry is one directive of an old file.
type Entry struct {
	File      string  `json:"file"`
	Line      int     `json:"line"`
	Directive string  `json:"directive"`
	Outcome   Outcome `json:"outcome"`
	Note      string  `json:"note,omitempty"`
}

// Report lists every directive read, in file and line order.
type Report struct {
	Entries []Entry `json:"entries"`
}

func (r *Report) add(file string, line int, directive string, o Outcome, note string, a ...any) {
	r.Entries = append(r.Entries, Entry{File: file, Line: line, Directive: directive, Outcome: o, Note: fmt.Sprintf(note, a...)})
}

// Err returns the invalid directives as one error, or nil.
func (r *Report) Err() error {
	var bad []string
	for _, e := range r.Entries {
		if e.Outcome == Invalid {
			bad = append(bad, fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Directive, e.Note))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(bad, "\n"))
}

// Count returns how many entries have outcome o.
func (r *Report) Count(o Outcome) int {
	n := 0
	for _, e := range r.Entries {
		if e.Outcome == o {
			n++
		}
	}
	return n
}

// Write prints the report, one directive a line, then the totals.
func (r *Report) Write(w io.Writer) {
	es := append([]Entry(nil), r.Entries...)
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return false // files in the order they were read
		}
		return es[i].Line < es[j].Line
	})
	for _, e := range es {
		line := fmt.Sprintf("%s:%d: %-11s %s", e.File, e.Line, e.Outcome, e.Directive)
		if e.Note != "" {
			line += " — " + e.Note
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "%d mapped, %d with a caveat, %d unsupported, %d errors\n",
		r.Count(Mapped), r.Count(Caveat), r.Count(Unsupported), r.Count(Invalid))
}

// tomlWriter writes TOML by hand: only the keys that were set, in a
// readable order, with comments.
type tomlWriter struct{ strings.Builder }

func (t *tomlWriter) comment(f string, a ...any) {
	for _, l := range strings.Split(fmt.Sprintf(f, a...), "\n") {
		t.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
}

// kv writes key = value; strings are quoted, []string become arrays.
func (t *tomlWriter) kv(indent, key string, v any) {
	fmt.Fprintf(t, "%s%s = %s\n", indent, key, tomlValue(v))
}

func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return quote(x)
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case bool, int, uint32:
		return fmt.Sprint(x)
	}
	panic(fmt.Sprintf("legacy: no TOML form for %T", v))
}

func quote(s string) string { return TOMLString(s) }

// TOMLString is s as a TOML basic string (also `vigil config check -v`'s).
func TOMLString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
