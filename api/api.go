// Package api is the daemon's control API as its users see it: the
// request and response types of every endpoint on the control socket and
// the Client that the CLI, plugins talking back to their daemon and tests
// use. The server (cluster/control) encodes these same types, so the two
// sides cannot drift apart.
//
// api sits at the bottom of the package graph, beside the leaves it
// imports: it imports only vigil packages that import no vigil package
// themselves (cluster/fsm, cluster/heartbeat, monitors). Their types carry
// logic (the replicated state's apply and queries, an alert's methods, a
// peer state's name), so they stay where that logic is. The status types
// of packages higher up (membership, tiebreak, alerts, lrm, plugins/host,
// plugins) are defined here and aliased there: those packages produce
// them, and api must not import them (plugins imports api, and lrm and
// plugins/host import plugins). TestImportsLeavesOnly keeps it so.
package api

import (
	"encoding/json"
	"time"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
	"github.com/vigil-ha/vigil/monitors"
)

// The control API's endpoints.
const (
	PathStatus  = "/v1/status"  // GET: Status
	PathEvents  = "/v1/events"  // GET: a stream of Event, one JSON object a line
	PathCommand = "/v1/command" // POST Command: 204 once the cluster committed it
)

// Status is everything `vigil status` shows.
type Status struct {
	Cluster     string                   `json:"cluster"`
	Node        string                   `json:"node"`
	Version     string                   `json:"version"`
	Incarnation uint64                   `json:"incarnation"`
	Started     time.Time                `json:"started"`
	Now         time.Time                `json:"now"`
	Timing      Timing                   `json:"timing"`
	Nodes       []NodeStatus             `json:"nodes"`
	Links       []heartbeat.LinkCounters `json:"links"`
	// Groups as this node's resource manager last saw them.
	Groups []GroupStatus `json:"groups"`
	// Plugins are the plugin processes this daemon runs.
	Plugins []PluginStatus `json:"plugins"`
	// Core is the replicated cluster state as this node applied it.
	Core *ClusterStatus `json:"core,omitempty"`
	// Placement is Core's groups node by node, an offline node's report
	// marked as only its last known state (filled by the client from
	// Core: scripts read this rather than the raw reports).
	Placement []GroupView `json:"placement,omitempty"`
	// FilesDiffer are the nodes whose resources.toml is not what the
	// cluster runs (FilesDiffer, filled like Placement).
	FilesDiffer []string `json:"files_differ,omitempty"`
	// Inspections are resources' own views: the IPVS tables of this
	// node's ldirectord instances (also on a standby: its health state).
	Inspections []Inspection `json:"inspections,omitempty"`
	// Alerts are this node's deliveries through ha.toml's [[alert]]
	// routes (nil without routes).
	Alerts *AlertStatus `json:"alerts,omitempty"`
	// ShowStats renders the --stats view of inspections (CLI only).
	ShowStats bool `json:"-"`
}

// Command is an operator's command, or a plugin's.
type Command struct {
	Op      string `json:"op"` // one of the Op constants
	Group   string `json:"group,omitempty"`
	Node    string `json:"node,omitempty"`
	Address string `json:"address,omitempty"` // node-add: host:port of its raft listener
	// resource-command: a command to a resource running on this node
	// (Resource empty: every running instance that takes it).
	Resource string   `json:"resource,omitempty"`
	Name     string   `json:"name,omitempty"`
	Args     []string `json:"args,omitempty"`
	// event: something for the alert routes (from a plugin).
	Event *monitors.Alert `json:"event,omitempty"`
}

// Command ops. The operator's are the CLI's command words.
const (
	OpMove        = "move"        // Group to Node (pins it there)
	OpUnmove      = "unmove"      // Group's pin removed
	OpStandby     = "standby"     // Node runs no groups
	OpOnline      = "online"      // Node out of standby
	OpMaintenance = "maintenance" // Node's resources left unmanaged
	OpReady       = "ready"       // Node out of maintenance
	OpCleanup     = "cleanup"     // Group's failures forgotten (on Node, or everywhere)
	OpNodeAdd     = "node-add"    // Node at Address joins
	OpNodeRemove  = "node-remove" // Node leaves
	OpReload      = "reload"      // the daemon rereads its configuration
	OpTakeover    = "takeover"    // a two_node survivor takes its silent peer's groups
	// From plugins:
	OpResourceCommand = "resource-command" // Name with Args to Resource on this node
	OpEvent           = "event"            // Event for the alert routes
)

