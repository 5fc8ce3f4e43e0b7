// Package spec is the configuration of one ldirectord instance (NAME.toml
// for `ldirectord::NAME`): the meaning of ldirectord.cf and of keepalived's
// virtual_server/real_server in TOML. The core's config loader decodes and
// validates it (so `vigil config check` names file, line and key) and hands
// the normalised form to the ldirectord plugin as JSON; the plugin only
// reads it. It imports nothing from the core.
package spec

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/bits"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// ParamName is the resource parameter carrying the normalised instance as
// JSON from the core to the plugin.
const ParamName = "spec"

// Instance is one ldirectord instance.
type Instance struct {
	// Backend is "auto" (kernel IPVS when /proc/net/ip_vs exists, else the
	// userspace director), "ipvs" or "userspace".
	Backend string `toml:"backend" json:"backend"`
	// Defaults every virtual service inherits (ldirectord's globals).
	Checks
	Virtual []Virtual `toml:"virtual" json:"virtual"`
	// Sync, when present, runs the kernel's IPVS connection-sync daemons:
	// master where the instance directs, backup where it stands by.
	Sync *Sync `toml:"sync" json:"sync,omitempty"`
}

// Sync is the [sync] table: the kernel's connection synchronisation
// (what `ipvsadm --start-daemon` and keepalived's lvs_sync_daemon set up).
type Sync struct {
	// Interface carries the sync multicast (required; the daemons bind to
	// it and to its first IPv4 address).
	Interface string `toml:"interface" json:"interface"`
	// SyncID tags this cluster's sync messages (0..255); a backup drops
	// messages of another id. Unset, the loader derives it from the
	// cluster and group names (DeriveSyncID), the same on every node.
	SyncID *int `toml:"sync_id" json:"sync_id,omitempty"`
	// Group and Port are the multicast group and UDP port (kernel
	// defaults 224.0.0.81 and 8848); TTL the multicast TTL (default 1).
	Group string `toml:"group" json:"group"`
	Port  int    `toml:"port" json:"port"`
	TTL   int    `toml:"ttl" json:"ttl"`
	// MaxLen is the sync messages' UDP payload size; 0 lets the kernel
	// derive it from the interface's MTU.
	MaxLen int `toml:"maxlen" json:"maxlen"`
	// SyncVersion is net.ipv4.vs.sync_version, set in the resource's
	// network namespace: 1 (default, Linux 2.6.39 and later) or 0 for
	// backups running older kernels.
	SyncVersion *int `toml:"sync_version" json:"sync_version,omitempty"`
}

// Sync defaults, as the kernel's.
const (
	DefaultSyncGroup   = director.DefaultSyncGroup
	DefaultSyncPort    = director.DefaultSyncPort
	DefaultSyncTTL     = 1
	DefaultSyncVersion = 1
)

// DeriveSyncID is the sync id of a [sync] table that sets none: FNV-1a
// (32 bits) of "CLUSTER/GROUP", reduced to 1..255 (x mod 255 + 1). Every
// node computes the same id from the same configuration; 0 is never
// derived because a backup with id 0 accepts every cluster's messages.
func DeriveSyncID(cluster, group string) int {
	h := fnv.New32a()
	h.Write([]byte(cluster + "/" + group))
	return int(h.Sum32()%255) + 1
}

// ForGroup returns in as group runs it in cluster: with the sync id
// DeriveSyncID gives when its [sync] table sets none. in itself is left
// as it is (groups may share an inline instance).
func ForGroup(in *Instance, cluster, group string) *Instance {
	if in.Sync == nil || in.Sync.SyncID != nil {
		return in
	}
	y := *in.Sync
	id := DeriveSyncID(cluster, group)
	y.SyncID = &id
	out := *in
	out.Sync = &y
	return &out
}

