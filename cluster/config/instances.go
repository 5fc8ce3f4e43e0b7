package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/BurntSushi/toml"
)

// An instance spec is the configuration of one resource of a type
// configured by instances (`ldirectord::NAME`, `mon::NAME`): its own file
// NAME.toml, or an inline [TYPE.NAME] table. Its resource package defines
// it and its rules; Normalize fills every default and reports what is
// wrong by key.
type instanceSpec[T any] interface {
	*T
	Normalize(report func(key, msg string))
}

// An InstanceKind reads the instances of one resource type. Config knows
// neither the type's keys nor its rules: the resource's package does, and
// cmd/vigil hands Load the built-in kinds (Options.Instances), so the
// cluster core imports no resource package.
type InstanceKind interface {
	// param is the resource parameter the normalised instance (JSON) is
	// handed to the plugin in.
	param() string
	parseFile(path string, data []byte) (any, error)
	// decodeTable reads an inline table, reporting through s with prefix.
	decodeTable(md *toml.MetaData, p toml.Primitive, s *errSink, prefix string) any
	// forGroup returns in as group runs it in cluster.
	forGroup(in any, cluster, group string) any
}

// Instances is the InstanceKind of spec type T handed to its plugin in
// parameter param. forGroup (may be nil) fills what depends on the group
// that runs the instance, the same on every node (ldirectord's sync id);
// it must not change its argument, which groups may share.
func Instances[T any, P instanceSpec[T]](param string, forGroup func(in *T, cluster, group string) *T) InstanceKind {
	return instanceKind[T, P]{paramName: param, bind: forGroup}
}

type instanceKind[T any, P instanceSpec[T]] struct {
	paramName string
	bind      func(*T, string, string) *T
}

func (k instanceKind[T, P]) param() string { return k.paramName }

func (k instanceKind[T, P]) parseFile(path string, data []byte) (any, error) {
	return ParseInstance[T, P](path, data)
}

func (k instanceKind[T, P]) decodeTable(md *toml.MetaData, p toml.Primitive, s *errSink, prefix string) any {
	var in T
	if err := md.PrimitiveDecode(p, &in); err != nil {
		s.add(prefix, "%v", err)
		return nil
	}
	n := len(s.errs)
	P(&in).Normalize(func(key, msg string) { s.add(prefix+"."+key, "%s", msg) })
	if len(s.errs) > n {
		return nil
	}
	return &in
}

func (k instanceKind[T, P]) forGroup(in any, cluster, group string) any {
	if k.bind == nil {
		return in
	}
	return k.bind(in.(*T), cluster, group)
}

// ParseInstance decodes and validates one instance file of spec type T
// (NAME.toml for `TYPE::NAME`), returning it with every default filled.
func ParseInstance[T any, P instanceSpec[T]](path string, data []byte) (*T, error) {
	var in T
	md, s, err := decode(path, data, &in)
	if err != nil {
		return nil, err
	}
	unknownKeys(s, md, nil)
	P(&in).Normalize(func(key, msg string) { s.add(key, "%s", msg) })
	if len(s.errs) > 0 {
		return nil, s.sorted()
	}
	return &in, nil
}

// instanceName is the file an instance resource reads: its config
// parameter, else the type's own name (ldirectord's and mon's defaults).
func instanceName(r Resource) string {
	if n := r.Params["config"]; n != "" {
		return n
	}
	return r.Type
}

// inlineInstances reads resources.toml's inline instance tables
// ([TYPE.NAME]) with their kinds. A table of a type that has no kind is
// an unknown key.
func (r *Resources) inlineInstances(md *toml.MetaData, s *errSink, kinds map[string]InstanceKind) {
	r.instances = map[string]map[string]any{}
	for typ, tables := range r.inline() {
		kind, ok := kinds[typ]
		if !ok {
			continue // left undecoded: an unknown key
		}
		r.instances[typ] = map[string]any{}
		for _, name := range slices.Sorted(maps.Keys(tables)) {
			prefix := typ + "." + name
			if !nameRE.MatchString(name) {
				s.add(prefix, "instance name must be a plain name")
			}
			if in := kind.decodeTable(md, tables[name], s, prefix); in != nil {
				r.instances[typ][name] = in
			}
		}
	}
}

// loadInstances reads the configuration of every resource whose type is
// configured by instances, from an inline table in resources.toml or from
// NAME.toml beside it, and hands it to the plugin as its parameter
// (normalised JSON): plugins never read files themselves, so what runs is
// what `vigil config check` accepted.
func (c *Config) loadInstances(resPath string, kinds map[string]InstanceKind, collect func(error)) {
	for gi := range c.Resources.Groups {
		g := &c.Resources.Groups[gi]
		for ri := range g.Resources {
			r := &g.Resources[ri]
			kind, ok := kinds[r.Type]
			if !ok {
				if r.Type == TypeLdirectord || r.Type == TypeMon {
					collect(&Error{File: resPath, Line: c.resLines.line(resourceKey(gi, ri)), Key: resourceKey(gi, ri),
						Msg: fmt.Sprintf("%s instances cannot be read: this program was given no %s kind (config.Options.Instances)", r.Type, r.Type)})
				}
				continue
			}
			in, ok := c.loadInstance(resPath, resourceKey(gi, ri), *r, kind, collect)
			if !ok {
				continue
			}
			js, err := json.Marshal(kind.forGroup(in, c.HA.Cluster, g.Name))
			if err != nil {
				collect(&Error{File: resPath, Msg: err.Error()})
				continue
			}
			r.Params[kind.param()] = string(js)
		}
	}
}

func (c *Config) loadInstance(resPath, key string, r Resource, kind InstanceKind, collect func(error)) (any, bool) {
	name := instanceName(r)
	if in, ok := c.Resources.instances[r.Type][name]; ok {
		return in, true
	}
	if _, ok := c.Resources.inline()[r.Type][name]; ok {
		return nil, false // an inline table with errors, reported
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
	in, err := kind.parseFile(path, data)
	if err != nil {
		collect(err)
		return nil, false
	}
	return in, true
}
