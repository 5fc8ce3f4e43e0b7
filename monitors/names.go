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
