package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/monitors"
)

// HA is ha.toml: the cluster, its nodes, heartbeat timing and media — the
// ha.cf of Vigil.
type HA struct {
	Cluster      string   `toml:"cluster"`
	Node         string   `toml:"node"` // this node; default: the hostname
	Keepalive    Duration `toml:"keepalive"`
	Warntime     Duration `toml:"warntime"`
	Deadtime     Duration `toml:"deadtime"`
	Initdead     Duration `toml:"initdead"`
	AutoFailback bool     `toml:"auto_failback"`
	// Lease is how long a quorum's confirmation lets a node hold its
	// groups (see package lease); default deadtime - keepalive/2.
	Lease Duration `toml:"lease"`
	// AddressLifetime, whole seconds, gives the VIPs a kernel address
	// lifetime that their plugin extends while the node holds its lease,
	// so that the kernel removes them when every Vigil process of the
	// node is gone; peers then wait that long (plus the kernel's slack)
	// longer before they take over. 0 (the default): no lifetime.
	AddressLifetime Duration `toml:"address_lifetime"`
	// MigrationThreshold failures of a group on a node move it elsewhere
	// (0: never); default 3.
	MigrationThreshold *int `toml:"migration_threshold"`
	// TwoNode lets a pair without a witness fail over: a survivor takes
	// over only when its peer is silent on every link and the
	// tie-breakers agree (docs/SAFETY.md, "Two-node pairs").
	TwoNode bool `toml:"two_node"`
	// PingNodes are tie-breakers for two_node: a node holds or takes
	// over groups without its peer only while one of them answers.
	PingNodes []string `toml:"ping_nodes"`
	// Fence is the fencing plugin: it confirms a silent peer is off
	// before a two_node survivor takes over, and unblocks a group whose
	// stop failed on a node it powered off.
	Fence         *Fence `toml:"fence"`
	Authkeys      string `toml:"authkeys"`       // path, relative to the config dir
	ControlSocket string `toml:"control_socket"` // root-only unix socket of the control API
	StateDir      string `toml:"state_dir"`      // boot incarnation and other small local state
	PluginDir     string `toml:"plugin_dir"`     // operators' plugins, executables named after the plugin
	// RTPriority, 1..99, runs the heartbeat thread under SCHED_FIFO at
	// that priority (keepalived's vrrp_rt_priority), so that a host whose
	// CPUs are saturated still beats on time; 0 (the default) does not.
	RTPriority int `toml:"rt_priority"`

	Nodes  []Node   `toml:"nodes"`
	UCast  []UCast  `toml:"ucast"`
	BCast  []BCast  `toml:"bcast"`
	MCast  []MCast  `toml:"mcast"`
	Serial []Serial `toml:"serial"`
	Raft   Raft     `toml:"raft"`

	// Alerts route the cluster's own events to alert senders, the same
	// senders mon's alert lines name.
	Alerts    []AlertRoute `toml:"alert"`
	AlertDir  []string     `toml:"alert_dir"`  // where alert scripts are looked up by name
	SMTPRelay string       `toml:"smtp_relay"` // host:port for the built-in mail
	MailFrom  string       `toml:"mail_from"`

	// MetricsListen is host:port of the Prometheus endpoint (/metrics);
	// empty: none.
	MetricsListen string `toml:"metrics_listen"`
	// MetricsPprof adds Go's runtime profiles (net/http/pprof, under
	// /debug/pprof/) to the metrics listener; it needs metrics_listen.
	MetricsPprof bool `toml:"metrics_pprof"`
	// WebView adds the live web view (read-only, under /web/) to the
	// metrics listener; it needs metrics_listen.
	WebView bool `toml:"web_view"`
}

// Fence names the fencing plugin and how to call it.
type Fence struct {
	Plugin  string            `toml:"plugin"`  // a fence plugin in plugin_dir
	Params  map[string]string `toml:"params"`  // passed to every call
	Timeout Duration          `toml:"timeout"` // per call; default 20s
	// Delay is how long a node that runs no group waits before fencing
	// its peer, so that in a fencing race the node running the groups
	// wins; default deadtime.
	Delay *Duration `toml:"delay"`
}

