package legacy

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// KeepalivedInput is one node's keepalived.conf, what the pair around it
// is, and how to reach the files it includes.
type KeepalivedInput struct {
	Path string
	Data []byte
	// Node is this node's name in Vigil (ha.toml's node).
	Node string
	// Peer is the other router's name in Vigil; default: the router_id
	// of PeerData's global_defs.
	Peer string
	// PeerPath and PeerData are the other router's keepalived.conf
	// (optional): its priorities, preemption and addresses complete the
	// pair's.
	PeerPath string
	PeerData []byte
	// Addresses are nodes' heartbeat and Raft addresses by name, for
	// routers whose files do not say (multicast VRRP names none).
	Addresses map[string]string
	// PingNodes become ha.toml's ping_nodes: the pair's tie-breaker.
	PingNodes []string
	// Cluster is ha.toml's cluster name (default "keepalived").
	Cluster string
	// Authkeys, if set, is the cluster secret instead of auth_pass.
	Authkeys     []byte
	AuthkeysPath string
	// Name is the ldirectord instance the virtual servers become
	// (NAME.toml, ldirectord::NAME).
	Name string
	// ReadFile and Glob resolve include directives (nil: includes are
	// reported, not read).
	ReadFile func(string) ([]byte, error)
	Glob     func(string) ([]string, error)
}

// Keepalived is the result: ha.toml, authkeys, resources.toml and the
// ldirectord instance.
type Keepalived struct {
	Files map[string][]byte
	Report
}

// kaNode is one statement: a keyword, its arguments, its block.
type kaNode struct {
	kw   string
	args []string
	kids []*kaNode
	file string
	line int
}

// arg is the statement's first argument, or "".
func (n *kaNode) arg() string {
	if len(n.args) == 0 {
		return ""
	}
	return n.args[0]
}

// kaParse reads keepalived's syntax: statements a line each, blocks in
// braces (the brace may end the line or stand on the next), '!' and '#'
// start comments outside quotes, include <glob> anywhere.
func kaParse(file string, data []byte, in *KeepalivedInput, r *Report, depth int) []*kaNode {
	root := &kaNode{}
	stack := []*kaNode{root}
	var last *kaNode
	for n, raw := range strings.Split(string(data), "\n") {
		n++
		toks := kaTokens(raw)
		for len(toks) > 0 {
			top := stack[len(stack)-1]
			switch toks[0] {
			case "{":
				if last == nil {
					r.add(file, n, "{", Invalid, "a block without a keyword")
					toks = toks[1:]
					continue
				}
				stack = append(stack, last)
				last = nil
				toks = toks[1:]
				continue
			case "}":
				if len(stack) == 1 {
					r.add(file, n, "}", Invalid, "an extra '}' (keepalived: missing '}'s or extra '{'s)")
				} else {
					stack = stack[:len(stack)-1]
				}
				last = nil
				toks = toks[1:]
				continue
			}
			// A statement: words up to a brace.
			end := len(toks)
			for i, t := range toks {
				if t == "{" || t == "}" {
					end = i
					break
				}
			}
			st := &kaNode{kw: toks[0], args: toks[1:end], file: file, line: n}
			toks = toks[end:]
			if strings.HasPrefix(st.kw, "@") {
				// "@id line": for the node whose config_id is id only.
				r.add(file, n, strings.Join(append([]string{st.kw}, st.args...), " "), Unsupported, "a line for one config_id only: import each node's file with that node's lines")
				last = st // a block it opens is dropped with it
				continue
			}
			if st.kw == "include" {
				top.kids = append(top.kids, kaInclude(st, in, r, depth)...)
				last = nil
				continue
			}
			top.kids = append(top.kids, st)
			last = st
		}
	}
	if len(stack) > 1 {
		r.add(file, stack[len(stack)-1].line, stack[len(stack)-1].kw, Invalid, "There are %d missing '}'s or extra '{'s", len(stack)-1)
	}
	return root.kids
}

// nodeNameRE is what ha.toml accepts as a node's name.
var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// kaKeywordRE is what a keepalived keyword looks like.
var kaKeywordRE = regexp.MustCompile(`^[A-Za-z0-9_@-]{1,64}$`)

// unknownKeyword reports a line keepalived would refuse (as keepalived
// does: "Unknown keyword"), showing the keyword only when it looks like
// one. An include can pull in any file (`include /etc/shadow`): its lines
// must not be echoed into the report, the terminal or a log.
func unknownKeyword(st *kaNode, add func(*kaNode, Outcome, string, ...any)) {
	shown := &kaNode{kw: st.kw, file: st.file, line: st.line} // not its arguments
	if !kaKeywordRE.MatchString(st.kw) {
		shown.kw = "(line not shown)"
		add(shown, Invalid, "not a keepalived keyword: is this a keepalived configuration file?")
		return
	}
	add(shown, Invalid, "Unknown keyword '%s'", st.kw)
}

func kaInclude(st *kaNode, in *KeepalivedInput, r *Report, depth int) []*kaNode {
	directive := "include " + strings.Join(st.args, " ")
	if len(st.args) != 1 {
		r.add(st.file, st.line, directive, Invalid, "include takes one path or glob")
		return nil
	}
	if in.ReadFile == nil || in.Glob == nil || depth > 8 {
		r.add(st.file, st.line, directive, Unsupported, "not followed here: import the included files too")
		return nil
	}
	pattern := st.args[0]
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(st.file), pattern)
	}
	paths, err := in.Glob(pattern)
	if err != nil || len(paths) == 0 {
		// keepalived goes on without it (a missing config file is exit 0).
		r.add(st.file, st.line, directive, Caveat, "nothing matches %s: nothing included", pattern)
		return nil
	}
	r.add(st.file, st.line, directive, Mapped, "read %s", strings.Join(paths, ", "))
	var out []*kaNode
	for _, p := range paths {
		data, err := in.ReadFile(p)
		if err != nil {
			r.add(st.file, st.line, directive, Invalid, "%v", err)
			continue
		}
		out = append(out, kaParse(p, data, in, r, depth+1)...)
	}
	return out
}

