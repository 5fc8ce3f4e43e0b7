package legacy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ldPorts are ldirectord's service names for ports, and its service
// derived from a port (LEGACY §5.3); the negotiate checks Vigil builds in
// are marked.
var ldPorts = map[string]int{"ftp": 21, "smtp": 25, "domain": 53, "dns": 53, "http": 80, "pop3": 110, "pop": 110, "nntp": 119,
	"imap": 143, "ldap": 389, "https": 443, "submission": 587, "ldaps": 636, "imaps": 993, "pop3s": 995, "pops": 995,
	"oracle": 1521, "radius": 1812, "http_proxy": 3128, "mysql": 3306, "sip": 5060, "pgsql": 5432, "postgresql": 5432}

var ldServiceByPort = map[int]string{21: "ftp", 25: "smtp", 53: "dns", 80: "http", 110: "pop", 119: "nntp", 143: "imap", 389: "ldap",
	443: "https", 587: "submission", 636: "ldaps", 993: "imaps", 995: "pops", 1521: "oracle", 1812: "radius", 3128: "http_proxy",
	3306: "mysql", 5060: "sip", 5432: "pgsql"}

// lowerWord is a scheduler's name as ldirectord accepts one.
var lowerWord = regexp.MustCompile(`^[a-z]+$`)

// ldFallback reads "host[:port] [gate|masq|ipip]" as ldirectord does
// (the host may be a name, the port a service name) and returns it with
// the address and port as numbers.
func ldFallback(val string, v6 bool) (string, []string, error) {
	f := strings.Fields(val)
	if len(f) == 0 || len(f) > 2 {
		return "", nil, fmt.Errorf("fallback %q: want host[:port] [gate|masq|ipip]", val)
	}
	if len(f) == 2 && f[1] != "gate" && f[1] != "masq" && f[1] != "ipip" {
		return "", nil, fmt.Errorf("fallback %q: forward method must be gate, masq or ipip (ldirectord refuses it too)", val)
	}
	host, port := f[0], ""
	if strings.HasPrefix(host, "[") {
		h, p, _ := strings.Cut(host[1:], "]")
		host, port = h, strings.TrimPrefix(p, ":")
	} else if h, p, ok := strings.Cut(host, ":"); ok {
		host, port = h, p
	}
	var resolved []string
	a, err := ldResolve(host, v6, &resolved)
	if err != nil {
		return "", nil, fmt.Errorf("fallback: %w", err)
	}
	out := a.String()
	if port != "" {
		p, err := ldPort(port)
		if err != nil {
			return "", nil, fmt.Errorf("fallback: %w", err)
		}
		out = netip.AddrPortFrom(a, uint16(p)).String()
	} else if a.Is6() {
		out = "[" + out + "]"
	}
	if len(f) == 2 {
		out += " " + f[1]
	}
	return out, resolved, nil
}

// svcName is a service name as ldirectord reads one after "host:".
var svcName = regexp.MustCompile(`^[A-Za-z][0-9A-Za-z_-]*$`)

// ldServices are the service= values ldirectord 4.12 accepts.
var ldServices = map[string]bool{"dns": true, "ftp": true, "http": true, "https": true, "http_proxy": true, "imap": true, "imaps": true,
	"ldap": true, "ldaps": true, "mysql": true, "nntp": true, "none": true, "oracle": true, "pop": true, "pops": true, "radius": true,
	"pgsql": true, "simpletcp": true, "sip": true, "smtp": true, "submission": true}

var ldBuiltin = map[string]bool{"http": true, "https": true, "http_proxy": true, "dns": true, "smtp": true, "submission": true, "none": true}

type ldVirtual struct {
	line               int
	comment            []string
	address, protocol  string
	fwmark             uint32
	v6                 bool
	port               int
	kv                 [][2]string // TOML keys in order, values already TOML
	checktype, service string
	connects           int // checktype=N
	reals              []ldReal
	resolved           []string // names resolved from /etc/hosts, for the report
}

type ldReal struct {
	address, forward, request, receive string
	weight                             int
	upper, lower                       uint32
	checkPort                          int // the real's own port, when ipvsadm programs the virtual's
}

