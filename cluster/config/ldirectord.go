package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"

	"github.com/vigil-ha/vigil/resources/ldirectord/spec"
)

// ParseLdirectord decodes and validates one ldirectord instance file
// (NAME.toml for `ldirectord::NAME`), returning it with every default
// filled in.
func ParseLdirectord(path string, data []byte) (*spec.Instance, error) {
	var in spec.Instance
	md, err := toml.Decode(string(data), &in)
	if err != nil {
		return nil, decodeError(path, err)
	}
	s := &errSink{file: path, pos: scanPositions(data)}
	unknownKeys(s, md, "")
	in.Normalize(func(key, msg string) { s.add(key, "%s", msg) })
	if len(s.errs) > 0 {
		return nil, s.sorted()
	}
	return &in, nil
}

// instanceName is the file an ldirectord resource reads: its config
// parameter, else "ldirectord" (ldirectord's own default name).
func instanceName(r Resource) string {
	if n := r.Params["config"]; n != "" {
		return n
	}
	return "ldirectord"
}

// loadInstances reads the instance configuration of every ldirectord
// resource, from an inline [ldirectord.NAME] table in resources.toml or
// from NAME.toml beside it, and hands it to the plugin as its spec
// parameter (normalised JSON): the plugin never reads files itself, so
// what runs is what `vigil config check` accepted.
func (c *Config) loadInstances(resPath string, collect func(error)) {
	for gi := range c.Resources.Groups {
		g := &c.Resources.Groups[gi]
		for ri := range g.Resources {
			r := &g.Resources[ri]
			if r.Type != TypeLdirectord {
				continue
			}
			name, key := instanceName(*r), fmt.Sprintf("group[%d].resources[%d]", gi, ri)
			in, ok := c.Resources.Ldirectord[name]
			if !ok {
				if !nameRE.MatchString(name) {
					collect(&Error{File: resPath, Key: key, Msg: fmt.Sprintf("ldirectord instance name %q must be a plain name", name)})
					continue
				}
				path := filepath.Join(c.Dir, name+".toml")
				data, err := os.ReadFile(path)
				if errors.Is(err, fs.ErrNotExist) {
					collect(&Error{File: resPath, Key: key,
						Msg: fmt.Sprintf("ldirectord instance %q: write %s or an inline [ldirectord.%s] table", name, path, name)})
					continue
				}
				if err != nil {
					collect(&Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err)})
					continue
				}
				p, err := ParseLdirectord(path, data)
				if err != nil {
					collect(err)
					continue
				}
				in = *p
			}
			js, err := json.Marshal(in)
			if err != nil {
				collect(&Error{File: resPath, Msg: err.Error()})
				continue
			}
			r.Params[spec.ParamName] = string(js)
		}
	}
}

// validateInline checks the [ldirectord.NAME] tables of resources.toml.
func (r *Resources) validateInline(s *errSink) {
	for name, in := range r.Ldirectord {
		prefix := "ldirectord." + name + "."
		if !nameRE.MatchString(name) {
			s.add("ldirectord."+name, "instance name must be a plain name")
		}
		in.Normalize(func(key, msg string) { s.add(prefix+key, "%s", msg) })
		r.Ldirectord[name] = in
	}
}
