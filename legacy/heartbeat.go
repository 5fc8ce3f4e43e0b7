package legacy

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/timing"
)

// Heartbeat is heartbeat's configuration directory, read.
type Heartbeat struct {
	Files  map[string][]byte // ha.toml, resources.toml, authkeys (mode 0600)
	Report Report
}

// HeartbeatInput are the old files (HAResources and Authkeys may be nil)
// and what they do not say: each node's address, which Vigil needs for
// its unicast heartbeats and Raft (heartbeat found peers by name).
type HeartbeatInput struct {
	HACf, HAResources, Authkeys []byte
	// Paths name the files in the report.
	HACfPath, HAResourcesPath, AuthkeysPath string
	Addresses                               map[string]string // node → IP
	// OCFConf reads heartbeat's parameters file of an OCF::TYPE::INSTANCE
	// resource, HA_DIR/conf/OCF/TYPE/INSTANCE (nil: none are read).
	OCFConf func(agent, instance string) ([]byte, error)
}

// heartbeat's ha.cf directives that take the rest of the line as one value.
var wholeLine = map[string]bool{"stonith": true, "stonith_host": true, "apiauth": true, "respawn": true, "failfast": true,
	"mcast": true, "mcast6": true, "ucast": true, "ucast6": true, "ping_group": true}

// Directives Vigil does not need, and why; and those it cannot honour.
var hbNotNeeded = map[string]string{
	"logfile":   "Vigil logs to stderr (journald under systemd); --log-format json for files",
	"debugfile": "use --log-level debug", "logfacility": "Vigil logs to stderr (journald under systemd)",
	"use_logd": "Vigil logs to stderr", "conn_logd_time": "Vigil logs to stderr", "debug": "use --log-level debug",
	"realtime": "Vigil's heartbeat loop needs no real-time priority at its rates", "rtprio": "no real-time priority is used",
	"hopfudge": "Vigil does not forward heartbeats", "hbgenmethod": "Vigil keeps its incarnation in state_dir",
	"msgfmt": "Vigil has one authenticated wire format", "coredumps": "core dumps follow the system's settings",
	"coreroot": "core dumps follow the system's settings", "log_badpack": "bad packets are always counted (vigil status)",
	"syslogmsgfmt": "Vigil logs with log/slog", "compression": "heartbeats are small; no compression",
	"compression_threshold": "no compression", "traditional_compression": "no compression",
	"max_rexmit_delay": "no retransmission protocol", "memreserve": "no preallocation", "uuidfrom": "nodes are named in ha.toml",
	"use_apphbd": "no apphbd", "record_config_changes": "Pacemaker only", "record_pengine_inputs": "Pacemaker only",
	"enable_config_writes": "Pacemaker only",
}

var hbUnsupported = map[string]string{
	"respawn":       "run the program as its own systemd unit (ipfail's job is done by ping_nodes)",
	"failfast":      "run the program under systemd with FailureAction=reboot",
	"apiauth":       "there is no heartbeat client API; the control socket is root-only",
	"stonith":       "use a fence plugin (plugins/sdk, kind fence)",
	"stonith_host":  "use a fence plugin (plugins/sdk, kind fence)",
	"watchdog":      "use systemd's WatchdogSec or the kernel watchdog daemon",
	"autojoin":      "members are listed in ha.toml; `vigil node add` adds one at run time",
	"hbaping":       "FC HBA ping nodes are not supported",
	"env":           "set the environment in the systemd unit",
	"quorum_server": "use `vigil witness` on a third machine",
	"crm":           "Pacemaker's CRM is replaced by Vigil's core; haresources is imported instead", "pacemaker": "Pacemaker's CRM is replaced by Vigil's core; haresources is imported instead",
	"crm_daemon_dir": "Pacemaker only", "crmd_spawns_pengine": "Pacemaker only",
	"mcast6": "IPv6 heartbeat media are not supported yet", "ucast6": "IPv6 heartbeat media are not supported yet", "ping6": "IPv6 ping nodes are not supported yet",
}