// ImportLdirectord reads one ldirectord.cf and returns the instance's
// TOML (NAME.toml).
func ImportLdirectord(file string, data []byte) ([]byte, *Report, error) {
	r := &Report{}
	var globals [][2]string
	var virtuals []*ldVirtual
	var cur *ldVirtual
	for n, text := range lines(data) {
		raw := strings.ReplaceAll(text, "\t", "    ")
		trimmed := strings.TrimSpace(raw)
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		indented := strings.HasPrefix(raw, "    ")
		if !indented {
			cur = nil
		}
		line := trimmed
		if indented {
			// Inside a block '#' cuts the line.
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = strings.TrimSpace(line[:i])
			}
		} else if raw[0] == ' ' {
			r.add(file, n, trimmed, Invalid, "ldirectord: Unknown command (a block line needs 4 spaces or a TAB of indent; a global starts in column 0)")
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		add := func(o Outcome, note string, a ...any) { r.add(file, n, line, o, note, a...) }
		if !ok {
			if key == "supervised" {
				add(Unsupported, "not needed: Vigil supervises its plugins")
				continue
			}
			add(Invalid, "ldirectord: Unknown command")
			continue
		}
		if indented && cur == nil {
			add(Invalid, "an indented line outside a virtual block")
			continue
		}
		if key == "virtual" || key == "virtual6" {
			v, err := ldParseVirtual(key, val)
			if err != nil {
				add(Invalid, "%v", err)
				cur = nil
				continue
			}
			v.line = n
			for _, o := range virtuals {
				if o.address == v.address && o.fwmark == v.fwmark {
					add(Invalid, "duplicate virtual (ldirectord refuses it too)")
				}
			}
			virtuals = append(virtuals, v)
			cur = v
			add(Mapped, "[[virtual]]")
			if v.resolved != nil {
				add(Caveat, "%s (ldirectord resolves names each time it reads the file)", strings.Join(v.resolved, ", "))
			}
			continue
		}
		if cur == nil {
			globals = ldGlobal(key, val, globals, add)
		} else {
			ldVirtualKey(cur, key, val, add)
		}
	}
	if len(virtuals) == 0 {
		r.add(file, 0, "virtual", Caveat, "no virtual service: the instance manages nothing")
	}
	var t tomlWriter
	t.comment("Imported from %s by `vigil import ldirectord`.", file)
	t.comment("backend \"auto\": kernel IPVS where the kernel has it, else Vigil's userspace director.")
	t.kv("", "backend", "auto")
	// ldirectord keeps one global fallback per address family
	// (fallback, fallback6) and gives each virtual without its own the
	// one of its family: written into each virtual, not inherited.
	fallbacks := map[bool]string{}
	for _, kv := range globals {
		switch kv[0] {
		case "fallback":
			fallbacks[false] = kv[1]
		case "fallback6":
			fallbacks[true] = kv[1]
		default:
			t.WriteString(kv[0] + " = " + kv[1] + "\n")
		}
	}
	for _, v := range virtuals {
		t.WriteString("\n")
		for _, c := range v.comment {
			t.comment("%s", c)
		}
		t.WriteString("[[virtual]]\n")
		if v.fwmark != 0 {
			t.kv("", "fwmark", v.fwmark)
			if v.v6 {
				t.kv("", "ipv6", true)
			}
		} else {
			t.kv("", "address", v.address)
		}
		// ldirectord's defaults where they differ from Vigil's.
		proto := v.protocol
		if proto == "" && v.fwmark == 0 && v.port == 53 {
			proto = "udp"
		}
		if proto != "" && proto != "fwm" {
			t.kv("", "protocol", proto)
		}
		if !hasKey(v.kv, "scheduler") {
			t.kv("", "scheduler", "wrr") // ldirectord's default
		}
		ct, svc := v.checktype, v.service
		if ct == "" {
			ct = "negotiate"
		}
		negotiates := ct == "negotiate" || ct == "combined"
		if negotiates && svc == "" {
			svc = ldServiceByPort[v.port]
			if v.fwmark != 0 || svc == "" {
				svc = "none"
			}
		}
		if negotiates && !ldBuiltin[svc] {
			r.add(file, v.line, "service="+svc, Caveat, "the %s negotiate check is not built into Vigil: checktype connect instead", svc)
			ct, svc, negotiates = "connect", "", false
		}
		t.kv("", "checktype", ct)
		if negotiates {
			t.kv("", "service", svc)
			if svc == "https" {
				// ldirectord's LWP verifies the chain, not the name.
				t.kv("", "tlsverify", "chain")
			}
		}
		if ct == "combined" {
			t.kv("", "connects", v.connects)
		}
		if (ct == "external" || ct == "external-perl") && !hasKey(v.kv, "checkcommand") {
			t.kv("", "checkcommand", "/bin/true") // ldirectord's default
		}
		for _, kv := range v.kv {
			t.WriteString(kv[0] + " = " + kv[1] + "\n")
		}
		// (ldirectord keeps the global ones for tcp and udp only: a
		// firewall-mark virtual gets none.)
		if fb := fallbacks[v.v6]; fb != "" && v.fwmark == 0 && !hasKey(v.kv, "fallback") {
			t.kv("", "fallback", strings.Trim(fb, `"`))
		}
		for _, rs := range v.reals {
			t.WriteString("  [[virtual.real]]\n")
			t.kv("  ", "address", rs.address)
			t.kv("  ", "forward", rs.forward)
			t.kv("  ", "weight", rs.weight)
			if rs.request != "" || rs.receive != "" {
				t.kv("  ", "request", rs.request)
				t.kv("  ", "receive", rs.receive)
			}
			if rs.upper != 0 {
				t.kv("  ", "upper", rs.upper)
			}
			if rs.lower != 0 {
				t.kv("  ", "lower", rs.lower)
			}
			if rs.checkPort != 0 {
				t.kv("  ", "checkport", rs.checkPort)
			}
		}
	}
	return []byte(t.String()), r, r.Err()
}

