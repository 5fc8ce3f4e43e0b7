// Package control is the daemon's control API: JSON over HTTP on a
// root-only unix socket, the client the CLI uses, and the crm_mon-like
// rendering of status.
package control

import (
	"time"

	"github.com/vigil-ha/vigil/cluster/alerts"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/cluster/tiebreak"
	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins/host"
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
	Groups []lrm.GroupStatus `json:"groups"`
	// Plugins are the plugin processes this daemon runs.
	Plugins []host.Status `json:"plugins"`
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
	Inspections []lrm.Inspection `json:"inspections,omitempty"`
	// Alerts are this node's deliveries through ha.toml's [[alert]]
	// routes (nil without routes).
	Alerts *AlertStatus `json:"alerts,omitempty"`
	// ShowStats renders the --stats view of inspections (CLI only).
	ShowStats bool `json:"-"`
}

// Command is an operator's command.
type Command struct {
	Op      string `json:"op"` // move, unmove, standby, online, maintenance, ready, cleanup, node-add, node-remove, resource-command, event
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

// AlertStatus is what the alert routes delivered.
type AlertStatus struct {
	alerts.Counts
	Recent []alerts.Record `json:"recent"`
}

// ErrRefused is a command the cluster refused (unknown group or node, a
// stale or forbidden change). Backends wrap it.
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
	Pair *tiebreak.PairStatus `json:"pair,omitempty"`
	// Fencing is set on other clusters with a [fence] plugin (a pair's
	// is in Pair).
	Fencing *tiebreak.Status `json:"fencing,omitempty"`
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
	membership.PeerStatus
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
