package legacy

import (
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// KeepalivedInput is one node's keepalived.conf and how to reach the
// files it includes.
type KeepalivedInput struct {
	Path string
	Data []byte
	// Node is this node's name in Vigil: the preferred node of the
	// instances keepalived starts as MASTER here.
	Node string
	// Name is the ldirectord instance the virtual servers become
	// (NAME.toml, ldirectord::NAME).
	Name string
	// ReadFile and Glob resolve include directives (nil: includes are
	// reported, not read).
	ReadFile func(string) ([]byte, error)
	Glob     func(string) ([]string, error)
}

// Keepalived is the result: resources.toml and the ldirectord instance.
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
	name      string
	preferred bool
	vips      []map[string]string // IPaddr params
	addrs     []netip.Addr
	lvs       bool
}

// ImportKeepalived reads one node's keepalived.conf: its VRRP instances
// become groups of IPaddr resources (a vrrp_sync_group one group), its
// virtual servers one ldirectord instance in the group whose addresses
// they use. Membership, timing and the secret have no counterpart to
// read here (VRRP knows its peers by address only): the report says
// which ha.toml settings to write.
func ImportKeepalived(in KeepalivedInput) (*Keepalived, error) {
	if in.Name == "" {
		in.Name = "lvs"
	}
	k := &Keepalived{Files: map[string][]byte{}}
	r := &k.Report
	top := kaParse(in.Path, in.Data, &in, r, 0)
	add := func(st *kaNode, o Outcome, note string, a ...any) {
		r.add(st.file, st.line, strings.TrimSpace(st.kw+" "+strings.Join(st.args, " ")), o, note, a...)
	}
	instances := map[string]*kaNode{}
	var order []string
	sync := map[string]string{} // instance → sync group
	var syncOrder []string
	var virtuals []*kaNode
	for _, st := range top {
		switch st.kw {
		case "global_defs":
			kaGlobals(st, add)
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
			virtuals = append(virtuals, st)
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
	var groups []*kaGroup
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
			groups = append(groups, g)
		}
		kaInstance(instances[name], g, seen, add)
	}
	for _, s := range syncOrder {
		if byName[s] == nil {
			r.add(in.Path, 0, "vrrp_sync_group "+s, Caveat, "names no vrrp_instance of this file: no group")
		}
	}

	if len(virtuals) > 0 {
		ld, vaddrs := kaVirtuals(virtuals, add)
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
			r.add(in.Path, virtuals[0].line, "virtual_server", Caveat, "no VRRP address of this file is a virtual server's: ldirectord::%s joins group %s", in.Name, host.name)
		default:
			host = &kaGroup{name: in.Name}
			groups = append(groups, host)
			r.add(in.Path, virtuals[0].line, "virtual_server", Caveat, "no vrrp_instance: group %s runs only ldirectord::%s (keepalived loads IPVS on every node; Vigil directs from one)", host.name, in.Name)
		}
		host.lvs = true
	}

	groups = slices.DeleteFunc(groups, func(g *kaGroup) bool {
		if len(g.vips) == 0 && !g.lvs {
			r.add(in.Path, 0, "vrrp_instance "+g.name, Caveat, "no virtual_ipaddress: no group")
			return true
		}
		return false
	})
	var t tomlWriter
	t.comment("resources.toml — imported from %s by `vigil import keepalived`.", in.Path)
	t.comment("Each vrrp_instance (each vrrp_sync_group) is a group; its virtual_ipaddress\nentries are IPaddr resources, announced with gratuitous ARP as keepalived does.")
	for _, g := range groups {
		t.WriteString("\n[[group]]\n")
		t.kv("", "name", g.name)
		if in.Node != "" {
			if !g.preferred {
				r.add(in.Path, 0, "vrrp_instance "+g.name, Caveat, "BACKUP on this node: node = %q is a guess; name the node whose keepalived starts it as MASTER (the highest priority)", in.Node)
			}
			t.kv("", "node", in.Node)
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

func kaGlobals(st *kaNode, add func(*kaNode, Outcome, string, ...any)) {
	add(st, Mapped, "")
	for _, kid := range st.kids {
		switch kid.kw {
		case "notification_email":
			var to []string
			for _, a := range kid.kids {
				to = append(to, a.kw)
			}
			add(kid, Caveat, "write in ha.toml: [[alert]] events = [\"failover\", \"node\", \"realserver\"] send = [\"mail %s\"]", strings.Join(to, ","))
		case "notification_email_from":
			add(kid, Caveat, "write in ha.toml: mail_from = %q", strings.Join(kid.args, " "))
		case "smtp_server":
			relay := strings.Join(kid.args, " ")
			if len(kid.args) == 2 {
				relay = kid.args[0] + ":" + kid.args[1]
			} else if len(kid.args) == 1 {
				relay = kid.args[0] + ":25"
			}
			add(kid, Caveat, "write in ha.toml: smtp_relay = %q", relay)
		case "router_id", "lvs_id":
			add(kid, Caveat, "this node's name: pass it as --node (and [[nodes]] name in ha.toml)")
		case "enable_script_security", "script_user":
			add(kid, Mapped, "Vigil runs scripts as root from root-owned plugin and alert directories")
		default:
			add(kid, Unsupported, "no Vigil counterpart (VRRP, IPVS sync or daemon tuning)")
		}
	}
}

// kaInstance maps one vrrp_instance into g.
func kaInstance(st *kaNode, g *kaGroup, seen map[netip.Addr]string, add func(*kaNode, Outcome, string, ...any)) {
	iface := ""
	garp := map[string]string{}
	state := "BACKUP"
	var vipNodes []*kaNode
	prio, advert := 100, 0.0
	var advertKid *kaNode
	for _, kid := range st.kids {
		arg := kid.arg()
		switch kid.kw {
		case "state":
			if arg != "MASTER" && arg != "BACKUP" {
				add(kid, Caveat, "unknown state %s, defaulting to BACKUP (keepalived does the same)", arg)
				arg = "BACKUP"
			} else {
				add(kid, Mapped, "MASTER: this node (--node) is the group's preferred node")
			}
			state = arg
		case "priority":
			p, err := strconv.Atoi(arg)
			if err != nil || p < 1 || p > 255 {
				add(kid, Caveat, "Priority not valid: keepalived uses 100")
				p = 100
			} else {
				prio = p
				add(kid, Caveat, "VRRP elects by priority; Vigil places the group on its preferred node (node =) and, with auto_failback = true, moves it back there")
			}
		case "nopreempt":
			add(kid, Caveat, "write in ha.toml: auto_failback = false (Vigil's default)")
		case "preempt_delay":
			add(kid, Unsupported, "a failback happens once the preferred node is back and the group stopped elsewhere")
		case "interface":
			iface = arg
			add(kid, Mapped, "the IPaddr resources' nic")
		case "virtual_router_id":
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > 255 {
				add(kid, Invalid, "the virtual router id must be 1..255")
			} else {
				add(kid, Mapped, "not needed: the group's name identifies it")
			}
		case "advert_int":
			v, err := strconv.ParseFloat(arg, 64)
			if err != nil || v <= 0 {
				add(kid, Invalid, "advert_int %q: a number of seconds", arg)
			} else {
				advert, advertKid = v, kid // said once the priority is known
			}
		case "authentication":
			add(kid, Mapped, "every Vigil heartbeat is authenticated with the authkeys secret (HMAC-SHA256), not VRRP's 8-character password")
		case "virtual_ipaddress":
			add(kid, Mapped, "IPaddr resources")
			vipNodes = append(vipNodes, kid.kids...)
		case "garp_master_repeat":
			garp["arp_count"] = arg
			add(kid, Mapped, "arp_count")
		case "garp_master_delay":
			garp["arp_repeat"] = arg + "s"
			add(kid, Mapped, "arp_repeat (the second burst)")
		case "garp_master_refresh":
			garp["arp_refresh"] = arg + "s"
			add(kid, Mapped, "arp_refresh")
		case "unicast_src_ip", "mcast_src_ip":
			add(kid, Caveat, "this node's address: its [[nodes]] address in ha.toml")
		case "unicast_peer":
			var peers []string
			for _, p := range kid.kids {
				peers = append(peers, p.kw)
			}
			add(kid, Caveat, "the other nodes' [[nodes]] addresses in ha.toml (and a [[ucast]] medium): %s", strings.Join(peers, " "))
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			add(kid, Unsupported, "state-change scripts: route [[alert]] events = [\"failover\"] to an alert script, or make the script a resource of the group (it then runs in order, with start and stop)")
		case "smtp_alert":
			add(kid, Caveat, "use [[alert]] failover events with a mail sender")
		case "track_interface":
			add(kid, Unsupported, "an interface's failure is seen by the IPaddr monitor (the group then moves) and by heartbeats on that link")
		case "track_script":
			add(kid, Unsupported, "make the check a resource of the group (see vrrp_script)")
		default:
			if kaVRRPKeywords[kid.kw] {
				add(kid, Unsupported, "no Vigil counterpart (VRRP detail)")
			} else {
				unknownKeyword(kid, add)
			}
		}
	}
	if advertKid != nil {
		// VRRPv3's master-down interval: 3 × advert_int plus a skew of
		// (256 − priority)/256 × advert_int (this node's priority).
		ms := func(s float64) string { return fmt.Sprintf("%dms", int(math.Round(s*1000))) }
		ka := time.Duration(advert * float64(time.Second))
		add(advertKid, Caveat, "write in ha.toml: keepalive = %q and leave deadtime out (%s, 3.5 × keepalive, VRRP's master-down; here keepalived's backup takes over after %s: 3 × advert_int plus (256 − priority)/256 × advert_int)",
			ms(advert), timing.DefaultDeadtime(ka), ms(3*advert+float64(256-prio)/256*advert))
	}
	if state == "MASTER" {
		g.preferred = true
	}
	for _, v := range vipNodes {
		p, addr, err := kaVIP(v, iface)
		if err != nil {
			add(v, Invalid, "%v", err)
			continue
		}
		if other, dup := seen[addr]; dup {
			add(v, Caveat, "%s is already an address of group %s: one IPaddr", addr, other)
			continue
		}
		seen[addr] = g.name
		for k, val := range garp {
			p[k] = val
		}
		g.vips = append(g.vips, p)
		g.addrs = append(g.addrs, addr)
		note := "IPaddr " + p["ip"] + "/" + p["cidr_netmask"]
		if !strings.Contains(v.kw, "/") {
			note += " (keepalived adds an address without a prefix as a host route: /32 or /128)"
			add(v, Caveat, "%s", note)
		} else {
			add(v, Mapped, "%s", note)
		}
	}
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
		for _, kid := range v.kids {
			arg := kid.arg()
			switch kid.kw {
			case "delay_loop":
				key("checkinterval", arg+"s")
				add(kid, Mapped, "checkinterval")
			case "lb_algo", "lvs_sched":
				if !slices.Contains(director.Schedulers, arg) {
					add(kid, Caveat, "scheduler %s unknown here: wlc (keepalived falls back to wlc too)", arg)
					arg = "wlc"
				} else {
					add(kid, Mapped, "scheduler")
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
					if w, err := strconv.Atoi(strings.Join(kid.args, "")); err == nil {
						weight = w
						add(kid, Mapped, "weight")
					} else {
						add(kid, Invalid, "weight: a number")
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
		use_vmac vmac_xmit_base strict_mode native_ipv6 debug lvs_sync_daemon_interface garp_lower_prio_delay garp_lower_prio_repeat
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
