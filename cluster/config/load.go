// Package config loads and validates Vigil's configuration: ha.toml (the
// cluster, nodes, heartbeat timing and media), authkeys (the cluster secret)
// and resources.toml (groups of resources, haresources-style). Every error
// names the file, line and key.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// File names inside a configuration directory.
const (
	HAFile        = "ha.toml"
	ResourcesFile = "resources.toml"
	DefaultDir    = "/etc/vigil"
)

// Config is a loaded, validated configuration.
type Config struct {
	Dir       string
	HA        HA
	Resources Resources
	Auth      *Authkeys
	Self      Node // this node
	Warnings  []string

	// resLines places resources.toml's keys, for errors found after
	// loading (ResourceError).
	resLines *positions
	// instances are the kinds it was loaded with (Reread).
	instances map[string]InstanceKind
}

// Reread loads c's directory again, as the same node and with the same
// instance kinds (a reload).
func (c *Config) Reread() (*Config, error) {
	return Load(c.Dir, Options{Node: c.Self.Name, Instances: c.instances})
}

// Options adjust loading.
type Options struct {
	// Node names this node, overriding ha.toml's node and the hostname
	// (one ha.toml can then serve every node).
	Node string
	// Instances reads the instances of the resource types configured by
	// them (ldirectord, mon), by type: cmd/vigil gives the built-ins'.
	// Without its kind, a resource of such a type is an error.
	Instances map[string]InstanceKind
}

// Load reads and validates DIR/ha.toml, the authkeys file and
// DIR/resources.toml (optional). On error it returns Errors listing every
// problem found.
func Load(dir string, opts Options) (*Config, error) {
	c := &Config{Dir: dir, instances: opts.Instances}
	var errs Errors
	collect := func(err error) {
		var es Errors
		var e *Error
		switch {
		case errors.As(err, &es):
			errs = append(errs, es...)
		case errors.As(err, &e):
			errs = append(errs, e)
		case err != nil:
			errs = append(errs, &Error{File: dir, Msg: err.Error()})
		}
	}

	haPath := filepath.Join(dir, HAFile)
	data, err := os.ReadFile(haPath)
	if err != nil {
		return nil, Errors{{File: haPath, Msg: fmt.Sprintf("cannot read: %v", err)}}
	}
	ha, warns, err := parseHA(haPath, data, func(h *HA, s *errSink) {
		if err := checkSocketPath(h.ControlSocket); err != nil {
			s.add("control_socket", "%v", err)
		}
	})
	c.Warnings = append(c.Warnings, warns...)
	if err != nil {
		collect(err)
		return nil, errs // later checks would only repeat the damage
	}
	c.HA = *ha

	collect(c.resolveSelf(haPath, opts))

	akPath := c.HA.Authkeys
	if !filepath.IsAbs(akPath) {
		akPath = filepath.Join(dir, akPath)
	}
	ak, akWarns, err := ReadAuthkeys(akPath)
	c.Warnings = append(c.Warnings, akWarns...)
	collect(err)
	c.Auth = ak

	resPath := filepath.Join(dir, ResourcesFile)
	if data, err := os.ReadFile(resPath); err == nil {
		res, pos, err := parseResources(resPath, data, &c.HA, opts.Instances)
		collect(err)
		if res != nil {
			c.Resources, c.resLines = *res, pos
			c.loadInstances(resPath, opts.Instances, collect)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		collect(&Error{File: resPath, Msg: fmt.Sprintf("cannot read: %v", err)})
	}

	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

func (c *Config) resolveSelf(haPath string, opts Options) error {
	name, from := opts.Node, "--node"
	if name == "" {
		name, from = c.HA.Node, "node"
	}
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return &Error{File: haPath, Key: "node", Msg: fmt.Sprintf("not set and the hostname is unknown: %v", err)}
		}
		// heartbeat lowercases node names and matches `uname -n`.
		name, from = strings.ToLower(strings.SplitN(h, ".", 2)[0]), "hostname"
	}
	n, ok := c.HA.NodeByName(name)
	if !ok {
		return &Error{File: haPath, Key: "node", Msg: fmt.Sprintf("this node %q (from %s) is not one of the [[nodes]]; set node = \"NAME\" or pass --node", name, from)}
	}
	c.Self = n
	c.HA.Node = name
	return nil
}

// checkSocketPath refuses a control socket path that names something
// other than a socket: the daemon replaces a stale socket there, and must
// never delete a file that happens to sit at that path.
func checkSocketPath(path string) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Type() == fs.ModeSocket {
		return nil
	}
	return fmt.Errorf("%s exists and is not a socket (a %s); the daemon would refuse to start", path, describeMode(st.Mode()))
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return "file of mode " + m.Type().String()
}

