// Package instances ties the configuration loader to the built-in
// resources configured by instances (ldirectord::NAME, mon::NAME): their
// spec types and rules live with the resources, and the cluster core
// imports none of them (cmd/vigil hands these to config.Load).
package instances

import (
	"github.com/vigil-ha/vigil/cluster/config"
	ldspec "github.com/vigil-ha/vigil/resources/ldirectord/spec"
	monspec "github.com/vigil-ha/vigil/resources/mon/spec"
)

// Builtin returns the InstanceKinds of the built-in resources, by type.
func Builtin() map[string]config.InstanceKind {
	return map[string]config.InstanceKind{
		config.TypeLdirectord: config.Instances[ldspec.Instance](ldspec.ParamName, ldspec.ForGroup),
		config.TypeMon:        config.Instances[monspec.Instance](monspec.ParamName, nil),
	}
}

// Options is config.Options for node with the built-in kinds.
func Options(node string) config.Options {
	return config.Options{Node: node, Instances: Builtin()}
}

// ParseLdirectord decodes and validates one ldirectord instance file
// (NAME.toml for `ldirectord::NAME`).
func ParseLdirectord(path string, data []byte) (*ldspec.Instance, error) {
	return config.ParseInstance[ldspec.Instance](path, data)
}

// ParseMon decodes and validates one mon instance file (NAME.toml for
// `mon::NAME`).
func ParseMon(path string, data []byte) (*monspec.Instance, error) {
	return config.ParseInstance[monspec.Instance](path, data)
}