// normalize checks the table and fills its defaults (the sync id stays
// unset: the loader derives it, knowing the cluster and group).
func (y *Sync) normalize(backend string, bad func(string, string, ...any)) {
	if backend == director.Userspace {
		bad("sync", "connection sync is kernel IPVS's: it needs backend = \"ipvs\" or \"auto\"")
	}
	switch {
	case y.Interface == "":
		bad("sync.interface", "is required: the interface the sync multicast uses (ipvsadm --mcast-interface)")
	case len(y.Interface) > director.IfNameMax || strings.ContainsAny(y.Interface, "/: \t") || y.Interface == "." || y.Interface == "..":
		bad("sync.interface", "%q is not an interface name (at most %d characters, no '/', ':' or spaces)", y.Interface, director.IfNameMax)
	}
	if y.SyncID != nil && (*y.SyncID < 0 || *y.SyncID > 255) {
		bad("sync.sync_id", "must be 0..255 (the sync messages carry it in one byte)")
	}
	if y.Group == "" {
		y.Group = DefaultSyncGroup
	}
	if a, err := netip.ParseAddr(y.Group); err != nil || !a.IsMulticast() || a.Zone() != "" {
		bad("sync.group", "%q is not a multicast address (such as 224.0.0.81 or ff02::51)", y.Group)
	} else {
		y.Group = a.String()
	}
	if y.Port == 0 {
		y.Port = DefaultSyncPort
	}
	if y.Port < 1 || y.Port > 65535 {
		bad("sync.port", "must be 1..65535")
	}
	if y.TTL == 0 {
		y.TTL = DefaultSyncTTL
	}
	if y.TTL < 1 || y.TTL > 255 {
		bad("sync.ttl", "must be 1..255")
	}
	// The kernel clamps a backup's buffer to at least 1024 bytes and any
	// payload to 65535 less the IP and UDP headers.
	if y.MaxLen != 0 && (y.MaxLen < 1024 || y.MaxLen > 65507) {
		bad("sync.maxlen", "must be 1024..65507 bytes, or 0 for the interface's MTU")
	}
	if y.SyncVersion == nil {
		v := DefaultSyncVersion
		y.SyncVersion = &v
	}
	if *y.SyncVersion != 0 && *y.SyncVersion != 1 {
		bad("sync.sync_version", "must be 0 or 1 (net.ipv4.vs.sync_version)")
	}
}

// Daemon is the sync daemon of the given state these settings describe.
func (y *Sync) Daemon(state uint32) director.SyncDaemon {
	d := director.SyncDaemon{State: state, Role: director.SyncStateName(state), Interface: y.Interface,
		Port: uint16(y.Port), TTL: uint8(y.TTL), MaxLen: uint16(y.MaxLen)}
	if y.SyncID != nil {
		d.SyncID = uint32(*y.SyncID)
	}
	d.Group, _ = netip.ParseAddr(y.Group)
	return d
}

// Checks are the settings a virtual service inherits from the instance.
type Checks struct {
	CheckInterval    Duration `toml:"checkinterval" json:"checkinterval"`
	CheckTimeout     Duration `toml:"checktimeout" json:"checktimeout"`
	NegotiateTimeout Duration `toml:"negotiatetimeout" json:"negotiatetimeout"`
	ConnectTimeout   Duration `toml:"connecttimeout" json:"connecttimeout"`
	FailureCount     int      `toml:"failurecount" json:"failurecount"`
	Quiescent        *bool    `toml:"quiescent" json:"quiescent"`
	Fallback         string   `toml:"fallback" json:"fallback"`
	// CleanStop false leaves the virtual and its reals in the director
	// when the instance stops (ldirectord's cleanstop=no); default true.
	CleanStop *bool `toml:"cleanstop" json:"cleanstop"`
	// MaintenanceDir takes a real out while a file named IP:PORT or IP
	// exists in it (ldirectord's maintenancedir; names are not looked
	// up in DNS).
	MaintenanceDir string `toml:"maintenancedir" json:"maintenancedir"`
}

