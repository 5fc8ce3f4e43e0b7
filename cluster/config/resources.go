package config

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Resources is resources.toml: the haresources of Vigil.
type Resources struct {
	Groups []Group `toml:"group"`
	// Ldirectord holds inline ldirectord instances ([ldirectord.NAME]),
	// read by their InstanceKind; an instance not here is read from
	// NAME.toml beside resources.toml.
	Ldirectord map[string]toml.Primitive `toml:"ldirectord"`
	// Mon holds inline mon instances ([mon.NAME]), likewise.
	Mon map[string]toml.Primitive `toml:"mon"`
	// instances is what their kinds made of the tables above (by type,
	// then name).
	instances map[string]map[string]any
}

// inline is the inline instance tables by type.
func (r *Resources) inline() map[string]map[string]toml.Primitive {
	return map[string]map[string]toml.Primitive{TypeLdirectord: r.Ldirectord, TypeMon: r.Mon}
}

// Group is an ordered list of resources that run together on one node:
// started left to right, stopped right to left.
type Group struct {
	Name string `toml:"name"`
	Node string `toml:"node"` // preferred node
	// Raw holds the entries as written: shorthand strings or tables.
	Raw []any `toml:"resources"`
	// Resources is Raw normalised to the table form.
	Resources []Resource `toml:"-"`
}

// Resource is one resource in its normalised (table) form.
type Resource struct {
	ID     string            `json:"id" toml:"id"`
	Type   string            `json:"type" toml:"type"`
	Params map[string]string `json:"params,omitempty" toml:"params"`
	Args   []string          `json:"args,omitempty" toml:"args"`
	// Timeout bounds each operation (default: the plugin's own or 20s);
	// Interval is the recurring monitor's period (default 10s).
	Timeout  Duration `json:"timeout,omitempty" toml:"timeout"`
	Interval Duration `json:"interval,omitempty" toml:"interval"`
}

// Built-in resource types. Any other name in shorthand is a heartbeat-style
// script looked up in the script path (resource.d, then init.d).
const (
	TypeIPaddr     = "IPaddr"
	TypeLdirectord = "ldirectord"
	TypeMon        = "mon"
	TypeScript     = "script"
)

var resourceKeys = map[string]bool{"id": true, "type": true, "params": true, "args": true, "timeout": true, "interval": true}

// ParseShorthand turns one haresources-style entry into its table form:
//
//	"10.0.0.3"                          → IPaddr ip=10.0.0.3
//	"IPaddr::10.0.0.3/24/eth0/10.0.0.255" → IPaddr ip, cidr_netmask, nic, broadcast
//	"ldirectord::www"                   → ldirectord config=www
//	"mon::lvs", "mon"                   → mon config=lvs / mon
//	"lvs", "httpd::a::b"                → script lvs / script httpd with args a b
func ParseShorthand(s string) (Resource, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Resource{}, fmt.Errorf("empty resource")
	}
	parts := strings.Split(s, "::")
	for _, p := range parts {
		if p == "" && !looksLikeIP(s) {
			return Resource{}, fmt.Errorf("%q has an empty field between \"::\"", s)
		}
	}
	name, args := parts[0], parts[1:]
	// heartbeat: a bare IP address (optionally with /mask/nic/bcast) is
	// IPaddr. An IPv6 address holds "::" itself, so it is taken whole.
	for _, prefix := range []string{"", TypeIPaddr + "::", "IPaddr2::"} {
		if ip, ok := strings.CutPrefix(s, prefix); ok && looksLikeIP(ip) {
			name, args = TypeIPaddr, []string{ip}
			break
		}
	}
	switch name {
	case TypeIPaddr, "IPaddr2":
		if len(args) != 1 {
			return Resource{}, fmt.Errorf("%q: IPaddr takes one argument, ip[/netmask[/interface[/broadcast]]]", s)
		}
		f := strings.Split(args[0], "/")
		if len(f) > 4 {
			return Resource{}, fmt.Errorf("%q: too many '/' fields (ip/netmask/interface/broadcast)", s)
		}
		r := Resource{Type: TypeIPaddr, Params: map[string]string{"ip": f[0]}}
		keys := []string{"cidr_netmask", "nic", "broadcast"}
		// heartbeat's IPaddr: a third field starting with a digit is the
		// broadcast (ip/24/10.0.0.255), otherwise the interface.
		if len(f) == 3 && f[2] != "" && f[2][0] >= '0' && f[2][0] <= '9' {
			keys = []string{"cidr_netmask", "broadcast"}
		}
		for i, k := range keys {
			if i+1 < len(f) && f[i+1] != "" {
				r.Params[k] = f[i+1]
			}
		}
		r.ID = "IPaddr_" + f[0]
		return r, nil
	case TypeLdirectord, TypeMon:
		if len(args) > 1 {
			return Resource{}, fmt.Errorf("%q: %s takes at most one argument, the instance name", s, name)
		}
		r := Resource{Type: name, ID: name, Params: map[string]string{}}
		if len(args) == 1 {
			r.Params["config"] = args[0]
			r.ID = name + "_" + args[0]
		}
		return r, nil
	}
	if name == "OCF" {
		return ocfShorthand(s, args)
	}
	r := Resource{Type: TypeScript, ID: strings.Join(parts, "_"), Params: map[string]string{"script": name}, Args: args}
	return r, nil
}