// kaTokens splits a line into words, braces and quoted strings, dropping
// a comment.
func kaTokens(line string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	flush := func() {
		if inWord {
			out = append(out, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for _, c := range line {
		switch {
		case quoted && c == '"':
			quoted = false
		case quoted:
			cur.WriteRune(c)
		case c == '"':
			quoted, inWord = true, true
		case c == '!' || c == '#':
			flush()
			return out
		case c == '{' || c == '}':
			flush()
			out = append(out, string(c))
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	flush()
	return out
}

// kaGroup is one Vigil group made of VRRP instances.
type kaGroup struct {
	name  string
	node  string              // preferred node
	vrrp  []*kaVRRP           // its instances, in file order
	vips  []map[string]string // IPaddr params
	addrs []netip.Addr
	lvs   bool
}

// kaVRRP is what a vrrp_instance says about the router it runs on.
type kaVRRP struct {
	name, state, iface string
	st                 *kaNode
	prio               int
	vrid               int
	nopreempt          *kaNode
	preemptDelay       *kaNode
	advert             float64 // seconds, as written
	advertKid          *kaNode
	version            int // 0: the global vrrp_version
	authPass           string
	authKid            *kaNode
	src                string   // unicast_src_ip or mcast_src_ip
	peers              []string // unicast_peer
	syncKid            *kaNode  // lvs_sync_daemon_interface (deprecated form)
}

// kaConf is one keepalived.conf, read.
type kaConf struct {
	path      string
	groups    []*kaGroup
	instances []*kaVRRP
	virtuals  []*kaNode
	version   int // global_defs vrrp_version (0: unset, keepalived's 2)
	routerID  string
	mail      []string
	mailKid   *kaNode
	mailFrom  string
	smtp      string
	syncd     *kaSyncd // global_defs lvs_sync_daemon
}

// kaSyncd is keepalived's lvs_sync_daemon INTERFACE VRRP_INSTANCE
// [id SYNC_ID] [maxlen N] [port N] [ttl N] [group IP] (a bare SYNC_ID in
// third place is keepalived's older form, still read).
type kaSyncd struct {
	st                *kaNode
	iface, inst       string
	id                int // -1: unset (keepalived: the instance's vrid)
	maxlen, port, ttl int
	group             string
}

// kaSyncDaemon reads lvs_sync_daemon as keepalived 2.2's lvs_syncd_handler
// does: a bad option is reported and ignored, the rest kept.
func kaSyncDaemon(st *kaNode, add func(*kaNode, Outcome, string, ...any)) *kaSyncd {
	a := st.args
	if len(a) < 2 {
		add(st, Invalid, "lvs_sync_daemon takes INTERFACE VRRP_INSTANCE [id SYNC_ID] [maxlen N] [port N] [ttl N] [group IP]")
		return nil
	}
	if len(a[0]) > 15 {
		add(st, Invalid, "interface name %q too long (keepalived ignores the line)", a[0])
		return nil
	}
	y := &kaSyncd{st: st, iface: a[0], inst: a[1], id: -1}
	var ignored []string
	num := func(s string, lo, hi int) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= lo && n <= hi
	}
	i := 2
	if len(a) > 2 {
		if n, ok := num(a[2], 0, 255); ok {
			y.id, i = n, 3
		}
	}
	for ; i < len(a); i++ {
		opt := a[i]
		if i+1 >= len(a) {
			ignored = append(ignored, opt+" (no value)")
			continue
		}
		v := a[i+1]
		i++
		var ok bool
		set := func(dst *int, lo, hi int) {
			var n int
			if n, ok = num(v, lo, hi); ok {
				*dst = n
			}
		}
		switch opt {
		case "id":
			set(&y.id, 0, 255)
		case "maxlen":
			set(&y.maxlen, 0, 65535-20-8)
		case "port":
			set(&y.port, 0, 65535)
		case "ttl":
			set(&y.ttl, 0, 255)
		case "group":
			ad, err := netip.ParseAddr(v)
			if ok = err == nil && ad.IsMulticast(); ok {
				y.group = ad.String()
			}
		default:
			ignored = append(ignored, opt)
			i--
			continue
		}
		if !ok {
			ignored = append(ignored, opt+" "+v)
		}
	}
	if len(ignored) > 0 {
		add(st, Caveat, "ignored as keepalived ignores them: %s", strings.Join(ignored, ", "))
	}
	return y
}

// kaSyncTable is the [sync] table of the imported ldirectord instance.
// The sync id is keepalived's: the one given, else the named instance's
// virtual_router_id, so that imported and keepalived nodes agree.
func kaSyncTable(c *kaConf, host *kaGroup, r *Report) []byte {
	y := c.syncd
	var t tomlWriter
	t.WriteString("\n")
	t.comment("From lvs_sync_daemon: the kernel's connection sync. The master daemon runs where\nthis instance directs, the backup where it stands by.")
	t.WriteString("[sync]\n")
	t.kv("", "interface", y.iface)
	id := y.id
	var inst *kaVRRP
	for _, v := range c.instances {
		if v.name == y.inst {
			inst = v
		}
	}
	switch {
	case inst == nil:
		kaAdd(r, y.st, Caveat, "no vrrp_instance %s in this file: the sync id is derived from the cluster and group names", y.inst)
	case id < 0:
		id = inst.vrid
	}
	if id >= 0 {
		t.kv("", "sync_id", id)
	}
	if y.group != "" {
		t.kv("", "group", y.group)
	}
	if y.port != 0 {
		t.kv("", "port", y.port)
	}
	if y.ttl != 0 {
		t.kv("", "ttl", y.ttl)
	}
	if y.maxlen != 0 {
		t.kv("", "maxlen", max(y.maxlen, 1024))
	}
	follows := "the group holding the ldirectord instance"
	if host != nil {
		follows = "group " + host.name
		if inst != nil && !slices.Contains(host.vrrp, inst) {
			kaAdd(r, y.st, Caveat, "keepalived switches the daemons with vrrp_instance %s; Vigil switches them with %s, which directs the virtual servers", y.inst, follows)
		}
	}
	note := "[sync] of the ldirectord instance; the daemons follow " + follows
	if y.maxlen != 0 && y.maxlen < 1024 {
		note += fmt.Sprintf("; maxlen %d raised to 1024 (a backup's kernel buffer is never smaller)", y.maxlen)
	}
	kaAdd(r, y.st, Mapped, "%s", note)
	return []byte(t.String())
}

// find returns the instance of c that is v's counterpart on the other
// router: the same name, else the same virtual router on the same
// interface.
func (c *kaConf) find(v *kaVRRP) *kaVRRP {
	for _, w := range c.instances {
		if w.name == v.name {
			return w
		}
	}
	for _, w := range c.instances {
		if w.vrid == v.vrid && w.iface == v.iface {
			return w
		}
	}
	return nil
}

// versionOf is the VRRP version instance v runs: its own, the global
// one, else keepalived's default, 2.
func (c *kaConf) versionOf(v *kaVRRP) int {
	switch {
	case v.version != 0:
		return v.version
	case c.version != 0:
		return c.version
	}
	return 2
}

// advertOf is v's advertisement interval in seconds as keepalived runs
// it: 1 s unless set, and for VRRPv2 rounded to whole seconds (at least
// one), as keepalived does ("Advert interval must be an integer -
// rounding").
func (c *kaConf) advertOf(v *kaVRRP) float64 {
	a := v.advert
	if a == 0 {
		a = 1
	}
	if c.versionOf(v) == 2 && a != math.Trunc(a) {
		a = max(1, math.Floor(a+0.5))
	}
	return a
}

// masterDown is VRRP's Master_Down_Interval: how long a backup of
// priority prio waits without adverts before it becomes master, 3 ×
// advert_int plus a skew of (256 − priority)/256 — of a second in
// VRRPv2, of advert_int in VRRPv3.
func masterDown(advert float64, prio, version int) float64 {
	skew := float64(256-prio) / 256
	if version == 3 {
		skew *= advert
	}
	return 3*advert + skew
}

// seconds is s as a duration, to the millisecond.
func seconds(s float64) time.Duration {
	return time.Duration(math.Round(s*1000)) * time.Millisecond
}

// ImportKeepalived reads one node's keepalived.conf (and, if given, the
// other router's) and writes a complete configuration for that node:
// ha.toml (the pair, timing from advert_int and VRRP's master-down rule,
// the preferred node from priorities, auto_failback from preemption),
// authkeys (auth_pass), resources.toml (each VRRP instance a group of
// IPaddr resources, a vrrp_sync_group one group) and the ldirectord
// instance of the virtual servers, in the group whose addresses they use.
func ImportKeepalived(in KeepalivedInput) (*Keepalived, error) {
	if in.Name == "" {
		in.Name = "lvs"
	}
	if in.Cluster == "" {
		in.Cluster = "keepalived"
	}
	k := &Keepalived{Files: map[string][]byte{}}
	r := &k.Report
	add := func(st *kaNode, o Outcome, note string, a ...any) { kaAdd(r, st, o, note, a...) }
	conf := kaRead(in.Path, in.Data, &in, r)
	var peer *kaConf
	if in.PeerData != nil {
		// The other router's file is read for its VRRP facts; what it
		// says of itself is not this node's report, but a file keepalived
		// refuses is refused here too.
		var pr Report
		peer = kaRead(in.PeerPath, in.PeerData, &in, &pr)
		for _, e := range pr.Entries {
			if e.Outcome == Invalid {
				r.Entries = append(r.Entries, e)
			}
		}
		if id := strings.ToLower(peer.routerID); in.Peer == "" && nodeNameRE.MatchString(id) {
			in.Peer = id
		}
	}
	groups := conf.groups

	if len(conf.virtuals) > 0 {
		ld, vaddrs := kaVirtuals(conf.virtuals, add)
		k.Files[in.Name+".toml"] = ld
		var host *kaGroup
		for _, g := range groups {
			for _, a := range g.addrs {
				if vaddrs[a] && host == nil {
					host = g
				}
			}
		}
		switch {
		case host != nil:
		case len(groups) > 0:
			host = groups[0]
			r.add(in.Path, conf.virtuals[0].line, "virtual_server", Caveat, "no VRRP address of this file is a virtual server's: ldirectord::%s joins group %s", in.Name, host.name)
		default:
			host = &kaGroup{name: in.Name}
			groups = append(groups, host)
			r.add(in.Path, conf.virtuals[0].line, "virtual_server", Caveat, "no vrrp_instance: group %s runs only ldirectord::%s (keepalived loads IPVS on every node; Vigil directs from one)", host.name, in.Name)
		}
		host.lvs = true
		if conf.syncd != nil {
			k.Files[in.Name+".toml"] = append(ld, kaSyncTable(conf, host, r)...)
		}
	} else if conf.syncd != nil {
		kaAdd(r, conf.syncd.st, Caveat, "no virtual_server: no ldirectord instance whose connections to sync")
	}
	groups = slices.DeleteFunc(groups, func(g *kaGroup) bool {
		if len(g.vips) == 0 && !g.lvs {
			r.add(in.Path, 0, "vrrp_instance "+g.name, Caveat, "no virtual_ipaddress: no group")
			return true
		}
		return false
	})

	ha := kaPair(&in, conf, peer, groups, r)
	kaTiming(ha, conf, peer, r)
	if ha.pair() {
		o, note := pairNote(ha, fmt.Sprintf("keepalived: a backup that hears no advert for the master-down interval (%s here) becomes MASTER whatever silenced the master; with only the link cut, both routers hold the VIPs.", ha.deadtime),
			"`--ping-node IP` at import")
		r.add(in.Path, 0, "vrrp_instance", o, "%s", note)
	}
	if secret, ok := kaSecret(&in, conf, peer, r); ok {
		k.Files["authkeys"] = secret
	}
	kaMail(ha, conf, r)
	k.Files["ha.toml"] = ha.bytes()

	var t tomlWriter
	t.comment("resources.toml — imported from %s by `vigil import keepalived`.", in.Path)
	t.comment("Each vrrp_instance (each vrrp_sync_group) is a group; its virtual_ipaddress\nentries are IPaddr resources, announced with gratuitous ARP as keepalived does.\nnode is the router of the higher priority.")
	for _, g := range groups {
		t.WriteString("\n[[group]]\n")
		t.kv("", "name", g.name)
		if g.node == "" {
			g.node = in.Node
		}
		if g.node != "" {
			t.kv("", "node", g.node)
		}
		t.WriteString("resources = [\n")
		for _, p := range g.vips {
			keys := make([]string, 0, len(p))
			for key := range p {
				keys = append(keys, key)
			}
			sort.Strings(keys)
			var kv []string
			for _, key := range keys {
				kv = append(kv, key+" = "+quote(p[key]))
			}
			fmt.Fprintf(&t, "  { type = \"IPaddr\", params = { %s } },\n", strings.Join(kv, ", "))
		}
		if g.lvs {
			fmt.Fprintf(&t, "  { type = \"ldirectord\", params = { config = %s } },\n", quote(in.Name))
		}
		t.WriteString("]\n")
	}
	k.Files["resources.toml"] = []byte(t.String())
	return k, r.Err()
}

// kaRead parses one keepalived.conf into its groups, instances and
// virtual servers, reporting every statement to r.
func kaRead(path string, data []byte, in *KeepalivedInput, r *Report) *kaConf {
	c := &kaConf{path: path}
	top := kaParse(path, data, in, r, 0)
	add := func(st *kaNode, o Outcome, note string, a ...any) { kaAdd(r, st, o, note, a...) }
	instances := map[string]*kaNode{}
	var order []string
	sync := map[string]string{} // instance → sync group
	var syncOrder []string
	for _, st := range top {
		switch st.kw {
		case "global_defs":
			kaGlobals(st, c, add)
		case "vrrp_instance":
			if len(st.args) != 1 {
				add(st, Invalid, "vrrp_instance takes a name")
				continue
			}
			if instances[st.args[0]] != nil {
				add(st, Invalid, "vrrp_instance %s defined twice", st.args[0])
				continue
			}
			instances[st.args[0]] = st
			order = append(order, st.args[0])
		case "vrrp_sync_group":
			if len(st.args) != 1 {
				add(st, Invalid, "vrrp_sync_group takes a name")
				continue
			}
			syncOrder = append(syncOrder, st.args[0])
			for _, kid := range st.kids {
				switch kid.kw {
				case "group":
					for _, g := range kid.kids {
						sync[g.kw] = st.args[0]
					}
					add(kid, Mapped, "the instances fail over together: one Vigil group %s", st.args[0])
				default:
					add(kid, Unsupported, "sync group notify and tracking: use [[alert]] failover events and resource monitors")
				}
			}
			add(st, Mapped, "one group")
		case "virtual_server":
			if len(st.args) > 0 && st.args[0] == "group" {
				add(st, Unsupported, "virtual server groups: list each address as its own virtual service")
				continue
			}
			c.virtuals = append(c.virtuals, st)
		case "vrrp_script":
			add(st, Unsupported, "track scripts change VRRP priorities; in Vigil a check that should move the group is a resource in it (an OCF/LSB script), whose failed monitor moves the group")
		case "virtual_server_group":
			add(st, Unsupported, "virtual server groups: list each address as its own virtual service")
		case "static_ipaddress", "static_routes", "static_rules":
			add(st, Unsupported, "addresses and routes every node has belong in the system's network configuration")
		case "net_namespace", "linkbeat_use_polling", "instance":
			add(st, Unsupported, "not a cluster setting")
		default:
			unknownKeyword(st, add)
		}
	}

	// Groups: one per sync group, one per other instance, in file order.
	byName := map[string]*kaGroup{}
	seen := map[netip.Addr]string{} // VIP → its group
	for _, name := range order {
		gname := name
		if s := sync[name]; s != "" {
			gname = s
		}
		g := byName[gname]
		if g == nil {
			g = &kaGroup{name: groupNameRE.ReplaceAllString(gname, "_")}
			byName[gname] = g
			c.groups = append(c.groups, g)
		}
		v := kaInstance(instances[name], g, seen, add)
		g.vrrp = append(g.vrrp, v)
		c.instances = append(c.instances, v)
	}
	for _, v := range c.instances {
		switch {
		case v.syncKid == nil:
		case c.syncd != nil:
			add(v.syncKid, Caveat, "lvs_sync_daemon already names the sync interface: keepalived keeps that one")
		default:
			c.syncd = &kaSyncd{st: v.syncKid, iface: v.syncKid.args[0], inst: v.name, id: -1}
		}
	}
	for _, s := range syncOrder {
		if byName[s] == nil {
			r.add(path, 0, "vrrp_sync_group "+s, Caveat, "names no vrrp_instance of this file: no group")
		}
	}
	return c
}

func kaGlobals(st *kaNode, c *kaConf, add func(*kaNode, Outcome, string, ...any)) {
	add(st, Mapped, "")
	for _, kid := range st.kids {
		switch kid.kw {
		case "notification_email":
			for _, a := range kid.kids {
				c.mail = append(c.mail, a.kw)
			}
			c.mailKid = kid
		case "notification_email_from":
			c.mailFrom = strings.Join(kid.args, " ")
			add(kid, Mapped, "mail_from")
		case "smtp_server":
			if _, err := netip.ParseAddr(kid.arg()); err != nil && !kaHostRE.MatchString(kid.arg()) {
				add(kid, Invalid, "Invalid smtp server %q", kid.arg())
				continue
			}
			c.smtp = strings.Join(kid.args, " ")
			if len(kid.args) == 2 {
				c.smtp = kid.args[0] + ":" + kid.args[1]
			} else if len(kid.args) == 1 {
				c.smtp = net.JoinHostPort(kid.args[0], "25")
			}
			add(kid, Mapped, "smtp_relay = %q", c.smtp)
		case "router_id", "lvs_id":
			c.routerID = kid.arg()
			add(kid, Caveat, "this node's name: pass it as --node (and, read from the other router's file, its name unless --peer)")
		case "vrrp_version":
			if v, err := strconv.Atoi(kid.arg()); err == nil && (v == 2 || v == 3) {
				c.version = v
				add(kid, Mapped, "the master-down rule of VRRPv%d sets deadtime", v)
			} else {
				add(kid, Invalid, "vrrp_version is 2 or 3")
			}
		case "lvs_sync_daemon":
			if c.syncd != nil {
				add(kid, Caveat, "lvs_sync_daemon given twice: keepalived keeps the first")
				continue
			}
			c.syncd = kaSyncDaemon(kid, add)
		case "enable_script_security", "script_user":
			add(kid, Mapped, "Vigil runs scripts as root from root-owned plugin and alert directories")
		default:
			add(kid, Unsupported, "no Vigil counterpart (VRRP, IPVS sync or daemon tuning)")
		}
	}
}

// kaInstance maps one vrrp_instance into g and returns what it says of
// the router.
func kaInstance(st *kaNode, g *kaGroup, seen map[netip.Addr]string, add func(*kaNode, Outcome, string, ...any)) *kaVRRP {
	v := &kaVRRP{name: st.arg(), st: st, state: "BACKUP", prio: 100}
	garp := map[string]string{}
	var vipNodes []*kaNode
	for _, kid := range st.kids {
		arg := kid.arg()
		switch kid.kw {
		case "state":
			if arg != "MASTER" && arg != "BACKUP" {
				// keepalived -t refuses the file; running, it would
				// default to BACKUP.
				add(kid, Invalid, "unknown state %s: MASTER or BACKUP (keepalived's config test refuses it too)", arg)
				arg = "BACKUP"
			} else {
				add(kid, Mapped, "with the priorities, chooses the group's preferred node")
			}
			v.state = arg
		case "priority":
			p, err := strconv.Atoi(arg)
			if err != nil || p < 1 || p > 255 {
				add(kid, Invalid, "Priority not valid: 1..255 (keepalived's config test refuses it too; running, it would use 100)")
			} else {
				v.prio = p
				add(kid, Mapped, "the router of the higher priority is the group's preferred node (node =); the lower one's sets deadtime")
			}
		case "nopreempt":
			v.nopreempt = kid
		case "preempt_delay":
			if !kaNumber(arg, 0, 1000) {
				add(kid, Invalid, "preempt_delay %q: 0..1000 seconds", arg)
				continue
			}
			v.preemptDelay = kid
		case "interface":
			v.iface = arg
			add(kid, Mapped, "the IPaddr resources' nic")
		case "virtual_router_id":
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > 255 {
				add(kid, Invalid, "the virtual router id must be 1..255")
			} else {
				v.vrid = n
				add(kid, Mapped, "not needed: the group's name identifies it")
			}
		case "version":
			if n, err := strconv.Atoi(arg); err == nil && (n == 2 || n == 3) {
				v.version = n
				add(kid, Mapped, "the master-down rule of VRRPv%d sets deadtime", n)
			} else {
				add(kid, Invalid, "version is 2 or 3")
			}
		case "advert_int":
			a, err := strconv.ParseFloat(arg, 64)
			if err != nil || a <= 0 || a > 255 || math.IsNaN(a) {
				add(kid, Invalid, "advert_int %q: a number of seconds, up to 255", arg)
			} else {
				v.advert, v.advertKid = a, kid // said with the timing
			}
		case "authentication":
			add(kid, Mapped, "heartbeats are authenticated with HMAC-SHA256 keyed from the cluster secret in authkeys, not with VRRP's password")
			for _, a := range kid.kids {
				switch a.kw {
				case "auth_pass":
					// Only the first 8 characters count (keepalived
					// truncates): routers that agree there talk.
					v.authPass = a.arg()
					if len(v.authPass) > 8 {
						v.authPass = v.authPass[:8]
					}
					v.authKid = a
				case "auth_type":
					if a.arg() != "PASS" && a.arg() != "AH" {
						add(a, Invalid, "unknown authentication type %q: PASS or AH", a.arg())
						continue
					}
					add(a, Mapped, "PASS and AH alike: the password becomes the cluster secret")
				default:
					unknownKeyword(a, add)
				}
			}
		case "virtual_ipaddress":
			add(kid, Mapped, "IPaddr resources")
			vipNodes = append(vipNodes, kid.kids...)
		case "garp_master_repeat", "garp_master_delay", "garp_master_refresh":
			// keepalived's ranges: at least one GARP a burst; delays of
			// whole seconds, 0 for none.
			lo := map[string]int64{"garp_master_repeat": 1}[kid.kw]
			if !kaInteger(arg, lo, math.MaxInt32) {
				add(kid, Invalid, "%s %q: a whole number from %d", kid.kw, arg, lo)
				continue
			}
			switch kid.kw {
			case "garp_master_repeat":
				garp["arp_count"] = arg
				add(kid, Mapped, "arp_count")
			case "garp_master_delay":
				garp["arp_repeat"] = arg + "s"
				add(kid, Mapped, "arp_repeat (the second burst)")
			default:
				garp["arp_refresh"] = arg + "s"
				add(kid, Mapped, "arp_refresh")
			}
		case "unicast_src_ip", "mcast_src_ip":
			if _, err := netip.ParseAddr(arg); err != nil {
				add(kid, Invalid, "%s %q is not an address", kid.kw, arg)
				continue
			}
			v.src = arg
			add(kid, Mapped, "this node's [[nodes]] address")
		case "unicast_peer":
			bad := false
			for _, p := range kid.kids {
				if _, err := netip.ParseAddr(p.kw); err != nil {
					add(p, Invalid, "unicast_peer %q is not an address", p.kw)
					bad = true
					continue
				}
				v.peers = append(v.peers, p.kw)
			}
			if bad {
				continue
			}
			add(kid, Mapped, "the other node's [[nodes]] address, heartbeats by [[ucast]]")
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			add(kid, Unsupported, "Vigil's [[alert]] routes cannot run it as keepalived does: they run on the Raft leader, once per failover, with mon's argv (-s failover -g GROUP -h NODE -t TIME, then the line's words); keepalived runs notify_* on the router changing state with the configured words only, notify with INSTANCE NAME STATE PRIORITY appended. Adapt it into an alert script for an [[alert]] failover route, or make it a script resource of the group (run on the owner, with start/stop appended)")
		case "smtp_alert":
			add(kid, Mapped, "the [[alert]] mail route of notification_email tells failovers")
		case "track_interface":
			add(kid, Unsupported, "an interface's failure is seen by the IPaddr monitor (the group then moves) and by heartbeats on that link")
		case "track_script":
			add(kid, Unsupported, "make the check a resource of the group (see vrrp_script)")
		case "lvs_sync_daemon_interface":
			// keepalived's pre-1.2.19 form of lvs_sync_daemon IFACE THIS_INSTANCE;
			// reported where the [sync] table is written.
			if len(kid.args) != 1 || len(kid.args[0]) > 15 {
				add(kid, Invalid, "lvs_sync_daemon_interface takes one interface name")
			} else {
				v.syncKid = kid
			}
		default:
			if kaVRRPKeywords[kid.kw] {
				add(kid, Unsupported, "no Vigil counterpart (VRRP detail)")
			} else {
				unknownKeyword(kid, add)
			}
		}
	}
	if v.vrid == 0 && !slices.ContainsFunc(st.kids, func(k *kaNode) bool { return k.kw == "virtual_router_id" }) {
		// keepalived drops the instance (and its config test fails).
		add(st, Invalid, "the virtual router id must be set")
	}
	for _, vn := range vipNodes {
		p, addr, err := kaVIP(vn, v.iface)
		if err != nil {
			add(vn, Invalid, "%v", err)
			continue
		}
		if other, dup := seen[addr]; dup {
			add(vn, Caveat, "%s is already an address of group %s: one IPaddr", addr, other)
			continue
		}
		seen[addr] = g.name
		for k, val := range garp {
			p[k] = val
		}
		g.vips = append(g.vips, p)
		g.addrs = append(g.addrs, addr)
		note := "IPaddr " + p["ip"] + "/" + p["cidr_netmask"]
		if !strings.Contains(vn.kw, "/") {
			note += " (keepalived adds an address without a prefix as a host route: /32 or /128)"
			add(vn, Caveat, "%s", note)
		} else {
			add(vn, Mapped, "%s", note)
		}
	}
	return v
}

// kaPair names the pair's nodes and their addresses, the heartbeat
// media, each group's preferred node and auto_failback.
func kaPair(in *KeepalivedInput, conf, peer *kaConf, groups []*kaGroup, r *Report) *haFile {
	ha := &haFile{source: in.Path, tool: "keepalived", cluster: in.Cluster, node: in.Node, pings: in.PingNodes}
	if !nodeNameRE.MatchString(in.Node) {
		r.add(in.Path, 0, "--node", Invalid, "%q is not a node name: name this node (letters, digits, '.', '_', '-')", in.Node)
	}
	if in.Peer != "" && !nodeNameRE.MatchString(in.Peer) {
		r.add(in.Path, 0, "--peer", Invalid, "%q is not a node name (letters, digits, '.', '_', '-')", in.Peer)
	}
	if len(conf.instances) > 0 && in.Peer == "" {
		r.add(in.Path, 0, "vrrp_instance", Invalid, "a VRRP router has a peer: name the other node with --peer NAME (or give its file with --peer-conf and a router_id there)")
	}
	if in.Peer != "" && in.Peer == in.Node {
		r.add(in.Path, 0, "--peer", Invalid, "the other router %q is this node", in.Peer)
	}
	// Addresses: given, else what either file says of either router.
	var mySrc, myPeer, theirSrc, theirPeer []string
	for _, v := range conf.instances {
		mySrc, myPeer = appendNew(mySrc, v.src), appendNew(myPeer, v.peers...)
	}
	if peer != nil {
		for _, v := range peer.instances {
			theirSrc, theirPeer = appendNew(theirSrc, v.src), appendNew(theirPeer, v.peers...)
		}
	}
	if len(myPeer) > 1 {
		r.add(in.Path, 0, "unicast_peer", Invalid, "%d peers (%s): Vigil imports a pair of routers; write ha.toml's [[nodes]] for more by hand", len(myPeer), strings.Join(myPeer, " "))
	}
	addr := func(name string, from ...[]string) {
		a := in.Addresses[name]
		for _, f := range from {
			if a == "" && len(f) > 0 {
				a = f[0]
			}
		}
		switch ip, err := netip.ParseAddr(a); {
		case a == "":
			r.add(in.Path, 0, "node "+name, Invalid, "no address for %s: keepalived's multicast VRRP names none; give --address %s=IP (Vigil's heartbeats and Raft need it)", name, name)
		case err != nil:
			r.add(in.Path, 0, "node "+name, Invalid, "%q is not an IP address", a)
		case !ip.Unmap().Is4():
			r.add(in.Path, 0, "node "+name, Invalid, "%s: Vigil's heartbeats run over IPv4; give --address %s=IPv4", a, name)
		}
		ha.nodes = append(ha.nodes, haNode{name, a})
	}
	addr(in.Node, mySrc, theirPeer)
	if in.Peer != "" && in.Peer != in.Node {
		addr(in.Peer, myPeer, theirSrc)
	}
	// Both nodes' files list the nodes alike (placement's last resort
	// is the first eligible node).
	slices.SortFunc(ha.nodes, func(a, b haNode) int { return strings.Compare(a.name, b.name) })
	// Media: unicast between the nodes' addresses; and, where VRRP
	// advertised by multicast on an interface, broadcasts there, so that
	// heartbeats travel every link the adverts did.
	ha.media = append(ha.media, hbMedium{kind: "ucast", port: config.DefaultPort})
	var ifaces []string
	for _, v := range conf.instances {
		if len(v.peers) == 0 && v.iface != "" {
			ifaces = appendNew(ifaces, v.iface)
		}
	}
	for _, i := range ifaces {
		ha.media = append(ha.media, hbMedium{kind: "bcast", iface: i, port: config.DefaultPort})
	}

	// The preferred node: the router of the higher priority (the one
	// keepalived makes master when both run); the group fails back to it
	// when it preempts.
	var preempt []bool
	groupPreempts := map[*kaVRRP]bool{}
	for _, g := range groups {
		if len(g.vrrp) == 0 {
			continue
		}
		mine := g.vrrp[0]
		var theirs *kaVRRP
		if peer != nil {
			theirs = peer.find(mine)
		}
		pref := mine
		switch {
		case in.Peer == "":
			g.node = in.Node
		case theirs != nil && (theirs.prio > mine.prio || theirs.prio == mine.prio && theirs.state == "MASTER" && mine.state != "MASTER"):
			g.node, pref = in.Peer, theirs
			kaAdd(r, mine.st, Mapped, "group %s prefers %s: priority %d there, %d here", g.name, in.Peer, theirs.prio, mine.prio)
		case theirs != nil:
			g.node = in.Node
			o, why := Mapped, ""
			if theirs.prio == mine.prio && theirs.state == mine.state {
				o, why = Caveat, " (equal priorities and states: keepalived elects the router with the higher address; Vigil the node named here)"
			}
			kaAdd(r, mine.st, o, "group %s prefers %s: priority %d here, %d there%s", g.name, in.Node, mine.prio, theirs.prio, why)
		case mine.state == "MASTER" || mine.prio == 255:
			g.node = in.Node
			kaAdd(r, mine.st, Mapped, "group %s prefers %s: it starts as MASTER here (the other router's file, --peer-conf, would confirm by its priority)", g.name, in.Node)
		default:
			g.node = in.Peer
			kaAdd(r, mine.st, Caveat, "group %s prefers %s: BACKUP here, so the other router is taken to have the higher priority (--peer-conf reads it)", g.name, in.Peer)
		}
		// keepalived clears nopreempt on an instance that starts as
		// MASTER ("nopreempt will not work with initial state MASTER").
		p := pref.nopreempt == nil || pref.state == "MASTER"
		if theirs == nil && pref != mine {
			p = mine.nopreempt == nil // the other router is taken to be set like this one
		}
		preempt = append(preempt, p)
		for _, v := range g.vrrp {
			groupPreempts[v] = p
		}
	}
	// What became of each instance's nopreempt and preempt_delay.
	for _, v := range conf.instances {
		p, grouped := groupPreempts[v]
		if d := v.nopreempt; d != nil {
			switch {
			case !grouped:
				kaAdd(r, d, Caveat, "its instance makes no group")
			case v.state == "MASTER":
				kaAdd(r, d, Caveat, "keepalived clears it with state MASTER (\"nopreempt will not work with initial state MASTER\"): the group fails back")
			case p:
				kaAdd(r, d, Caveat, "not this router's to use: the other router, of the higher priority, preempts, so auto_failback = true")
			default:
				kaAdd(r, d, Mapped, "auto_failback = false: the group stays where it runs when its preferred node comes back")
			}
		}
		if d := v.preemptDelay; d != nil {
			switch {
			case !grouped:
				kaAdd(r, d, Caveat, "its instance makes no group")
			case p:
				kaAdd(r, d, Caveat, "auto_failback = true fails the group back as soon as its preferred node is online again, without keepalived's delay of %s s", d.arg())
			default:
				kaAdd(r, d, Mapped, "no failback (nopreempt): no delay to keep")
			}
		}
	}
	if len(preempt) > 0 {
		fb := !slices.Contains(preempt, false)
		if !fb && slices.Contains(preempt, true) {
			r.add(in.Path, 0, "nopreempt", Caveat, "some instances preempt and some do not: auto_failback is one setting for the cluster, false here")
		}
		ha.autoFailback = &fb
	}
	return ha
}

// kaAdd reports statement st.
func kaAdd(r *Report, st *kaNode, o Outcome, note string, a ...any) {
	r.add(st.file, st.line, strings.TrimSpace(st.kw+" "+strings.Join(st.args, " ")), o, note, a...)
}

// appendNew appends the values of vs not yet in list (nor empty).
func appendNew(list []string, vs ...string) []string {
	for _, v := range vs {
		if v != "" && !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

// kaTiming sets keepalive from advert_int and deadtime from VRRP's
// master-down rule at the backup's priority: a Vigil node declares its
// peer dead when keepalived's backup would have become master, and no
// sooner than Vigil's lease allows.
func kaTiming(ha *haFile, conf, peer *kaConf, r *Report) {
	var ka, dead float64
	var at *kaVRRP
	var why string
	for _, v := range conf.instances {
		a := conf.advertOf(v)
		if v.advertKid != nil && a != v.advert {
			kaAdd(r, v.advertKid, Caveat, "VRRPv2 advertises in whole seconds: keepalived rounds it to %g", a)
		}
		backup, where := v.prio, "this router's"
		var theirs *kaVRRP
		if peer != nil {
			theirs = peer.find(v)
		}
		if theirs != nil {
			a = min(a, peer.advertOf(theirs))
			if theirs.prio < backup {
				backup, where = theirs.prio, "the other router's"
			}
		}
		if ka == 0 || a < ka {
			ka = a
		}
		ver := conf.versionOf(v)
		if md := masterDown(a, backup, ver); md > dead {
			dead, at = md, v
			skew := fmt.Sprintf("(256 − %d)/256 s", backup)
			if ver == 3 {
				skew = fmt.Sprintf("(256 − %d)/256 × advert_int", backup)
			}
			why = fmt.Sprintf("VRRPv%d's master-down interval at %s priority %d, the backup's: 3 × advert_int + %s", ver, where, backup, skew)
			switch {
			case peer == nil:
				why += " (the other router's priority is unknown: --peer-conf reads it, so that both nodes get the same deadtime)"
			case theirs == nil:
				why += " (the other router's file has no such instance)"
			}
		}
	}
	if at == nil {
		return // no VRRP: Vigil's defaults
	}
	ha.keepalive, ha.deadtime = seconds(ka), seconds(dead)
	for _, v := range conf.instances {
		if conf.advertOf(v) != ka && v.advertKid != nil {
			kaAdd(r, v.advertKid, Caveat, "Vigil has one beat and one deadtime for the whole cluster: keepalive = %q, the shortest advert_int; deadtime the longest master-down interval", ha.keepalive)
		}
	}
	st := at.advertKid
	if st == nil { // keepalived's default, 1 s
		st = &kaNode{kw: "advert_int", file: at.st.file, line: at.st.line}
	}
	least := timing.DefaultDeadtime(ha.keepalive)
	if ha.deadtime < least {
		kaAdd(r, st, Caveat, "keepalive = %q; keepalived's backup takes over after %s (%s), but Vigil's lease (deadtime less half a keepalive) must last %d keepalives not to lapse between echoes: deadtime = %q",
			ha.keepalive, ha.deadtime, why, timing.SteadyLeaseBeats, least)
		ha.comments = append(ha.comments, fmt.Sprintf("keepalive is advert_int; deadtime the least Vigil's lease needs, above keepalived's\nmaster-down interval, %s: %s.", ha.deadtime, why))
		ha.deadtime = least
	} else {
		kaAdd(r, st, Mapped, "keepalive = %q; deadtime = %q: %s", ha.keepalive, ha.deadtime, why)
		ha.comments = append(ha.comments, fmt.Sprintf("keepalive is advert_int; deadtime keepalived's master-down interval:\n%s.", why))
	}
}

// kaSecret returns authkeys: the file given, else auth_pass, which both
// routers must share.
func kaSecret(in *KeepalivedInput, conf, peer *kaConf, r *Report) ([]byte, bool) {
	var pass string
	var kid *kaNode
	for _, v := range conf.instances {
		if v.authKid == nil {
			continue
		}
		// Never the password itself in the report.
		shown := &kaNode{kw: "auth_pass", file: v.authKid.file, line: v.authKid.line}
		switch {
		case in.Authkeys != nil:
			kaAdd(r, shown, Caveat, "not used: the cluster secret is the authkeys file given (--authkeys)")
		case kid == nil:
			pass, kid = v.authPass, shown
		case v.authPass != pass:
			kaAdd(r, shown, Caveat, "differs from the first auth_pass (line %d): Vigil has one cluster secret, that one", kid.line)
		default:
			kaAdd(r, shown, Mapped, "the cluster secret, as above")
		}
	}
	if in.Authkeys != nil {
		if _, _, err := config.ParseAuthkeys(in.AuthkeysPath, in.Authkeys); err != nil {
			r.add(in.AuthkeysPath, 0, "authkeys", Invalid, "%v", err)
			return nil, false
		}
		r.add(in.AuthkeysPath, 0, "authkeys", Mapped, "the cluster secret, copied (mode 0600)")
		return in.Authkeys, true
	}
	if kid == nil {
		r.add(in.Path, 0, "authentication", Invalid, "no auth_pass, and Vigil's heartbeats need a secret both nodes share: write one once (printf 'auth 1\\n1 sha256 %%s\\n' \"$(openssl rand -hex 32)\" > authkeys; chmod 600 authkeys) and pass --authkeys FILE to both nodes' imports")
		return nil, false
	}
	if peer != nil {
		for _, v := range peer.instances {
			if v.authKid != nil && v.authPass != pass {
				r.add(peer.path, v.authKid.line, "auth_pass", Invalid, "differs from this router's: keepalived drops each other's adverts (both routers become MASTER); Vigil's nodes would not hear each other either")
				return nil, false
			}
		}
	}
	if strings.ContainsAny(pass, "#") {
		kaAdd(r, kid, Invalid, "the password holds '#', which Vigil's authkeys reads as a comment: choose another, or pass --authkeys FILE")
		return nil, false
	}
	kaAdd(r, kid, Caveat, "the cluster secret in authkeys (mode 0600; its first 8 characters, as keepalived uses): a VRRP password is short, and Vigil warns below 16 characters — a longer random secret on both nodes (--authkeys FILE) is better")
	return authkeysFile(pass), true
}

// kaMail routes keepalived's mail (notification_email, smtp_server,
// notification_email_from) through an [[alert]] mail route.
func kaMail(ha *haFile, conf *kaConf, r *Report) {
	ha.smtpRelay, ha.mailFrom = conf.smtp, conf.mailFrom
	if conf.mailKid == nil {
		return
	}
	if len(conf.mail) == 0 {
		kaAdd(r, conf.mailKid, Caveat, "no address: no mail route")
		return
	}
	ha.alerts = append(ha.alerts, haAlert{events: []string{"failover", "node", "realserver"}, send: []string{"mail " + strings.Join(conf.mail, " ")}})
	kaAdd(r, conf.mailKid, Caveat, "[[alert]] route: mail on failovers, nodes lost and back, real servers (keepalived mails each router's state changes and checker changes); Vigil's Raft leader sends each cluster event once")
}

// kaVIP reads "IP[/len] [dev X] [brd B] [label L] [scope S]...".
func kaVIP(v *kaNode, iface string) (map[string]string, netip.Addr, error) {
	p := map[string]string{}
	var addr netip.Addr
	if pfx, err := netip.ParsePrefix(v.kw); err == nil {
		addr = pfx.Addr()
		p["cidr_netmask"] = strconv.Itoa(pfx.Bits())
	} else if a, err := netip.ParseAddr(v.kw); err == nil {
		addr = a
		p["cidr_netmask"] = strconv.Itoa(a.BitLen())
	} else {
		return nil, addr, fmt.Errorf("%q is not an address", v.kw)
	}
	p["ip"] = addr.String()
	if iface != "" {
		p["nic"] = iface
	}
	for i := 0; i+1 < len(v.args); i += 2 {
		switch v.args[i] {
		case "dev":
			p["nic"] = v.args[i+1]
		case "brd":
			p["broadcast"] = v.args[i+1]
		case "label":
			p["label"] = v.args[i+1]
		case "scope", "no_track", "preferred_lft":
		default:
			return nil, addr, fmt.Errorf("virtual_ipaddress option %q is not supported", v.args[i])
		}
	}
	return p, addr, nil
}

// kaVirtuals writes the ldirectord instance for the virtual servers and
// returns their addresses.
func kaVirtuals(vs []*kaNode, add func(*kaNode, Outcome, string, ...any)) ([]byte, map[netip.Addr]bool) {
	addrs := map[netip.Addr]bool{}
	var t tomlWriter
	t.comment("Imported from keepalived's virtual_server blocks by `vigil import keepalived`.")
	t.kv("", "backend", "auto")
	t.comment("keepalived's checks retry once by default (retry 1): one failure removes a real.")
	t.kv("", "failurecount", 1)
	for _, v := range vs {
		t.WriteString("\n[[virtual]]\n")
		switch {
		case len(v.args) == 2 && v.args[0] == "fwmark":
			t.WriteString("fwmark = " + v.args[1] + "\n")
			add(v, Mapped, "[[virtual]] fwmark")
		case len(v.args) == 2:
			a, err := netip.ParseAddr(v.args[0])
			if err != nil {
				add(v, Invalid, "%q is not an address", v.args[0])
				continue
			}
			addrs[a] = true
			t.kv("", "address", netip.AddrPortFrom(a, kaPort(v.args[1])).String())
			add(v, Mapped, "[[virtual]]")
		default:
			add(v, Invalid, "virtual_server IP PORT | fwmark N")
			continue
		}
		// Vigil checks every real of a virtual service alike: the first
		// real's checker is the service's.
		written := map[string]bool{}
		raw := func(k, v string) { // the first value of a key stands
			if !written[k] {
				written[k] = true
				t.WriteString(k + " = " + v + "\n")
			}
		}
		key := func(k string, v any) { raw(k, tomlValue(v)) }
		var check []string
		for _, rs := range v.kids {
			if rs.kw != "real_server" {
				continue
			}
			for _, kid := range rs.kids {
				if kaCheckers[kid.kw] && check == nil {
					check = kaCheck(kid, add)
				}
			}
			break
		}
		for i := 0; i+1 < len(check); i += 2 {
			raw(check[i], check[i+1])
		}
		key("checktype", "connect")
		method := "masq" // keepalived's default is NAT
		var reals []*kaNode
		sched := "wlc" // keepalived's default; a flag reads the scheduler set before it
		for _, kid := range v.kids {
			arg := kid.arg()
			switch kid.kw {
			case "mh-port", "mh-fallback", "flag-1", "flag-2":
				// keepalived sets IP_VS_SVC_F_SCHED2 (mh-port, flag-2)
				// or SCHED1 (mh-fallback, flag-1) when the scheduler
				// named before the flag is mh, and ignores it otherwise.
				if sched != "mh" {
					add(kid, Caveat, "%s only applies to the mh scheduler here: ignored (keepalived ignores it too)", kid.kw)
					continue
				}
				k := map[string]string{"mh-port": "mh_port", "flag-2": "mh_port", "mh-fallback": "mh_fallback", "flag-1": "mh_fallback"}[kid.kw]
				key(k, true)
				add(kid, Mapped, "%s = true", k)
			case "delay_loop":
				if !kaNumber(arg, 1e-6, math.MaxUint32) {
					add(kid, Invalid, "virtual server delay loop %q invalid: a number of seconds above 0", arg)
					continue
				}
				key("checkinterval", arg+"s")
				add(kid, Mapped, "checkinterval")
			case "lb_algo", "lvs_sched":
				if !slices.Contains(director.Schedulers, arg) {
					// keepalived -t refuses it; running, it would fall
					// back to wlc.
					add(kid, Invalid, "Invalid lvs_scheduler %q (keepalived's config test refuses it too)", arg)
					continue
				} else {
					add(kid, Mapped, "scheduler")
				}
				if !written["scheduler"] {
					sched = arg
				}
				key("scheduler", arg)
			case "lb_kind", "lvs_method":
				m := map[string]string{"NAT": "masq", "DR": "gate", "TUN": "ipip"}[arg]
				if m == "" {
					add(kid, Invalid, "unknown [%s] routing method", arg)
					continue
				}
				method = m
				add(kid, Mapped, "forward = %s on every real", m)
			case "persistence_timeout":
				if arg == "" {
					arg = "360"
				}
				if !kaInteger(arg, 1, 2678400) {
					add(kid, Invalid, "persistence_timeout %q: 1..2678400 seconds", arg)
					continue
				}
				key("persistent", arg+"s")
				add(kid, Mapped, "persistent")
			case "persistence_granularity":
				key("netmask", arg)
				add(kid, Mapped, "netmask")
			case "protocol":
				if v.args[0] == "fwmark" {
					add(kid, Caveat, "protocol specified for fwmark - protocol will be ignored (keepalived says so too)")
					continue
				}
				if arg != "TCP" && arg != "UDP" {
					// keepalived also takes SCTP; Vigil's director
					// balances TCP and UDP.
					add(kid, Invalid, "protocol %s: TCP or UDP here (keepalived also takes SCTP)", arg)
					continue
				}
				key("protocol", strings.ToLower(arg))
				add(kid, Mapped, "protocol")
			case "sorry_server":
				if len(kid.args) == 2 {
					key("fallback", kid.args[0]+":"+kid.args[1]+" masq")
					add(kid, Caveat, "fallback: used while no real is up (keepalived: when the quorum is lost)")
				} else {
					add(kid, Invalid, "sorry_server IP PORT")
				}
			case "inhibit_on_failure":
				key("quiescent", true)
				add(kid, Mapped, "quiescent = true")
			case "real_server":
				reals = append(reals, kid)
			case "virtualhost":
				key("virtualhost", arg)
				add(kid, Mapped, "virtualhost")
			default:
				add(kid, Unsupported, "no Vigil counterpart (quorum, hysteresis, alpha/omega, ha_suspend…)")
			}
		}
		first := true
		for _, rs := range reals {
			if len(rs.args) != 2 && !(len(rs.args) == 1 && v.args[0] == "fwmark") {
				add(rs, Invalid, "real_server IP PORT")
				continue
			}
			a, err := netip.ParseAddr(rs.args[0])
			if err != nil {
				add(rs, Invalid, "%q is not an address", rs.args[0])
				continue
			}
			if va, err := netip.ParseAddr(v.args[0]); err == nil && va.Is4() != a.Is4() {
				// keepalived skips it (and its config test fails).
				add(rs, Invalid, "Address family of virtual server and real server %s don't match", a)
				continue
			}
			weight := 1
			for _, kid := range rs.kids {
				if kaCheckers[kid.kw] {
					if !first {
						add(kid, Caveat, "Vigil checks every real of a virtual service alike: the first real's check applies")
					}
					continue
				}
				switch kid.kw {
				case "weight":
					// keepalived takes 0..2147483647; IPVS (and so
					// Vigil's director) 0..65535.
					if w, err := strconv.Atoi(strings.Join(kid.args, "")); err == nil && w >= 0 && w <= 65535 {
						weight = w
						add(kid, Mapped, "weight")
					} else {
						add(kid, Invalid, "weight: a number of 0..65535 (IPVS's range)")
					}
				case "inhibit_on_failure":
					add(kid, Caveat, "quiescent is per virtual service in Vigil")
				default:
					add(kid, Unsupported, "no Vigil counterpart (notify_up/down: use [[alert]] realserver events)")
				}
			}
			first = false
			t.WriteString("  [[virtual.real]]\n")
			if len(rs.args) == 1 {
				t.kv("  ", "address", a.String()) // fwmark: the packet's port
			} else {
				t.kv("  ", "address", netip.AddrPortFrom(a, kaPort(rs.args[1])).String())
			}
			t.kv("  ", "forward", method)
			t.kv("  ", "weight", weight)
			add(rs, Mapped, "[[virtual.real]]")
		}
	}
	return []byte(t.String()), addrs
}

// kaVRRPKeywords are vrrp_instance keywords keepalived 2.2.7 knows that
// have no Vigil counterpart (others are unknown to keepalived too).
var kaVRRPKeywords = wordSet(`virtual_ipaddress_excluded virtual_routes virtual_rules version dont_track_primary accept no_accept
		use_vmac vmac_xmit_base strict_mode native_ipv6 debug garp_lower_prio_delay garp_lower_prio_repeat
		garp_master_refresh_repeat lower_prio_no_advert higher_prio_send_advert kernel_rx_buf_size track_file track_process track_bfd
		unicast_ttl check_unicast_src old_unicast_checksum skip_check_adv_addr notify_master_rx_lower_pri notify_deleted
		promote_secondaries linkbeat_use_polling mcast_dst_ip notify_priority_changes`)

var kaCheckers = wordSet("TCP_CHECK HTTP_GET SSL_GET MISC_CHECK SMTP_CHECK DNS_CHECK")

func wordSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

func kaPort(s string) uint16 {
	p, _ := strconv.ParseUint(s, 10, 16)
	return uint16(p)
}

// kaCheck maps a checker block to the virtual's check keys (TOML-ready
// key, value pairs; a key's first value stands).
func kaCheck(c *kaNode, add func(*kaNode, Outcome, string, ...any)) []string {
	var out []string
	set := func(k string, v any) { out = append(out, k, tomlValue(v)) }
	switch c.kw {
	case "TCP_CHECK":
		set("checktype", "connect")
	case "HTTP_GET", "SSL_GET":
		set("checktype", "negotiate")
		set("service", map[string]string{"HTTP_GET": "http", "SSL_GET": "https"}[c.kw])
	case "SMTP_CHECK":
		set("checktype", "negotiate")
		set("service", "smtp")
	case "DNS_CHECK":
		set("checktype", "negotiate")
		set("service", "dns")
	case "MISC_CHECK":
		set("checktype", "external")
	}
	add(c, Mapped, "the virtual service's check")
	for _, kid := range c.kids {
		arg := strings.Join(kid.args, " ")
		switch kid.kw {
		case "connect_timeout":
			if c.kw == "MISC_CHECK" { // its timeout is misc_timeout
				unknownKeyword(kid, add)
				continue
			}
			if !kaNumber(arg, 1e-6, math.MaxUint32) {
				add(kid, Invalid, "connect_timeout %q invalid: a number of seconds above 0", arg)
				continue
			}
			set("checktimeout", arg+"s")
			add(kid, Mapped, "checktimeout")
		case "connect_port":
			if n, err := strconv.Atoi(arg); err == nil {
				set("checkport", n)
				add(kid, Mapped, "checkport")
			}
		case "url":
			for _, u := range kid.kids {
				ua := strings.Join(u.args, " ")
				switch u.kw {
				case "path":
					set("request", ua)
					add(u, Mapped, "request")
				case "digest":
					set("digest", ua)
					add(u, Mapped, "digest (MD5 of the body, as genhash prints it)")
				case "status_code":
					if !kaStatusCodes(u.args) {
						add(u, Invalid, "Invalid HTTP_GET status code %q: codes or ranges of 100..599", ua)
						continue
					}
					set("status", u.args)
					add(u, Mapped, "status")
				case "virtualhost":
					set("virtualhost", ua)
					add(u, Mapped, "virtualhost")
				default:
					add(u, Unsupported, "no Vigil counterpart")
				}
			}
		case "misc_path":
			set("checkcommand", arg)
			add(kid, Caveat, "checkcommand: Vigil calls it with VIP VPORT RIP RPORT appended, as ldirectord does")
		case "misc_timeout":
			set("checktimeout", arg+"s")
			add(kid, Mapped, "checktimeout")
		case "retry", "nb_get_retry":
			if n, err := strconv.Atoi(arg); err == nil && n > 0 {
				set("failurecount", n)
				add(kid, Mapped, "failurecount")
			}
		case "delay_before_retry":
			add(kid, Caveat, "a failed check is retried at the next checkinterval")
		case "type":
			if !slices.Contains([]string{"A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"}, arg) {
				add(kid, Invalid, "Unknown DNS check type %s", arg)
				continue
			}
			set("dnstype", strings.ToUpper(arg))
			add(kid, Mapped, "dnstype")
		case "name", "helo_name":
			add(kid, Caveat, "Vigil asks for the query name in the request key, HELO with its own host name")
		default:
			add(kid, Unsupported, "no Vigil counterpart")
		}
	}
	return out
}

// kaNumber is keepalived's read of a decimal number in lo..hi.
func kaNumber(s string, lo, hi float64) bool {
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && !math.IsNaN(f) && f >= lo && f <= hi
}

// kaInteger is keepalived's read of a whole number in lo..hi.
func kaInteger(s string, lo, hi int64) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n >= lo && n <= hi
}

// kaStatusCodes checks HTTP_GET's status_code list: codes and ranges
// (200-299) of 100..599.
func kaStatusCodes(args []string) bool {
	if len(args) == 0 {
		return false
	}
	for _, a := range args {
		lo, hi, isRange := strings.Cut(a, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
			return false
		}
	}
	return true
}

// kaHostRE is a host name's syntax.
var kaHostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
