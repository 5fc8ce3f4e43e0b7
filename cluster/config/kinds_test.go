package config

import (
	ldspec "github.com/vigil-ha/vigil/resources/ldirectord/spec"
	monspec "github.com/vigil-ha/vigil/resources/mon/spec"
)

// The tests read instances with the built-in resources' kinds, as
// cmd/vigil does (internal/instances, which this package's tests cannot
// import: it imports config).
var testKinds = map[string]InstanceKind{
	TypeLdirectord: Instances[ldspec.Instance](ldspec.ParamName, ldspec.ForGroup),
	TypeMon:        Instances[monspec.Instance](monspec.ParamName, nil),
}

func testOptions(node string) Options { return Options{Node: node, Instances: testKinds} }

func ParseLdirectord(path string, data []byte) (*ldspec.Instance, error) {
	return ParseInstance[ldspec.Instance](path, data)
}

func ParseMon(path string, data []byte) (*monspec.Instance, error) {
	return ParseInstance[monspec.Instance](path, data)
}