// ocfShorthand reads heartbeat's "OCF::TYPE::INSTANCE" (which ran the OCF
// wrapper in resource.d) as the OCF agent heartbeat:TYPE with that
// instance id. heartbeat read the parameters from
// /etc/ha.d/conf/OCF/TYPE/INSTANCE; Vigil takes them inline as further
// "::name=value" fields, or from the table form.
func ocfShorthand(s string, args []string) (Resource, error) {
	if len(args) < 2 {
		return Resource{}, fmt.Errorf("%q: want OCF::TYPE::INSTANCE[::param=value...]", s)
	}
	r := Resource{Type: "ocf:heartbeat:" + args[0], ID: args[1], Params: map[string]string{}}
	for _, kv := range args[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return Resource{}, fmt.Errorf("%q: OCF parameter %q is not name=value", s, kv)
		}
		r.Params[k] = v
	}
	return r, nil
}

// Binding is how a resource is carried out: which resource plugin runs it
// and what the plugin is told.
type Binding struct {
	Plugin string            // resource plugin name (built-in or in plugin_dir)
	Agent  string            // pb.Instance.Type: the agent within the plugin
	Params map[string]string // pb.Instance.Params
	Args   []string          // pb.Instance.Args
}

// Bind resolves r's type to its plugin:
//
//	IPaddr, ldirectord, mon, Dummy  → the built-in plugins of those names
//	script (bare haresources names) → heartbeat (resource.d, then init.d)
//	ocf:PROVIDER:AGENT              → ocf
//	lsb:NAME                        → lsb
//	plugin:NAME                     → NAME, a plugin of the operator's
func (r Resource) Bind() (Binding, error) {
	b := Binding{Params: r.Params, Args: r.Args}
	class, rest, _ := strings.Cut(r.Type, ":")
	switch {
	case r.Type == TypeIPaddr || r.Type == TypeLdirectord || r.Type == TypeMon || r.Type == "Dummy":
		b.Plugin, b.Agent = strings.ToLower(r.Type), r.Type
	case r.Type == TypeScript:
		b.Plugin, b.Agent = "heartbeat", r.Params["script"]
		b.Params = map[string]string{}
		for k, v := range r.Params {
			if k != "script" {
				b.Params[k] = v
			}
		}
	case class == "ocf" && strings.Count(rest, ":") == 1 && !strings.HasPrefix(rest, ":") && !strings.HasSuffix(rest, ":"):
		b.Plugin, b.Agent = "ocf", rest
	case class == "lsb" && rest != "" && !strings.Contains(rest, ":"):
		b.Plugin, b.Agent = "lsb", rest
	case class == "plugin" && nameRE.MatchString(rest):
		b.Plugin, b.Agent = rest, rest
	default:
		return b, fmt.Errorf("unknown resource type %q (IPaddr, ldirectord, mon, Dummy, script, ocf:PROVIDER:AGENT, lsb:NAME or plugin:NAME)", r.Type)
	}
	return b, nil
}

func looksLikeIP(s string) bool {
	ip, _, _ := strings.Cut(s, "/")
	_, err := netip.ParseAddr(ip)
	return err == nil
}

// normalise fills g.Resources from g.Raw and checks each entry.
func (g *Group) normalise(s *errSink, gk string) {
	for i, raw := range g.Raw {
		k := fmt.Sprintf("%s.resources[%d]", gk, i)
		var r Resource
		switch v := raw.(type) {
		case string:
			var err error
			if r, err = ParseShorthand(v); err != nil {
				s.add(k, "%v", err)
				continue
			}
		case map[string]any:
			var ok bool
			if r, ok = tableResource(s, k, v); !ok {
				continue
			}
		default:
			s.add(k, "must be a string like \"IPaddr::10.0.0.3/24/eth0\" or a table {type = ..., params = {...}}, not %T", raw)
			continue
		}
		validateResource(s, k, r)
		g.Resources = append(g.Resources, r)
	}
}