// Virtual is one virtual service and its real servers.
type Virtual struct {
	Checks
	Address    string   `toml:"address" json:"address"` // "10.0.0.3:80", "[fd00::3]:80"
	FWMark     uint32   `toml:"fwmark" json:"fwmark"`
	V6         bool     `toml:"ipv6" json:"ipv6"` // fwmark services: the family
	Protocol   string   `toml:"protocol" json:"protocol"`
	Scheduler  string   `toml:"scheduler" json:"scheduler"`
	Persistent Duration `toml:"persistent" json:"persistent"`
	Netmask    string   `toml:"netmask" json:"netmask"`
	// MHPort and MHFallback are the mh scheduler's flags (ipvsadm's
	// -b mh-port / mh-fallback, keepalived's mh-port / mh-fallback):
	// hash the client's port as well as its address; pick another real
	// when the hashed one is overloaded (over its upper threshold).
	MHPort     bool `toml:"mh_port" json:"mh_port"`
	MHFallback bool `toml:"mh_fallback" json:"mh_fallback"`
	// Stateless is stateless failover mode (scheduler mh only): the
	// resource sets net.ipv4.vs.sloppy_tcp and sloppy_sctp in its network
	// namespace, so a director that never saw a flow schedules its
	// mid-flow packets, and Maglev hashing sends them to the same real
	// server every director picks; a real that fails stays in the table
	// at weight 0, so that every director's lookup table is built from
	// the same list in the same order. NAT reals' replies that match no
	// connection are rewritten to the virtual's address (director.StrayReply).
	Stateless bool `toml:"stateless" json:"stateless"`
	// Health checks (ldirectord names; status and digest are keepalived's).
	CheckType    string   `toml:"checktype" json:"checktype"`
	Service      string   `toml:"service" json:"service"`
	CheckPort    int      `toml:"checkport" json:"checkport"`
	Request      string   `toml:"request" json:"request"`
	Receive      string   `toml:"receive" json:"receive"`
	HTTPMethod   string   `toml:"httpmethod" json:"httpmethod"`
	VirtualHost  string   `toml:"virtualhost" json:"virtualhost"`
	Status       []string `toml:"status" json:"status"`
	Digest       string   `toml:"digest" json:"digest"`
	DNSType      string   `toml:"dnstype" json:"dnstype"`
	CheckCommand string   `toml:"checkcommand" json:"checkcommand"`
	// TLSVerify is what an https check verifies of a real's certificate:
	// "none" (the default, as keepalived's SSL_GET) or "chain" (the
	// chain against the system's CAs, not the host name: ldirectord's).
	TLSVerify string `toml:"tlsverify" json:"tlsverify"`
	// Connects is, for checktype "combined" (ldirectord's checktype=N),
	// the connect checks between two negotiate checks.
	Connects int    `toml:"connects" json:"connects"`
	Real     []Real `toml:"real" json:"real"`
}

// Real is one real server.
type Real struct {
	Address string `toml:"address" json:"address"` // "192.168.6.2:80" or "192.168.6.2" (the virtual's port)
	Forward string `toml:"forward" json:"forward"` // gate (default), masq, ipip
	Weight  *int   `toml:"weight" json:"weight"`   // default 1
	Request string `toml:"request" json:"request"` // override the virtual's
	Receive string `toml:"receive" json:"receive"`
	Upper   uint32 `toml:"upper" json:"upper"` // connection thresholds (ldirectord u:N, l:N)
	Lower   uint32 `toml:"lower" json:"lower"`
	// CheckPort is the port this real's checks use when the virtual sets
	// none: ldirectord checks a gate or ipip real on the port its real=
	// line gives, while ipvsadm programs it on the virtual's port.
	CheckPort int `toml:"checkport" json:"checkport"`
}

// Duration is a time in TOML as ldirectord writes it (an integer number of
// seconds) or with a unit ("500ms").
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("duration must not be negative")
		}
		*d = Duration(time.Duration(x) * time.Second)
		return nil
	case string:
		p, err := time.ParseDuration(x)
		if err != nil || p < 0 {
			return fmt.Errorf("invalid duration %q: seconds as an integer, or a string with a unit such as \"500ms\"", x)
		}
		*d = Duration(p)
		return nil
	}
	return fmt.Errorf("duration must be an integer (seconds) or a string such as \"500ms\", not %T", v)
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := time.ParseDuration(s)
	*d = Duration(p)
	return err
}