// DefaultFenceTimeout bounds one call to the fence plugin.
const DefaultFenceTimeout = 20 * time.Second

// AlertRoute sends the events of the kinds it names through its senders.
type AlertRoute struct {
	Events []string `toml:"events"` // AlertKinds; default: all
	// Send are alert lines as mon writes them: a sender and its
	// arguments ("mail ops@example.com", "file.alert /var/log/ha.alerts",
	// "webhook http://…", "log", "plugin:NAME k=v").
	Send    []string `toml:"send"`
	Upalert *bool    `toml:"upalert"` // recoveries too (default true)
}

// AlertKinds are the events the daemon routes: node (a member went
// offline or came back), failover (a group changed owner or lost it),
// resource (an operation failed), link (a heartbeat link to a peer went
// down or up), realserver (ldirectord took a real server out or put it
// back), service (mon alerts sent with the "vigil" alert).
var AlertKinds = []string{"node", "failover", "resource", "link", "realserver", "service"}

// Default locations of alert scripts: Vigil's own, then Debian mon's.
var DefaultAlertDir = []string{"/etc/vigil/alert.d", "/usr/lib/mon/alert.d"}

// Node is one cluster member.
type Node struct {
	Name    string `toml:"name"`
	Address string `toml:"address"` // heartbeat and Raft address
	Role    string `toml:"role"`    // "member" (default) or "witness": votes, runs no resources
}

// UCast sends heartbeats by UDP unicast to each peer. Like heartbeat's ucast,
// a peer address that is this node's own is skipped, so one file can be
// shared by every node.
type UCast struct {
	Interface string   `toml:"interface"` // optional: bind the socket to this device
	Bind      string   `toml:"bind"`      // local address; default: this node's address
	Port      int      `toml:"port"`
	Peers     []string `toml:"peers"` // default: every other node's address
}

// BCast sends heartbeats to the IPv4 broadcast address of an interface.
type BCast struct {
	Interface string `toml:"interface"`
	Port      int    `toml:"port"`
}

// MCast sends heartbeats to an IPv4 multicast group.
type MCast struct {
	Group     string `toml:"group"`
	Interface string `toml:"interface"`
	Port      int    `toml:"port"`
	TTL       int    `toml:"ttl"`
	Loop      bool   `toml:"loop"`
}

// Serial sends heartbeats over a serial line (a null-modem cable).
type Serial struct {
	Device string `toml:"device"`
	Baud   int    `toml:"baud"`
	// Nodes, when set, are the two nodes the cable joins: only they open
	// the device (a witness or a third director has no such port), and
	// each expects the other alone on it. Unset: every node opens it.
	Nodes []string `toml:"nodes"`
}

// Joins reports whether node is at one end of the cable.
func (s Serial) Joins(node string) bool { return len(s.Nodes) == 0 || slices.Contains(s.Nodes, node) }

// Raft holds the consensus layer's settings.
type Raft struct {
	Port    int    `toml:"port"`
	DataDir string `toml:"data_dir"`
}

// Defaults, chosen for a LAN director pair (the heartbeat timing's are in
// package timing).
const (
	DefaultPort          = 694 // heartbeat's registered ha-cluster port
	DefaultBaud          = 19200
	DefaultRaftPort      = 7946
	DefaultControlSocket = "/run/vigil/vigil.sock"
	DefaultStateDir      = "/var/lib/vigil"
	DefaultPluginDir     = "/usr/lib/vigil/plugins"
)

// Timing is the heartbeat timing, which every derived duration comes from.
func (h *HA) Timing() timing.Timing {
	return timing.Timing{Keepalive: h.Keepalive.D(), Warntime: h.Warntime.D(), Deadtime: h.Deadtime.D(), Initdead: h.Initdead.D(),
		Lease: h.Lease.D(), AddressLifetime: h.AddressLifetime.D()}
}