func tableResource(s *errSink, k string, m map[string]any) (Resource, bool) {
	ok := true
	unknown := []string{}
	for key := range m {
		if !resourceKeys[key] {
			unknown = append(unknown, key)
		}
	}
	sort.Strings(unknown)
	for _, key := range unknown {
		s.add(k+"."+key, "unknown key (a resource table has type, id, params, args, timeout, interval)")
		ok = false
	}
	var r Resource
	typ, isStr := m["type"].(string)
	if !isStr || typ == "" {
		s.add(k+".type", "is required and must be a string")
		return r, false
	}
	r.Type = typ
	if typ == "IPaddr2" {
		r.Type = TypeIPaddr
	}
	if id, present := m["id"]; present {
		if r.ID, isStr = id.(string); !isStr || !nameRE.MatchString(r.ID) {
			s.add(k+".id", "must be a name (letters, digits, '.', '_', '-')")
			ok = false
		}
	}
	r.Params = map[string]string{}
	if p, present := m["params"]; present {
		pm, isMap := p.(map[string]any)
		if !isMap {
			s.add(k+".params", "must be a table of parameter = value")
			ok = false
		}
		for pk, pv := range pm {
			switch v := pv.(type) {
			case string:
				r.Params[pk] = v
			case int64:
				r.Params[pk] = strconv.FormatInt(v, 10)
			case bool:
				r.Params[pk] = strconv.FormatBool(v)
			case float64:
				r.Params[pk] = strconv.FormatFloat(v, 'g', -1, 64)
			default:
				s.add(k+".params."+pk, "must be a string, number or boolean, not %T", pv)
				ok = false
			}
		}
	}
	if a, present := m["args"]; present {
		list, isList := a.([]any)
		if !isList {
			s.add(k+".args", "must be a list of strings")
			ok = false
		}
		for j, v := range list {
			str, isStr := v.(string)
			if !isStr {
				s.add(fmt.Sprintf("%s.args[%d]", k, j), "must be a string")
				ok = false
			}
			r.Args = append(r.Args, str)
		}
	}
	for key, dst := range map[string]*Duration{"timeout": &r.Timeout, "interval": &r.Interval} {
		v, present := m[key]
		if !present {
			continue
		}
		str, isStr := v.(string)
		d, err := time.ParseDuration(str)
		if !isStr || err != nil || d <= 0 {
			s.add(k+"."+key, "must be a positive duration such as \"20s\" or \"500ms\"")
			ok = false
			continue
		}
		*dst = Duration(d)
	}
	if r.ID == "" {
		r.ID = defaultID(r)
	}
	return r, ok
}

func defaultID(r Resource) string {
	switch r.Type {
	case TypeIPaddr:
		return "IPaddr_" + r.Params["ip"]
	case TypeScript:
		return strings.Join(append([]string{r.Params["script"]}, r.Args...), "_")
	}
	if c := r.Params["config"]; c != "" {
		return r.Type + "_" + c
	}
	return r.Type
}

// validateResource checks what can be checked without the plugin, so
// that `config check --plugins=false` still finds it at its key; the
// plugin's Validate judges the rest (lrm.CheckConfig: config check and
// reload).
func validateResource(s *errSink, k string, r Resource) {
	if _, err := r.Bind(); err != nil {
		s.add(k+".type", "%v", err)
		return
	}
	switch r.Type {
	case TypeIPaddr:
		ip, err := netip.ParseAddr(r.Params["ip"])
		if err != nil {
			s.add(k, "IPaddr: %q is not an IP address", r.Params["ip"])
			return
		}
		if m, ok := r.Params["cidr_netmask"]; ok {
			bits, err := strconv.Atoi(m)
			if err != nil || bits < 1 || bits > ip.BitLen() {
				s.add(k, "IPaddr: netmask %q is not a prefix length 1..%d", m, ip.BitLen())
			}
		}
		if b, ok := r.Params["broadcast"]; ok {
			if _, err := netip.ParseAddr(b); err != nil {
				s.add(k, "IPaddr: broadcast %q is not an IP address", b)
			}
		}
	case TypeScript:
		sc := r.Params["script"]
		if sc == "" || strings.ContainsAny(sc, "/ ") {
			s.add(k, "script name %q must be a plain file name found in the script path", sc)
		}
	}
}

func (r *Resources) validate(s *errSink, ha *HA) {
	groups := map[string]string{}
	ids := map[string]string{}
	for i := range r.Groups {
		g := &r.Groups[i]
		gk := fmt.Sprintf("group[%d]", i)
		s.uniqueName(gk+".name", "group name", g.Name, groups)
		if g.Node == "" {
			s.add(gk+".node", "is required: the preferred node, as the first word of a haresources line")
		} else if n, ok := ha.NodeByName(g.Node); !ok {
			s.add(gk+".node", "%q is not one of the [[nodes]] in ha.toml", g.Node)
		} else if n.Role == "witness" {
			s.add(gk+".node", "%q is a witness and runs no resources", g.Node)
		}
		if len(g.Raw) == 0 {
			s.add(gk+".resources", "a group needs at least one resource")
		}
		g.normalise(s, gk)
		for j, res := range g.Resources {
			if other, dup := ids[res.ID]; dup {
				s.add(fmt.Sprintf("%s.resources[%d]", gk, j), "duplicate resource id %q (also in group %q); give one an explicit id", res.ID, other)
			} else {
				ids[res.ID] = g.Name
			}
		}
	}
}