// Defaults from ldirectord 4.12 (LEGACY.md §5.2–5.4).
const (
	DefaultCheckInterval    = 10 * time.Second
	DefaultCheckTimeout     = 5 * time.Second
	DefaultNegotiateTimeout = 30 * time.Second
)

// servicesByPort is ldirectord's service derived from the virtual's port.
var servicesByPort = map[uint16]string{21: "ftp", 25: "smtp", 53: "dns", 80: "http", 110: "pop", 119: "nntp",
	143: "imap", 389: "ldap", 443: "https", 587: "submission", 636: "ldaps", 993: "imaps", 995: "pops",
	1521: "oracle", 1812: "radius", 3128: "http_proxy", 3306: "mysql", 5060: "sip", 5432: "pgsql"}

// negotiable are the services whose negotiate check Vigil speaks.
var negotiable = map[string]bool{"http": true, "https": true, "http_proxy": true, "dns": true, "smtp": true, "submission": true, "none": true}

// Normalize checks in and fills every default in place, so that each
// virtual carries its effective settings. report is called for each
// problem with the key's path ("virtual[0].real[1].weight").
func (in *Instance) Normalize(report func(key, msg string)) {
	bad := func(key, f string, a ...any) { report(key, fmt.Sprintf(f, a...)) }
	switch in.Backend {
	case "":
		in.Backend = director.Auto
	case director.Auto, director.Kernel, director.Userspace:
	default:
		bad("backend", "must be auto, ipvs or userspace, not %q", in.Backend)
	}
	in.Checks.check("", bad)
	if in.Sync != nil {
		in.Sync.normalize(in.Backend, bad)
	}
	seen := map[director.Key]string{}
	for i := range in.Virtual {
		v := &in.Virtual[i]
		vk := fmt.Sprintf("virtual[%d]", i)
		v.normalize(vk, in.Checks, bad)
		if k, err := v.Key(); err == nil {
			if other, dup := seen[k]; dup {
				bad(vk+".address", "duplicate virtual service %s (also %s)", k, other)
			}
			seen[k] = vk
		}
		if in.Backend == director.Userspace && v.FWMark != 0 {
			bad(vk+".fwmark", "firewall-mark services need kernel IPVS (backend = \"ipvs\" or \"auto\" on a kernel with IPVS)")
		}
		if in.Backend == director.Userspace && v.Stateless {
			bad(vk+".stateless", "stateless failover is kernel IPVS's (the userspace director terminates TCP): it needs backend = \"ipvs\" or \"auto\"")
		}
	}
}

func (c *Checks) check(prefix string, bad func(string, string, ...any)) {
	if c.FailureCount < 0 {
		bad(prefix+"failurecount", "must be a positive integer")
	}
	if c.Fallback != "" {
		if _, _, err := ParseFallback(c.Fallback, 80); err != nil {
			bad(prefix+"fallback", "%v", err)
		}
	}
}