// ValidBauds are the rates a serial medium accepts (those heartbeat accepts).
var ValidBauds = []int{9600, 19200, 38400, 57600, 115200, 230400, 460800}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// explicitZeros refuses a zero written out where leaving the key out
// gives a default: "0s" must not silently become the default interval.
func (h *HA) explicitZeros(s *errSink, defined func(...string) bool) {
	timings := map[string]Duration{"keepalive": h.Keepalive, "deadtime": h.Deadtime, "warntime": h.Warntime, "initdead": h.Initdead, "lease": h.Lease,
		"address_lifetime": h.AddressLifetime}
	if h.Fence != nil {
		timings["fence.timeout"] = h.Fence.Timeout
	}
	for key, d := range timings {
		if d == 0 && defined(strings.Split(key, ".")...) {
			s.add(key, "must be greater than zero (leave it out for the default)")
		}
	}
}

func (h *HA) applyDefaults() {
	if h.Keepalive == 0 {
		h.Keepalive = Duration(timing.DefaultKeepalive)
	}
	if h.Deadtime == 0 {
		h.Deadtime = Duration(timing.DefaultDeadtime(h.Keepalive.D()))
	}
	if h.Warntime == 0 {
		h.Warntime = Duration(timing.DefaultWarntime(h.Deadtime.D()))
	}
	if h.Initdead == 0 {
		h.Initdead = Duration(timing.DefaultInitdead(h.Deadtime.D()))
	}
	if h.Lease == 0 {
		h.Lease = Duration(timing.DefaultLease(h.Keepalive.D(), h.Deadtime.D()))
	}
	if h.Fence != nil {
		if h.Fence.Timeout == 0 {
			h.Fence.Timeout = Duration(DefaultFenceTimeout)
		}
		if h.Fence.Delay == nil {
			d := Duration(timing.DefaultFenceDelay(h.Deadtime.D()))
			h.Fence.Delay = &d
		}
	}
	if h.MigrationThreshold == nil {
		three := 3
		h.MigrationThreshold = &three
	}
	if h.Authkeys == "" {
		h.Authkeys = "authkeys"
	}
	if h.ControlSocket == "" {
		h.ControlSocket = DefaultControlSocket
	}
	if h.StateDir == "" {
		h.StateDir = DefaultStateDir
	}
	if h.PluginDir == "" {
		h.PluginDir = DefaultPluginDir
	}
	if h.Raft.Port == 0 {
		h.Raft.Port = DefaultRaftPort
	}
	if len(h.AlertDir) == 0 {
		h.AlertDir = DefaultAlertDir
	}
	if h.SMTPRelay == "" {
		h.SMTPRelay = "127.0.0.1:25"
	}
	if h.MailFrom == "" {
		h.MailFrom = "vigil@" + h.Cluster
	}
	for i := range h.Alerts {
		if len(h.Alerts[i].Events) == 0 {
			h.Alerts[i].Events = AlertKinds
		}
		if h.Alerts[i].Upalert == nil {
			yes := true
			h.Alerts[i].Upalert = &yes
		}
	}
	if h.Raft.DataDir == "" {
		h.Raft.DataDir = h.StateDir + "/raft"
	}
	for i := range h.Nodes {
		if h.Nodes[i].Role == "" {
			h.Nodes[i].Role = "member"
		}
	}
	for i := range h.UCast {
		if h.UCast[i].Port == 0 {
			h.UCast[i].Port = DefaultPort
		}
	}
	for i := range h.BCast {
		if h.BCast[i].Port == 0 {
			h.BCast[i].Port = DefaultPort
		}
	}
	for i := range h.MCast {
		if h.MCast[i].Port == 0 {
			h.MCast[i].Port = DefaultPort
		}
		if h.MCast[i].TTL == 0 {
			h.MCast[i].TTL = 1
		}
	}
	for i := range h.Serial {
		if h.Serial[i].Baud == 0 {
			h.Serial[i].Baud = DefaultBaud
		}
	}
}

