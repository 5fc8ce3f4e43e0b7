package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	ldspec "github.com/vigil-ha/vigil/resources/ldirectord/spec"
	monspec "github.com/vigil-ha/vigil/resources/mon/spec"
)

// An instance spec is the configuration of an `ldirectord::NAME` or
// `mon::NAME` resource: its own file NAME.toml, or an inline table.
type instanceSpec[T any] interface {
	*T
	Normalize(report func(key, msg string))
}

// parseInstance decodes and validates one instance file, returning it
// with every default filled in.
func parseInstance[T any, P instanceSpec[T]](path string, data []byte) (*T, error) {
	var in T
	md, s, err := decode(path, data, &in)
	if err != nil {
		return nil, err
	}
	unknownKeys(s, md, "")
	P(&in).Normalize(func(key, msg string) { s.add(key, "%s", msg) })
	if len(s.errs) > 0 {
		return nil, s.sorted()
	}
	return &in, nil
}

// ParseLdirectord decodes and validates one ldirectord instance file
// (NAME.toml for `ldirectord::NAME`).
func ParseLdirectord(path string, data []byte) (*ldspec.Instance, error) {
	return parseInstance[ldspec.Instance](path, data)
}

// ParseMon decodes and validates one mon instance file (NAME.toml for
// `mon::NAME`).
func ParseMon(path string, data []byte) (*monspec.Instance, error) {
	return parseInstance[monspec.Instance](path, data)
}

// instanceName is the file an instance resource reads: its config
// parameter, else the type's own name (ldirectord's and mon's defaults).
func instanceName(r Resource) string {
	if n := r.Params["config"]; n != "" {
		return n
	}
	return r.Type
}

// loadInstances reads the configuration of every ldirectord and mon
// resource, from an inline table in resources.toml or from NAME.toml
// beside it, and hands it to the plugin as its spec parameter (normalised
// JSON): plugins never read files themselves, so what runs is what
// `vigil config check` accepted.
func (c *Config) loadInstances(resPath string, collect func(error)) {
	for gi := range c.Resources.Groups {
		g := &c.Resources.Groups[gi]
		for ri := range g.Resources {
			r := &g.Resources[ri]
			key := resourceKey(gi, ri)
			var in any
			var ok bool
			var param string
			switch r.Type {
			case TypeLdirectord:
				var ld *ldspec.Instance
				ld, ok = loadInstance(c, resPath, key, *r, c.Resources.Ldirectord, ParseLdirectord, collect)
				if ok && ld.Sync != nil && ld.Sync.SyncID == nil {
					// Each group's own id, the same on every node; the copy
					// keeps an inline instance shared by groups unchanged.
					y := *ld.Sync
					id := ldspec.DeriveSyncID(c.HA.Cluster, g.Name)
					y.SyncID = &id
					ld.Sync = &y
				}
				in, param = ld, ldspec.ParamName
			case TypeMon:
				in, ok = loadInstance(c, resPath, key, *r, c.Resources.Mon, ParseMon, collect)
				param = monspec.ParamName
			default:
				continue
			}
			if !ok {
				continue
			}
			js, err := json.Marshal(in)
			if err != nil {
				collect(&Error{File: resPath, Msg: err.Error()})
				continue
			}
			r.Params[param] = string(js)
		}
	}
}

func loadInstance[T any](c *Config, resPath, key string, r Resource, inline map[string]T,
	parse func(string, []byte) (*T, error), collect func(error)) (*T, bool) {
	name := instanceName(r)
	if in, ok := inline[name]; ok {
		return &in, true
	}
	if !nameRE.MatchString(name) {
		collect(&Error{File: resPath, Line: c.resLines.line(key), Key: key, Msg: fmt.Sprintf("%s instance name %q must be a plain name", r.Type, name)})
		return nil, false
	}
	path := filepath.Join(c.Dir, name+".toml")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		collect(&Error{File: resPath, Line: c.resLines.line(key), Key: key,
			Msg: fmt.Sprintf("%s instance %q: write %s or an inline [%s.%s] table", r.Type, name, path, r.Type, name)})
		return nil, false
	}
	if err != nil {
		collect(&Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err)})
		return nil, false
	}
	in, err := parse(path, data)
	if err != nil {
		collect(err)
		return nil, false
	}
	return in, true
}

// validateInline checks the [ldirectord.NAME] and [mon.NAME] tables of
// resources.toml.
func (r *Resources) validateInline(s *errSink) {
	validateInline(s, TypeLdirectord, r.Ldirectord)
	validateInline(s, TypeMon, r.Mon)
}

func validateInline[T any, P instanceSpec[T]](s *errSink, kind string, m map[string]T) {
	for name, in := range m {
		prefix := kind + "." + name + "."
		if !nameRE.MatchString(name) {
			s.add(kind+"."+name, "instance name must be a plain name")
		}
		P(&in).Normalize(func(key, msg string) { s.add(prefix+key, "%s", msg) })
		m[name] = in
	}
}
