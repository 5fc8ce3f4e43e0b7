// Package builtintest lets a test binary serve the built-in plugins. It is
// apart from testutil so that testutil imports no Vigil package and the
// tests of any package, the built-ins included, can use it.
package builtintest

import (
	"fmt"
	"os"

	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/builtin"
)

// ServeBuiltin lets a test binary stand in for `vigil plugin serve KIND
// NAME`: call it first in TestMain and point the plugin host's Executable
// at os.Args[0], so built-in plugins run in real subprocesses. It returns
// only when the process was not started as a plugin.
func ServeBuiltin() {
	if len(os.Args) != 5 || os.Args[1] != "plugin" || os.Args[2] != "serve" {
		return
	}
	if err := builtin.Serve(plugins.Kind(os.Args[3]), os.Args[4]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