// AlertStatus is what the alert routes delivered.
type AlertStatus struct {
	AlertCounts
	Recent []AlertRecord `json:"recent"`
}

// AlertRecord is one delivery (cluster/alerts.Record).
type AlertRecord struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Type    string    `json:"type"`
	Summary string    `json:"summary"`
	Via     string    `json:"via"`
	Err     string    `json:"err,omitempty"`
}

// AlertCounts are the deliveries so far (cluster/alerts.Counts).
type AlertCounts struct {
	Sent    uint64 `json:"sent"`
	Failed  uint64 `json:"failed"`
	Dropped uint64 `json:"dropped"` // a sender's queue was full
}

// ErrRefused is a command the cluster refused (unknown group or node, a
// stale or forbidden change). Backends wrap it; the Client returns it for
// the server's 409.
var ErrRefused = fsm.ErrRefused

// ClusterStatus is the Raft core as this node sees it.
type ClusterStatus struct {
	Leader     string     `json:"leader"`
	RaftState  string     `json:"raft_state"`
	Term       string     `json:"term"`
	Applied    uint64     `json:"applied"`
	Quorum     int        `json:"quorum"`
	Voters     []string   `json:"voters,omitempty"` // Raft's, as this node knows them
	HoldsLease bool       `json:"holds_lease"`
	Lease      string     `json:"lease,omitempty"` // time left
	State      *fsm.State `json:"state"`
	// Files is the digest of this node's own group definitions (its
	// resources.toml and instance files): it differs from
	// State.GroupsVersion when the cluster runs another node's.
	Files string `json:"files_version,omitempty"`
	// Pair is set on a two_node pair: voters, tie-breakers, the latest
	// takeover decision.
	Pair *PairStatus `json:"pair,omitempty"`
	// Fencing is set on other clusters with a [fence] plugin (a pair's
	// is in Pair).
	Fencing *TieBreakStatus `json:"fencing,omitempty"`
}

// Timing is the heartbeat timing in force.
type Timing struct {
	Keepalive string `json:"keepalive"`
	Warntime  string `json:"warntime"`
	Deadtime  string `json:"deadtime"`
	Initdead  string `json:"initdead"`
}

// NodeStatus is one configured node. For this node, State is "up" and
// Links is empty.
type NodeStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Role    string `json:"role"`
	Self    bool   `json:"self,omitempty"`
	PeerStatus
}

// EventKind names a membership change (the values are
// cluster/membership's NodeUp, NodeDead, …).
type EventKind string

// Event is one membership change, as /v1/events streams it.
type Event struct {
	Time   time.Time `json:"time"`
	Kind   EventKind `json:"kind"`
	Node   string    `json:"node"`
	Link   string    `json:"link,omitempty"`
	Reason string    `json:"reason"`
}

// LinkStatus is one link to one peer.
type LinkStatus struct {
	Link      string    `json:"link"`
	State     string    `json:"state"`
	LastHeard time.Time `json:"last_heard,omitzero"`
	Late      uint64    `json:"late"`     // heartbeats that came after more than warntime
	Received  uint64    `json:"received"` // fresh heartbeats
}

// PeerStatus is one peer as this node sees it.
type PeerStatus struct {
	Node        string                `json:"node"`
	State       string                `json:"state"`
	Since       time.Time             `json:"since"`
	Incarnation uint64                `json:"incarnation,omitempty"`
	LastHeard   time.Time             `json:"last_heard,omitzero"`
	Links       []LinkStatus          `json:"links"`
	View        []heartbeat.ViewEntry `json:"view,omitempty"` // what the peer sees
}

// PingStatus is one ping node as `vigil status` shows it.
type PingStatus struct {
	Addr     string    `json:"addr"`
	Answered time.Time `json:"answered,omitzero"` // send time of the latest answered echo
	Up       bool      `json:"up"`                // answered within the lease
}