// ParseHA decodes and validates ha.toml. It never panics, whatever data holds.
func ParseHA(path string, data []byte) (*HA, []string, error) { return parseHA(path, data) }

// parseHA is ParseHA with more checks: Load adds those that look at this
// machine, which an importer checking a file for another must not.
func parseHA(path string, data []byte, checks ...func(*HA, *errSink)) (*HA, []string, error) {
	var ha HA
	md, s, err := decode(path, data, &ha)
	if err != nil {
		return nil, nil, err
	}
	unknownKeys(s, md, nil)
	var warns []string
	warn := func(f string, a ...any) { warns = append(warns, path+": "+fmt.Sprintf(f, a...)) }
	ha.explicitZeros(s, md.IsDefined)
	ha.applyDefaults()
	ha.validate(s, func(k string) bool { return md.IsDefined(k) }, warn)
	for _, check := range checks {
		check(&ha, s)
	}
	if len(s.errs) > 0 {
		return nil, warns, s.sorted()
	}
	return &ha, warns, nil
}

// ParseResources decodes and validates resources.toml against ha.
// Inline instance tables are read with kinds (nil: left unread, as the
// instances of resources are read only by Load).
func ParseResources(path string, data []byte, ha *HA, kinds map[string]InstanceKind) (*Resources, error) {
	r, _, err := parseResources(path, data, ha, kinds)
	return r, err
}

func parseResources(path string, data []byte, ha *HA, kinds map[string]InstanceKind) (*Resources, *positions, error) {
	var r Resources
	md, s, err := decode(path, data, &r)
	if err != nil {
		return nil, nil, err
	}
	if kinds != nil {
		r.inlineInstances(&md, s, kinds)
	}
	unknownKeys(s, md, func(key string) bool {
		// Resource entries are checked by hand (they may be strings or
		// tables); inline tables without kinds are read by Load.
		first, _, _ := strings.Cut(key, ".")
		_, inline := r.inline()[first]
		return strings.HasPrefix(key, "group.resources.") || inline && kinds == nil
	})
	r.validate(s, ha)
	if len(s.errs) > 0 {
		return nil, nil, s.sorted()
	}
	return &r, s.pos, nil
}

// ResourceError is an error about resource ri of group gi found after
// loading (its plugin refused it), placed at its entry in resources.toml.
func (c *Config) ResourceError(gi, ri int, msg string) *Error {
	key := resourceKey(gi, ri)
	return &Error{File: filepath.Join(c.Dir, ResourcesFile), Line: c.resLines.line(key), Key: key, Msg: msg}
}

func resourceKey(gi, ri int) string { return fmt.Sprintf("group[%d].resources[%d]", gi, ri) }

// MaxFileSize bounds a configuration file: far above any real one (a
// resources.toml of 10,000 groups is about 2 MB), and it keeps a wrong
// file (a log, a disk image) from being read whole.
const MaxFileSize = 16 << 20

// decode checks data's size and nesting, then decodes it into v; the
// sink it returns resolves key paths to lines.
func decode(path string, data []byte, v any) (toml.MetaData, *errSink, error) {
	if len(data) > MaxFileSize {
		return toml.MetaData{}, nil, &Error{File: path, Msg: fmt.Sprintf("%d bytes: larger than %d, not a configuration file", len(data), MaxFileSize)}
	}
	pos := scanPositions(data)
	if pos.deep > 0 {
		return toml.MetaData{}, nil, &Error{File: path, Line: pos.deep, Msg: fmt.Sprintf("arrays or inline tables nested deeper than %d levels", MaxNesting)}
	}
	md, err := toml.Decode(string(data), v)
	if err != nil {
		return md, nil, decodeError(path, err)
	}
	return md, &errSink{file: path, pos: pos}, nil
}

// unknownKeys reports every key the decoder did not use, on each line it
// appears.
func unknownKeys(s *errSink, md toml.MetaData, skip func(key string) bool) {
	for _, k := range md.Undecoded() {
		loose := k.String()
		if skip != nil && skip(loose+".") {
			continue
		}
		exact := s.pos.exactKeys(loose)
		if len(exact) == 0 {
			s.add(loose, "unknown key")
			continue
		}
		for _, e := range exact {
			s.add(e, "unknown key")
		}
	}
}

// exactKeys returns the indexed paths whose index-free form is loose, in
// file order.
func (p *positions) exactKeys(loose string) []string { return p.byLoose[loose] }