func hasKey(kv [][2]string, k string) bool {
	for _, x := range kv {
		if x[0] == k {
			return true
		}
	}
	return false
}

// ldSeconds reads ldirectord's integer seconds as a Vigil duration.
func ldSeconds(val string, zeroOK bool) (string, error) {
	v := strings.Fields(val)
	if len(v) == 0 {
		return "", fmt.Errorf("no value")
	}
	n, err := strconv.Atoi(v[0]) // ldirectord reads only the leading digits
	if err != nil || n < 0 || (n == 0 && !zeroOK) {
		return "", fmt.Errorf("%q is not a positive number of seconds", val)
	}
	return quote(strconv.Itoa(n) + "s"), nil
}

func ldYesNo(val string) (string, error) {
	switch val {
	case "yes":
		return "true", nil
	case "no":
		return "false", nil
	}
	return "", fmt.Errorf("must be 'yes' or 'no' (ldirectord is case-sensitive; a trailing comment is part of the value)")
}

// ldCommon handles the keys a global and a virtual share; ok false means
// the key is not one of them.
func ldCommon(key, val string, kv [][2]string, add func(Outcome, string, ...any)) ([][2]string, bool) {
	switch key {
	case "checktimeout", "negotiatetimeout", "checkinterval":
		d, err := ldSeconds(val, false)
		if err != nil {
			add(Invalid, "%v", err)
			return kv, true
		}
		add(Mapped, "%s = %s", key, d)
		return append(kv, [2]string{key, d}), true
	case "failurecount":
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 {
			add(Invalid, "must be a number > 0")
			return kv, true
		}
		add(Mapped, "")
		return append(kv, [2]string{key, strconv.Itoa(n)}), true
	case "quiescent":
		b, err := ldYesNo(val)
		if err != nil {
			add(Invalid, "%v", err)
			return kv, true
		}
		add(Mapped, "")
		return append(kv, [2]string{key, b}), true
	case "fallback", "fallback6":
		fb, resolved, err := ldFallback(val, key == "fallback6")
		if err != nil {
			add(Invalid, "%v", err)
			return kv, true
		}
		if resolved != nil {
			add(Caveat, "%s (ldirectord resolves names each time it reads the file)", strings.Join(resolved, ", "))
		} else {
			add(Mapped, "")
		}
		return append(kv, [2]string{key, quote(fb)}), true
	case "connecttimeout", "timeout":
		add(Invalid, "ldirectord refuses it too (deprecated: use checktimeout/negotiatetimeout)")
		return kv, true
	case "checkcount":
		add(Unsupported, "deprecated in ldirectord; use failurecount")
		return kv, true
	case "emailalert", "emailalertfreq", "emailalertstatus", "smtp":
		add(Caveat, "not in the instance: route kind \"realserver\" to \"mail ADDR\" with an [[alert]] in ha.toml")
		return kv, true
	case "cleanstop":
		if _, err := ldYesNo(val); err != nil {
			add(Invalid, "%v", err)
			return kv, true
		}
		b, _ := ldYesNo(val)
		add(Mapped, "")
		return append(kv, [2]string{key, b}), true
	case "fallbackcommand":
		add(Unsupported, "no fallback command; a [[alert]] route of kind realserver sees every real go and come back")
		return kv, true
	}
	return kv, false
}