func (v *Virtual) normalize(vk string, g Checks, bad func(string, string, ...any)) {
	v.Checks.check(vk+".", bad)
	var port uint16
	switch {
	case v.Address != "" && v.FWMark != 0:
		bad(vk+".fwmark", "a virtual service has an address or a firewall mark, not both")
	case v.FWMark != 0:
		if v.Protocol != "" && v.Protocol != director.FWM {
			bad(vk+".protocol", "a firewall-mark service has no protocol of its own")
		}
		v.Protocol = director.FWM
	case v.Address == "":
		bad(vk+".address", "is required (\"10.0.0.3:80\"), or give fwmark")
	default:
		ap, err := netip.ParseAddrPort(v.Address)
		if err != nil {
			bad(vk+".address", "%q: want IP:PORT such as \"10.0.0.3:80\" or \"[fd00::3]:80\"", v.Address)
			break
		}
		port = ap.Port()
		v.Address = netip.AddrPortFrom(ap.Addr().Unmap(), port).String()
		switch v.Protocol {
		case "":
			v.Protocol = director.TCP
			if port == 53 {
				v.Protocol = director.UDP // as ldirectord does
			}
		case director.TCP, director.UDP:
		default:
			bad(vk+".protocol", "must be tcp or udp, not %q", v.Protocol)
		}
	}
	if v.Scheduler == "" {
		v.Scheduler = "wrr"
	}
	if !director.ValidScheduler(v.Scheduler) {
		bad(vk+".scheduler", "%q is not a scheduler both backends have (%s)", v.Scheduler, strings.Join(director.Schedulers, ", "))
	}
	if _, err := v.netmaskBits(); err != nil {
		bad(vk+".netmask", "%v", err)
	}
	v.statelessChecks(vk, bad)
	// Inherit, then the documented fallbacks (ldirectord's ld_setup).
	inherit := func(d *Duration, g Duration) {
		if *d == 0 {
			*d = g
		}
	}
	if v.CheckTimeout == 0 && v.NegotiateTimeout == 0 {
		v.CheckTimeout, v.NegotiateTimeout = g.CheckTimeout, g.NegotiateTimeout
	}
	ct, nt := v.CheckTimeout, v.NegotiateTimeout
	inherit(&v.CheckTimeout, nt)
	inherit(&v.CheckTimeout, Duration(DefaultCheckTimeout))
	inherit(&v.NegotiateTimeout, ct)
	inherit(&v.NegotiateTimeout, Duration(DefaultNegotiateTimeout))
	inherit(&v.CheckInterval, g.CheckInterval)
	inherit(&v.CheckInterval, Duration(DefaultCheckInterval))
	inherit(&v.ConnectTimeout, g.ConnectTimeout)
	if v.FailureCount == 0 {
		v.FailureCount = max(g.FailureCount, 1)
	}
	if v.Quiescent == nil {
		q := g.Quiescent != nil && *g.Quiescent
		v.Quiescent = &q
	}
	if v.Fallback == "" {
		v.Fallback = g.Fallback
	}
	inheritString(&v.MaintenanceDir, g.MaintenanceDir)
	if v.CleanStop == nil {
		c := g.CleanStop == nil || *g.CleanStop
		v.CleanStop = &c
	}
	v.checks(vk, port, bad)
	for j := range v.Real {
		v.Real[j].normalize(fmt.Sprintf("%s.real[%d]", vk, j), v, port, bad)
	}
	seen := map[string]string{}
	for j, r := range v.Real {
		if other, dup := seen[r.Address]; dup && r.Address != "" {
			bad(fmt.Sprintf("%s.real[%d].address", vk, j), "duplicate real server %s (also %s)", r.Address, other)
		}
		seen[r.Address] = fmt.Sprintf("%s.real[%d]", vk, j)
	}
}

// statelessChecks refuses what stateless mode and the mh flags cannot do
// (the backend is checked by Instance.Normalize).
func (v *Virtual) statelessChecks(vk string, bad func(string, string, ...any)) {
	if v.Scheduler != "mh" {
		if v.MHPort {
			bad(vk+".mh_port", "is a flag of the mh scheduler (scheduler = \"mh\")")
		}
		if v.MHFallback {
			bad(vk+".mh_fallback", "is a flag of the mh scheduler (scheduler = \"mh\")")
		}
		if v.Stateless {
			bad(vk+".stateless", "needs scheduler = \"mh\" (Maglev hashing: every director maps a flow to the same real server; %q depends on what this director saw)", v.Scheduler)
		}
		return
	}
	if !v.Stateless {
		return
	}
	if v.Persistent > 0 {
		// A persistence template is this director's own state: a
		// standby that takes over has none and would schedule afresh.
		bad(vk+".persistent", "stateless mode keeps no per-director state: leave persistent unset (mh without mh_port already sends a client to one real server)")
	}
	for j, r := range v.Real {
		if r.Upper != 0 {
			// Overload is counted in this director's own connections,
			// which another director does not share.
			bad(fmt.Sprintf("%s.real[%d].upper", vk, j), "stateless mode: a connection threshold depends on this director's own connection count, which the others do not share")
		}
	}
}