// hbTime reads a heartbeat time: a bare number is seconds, "ms" and "us"
// (only the first two letters count, any case) the only suffixes.
func hbTime(s string) (time.Duration, error) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(s[i:])
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("%q is not a heartbeat time (seconds, or with ms/us)", s)
	}
	mult := float64(time.Second)
	switch {
	case unit == "":
	case strings.HasPrefix(unit, "ms"):
		mult = float64(time.Millisecond)
	case strings.HasPrefix(unit, "us"):
		mult = float64(time.Microsecond)
	default:
		return 0, fmt.Errorf("%q: heartbeat accepts only a bare number of seconds or ms/us (not %q)", s, s[i:])
	}
	return (time.Duration(f * mult)).Round(time.Millisecond), nil
}

// hbBool is cluster-glue's cl_str_to_boolean.
func hbBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "on", "yes", "y", "1":
		return true, true
	case "false", "off", "no", "n", "0":
		return false, true
	}
	return false, false
}

type hbMedium struct {
	kind, iface, group string
	port, ttl, baud    int
	loop               bool
	peers              []string
}

// ImportHeartbeat reads ha.cf, haresources and authkeys.
func ImportHeartbeat(in HeartbeatInput) (*Heartbeat, error) {
	h := &Heartbeat{Files: map[string][]byte{}}
	r := &h.Report
	file := in.HACfPath
	var (
		cluster                                 = "linux-ha"
		nodes                                   []string
		keepalive, deadtime, warntime, initdead time.Duration
		autoFailback                            *bool
		port                                    = 694
		baud                                    = 19200
		media                                   []hbMedium
		pings                                   []string
	)
	set := map[string]int{} // directive → line, for those set
	for n, text := range lines(in.HACf) {
		line := text
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		dir, rest := line, ""
		if i := strings.IndexAny(line, " \t,"); i >= 0 {
			dir, rest = line[:i], strings.TrimSpace(line[i+1:])
		}
		var vals []string
		if wholeLine[dir] {
			vals = []string{rest}
		} else {
			vals = strings.FieldsFunc(rest, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' })
		}
		add := func(o Outcome, note string, a ...any) { r.add(file, n, line, o, note, a...) }
		timeVal := func(dst *time.Duration) {
			if len(vals) == 0 {
				add(Invalid, "no value")
				return
			}
			d, err := hbTime(vals[len(vals)-1]) // heartbeat: each value calls the setter; the last wins
			if err != nil {
				add(Invalid, "%v", err)
				return
			}
			*dst = d
			set[dir] = n
			add(Mapped, "%s = %q", dir, d.String())
		}
		switch dir {
		case "node":
			for _, v := range vals {
				nodes = append(nodes, strings.ToLower(v))
			}
			set[dir] = n
			add(Mapped, "[[nodes]] (names lowercased, as heartbeat does)")
		case "cluster":
			if len(vals) > 0 {
				cluster = vals[len(vals)-1]
				add(Mapped, "cluster = %q", cluster)
			}
		case "keepalive":
			timeVal(&keepalive)
		case "deadtime":
			timeVal(&deadtime)
		case "warntime":
			timeVal(&warntime)
		case "initdead":
			timeVal(&initdead)
		case "deadping":
			add(Caveat, "ping nodes are judged by deadtime in Vigil")
		case "udpport":
			p, err := strconv.Atoi(lastOr(vals, ""))
			if err != nil || p <= 0 || p > 65535 {
				add(Invalid, "%q is not a port", lastOr(vals, ""))
				continue
			}
			port = p
			add(Mapped, "port = %d for the media that follow (as in heartbeat, not those before)", p)
		case "baud":
			b, err := strconv.Atoi(lastOr(vals, ""))
			if err != nil {
				add(Invalid, "%q is not a baud rate", lastOr(vals, ""))
				continue
			}
			baud = b
			add(Mapped, "baud = %d for the serial media that follow", b)
		case "bcast":
			for _, v := range vals {
				media = append(media, hbMedium{kind: "bcast", iface: v, port: port})
			}
			add(Mapped, "[[bcast]] interface %s", strings.Join(vals, ", "))
		case "serial":
			for _, v := range vals {
				media = append(media, hbMedium{kind: "serial", iface: v, baud: baud})
			}
			add(Mapped, "[[serial]] device %s", strings.Join(vals, ", "))
		case "mcast":
			f := strings.Fields(rest)
			if len(f) != 5 {
				add(Invalid, "mcast takes: dev group port ttl loop")
				continue
			}
			p, err1 := strconv.Atoi(f[2])
			ttl, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil {
				add(Invalid, "port and ttl must be numbers")
				continue
			}
			media = append(media, hbMedium{kind: "mcast", iface: f[0], group: f[1], port: p, ttl: ttl, loop: f[4] == "1"})
			add(Mapped, "[[mcast]] group %s on %s (its own port, as in heartbeat)", f[1], f[0])
		case "ucast":
			f := strings.Fields(rest)
			if len(f) < 2 {
				add(Invalid, "ucast takes: dev peer-ip")
				continue
			}
			if _, err := netip.ParseAddr(f[1]); err != nil {
				add(Invalid, "%q is not an IP address", f[1])
				continue
			}
			merged := false
			for i := range media {
				if media[i].kind == "ucast" && media[i].iface == f[0] && media[i].port == port {
					media[i].peers = append(media[i].peers, f[1])
					merged = true
				}
			}
			if !merged {
				media = append(media, hbMedium{kind: "ucast", iface: f[0], port: port, peers: []string{f[1]}})
			}
			add(Mapped, "[[ucast]] on %s, peer %s (one ucast per interface, with every peer)", f[0], f[1])
		case "auto_failback":
			v := lastOr(vals, "")
			if v == "legacy" {
				no := false
				autoFailback = &no
				add(Caveat, "legacy (heartbeat's default) is racy on restart: auto_failback = false; set true for failback")
				continue
			}
			b, ok := hbBool(v)
			if !ok {
				add(Invalid, "%q is not a boolean or legacy", v)
				continue
			}
			autoFailback = &b
			add(Mapped, "auto_failback = %v", b)
		case "nice_failback":
			no := false
			if autoFailback == nil {
				autoFailback = &no
			}
			add(Caveat, "heartbeat reads it as auto_failback legacy: auto_failback = false")
		case "ping":
			pings = append(pings, vals...)
			add(Mapped, "ping_nodes (tie-breakers for two-node pairs)")
		case "ping_group":
			f := strings.Fields(rest)
			if len(f) < 2 {
				add(Invalid, "ping_group takes: name ip…")
				continue
			}
			pings = append(pings, f[1:]...)
			add(Caveat, "its members become ping_nodes; Vigil counts each, heartbeat counted the group up while any answered")
		default:
			if why, ok := hbNotNeeded[dir]; ok {
				add(Unsupported, "not needed: %s", why)
			} else if why, ok := hbUnsupported[dir]; ok {
				add(Unsupported, "%s", why)
			} else {
				add(Invalid, "heartbeat refuses it too: Illegal directive [%s] (names are case-sensitive)", dir)
			}
		}
	}
	if len(nodes) == 0 {
		r.add(file, 0, "node", Invalid, "ha.cf names no node (heartbeat: Current node not in configuration)")
	}
	if len(media) == 0 {
		r.add(file, 0, "media", Invalid, "No heartbeat media defined (heartbeat refuses this too)")
	}
	// Vigil needs each node's address; heartbeat found peers by name.
	addrs := map[string]string{}
	for _, nd := range nodes {
		a := in.Addresses[nd]
		if a == "" {
			r.add(file, set["node"], "node "+nd, Invalid, "no address for %s: give --address %s=IP (Vigil's ucast and Raft need it)", nd, nd)
			continue
		}
		if _, err := netip.ParseAddr(a); err != nil {
			r.add(file, 0, "node "+nd, Invalid, "--address %s=%s: not an IP address", nd, a)
			continue
		}
		addrs[nd] = a
	}
	if keepalive == 0 {
		keepalive = time.Second
	}
	if deadtime == 0 {
		deadtime = 30 * time.Second
	}
	if least := (timing.Timing{Keepalive: keepalive}).MinDeadtime(); deadtime < least {
		r.add(file, set["deadtime"], "deadtime", Caveat, "heartbeat allows deadtime > 2 × keepalive, Vigil wants %d ×: deadtime = %s", timing.MinDeadBeats, least)
		deadtime = least
	}
	if warntime != 0 && (warntime <= keepalive || warntime >= deadtime) {
		r.add(file, set["warntime"], "warntime", Caveat, "outside (keepalive, deadtime): left to Vigil's default, deadtime/2")
		warntime = 0
	}
	if initdead != 0 && initdead < deadtime {
		initdead = deadtime
	}
	if initdead == 0 {
		// heartbeat's default (§1.3): below 6 s deadtime a 12 s guard.
		switch {
		case deadtime > 10*time.Second:
			initdead = deadtime
		case deadtime < 6*time.Second:
			initdead = 12 * time.Second
		default:
			initdead = 2 * deadtime
		}
	}

	ha := &haFile{source: file, tool: "heartbeat", cluster: cluster, keepalive: keepalive, deadtime: deadtime, warntime: warntime,
		initdead: initdead, autoFailback: autoFailback, pings: pings, media: media}
	if autoFailback == nil {
		ha.comments = append(ha.comments, "auto_failback was unset: heartbeat's legacy default; Vigil's is false.")
	}
	for _, nd := range nodes {
		ha.nodes = append(ha.nodes, haNode{nd, addrs[nd]})
	}
	if ha.pair() {
		o, note := pairNote(ha, fmt.Sprintf("heartbeat: a node that hears nothing of its peer for initdead (%s, at boot) or deadtime (%s) declares it dead and starts every group itself; with only the links cut, both nodes do (two holders of each VIP).", initdead, deadtime),
			"ha.cf's ping directive becomes it")
		r.add(file, set["node"], "node "+strings.Join(nodes, " "), o, "%s", note)
	}
	h.Files["ha.toml"] = ha.bytes()

	if in.Authkeys != nil {
		if key, err := importAuthkeys(in.AuthkeysPath, in.Authkeys, r); err == nil {
			h.Files["authkeys"] = key
		}
	} else {
		r.add(in.AuthkeysPath, 0, "authkeys", Invalid, "no authkeys: Vigil, like heartbeat, needs the cluster secret")
	}
	if in.HAResources != nil {
		h.Files["resources.toml"] = importHaresources(in.HAResourcesPath, in.HAResources, nodes, in.OCFConf, r)
	}
	return h, r.Err()
}

func lastOr(vals []string, def string) string {
	if len(vals) == 0 {
		return def
	}
	return vals[len(vals)-1]
}

// importAuthkeys keeps the key that "auth N" selects, in the same format
// (Vigil reads heartbeat's authkeys), and refuses what heartbeat refuses.
func importAuthkeys(file string, data []byte, r *Report) ([]byte, error) {
	selected, selLine := -1, 0
	var out []byte
	for n, text := range lines(data) {
		line := strings.TrimSpace(text)
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == 'a' { // heartbeat: any line starting with 'a' is "auth N"
			f := strings.Fields(line)
			k, err := strconv.Atoi(lastOr(f, ""))
			if len(f) != 2 || err != nil || k < 0 || k > 15 {
				r.add(file, n, "auth", Invalid, "want \"auth N\" with N in 0..15")
				continue
			}
			selected, selLine = k, n
			r.add(file, n, "auth", Mapped, "selects key %d", k)
			continue
		}
		f := strings.Fields(line)
		k, err := strconv.Atoi(f[0])
		if err != nil || k < 0 || k > 15 || len(f) < 2 {
			r.add(file, n, "key", Invalid, "want \"N sha1|md5 SECRET\" or \"N crc\"")
			continue
		}
		// Never put the secret in the report.
		directive := fmt.Sprintf("%d %s", k, f[1])
		switch f[1] {
		case "sha1", "md5":
			if len(f) < 3 {
				r.add(file, n, directive, Invalid, "Auth method [%s] requires a key", f[1])
				continue
			}
			if k != selected {
				r.add(file, n, directive, Unsupported, "not the key \"auth\" selects (Vigil keeps one key)")
				continue
			}
			if strings.Contains(f[2], "#") {
				r.add(file, n, directive, Invalid, "the secret holds '#', which Vigil's authkeys reads as a comment: choose another")
				continue
			}
			if len(f[2]) < 16 {
				r.add(file, n, directive, Caveat, "a secret of %d characters: Vigil warns below 16 random ones", len(f[2]))
			}
			out = fmt.Appendf(nil, "auth %d\n%d %s %s\n", k, k, f[1], f[2])
			r.add(file, n, directive, Caveat, "kept; Vigil signs with HMAC-SHA256 keyed from this secret, so heartbeat and Vigil nodes cannot talk to each other: switch all nodes at once")
		case "crc":
			if k == selected {
				r.add(file, n, directive, Invalid, "crc has no secret and Vigil needs one: write authkeys with \"%d sha1 SECRET\" first", k)
			} else {
				r.add(file, n, directive, Unsupported, "crc has no secret")
			}
		default:
			r.add(file, n, directive, Invalid, "Invalid authtype [%s] (sha1, md5 or crc)", f[1])
		}
	}
	if selected < 0 {
		r.add(file, 0, "auth", Invalid, "no \"auth N\" line")
		return nil, fmt.Errorf("no key")
	}
	if out == nil {
		r.add(file, selLine, "auth", Invalid, "Auth Key [%d] not found in keyfile (it must follow the auth line)", selected)
		return nil, fmt.Errorf("no key")
	}
	return out, nil
}

var groupNameRE = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// importHaresources turns each line into a group: the first token is the
// preferred node, the first resource names the group, the resources stay
// in heartbeat's shorthand (Vigil reads it).
func importHaresources(file string, data []byte, nodes []string, ocfConf func(string, string) ([]byte, error), r *Report) []byte {
	var t tomlWriter
	t.comment("resources.toml — imported from %s by `vigil import heartbeat`.", file)
	t.comment("Each haresources line is a group; the shorthand is read as heartbeat read it.")
	// Preprocess as ResourceManager does: '#' to the end of the line goes,
	// a trailing backslash joins the next line.
	var logical []struct {
		n    int
		text string
	}
	cont, start := "", 0
	for n, text := range lines(data) {
		line := text
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if cont == "" {
			start = n
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cont += s + " "
			continue
		}
		text := strings.Join(strings.Fields(cont+line), " ")
		cont = ""
		if text != "" {
			logical = append(logical, struct {
				n    int
				text string
			}{start, text})
		}
	}
	seen := map[string]bool{}
	for _, l := range logical {
		f := strings.Fields(l.text)
		node := strings.ToLower(f[0])
		if !contains(nodes, node) {
			r.add(file, l.n, f[0], Invalid, "Bad nodename in haresources [%s]: not a node of ha.cf", f[0])
			continue
		}
		if len(f) < 2 {
			r.add(file, l.n, f[0], Invalid, "a line without resources")
			continue
		}
		// The group is named after its key, the first resource, as the
		// resource's id reads ("IPaddr_10.0.0.3").
		name := f[1]
		if res, err := config.ParseShorthand(f[1]); err == nil && res.ID != "" {
			name = res.ID
		}
		name = groupNameRE.ReplaceAllString(name, "_")
		if len(name) > 63 {
			name = name[:63]
		}
		if seen[name] {
			r.add(file, l.n, f[1], Invalid, "the group key %s is used twice (heartbeat needs it unique)", f[1])
			continue
		}
		seen[name] = true
		var res []string
		var notes []string
		for _, x := range f[1:] {
			mapped, note := haresource(x)
			if strings.HasPrefix(x, "OCF::") && ocfConf != nil {
				mapped, note = ocfResource(x, ocfConf)
			}
			res = append(res, mapped)
			if note != "" {
				notes = append(notes, note)
			}
		}
		t.WriteString("\n[[group]]\n")
		t.kv("", "name", name)
		t.kv("", "node", node)
		t.kv("", "resources", res)
		if len(notes) > 0 {
			r.add(file, l.n, l.text, Caveat, "group %s: %s", name, strings.Join(notes, "; "))
		} else {
			r.add(file, l.n, l.text, Mapped, "group %s, preferred node %s", name, node)
		}
	}
	return []byte(t.String())
}

// haresource maps one resource token; a note says what changed.
func haresource(x string) (string, string) {
	name, arg, _ := strings.Cut(x, "::")
	switch name {
	case "ldirectord":
		// heartbeat's resource.d/ldirectord takes the config file name.
		inst := strings.TrimSuffix(strings.TrimPrefix(arg, "/etc/ha.d/"), ".cf")
		if inst == "" {
			inst = "ldirectord"
		}
		inst = groupNameRE.ReplaceAllString(inst, "_")
		return "ldirectord::" + inst, fmt.Sprintf("%s is ldirectord::%s: import its file with `vigil import ldirectord --name %s FILE`", x, inst, inst)
	case "mon":
		return "mon::mon", "mon (the init script) is mon::mon: import mon.cf with `vigil import mon --name mon /etc/mon/mon.cf`"
	case "IPaddr2", "IPsrcaddr", "IPv6addr":
		if name == "IPaddr2" {
			return "IPaddr::" + arg, "IPaddr2 is Vigil's built-in IPaddr"
		}
	}
	return x, ""
}

// ocfResource maps OCF::TYPE::INSTANCE with the parameters heartbeat's
// OCF wrapper read from HA_DIR/conf/OCF/TYPE/INSTANCE (a shell file of
// name=value lines), appended as "::name=value" fields.
func ocfResource(x string, ocfConf func(string, string) ([]byte, error)) (string, string) {
	f := strings.Split(x, "::")
	// Debian's heartbeat 3.0.6 never ran these: its OCF wrapper looks for
	// the agent in $OCF_AGENTS/*/TYPE, one directory below where
	// resource-agents installs it, and fails every operation (test/hbdiff).
	const broken = "Debian's heartbeat 3.0.6 could not run it (its OCF wrapper looks one directory too deep for the agent); Vigil runs ocf:heartbeat:"
	if len(f) != 3 || !validConfName(f[1]) || !validConfName(f[2]) {
		return x, ""
	}
	data, err := ocfConf(f[1], f[2])
	if err != nil {
		return x, fmt.Sprintf("%s: no parameters file conf/OCF/%s/%s (%v); %s%s with none", x, f[1], f[2], err, broken, f[1])
	}
	out := x
	var skipped []string
	for _, line := range lines(data) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		// What the shell would expand, or what the shorthand cannot hold,
		// is not guessed at.
		if !envNameRE.MatchString(k) || strings.ContainsAny(v, "$`\\\"'") || strings.Contains(v, "::") {
			skipped = append(skipped, k)
			continue
		}
		out += "::" + k + "=" + v
	}
	note := fmt.Sprintf("%s takes its parameters from conf/OCF/%s/%s; %s%s", x, f[1], f[2], broken, f[1])
	if len(skipped) > 0 {
		note += fmt.Sprintf("; not imported (shell expansion or quoting): %s, set them in resources.toml", strings.Join(skipped, ", "))
	}
	return out, note
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validConfName keeps an OCF type or instance from naming a path outside
// conf/OCF.
func validConfName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