func ldGlobal(key, val string, kv [][2]string, add func(Outcome, string, ...any)) [][2]string {
	if kv, ok := ldCommon(key, val, kv, add); ok {
		return kv
	}
	switch key {
	case "autoreload", "fork", "readdquiescent", "supervised":
		// ldirectord refuses anything but yes or no here.
		if _, err := ldYesNo(val); err != nil {
			add(Invalid, "%s %v", key, err)
			return kv
		}
	}
	switch key {
	case "autoreload":
		add(Caveat, "Vigil reloads on `vigil reload` / SIGHUP, not by watching the file")
	case "logfile":
		add(Unsupported, "not needed: the plugin logs through the daemon")
	case "fork":
		add(Unsupported, "not needed: every check runs concurrently (and checkinterval is honoured per virtual)")
	case "supervised":
		add(Unsupported, "not needed: Vigil supervises its plugins")
	case "callback":
		add(Unsupported, "no callback; use an [[alert]] route")
	case "execute":
		add(Unsupported, "one file is one instance: import the other file as its own ldirectord::NAME")
	case "readdquiescent":
		add(Unsupported, "quiescent reals are re-added by the reconcile loop")
	case "maintenancedir":
		if val == "" {
			add(Invalid, "maintenance directory not specified")
			return kv
		}
		add(Mapped, "a real is out while DIR/IP:PORT or DIR/IP exists (host names are not looked up)")
		return append(kv, [2]string{key, quote(val)})
	case "emailalertfrom":
		add(Caveat, "set mail_from in ha.toml")
	default:
		add(Invalid, "ldirectord: Unknown command")
	}
	return kv
}

func ldParseVirtual(key, val string) (*ldVirtual, error) {
	v := &ldVirtual{}
	if n, err := strconv.ParseUint(val, 10, 32); err == nil {
		if n == 0 {
			return nil, fmt.Errorf("fwmark 0 is not a mark")
		}
		v.fwmark = uint32(n)
		v.v6 = key == "virtual6" // a virtual6 mark is an IPv6 service
		return v, nil
	}
	host, port, ok := cutPort(val)
	if !ok {
		return nil, fmt.Errorf("%q: want IP:PORT (or a firewall mark)", val)
	}
	a, err := ldResolve(strings.Trim(host, "[]"), key == "virtual6", &v.resolved)
	if err != nil {
		return nil, err
	}
	if a.Is6() && key == "virtual" {
		return nil, fmt.Errorf("cannot specify an IPv6 address here. please use \"virtual6\"")
	}
	if key == "virtual6" {
		v.v6 = true
	}
	p, err := ldPort(port)
	if err != nil {
		return nil, err
	}
	v.port = p
	v.address = netip.AddrPortFrom(a, uint16(p)).String()
	return v, nil
}

