// Package builtin lists the plugins compiled into the vigil binary. The
// daemon runs each as a subprocess of itself (`vigil plugin serve KIND
// NAME`), so a plugin crash never takes the daemon down, and a user still
// installs one file.
package builtin

import (
	"fmt"

	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/sdk"
	"github.com/vigil-ha/vigil/resources/dummy"
	"github.com/vigil-ha/vigil/resources/ipaddr"
	"github.com/vigil-ha/vigil/resources/ldirectord"
	"github.com/vigil-ha/vigil/resources/mon"
	"github.com/vigil-ha/vigil/resources/script"
)

var registry = map[plugins.Kind]map[string]func() sdk.Plugin{
	plugins.KindResource: {
		"dummy":      func() sdk.Plugin { return sdk.Plugin{Resource: dummy.Dummy{}} },
		"ocf":        func() sdk.Plugin { return sdk.Plugin{Resource: script.NewOCF()} },
		"lsb":        func() sdk.Plugin { return sdk.Plugin{Resource: script.NewLSB()} },
		"heartbeat":  func() sdk.Plugin { return sdk.Plugin{Resource: script.NewHeartbeat()} },
		"ipaddr":     func() sdk.Plugin { return sdk.Plugin{Resource: ipaddr.ForProcess(sdk.Log())} },
		"ldirectord": func() sdk.Plugin { return sdk.Plugin{Resource: ldirectord.New(sdk.Log())} },
		"mon":        func() sdk.Plugin { return sdk.Plugin{Resource: mon.New(sdk.Log())} },
	},
}

// Has reports whether kind/name is built in.
func Has(kind plugins.Kind, name string) bool {
	_, ok := registry[kind][name]
	return ok
}

// Serve runs built-in kind/name as a plugin process; it returns only on
// an unknown name.
func Serve(kind plugins.Kind, name string) error {
	mk, ok := registry[kind][name]
	if !ok {
		return fmt.Errorf("no built-in %s plugin %q", kind, name)
	}
	sdk.Serve(mk())
	return nil
}
