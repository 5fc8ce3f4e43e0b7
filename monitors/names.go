package monitors

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ScriptName checks the name of a monitor or alert script as mon.cf and
// ha.toml write it: a plain name, looked up in the script directories, or
// a clean absolute path. A relative path ("../x", "bin/x") would resolve
// against whatever directory the daemon runs in, so it is refused, at
// `vigil config check` as at run time.
func ScriptName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not a script name", name)
	case filepath.IsAbs(name):
		if filepath.Clean(name) != name {
			return fmt.Errorf("%q: give the script's absolute path without \"..\" or \"//\"", name)
		}
	case strings.Contains(name, "/"):
		return fmt.Errorf("%q: give a plain name (looked up in the script directories) or an absolute path", name)
	}
	return nil
}

// Words splits a monitor or alert line as mon does (Perl's quotewords):
// whitespace separates, single and double quotes group, a backslash
// escapes the next character.
func Words(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in, quote, esc := false, rune(0), false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc, in = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 || esc {
		return nil, fmt.Errorf("unterminated quote or escape in %q", s)
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}