func cutPort(s string) (host, port string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

func ldPort(s string) (int, error) {
	if p, ok := ldPorts[s]; ok {
		return p, nil
	}
	if svcName.MatchString(s) {
		// ldirectord asks getservbyname: /etc/services, never the network.
		if p, err := net.LookupPort("tcp", s); err == nil {
			return p, nil
		}
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("%q is not a port or a service name", s)
	}
	return p, nil
}

func ldVirtualKey(v *ldVirtual, key, val string, add func(Outcome, string, ...any)) {
	// A virtual6 block takes real6 and fallback6, a virtual block real
	// and fallback, as ldirectord insists.
	switch key {
	case "real", "real6", "fallback", "fallback6":
		base, six := strings.CutSuffix(key, "6")
		if six != v.v6 {
			want := base
			if v.v6 {
				want += "6"
			}
			add(Invalid, "ldirectord: cannot specify %q here. please use %q instead", key, want)
			return
		}
		key = base
	}
	var ok bool
	if v.kv, ok = ldCommon(key, val, v.kv, add); ok {
		return
	}
	set := func(k string, tomlVal string, note string) {
		v.kv = append(v.kv, [2]string{k, tomlVal})
		add(Mapped, "%s", note)
	}
	quoted := func() (string, bool) {
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			return val[1 : len(val)-1], true
		}
		add(Invalid, "ldirectord: Unknown command (%s must be double-quoted)", key)
		return "", false
	}
	switch key {
	case "real":
		var resolved []string
		reals, err := ldParseReal(val, v, &resolved)
		if err != nil {
			add(Invalid, "%v", err)
			return
		}
		v.reals = append(v.reals, reals...)
		if resolved != nil {
			add(Caveat, "%s (ldirectord resolves names each time it reads the file)", strings.Join(resolved, ", "))
			return
		}
		if len(reals) > 1 {
			add(Mapped, "%d real servers (range expanded)", len(reals))
		} else {
			add(Mapped, "")
		}
	case "checktype":
		switch val {
		case "connect", "negotiate", "ping", "external", "off", "on":
			v.checktype = val
			add(Mapped, "")
		case "external-perl":
			v.checktype = val
			add(Caveat, "the file runs as `perl FILE VIP VPORT RIP RPORT` in a process of its own, not inside the director: exit codes mean the same, globals do not persist between checks")
		default:
			if n, err := strconv.Atoi(val); err == nil && n >= 0 {
				v.checktype, v.connects = "combined", n
				add(Mapped, "checktype = \"combined\", connects = %d (a negotiate check, then %d connect checks)", n, n)
				return
			}
			add(Invalid, "checktype must be connect, negotiate, ping, external, external-perl, off, on or a number")
		}
	case "service":
		if !ldServices[val] {
			add(Invalid, "service must be dns, ftp, http, https, http_proxy, imap, imaps, ldap, ldaps, mysql, nntp, none, oracle, pop, pops, radius, pgsql, simpletcp, sip, smtp or submission (ldirectord refuses it too)")
			return
		}
		v.service = val
		add(Mapped, "")
	case "checkcommand":
		set(key, quote(strings.Trim(val, `"`)), "")
	case "checkport":
		p, err := strconv.Atoi(val)
		if err != nil || p < 1 || p > 65535 {
			add(Invalid, "must be 1..65535")
			return
		}
		set(key, strconv.Itoa(p), "")
	case "request", "receive":
		if s, ok := quoted(); ok {
			if s == "" {
				add(Invalid, "an empty %s string (ldirectord refuses it too)", key)
				return
			}
			set(key, quote(s), "")
		}
	case "httpmethod":
		m := strings.ToUpper(val)
		if m != "GET" && m != "HEAD" {
			add(Invalid, "must be GET or HEAD")
			return
		}
		set(key, quote(m), "")
	case "virtualhost":
		set(key, quote(strings.Trim(val, `"`)), "")
	case "scheduler":
		if !lowerWord.MatchString(val) {
			add(Invalid, "invalid scheduler, should be only lowercase letters (a-z) (ldirectord refuses it too)")
			return
		}
		set(key, quote(val), "")
	case "persistent":
		d, err := ldSeconds(val, false)
		if err != nil {
			add(Invalid, "%v", err)
			return
		}
		set(key, d, "")
	case "netmask":
		if v.v6 {
			// An IPv6 virtual's netmask is a prefix length, as in ldirectord.
			if n, err := strconv.Atoi(val); err != nil || n < 1 || n > 128 {
				add(Invalid, "invalid netmask: a prefix length between 1 and 128 is required")
				return
			}
			set(key, quote(val), "")
			return
		}
		if a, err := netip.ParseAddr(val); err != nil || !a.Is4() {
			add(Invalid, "must be a dotted-quad netmask (ldirectord refuses a prefix length)")
			return
		}
		set(key, quote(val), "")
	case "protocol":
		switch val {
		case "tcp", "udp":
			if v.fwmark != 0 {
				add(Invalid, "a firewall-mark virtual has protocol fwm")
				return
			}
			v.protocol = val
			add(Mapped, "")
		case "fwm":
			if v.fwmark == 0 {
				add(Invalid, "protocol fwm needs a firewall-mark virtual")
				return
			}
			add(Mapped, "")
		default:
			add(Invalid, "protocol must be tcp, udp or fwm")
		}
	case "servicename", "comment":
		v.comment = append(v.comment, key+": "+val)
		add(Mapped, "kept as a comment")
	case "login", "passwd", "database", "secret", "load":
		add(Unsupported, "only used by the ftp/imap/pop/mysql/pgsql/radius/ldap negotiate checks, which Vigil does not build in")
	case "ops":
		if _, err := ldYesNo(val); err != nil {
			add(Invalid, "ops %v", err)
			return
		}
		add(Unsupported, "one-packet scheduling is not supported")
	case "schedflags":
		add(Unsupported, "scheduler flags are not supported")
	case "monitorfile":
		add(Unsupported, "the check results are in `vigil status`")
	default:
		add(Invalid, "ldirectord: Unknown command")
	}
}