// validate checks everything that does not depend on the local machine.
// md tells which keys the file set explicitly, so that a derived value
// (warntime = deadtime/2) is not blamed on a key the user never wrote.
func (h *HA) validate(s *errSink, defined func(key string) bool, warn func(string, ...any)) {
	if h.Cluster == "" {
		s.add("cluster", "is required: the cluster's name, carried in every heartbeat")
	} else if !nameRE.MatchString(h.Cluster) {
		s.add("cluster", "%q is not a valid name (letters, digits, '.', '_', '-'; at most 63)", h.Cluster)
	}
	if h.Node != "" && !nameRE.MatchString(h.Node) {
		s.add("node", "%q is not a valid node name", h.Node)
	}

	if len(h.Nodes) == 0 {
		s.add("nodes", "at least one [[nodes]] entry is required")
	}
	names := map[string]string{}
	addrs := map[netip.Addr]int{}
	members := 0
	for i, n := range h.Nodes {
		k := fmt.Sprintf("nodes[%d]", i)
		s.uniqueName(k+".name", "node name", n.Name, names)
		if n.Address == "" {
			s.add(k+".address", "is required")
		} else if a, err := netip.ParseAddr(n.Address); err != nil {
			s.add(k+".address", "%q is not an IP address", n.Address)
		} else if j, dup := addrs[a]; dup {
			s.add(k+".address", "duplicate address %s (also nodes[%d], line %d)", a, j, s.pos.line(fmt.Sprintf("nodes[%d].address", j)))
		} else {
			addrs[a] = i
		}
		switch n.Role {
		case "member":
			members++
		case "witness":
		default:
			s.add(k+".role", "%q is not a role: use \"member\" or \"witness\"", n.Role)
		}
	}
	if len(h.Nodes) > 0 && members == 0 {
		s.add("nodes", "every node is a witness: at least one must be a member that can run resources")
	}
	switch {
	case h.TwoNode && (len(h.Nodes) != 2 || members != 2):
		s.add("two_node", "needs exactly two [[nodes]], both members (a pair with a witness needs no two_node: the witness breaks ties)")
	case h.TwoNode && len(h.PingNodes) == 0 && h.Fence == nil:
		warn("two_node without ping_nodes or [fence]: a survivor cannot tell a dead peer from a cut link, so it never takes over a group its silent peer holds (the peer keeps it); run `vigil takeover` after making sure the peer is off")
	case !h.TwoNode && len(h.Nodes) == 2 && members == 2:
		warn("two members and no witness: without a third voter a pair has no quorum once either node is gone, so nothing fails over; add a witness node (vigil witness) or set two_node = true with ping_nodes or [fence]")
	}
	if f := h.Fence; f != nil {
		if !nameRE.MatchString(f.Plugin) {
			s.add("fence.plugin", "%q is not a plugin name (an executable in plugin_dir)", f.Plugin)
		}
		if f.Timeout.D() <= 0 {
			s.add("fence.timeout", "must be greater than zero")
		}
		if f.Delay.D() < 0 {
			s.add("fence.delay", "must not be negative")
		}
	}
	if h.Node != "" && len(h.Nodes) > 0 {
		if _, ok := names[h.Node]; !ok {
			s.add("node", "%q is not one of the [[nodes]]", h.Node)
		}
	}

	h.validateTiming(s, defined, warn)

	media := len(h.UCast) + len(h.BCast) + len(h.MCast) + len(h.Serial)
	if media == 0 {
		s.add("", "no heartbeat medium: configure at least one [[ucast]], [[bcast]], [[mcast]] or [[serial]]")
	} else if media == 1 && len(h.Nodes) > 1 {
		warn("only one heartbeat medium: a single cut cable or switch port makes a live peer look dead; add a second (e.g. [[serial]])")
	}
	for i, u := range h.UCast {
		k := fmt.Sprintf("ucast[%d]", i)
		checkPort(s, k+".port", u.Port)
		if u.Bind != "" {
			if _, err := netip.ParseAddr(u.Bind); err != nil {
				s.add(k+".bind", "%q is not an IP address", u.Bind)
			}
		}
		for j, p := range u.Peers {
			if _, err := netip.ParseAddr(p); err != nil {
				s.add(fmt.Sprintf("%s.peers[%d]", k, j), "%q is not an IP address", p)
			}
		}
	}
	for i, b := range h.BCast {
		k := fmt.Sprintf("bcast[%d]", i)
		if b.Interface == "" {
			s.add(k+".interface", "is required: broadcasts go out of one interface")
		}
		checkPort(s, k+".port", b.Port)
	}
	for i, m := range h.MCast {
		k := fmt.Sprintf("mcast[%d]", i)
		if a, err := netip.ParseAddr(m.Group); err != nil || !a.Is4() || !a.IsMulticast() {
			s.add(k+".group", "%q is not an IPv4 multicast group (224.0.0.0/4)", m.Group)
		}
		if m.Interface == "" {
			s.add(k+".interface", "is required")
		}
		checkPort(s, k+".port", m.Port)
		if m.TTL < 1 || m.TTL > 255 {
			s.add(k+".ttl", "%d is out of range 1..255", m.TTL)
		}
	}
	for i, sr := range h.Serial {
		k := fmt.Sprintf("serial[%d]", i)
		switch {
		case sr.Device == "":
			s.add(k+".device", "is required (e.g. \"/dev/ttyS0\")")
		case !filepath.IsAbs(sr.Device) || filepath.Clean(sr.Device) != sr.Device:
			s.add(k+".device", "%q is not a device: give its absolute path without \"..\" (e.g. \"/dev/ttyS0\")", sr.Device)
		}
		if sr.Nodes != nil {
			switch {
			case len(sr.Nodes) != 2:
				s.add(k+".nodes", "a serial cable joins two nodes: name both ends, not %d", len(sr.Nodes))
			case sr.Nodes[0] == sr.Nodes[1]:
				s.add(k+".nodes", "%q at both ends: name the two nodes the cable joins", sr.Nodes[0])
			}
			for _, n := range sr.Nodes {
				if _, ok := names[n]; !ok && len(h.Nodes) > 0 {
					s.add(k+".nodes", "%q is not one of the [[nodes]]", n)
				}
			}
		}
		if !slices.Contains(ValidBauds, sr.Baud) {
			s.add(k+".baud", "%d is not a supported rate %v", sr.Baud, ValidBauds)
		} else if need := serialBytesPerSecond(len(h.Nodes), h.Keepalive.D()); need > sr.Baud/10 {
			// 10 bits per byte on the wire (8N1). A link slower than the
			// beat rate would queue stale heartbeats, so say so up front.
			warn("serial %s at %d baud carries about %d bytes/s but heartbeats every %s need about %d: lower the beat rate or raise baud",
				sr.Device, sr.Baud, sr.Baud/10, h.Keepalive, need)
		}
	}
	for i, p := range h.PingNodes {
		if _, err := netip.ParseAddr(p); err != nil {
			s.add(fmt.Sprintf("ping_nodes[%d]", i), "%q is not an IP address", p)
		}
	}
	if h.RTPriority < 0 || h.RTPriority > 99 {
		s.add("rt_priority", "%d is out of range: 1..99 for SCHED_FIFO, 0 for the normal scheduler", h.RTPriority)
	}
	checkPort(s, "raft.port", h.Raft.Port)
	if h.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(h.MetricsListen); err != nil || port == "" {
			s.add("metrics_listen", "%q is not host:port (\"127.0.0.1:9470\", \":9470\" for every address)", h.MetricsListen)
		}
	}
	if h.MetricsPprof && h.MetricsListen == "" {
		s.add("metrics_pprof", "needs metrics_listen: the profiles are served on the metrics listener")
	}
	if h.WebView && h.MetricsListen == "" {
		s.add("web_view", "needs metrics_listen: the web view is served on the metrics listener")
	}
	h.validateAlerts(s, warn)
}