func (v *Virtual) checks(vk string, port uint16, bad func(string, string, ...any)) {
	if v.CheckType == "" {
		v.CheckType = "negotiate"
	}
	switch v.CheckType {
	case "connect", "ping", "external", "external-perl", "on", "off":
	case "negotiate", "combined":
		if v.Service == "" {
			v.Service = servicesByPort[port]
			if v.Service == "" {
				v.Service = "none"
			}
		}
		if !negotiable[v.Service] {
			bad(vk+".service", "the %s negotiate check is not built in: use checktype = \"connect\" or \"external\" (built in: http, https, http_proxy, dns, smtp, submission, none)", v.Service)
		}
	default:
		bad(vk+".checktype", "must be connect, negotiate, combined, ping, external, external-perl, on or off, not %q", v.CheckType)
	}
	switch v.TLSVerify {
	case "":
		v.TLSVerify = "none"
	case "none", "chain":
	default:
		bad(vk+".tlsverify", "must be none or chain, not %q", v.TLSVerify)
	}
	if v.Connects < 0 {
		bad(vk+".connects", "must be 0 or more")
	}
	if v.Connects != 0 && v.CheckType != "combined" {
		bad(vk+".connects", "is for checktype = \"combined\"")
	}
	if (v.CheckType == "external" || v.CheckType == "external-perl") && v.CheckCommand == "" {
		bad(vk+".checkcommand", "is required for checktype = %q", v.CheckType)
	}
	if v.CheckPort < 0 || v.CheckPort > 65535 {
		bad(vk+".checkport", "must be 1..65535")
	}
	if v.HTTPMethod == "" {
		v.HTTPMethod = "GET"
	}
	if v.HTTPMethod = strings.ToUpper(v.HTTPMethod); v.HTTPMethod != "GET" && v.HTTPMethod != "HEAD" {
		bad(vk+".httpmethod", "must be GET or HEAD")
	}
	if v.Request == "" && (v.Service == "http" || v.Service == "https" || v.Service == "http_proxy") {
		v.Request = "/"
	}
	if _, err := regexp.Compile(v.Receive); err != nil {
		bad(vk+".receive", "not a regular expression: %v", err)
	}
	for i, s := range v.Status {
		if _, err := monitors.ParseStatus(s); err != nil {
			bad(fmt.Sprintf("%s.status[%d]", vk, i), "%v", err)
		}
	}
	if v.Digest != "" {
		if b, err := hex.DecodeString(v.Digest); err != nil || len(b) != md5.Size {
			bad(vk+".digest", "must be an MD5 digest in hex (32 characters), as genhash prints it")
		}
	}
	if !monitors.ValidDNSType(v.DNSType) {
		bad(vk+".dnstype", "must be A, AAAA, NS, CNAME, SOA, MX or TXT")
	}
}

func (r *Real) normalize(rk string, v *Virtual, port uint16, bad func(string, string, ...any)) {
	if r.Forward == "" {
		r.Forward = director.Gate
	}
	if r.Forward != director.Gate && r.Forward != director.Masq && r.Forward != director.IPIP {
		bad(rk+".forward", "must be gate, masq or ipip, not %q", r.Forward)
	}
	if r.Weight == nil {
		one := 1
		r.Weight = &one
	} else if *r.Weight < 0 || *r.Weight > 65535 {
		bad(rk+".weight", "must be 0..65535")
	}
	ap, err := ParseReal(r.Address, port)
	if err != nil {
		bad(rk+".address", "%v", err)
		return
	}
	r.Address = ap.String()
	if r.Forward == director.Gate && port != 0 && ap.Port() != port {
		bad(rk+".address", "a gate (direct routing) real server gets the virtual's port %d; port mapping needs forward = \"masq\"", port)
	}
	if _, err := regexp.Compile(r.Receive); err != nil {
		bad(rk+".receive", "not a regular expression: %v", err)
	}
	if r.CheckPort < 0 || r.CheckPort > 65535 {
		bad(rk+".checkport", "must be 1..65535")
	}
}