// ldParseReal reads real=ip[->ip2][:port] gate|masq|ipip [weight]
// ["request", "receive"] [l:N] [u:N].
func ldParseReal(val string, v *ldVirtual, resolved *[]string) ([]ldReal, error) {
	f := strings.Fields(val)
	if len(f) < 2 {
		return nil, fmt.Errorf("invalid address for real server (wrong format): the forward method is required")
	}
	addr, port := f[0], ""
	switch {
	case strings.HasPrefix(addr, "["):
		if h, p, ok := strings.Cut(addr[1:], "]:"); ok {
			addr, port = h, p
		} else {
			addr = strings.Trim(addr, "[]")
		}
	case strings.Count(addr, ":") == 1:
		addr, port, _ = strings.Cut(addr, ":")
	}
	first, last, isRange := strings.Cut(addr, "->")
	a, err := ldResolve(first, v.v6, resolved)
	if err != nil {
		return nil, err
	}
	end := a
	if isRange {
		if end, err = ldResolve(last, v.v6, resolved); err != nil || !a.Is4() || end.Less(a) {
			return nil, fmt.Errorf("%q: an IPv4 range a->b with a ≤ b", addr)
		}
	}
	fwd := map[string]string{"gate": "gate", "masq": "masq", "ipip": "ipip"}[f[1]]
	if fwd == "" {
		return nil, fmt.Errorf("forward method must be gate, masq or ipip")
	}
	rs := ldReal{forward: fwd, weight: 1}
	rest := f[2:]
	if len(rest) > 0 {
		if w, err := strconv.Atoi(rest[0]); err == nil {
			rs.weight = w
			rest = rest[1:]
		}
	}
	// "request", "receive" (quoted, may hold spaces), then l:N u:N.
	tail := strings.Join(rest, " ")
	if strings.HasPrefix(tail, `"`) {
		parts := strings.Split(tail, `"`)
		if len(parts) < 5 {
			return nil, fmt.Errorf("want \"request\", \"receive\" after the weight")
		}
		rs.request, rs.receive = parts[1], parts[3]
		tail = strings.Join(parts[4:], `"`)
	}
	for _, w := range strings.Fields(tail) {
		k, n, ok := strings.Cut(w, ":")
		x, err := strconv.ParseUint(n, 10, 32)
		if !ok || err != nil || (k != "l" && k != "u") {
			return nil, fmt.Errorf("%q: want l:N or u:N", w)
		}
		if k == "l" {
			rs.lower = uint32(x)
		} else {
			rs.upper = uint32(x)
		}
	}
	var out []ldReal
	for ip := a; ; ip = ip.Next() {
		r := rs
		switch {
		case port == "" && v.fwmark != 0:
			r.address = ip.String()
		case port == "":
			r.address = ip.String() // the virtual's port
		default:
			p, err := ldPort(port)
			if err != nil {
				return nil, err
			}
			if fwd != "masq" && v.fwmark == 0 && p != v.port {
				// ipvsadm programs a gate or ipip real on the virtual's
				// port, and ldirectord checks the port written here.
				r.checkPort, p = p, v.port
			}
			r.address = netip.AddrPortFrom(ip, uint16(p)).String()
		}
		out = append(out, r)
		if ip == end || len(out) > 4096 {
			break
		}
	}
	return out, nil
}

// hostsOnly resolves names from the hosts file alone: its DNS "server"
// cannot be dialled, so an import never sends a query off the machine.
var hostsOnly = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("the import resolves names from /etc/hosts only")
}}

// ldResolve reads an address, or a host name as ldirectord resolves it
// (gethostbyname at read time; here from /etc/hosts, the first address
// of the family), noting the name and what it became in resolved.
func ldResolve(host string, v6 bool, resolved *[]string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	network := "ip4"
	if v6 {
		network = "ip6"
	}
	if len(host) <= 253 && hostName.MatchString(host) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if as, err := hostsOnly.LookupNetIP(ctx, network, host); err == nil && len(as) > 0 {
			a := as[0].Unmap()
			*resolved = append(*resolved, fmt.Sprintf("%s resolved to %s from /etc/hosts", host, a))
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%q: not an address, nor a name in /etc/hosts (the import does not ask DNS: give the address)", host)
}

// hostName is what ldirectord takes for a host name.
var hostName = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)