func (h *HA) validateAlerts(s *errSink, warn func(string, ...any)) {
	if _, _, err := net.SplitHostPort(h.SMTPRelay); err != nil {
		s.add("smtp_relay", "%q is not host:port", h.SMTPRelay)
	}
	for i, r := range h.Alerts {
		k := fmt.Sprintf("alert[%d]", i)
		for j, e := range r.Events {
			if !slices.Contains(AlertKinds, e) {
				s.add(fmt.Sprintf("%s.events[%d]", k, j), "%q is not an event kind %v", e, AlertKinds)
			}
		}
		if len(r.Send) == 0 {
			s.add(k+".send", "is required: at least one alert line (\"log\", \"mail ops@example.com\", \"file.alert /var/log/ha.alerts\")")
		}
		for j, line := range r.Send {
			kj := fmt.Sprintf("%s.send[%d]", k, j)
			words, err := monitors.Words(line)
			switch {
			case err != nil:
				s.add(kj, "%v", err)
			case len(words) == 0:
				s.add(kj, "is empty")
			case words[0] == "mail" && len(words) < 2:
				s.add(kj, "mail needs at least one recipient")
			case words[0] == "webhook" && len(words) != 2:
				s.add(kj, "webhook needs exactly one argument, the URL")
			case words[0] == "plugin:":
				s.add(kj, "plugin: needs the plugin's name (plugin:NAME)")
			case words[0] == "vigil" || words[0] == "ipvs":
				s.add(kj, "%s is a mon alert, not a sender of the daemon's events", words[0])
			case (monitors.Senders{}).Known(words[0]):
			default:
				// A script: it may be installed after the check (by
				// another package), so a missing one only warns.
				if _, err := monitors.Find(h.AlertDir, words[0]); err != nil {
					warn("line %d: %s: %v", s.pos.line(kj), kj, err)
				}
			}
		}
	}
}