// TieBreakStatus is the tie-breakers' state (cluster/tiebreak.Status).
type TieBreakStatus struct {
	Ping      []PingStatus `json:"ping,omitempty"`
	Fence     string       `json:"fence,omitempty"` // the plugin's name
	LastFence *FenceRecord `json:"last_fence,omitempty"`
}

// FenceRecord is the outcome of the latest fencing.
type FenceRecord struct {
	Node   string    `json:"node"`
	At     time.Time `json:"at"`
	Result string    `json:"result"` // "off" or the error
}

// PairStatus is the two_node part of `vigil status`.
type PairStatus struct {
	Peer     string         `json:"peer"`
	Note     string         `json:"note,omitempty"` // the latest takeover decision
	TieBreak TieBreakStatus `json:"tiebreak"`
}

// ResourceStatus is one resource as this node last saw it.
type ResourceStatus struct {
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Plugin string    `json:"plugin"`
	State  string    `json:"state"`
	LastOp string    `json:"last_op,omitempty"`
	Result string    `json:"result,omitempty"` // OCF code name, or the error
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
	// Ops counts this resource's operations by "op result"
	// ("start SUCCESS", "monitor NOT_RUNNING", "stop error").
	Ops map[string]uint64 `json:"ops,omitempty"`
}

// GroupStatus is one group on this node, as its resource manager saw it.
type GroupStatus struct {
	Name      string           `json:"name"`
	Wanted    bool             `json:"wanted"` // this node is to run it
	State     string           `json:"state"`
	Resources []ResourceStatus `json:"resources"`
}

// Inspection is a resource's own view of its live state (the IPVS table
// of an ldirectord instance, say), for status.
type Inspection struct {
	Group    string          `json:"group"`
	Resource string          `json:"resource"`
	Title    string          `json:"title"`
	Text     string          `json:"text"`
	Stats    string          `json:"stats,omitempty"`
	JSON     json.RawMessage `json:"state,omitempty"`
	// Metrics are the instance's Prometheus series, as its plugin gave
	// them (the metrics listener adds the resource label): served there,
	// not in status.
	Metrics []Metric `json:"-"`
}

// Metric is one family of a resource's Prometheus series.
type Metric struct {
	Name    string
	Help    string
	Counter bool // else a gauge
	Labels  []string
	Samples []Sample
}

// Sample is one series of a Metric: its label values and value.
type Sample struct {
	Values []string
	Value  float64
}

// PluginKind names one plugin service (the values are plugins.KindResource,
// …).
type PluginKind string

// The states of a plugin process in PluginStatus.
const (
	PluginStarting   = "starting"
	PluginRunning    = "running"
	PluginRestarting = "restarting"
	PluginFailed     = "failed"
	PluginStopped    = "stopped"
)

// PluginStatus describes one plugin process for `vigil status`.
type PluginStatus struct {
	Kind       PluginKind `json:"kind"`
	Name       string     `json:"name"`
	Path       string     `json:"path"`
	Builtin    bool       `json:"builtin"`
	State      string     `json:"state"` // one of the Plugin* states
	PID        int        `json:"pid,omitempty"`
	Since      time.Time  `json:"since"`
	Crashes    int        `json:"crashes"`
	Restarts   int        `json:"restarts"`
	LastExit   string     `json:"last_exit,omitempty"`
	LastExitAt time.Time  `json:"last_exit_at,omitzero"`
	LastError  string     `json:"last_error,omitempty"`
}

// FilesDiffer lists the nodes whose own group definitions (resources.toml
// and instance files) are not what the cluster runs: every node as it
// last reported its files, this node as they are now. Nil without
// cluster state or when they all agree.
func FilesDiffer(s *Status) []string {
	c := s.Core
	if c == nil || c.State == nil || c.State.GroupsVersion == "" {
		return nil
	}
	st := c.State
	var out []string
	for _, name := range st.NodeOrder {
		files := ""
		if n := st.Nodes[name]; n != nil {
			files = n.Files
		}
		if name == s.Node && c.Files != "" {
			files = c.Files // fresher than its last report
		}
		if files != "" && files != st.GroupsVersion {
			out = append(out, name)
		}
	}
	return out
}