// ParseReal reads "ip:port", "[v6]:port" or a bare address (which takes
// port, the virtual's).
func ParseReal(s string, port uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a.Unmap(), port), nil
	}
	return netip.AddrPort{}, fmt.Errorf("%q: want IP, IP:PORT or [IPv6]:PORT", s)
}

// ParseFallback reads ldirectord's fallback: "host[:port] [gate|masq|ipip]".
func ParseFallback(s string, port uint16) (netip.AddrPort, string, error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return netip.AddrPort{}, "", fmt.Errorf("fallback %q: want \"IP[:PORT] [gate|masq|ipip]\"", s)
	}
	ap, err := ParseReal(f[0], port)
	if err != nil {
		return netip.AddrPort{}, "", fmt.Errorf("fallback %w", err)
	}
	fwd := director.Gate
	if len(f) == 2 {
		fwd = f[1]
		if fwd != director.Gate && fwd != director.Masq && fwd != director.IPIP {
			return netip.AddrPort{}, "", fmt.Errorf("fallback %q: forward method must be gate, masq or ipip", s)
		}
	}
	return ap, fwd, nil
}

// Key is the virtual service's director key.
func (v *Virtual) Key() (director.Key, error) {
	if v.FWMark != 0 {
		return director.Key{Proto: director.FWM, FWMark: v.FWMark, V6: v.V6}, nil
	}
	ap, err := netip.ParseAddrPort(v.Address)
	if err != nil {
		return director.Key{}, err
	}
	return director.Key{Proto: v.Protocol, Addr: ap}, nil
}

// Port is the virtual's port (0 for fwmark services).
func (v *Virtual) Port() uint16 {
	ap, _ := netip.ParseAddrPort(v.Address)
	return ap.Port()
}

// netmaskBits is the persistence granularity as a prefix length: IPv4 as
// a dotted quad (ldirectord refuses "24"), IPv6 as a length.
func (v *Virtual) netmaskBits() (uint32, error) {
	v6 := v.V6
	if ap, err := netip.ParseAddrPort(v.Address); err == nil {
		v6 = ap.Addr().Is6()
	}
	if v.Netmask == "" {
		if v6 {
			return 128, nil
		}
		return 32, nil
	}
	if v6 {
		n, err := strconv.Atoi(strings.TrimPrefix(v.Netmask, "/"))
		if err != nil || n < 1 || n > 128 {
			return 0, fmt.Errorf("%q: an IPv6 netmask is a prefix length 1..128", v.Netmask)
		}
		return uint32(n), nil
	}
	a, err := netip.ParseAddr(v.Netmask)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("%q: an IPv4 netmask is a dotted quad such as 255.255.255.0", v.Netmask)
	}
	b := a.As4()
	m := binary.BigEndian.Uint32(b[:])
	ones := bits.LeadingZeros32(^m)
	if m<<ones != 0 {
		return 0, fmt.Errorf("%q: not a contiguous netmask", v.Netmask)
	}
	return uint32(ones), nil
}

// DirectorService is the virtual's settings as a director service
// (without reals).
func (v *Virtual) DirectorService() director.Service {
	k, _ := v.Key()
	s := director.Service{Key: k, Scheduler: v.Scheduler, MHPort: v.MHPort, MHFallback: v.MHFallback}
	if v.Persistent > 0 {
		s.Persistent = uint32(max(1, v.Persistent.D()/time.Second))
		s.Netmask, _ = v.netmaskBits()
	}
	return s
}

// Stateless reports whether any virtual service runs in stateless mode.
func (in *Instance) Stateless() bool {
	for i := range in.Virtual {
		if in.Virtual[i].Stateless {
			return true
		}
	}
	return false
}

func inheritString(s *string, g string) {
	if *s == "" {
		*s = g
	}
}