// serialBytesPerSecond estimates the serial load of one node's heartbeats:
// a fixed header, the view (one entry per node) and the framing.
func serialBytesPerSecond(nodes int, keepalive time.Duration) int {
	if keepalive <= 0 {
		return 0
	}
	perBeat := 96 + nodes*24
	return int(float64(perBeat) * float64(time.Second) / float64(keepalive))
}

func (h *HA) validateTiming(s *errSink, defined func(string) bool, warn func(string, ...any)) {
	// Blame the key the user wrote: when warntime/initdead are derived,
	// the fault lies with deadtime.
	blame := func(k string) string {
		if defined(k) {
			return k
		}
		return "deadtime"
	}
	t := h.Timing()
	ka, dt, wt, id := t.Keepalive, t.Deadtime, t.Warntime, t.Initdead
	if ka <= 0 {
		s.add("keepalive", "must be greater than zero")
		return
	}
	if dt < t.MinDeadtime() {
		s.add("deadtime", "%s is not comfortably above keepalive %s: it must be at least %d × keepalive (%s), so that a peer is declared dead only after %d missed heartbeats",
			dt, ka, timing.MinDeadBeats, t.MinDeadtime(), timing.MinDeadBeats)
	}
	if wt <= ka || wt >= dt {
		s.add(blame("warntime"), "warntime %s must lie between keepalive %s and deadtime %s", wt, ka, dt)
	}
	if id < dt {
		s.add(blame("initdead"), "initdead %s is smaller than deadtime %s: at boot, peers get at least deadtime to show up", id, dt)
	}
	if ls := t.Lease; ls < t.MinLease() {
		s.add(blame("lease"), "lease %s must be at least %d × keepalive (%s): a node renews it with every heartbeat its peers echo", ls, timing.MinLeaseBeats, t.MinLease())
	} else if ls > t.MaxLease() {
		s.add(blame("lease"), "lease %s plus a margin of half a keepalive (%s) must not exceed deadtime %s: a dead node's lease must have run out when it is declared dead, or failover waits for it", ls, t.LeaseMargin(), dt)
	} else if ls < t.SteadyLease() {
		warn("lease %s (deadtime less half a keepalive, unless set) is under %d × keepalive (%s): after its stop budget it does not outlast an echo's interval and age, so with one voter left echoing late in its beat it lapses between echoes and groups stop and start; make deadtime at least %s",
			ls, timing.SteadyLeaseBeats, t.SteadyLease(), t.SteadyLease()+t.LeaseMargin())
	}
	if al := h.AddressLifetime.D(); al != 0 && (al < time.Second || al > time.Hour || al%time.Second != 0) {
		s.add("address_lifetime", "%s: want whole seconds from 1s to 1h (the kernel counts address lifetimes in seconds)", al)
	}
	if h.MigrationThreshold != nil && *h.MigrationThreshold < 0 {
		s.add("migration_threshold", "%d must be 0 (never migrate on failures) or more", *h.MigrationThreshold)
	}
}

func checkPort(s *errSink, key string, p int) {
	if p < 1 || p > 65535 {
		s.add(key, "%d is not a port (1..65535)", p)
	}
}

// NodeByName returns the named node.
func (h *HA) NodeByName(name string) (Node, bool) {
	for _, n := range h.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}
