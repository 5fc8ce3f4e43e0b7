// Package fsm is the replicated cluster state that Raft keeps: nodes,
// groups, which node each group is assigned to, what every node reports
// about each group, failcounts and recent failures and decisions.
//
// Every change is an explicit, versioned command. A command of a type or
// version this build does not know (sent by a newer node during a rolling
// upgrade) is skipped and logged, never a panic, so a mixed cluster keeps
// its log applyable.
package fsm

import (
	"encoding/json"
	"fmt"

	"github.com/vigil-ha/vigil/cluster/timing"
)

// Command types.
const (
	TypeNodeState  = "node-state"
	TypeSetGroups  = "set-groups"
	TypeAssign     = "assign"
	TypeReport     = "report"
	TypeClaim      = "claim"
	TypeMove       = "move"
	TypeCleanup    = "cleanup"
	TypeNodeRemove = "node-remove"
	TypeNodeAdd    = "node-add"
	TypeFenced     = "fenced"
	// Batches: every claim, or every report, one node has queued, in one
	// entry; each item is applied (or refused) on its own. This build
	// still applies the single types; a build older than the batches
	// skips them, so a cluster is upgraded as a whole (no negotiation yet
	// keeps a new node sending single entries to old peers).
	TypeClaims  = "claims"
	TypeReports = "reports"
	// TypeHandover records a resource's hand-over state (a build older
	// than it skips it: the state is lost on a failover, nothing else).
	TypeHandover = "handover"
)

// versions lists the newest version of each command type this build
// applies.
var versions = map[string]int{
	TypeNodeState: 1, TypeSetGroups: 1, TypeAssign: 1, TypeReport: 1,
	TypeClaim: 1, TypeMove: 1, TypeCleanup: 1, TypeNodeRemove: 1, TypeNodeAdd: 1,
	TypeFenced: 1, TypeClaims: 1, TypeReports: 1, TypeHandover: 1,
}

// Envelope is one log entry.
type Envelope struct {
	Type    string          `json:"type"`
	Version int             `json:"v"`
	Data    json.RawMessage `json:"data"`
}

// Encode wraps a command in its envelope.
func Encode(typ string, cmd any) ([]byte, error) {
	data, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", typ, err)
	}
	return json.Marshal(Envelope{Type: typ, Version: versions[typ], Data: data})
}

// NodeState changes a node's flags. Nil fields are left alone.
type NodeState struct {
	Node        string `json:"node"`
	Online      *bool  `json:"online,omitempty"`
	Standby     *bool  `json:"standby,omitempty"`
	Maintenance *bool  `json:"maintenance,omitempty"`
	Leaving     *bool  `json:"leaving,omitempty"` // a graceful shutdown hands its groups over
	Files       string `json:"files,omitempty"`   // the digest of the node's own definitions (older builds ignore it)
	Incarnation uint64 `json:"incarnation,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// SetGroups replaces the group definitions (resources.toml). A daemon
// starting with definitions of its own sends them with generation 0,
// taken only while no `vigil reload` has set any; a reload sends the
// next generation, taken only if nothing else changed them meanwhile.
type SetGroups struct {
	Version    string      `json:"version"` // a digest of the definitions
	Generation uint64      `json:"generation,omitempty"`
	Groups     []GroupSpec `json:"groups"`
	Nodes      []NodeSpec  `json:"nodes"`
}

// GroupSpec is a group as configured.
type GroupSpec struct {
	Name      string     `json:"name"`
	Preferred string     `json:"preferred,omitempty"`
	Resources []Resource `json:"resources"`
}

// Resource is one resource of a group as replicated. Its JSON is that of
// the configuration's normalised form (config.Resource), so entries and
// snapshots written before the FSM had its own type still decode, and the
// definitions' digest (coord.GroupsVersion) is unchanged.
type Resource struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Params   map[string]string `json:"params,omitempty"`
	Args     []string          `json:"args,omitempty"`
	Timeout  timing.Duration   `json:"timeout,omitempty"`
	Interval timing.Duration   `json:"interval,omitempty"`
}

// NodeSpec is a node as configured.
type NodeSpec struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Assign records placement decisions.
type Assign struct {
	Changes []Change `json:"changes"`
}

// Change moves one group; To == "" stops it everywhere.
type Change struct {
	Group  string `json:"group"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

// Report is what a node's resource manager did with a group.
type Report struct {
	Node     string `json:"node"`
	Group    string `json:"group"`
	State    string `json:"state"` // one of the lrm states
	Op       string `json:"op,omitempty"`
	Resource string `json:"resource,omitempty"`
	Result   string `json:"result,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Fail counts a failure of Resource on Node: Fatal makes it reach the
	// migration threshold at once (a failed start, as in Pacemaker).
	Fail  bool  `json:"fail,omitempty"`
	Fatal bool  `json:"fatal,omitempty"`
	At    int64 `json:"at"` // unix nanoseconds, the reporter's clock
}

// Claim asks to start a group: it is accepted only if the group is still
// assigned to Node by the assignment at AssignIndex and no other node may
// still run it. The log orders claims against reassignments, so a node that
// decided to start from a stale view is refused.
type Claim struct {
	Node        string `json:"node"`
	Group       string `json:"group"`
	AssignIndex uint64 `json:"assign_index"`
}

// Claims is a batch of claims (each as Claim describes); one refused
// claim does not refuse the others. A claim of a group this node already
// claimed for the same assignment is accepted again without undoing what
// the node reported since.
type Claims struct {
	Claims []Claim `json:"claims"`
}

// Reports is a batch of reports, applied in order; one refused report
// (an unknown group, say) does not refuse the others.
type Reports struct {
	Reports []Report `json:"reports"`
}

// Move pins a group to a node (the operator's `vigil move`); Node == ""
// removes the pin.
type Move struct {
	Group string `json:"group"`
	Node  string `json:"node"`
}

// Cleanup forgets failcounts and failures of a group (on Node, or on every
// node when empty), so placement may use those nodes again.
type Cleanup struct {
	Group string `json:"group"`
	Node  string `json:"node,omitempty"`
}

// NodeAdd adds a node (after `vigil node add`), offline until heard.
type NodeAdd struct {
	Node string `json:"node"`
	Role string `json:"role"`
}

// NodeRemove forgets a node (after `vigil node remove`).
// Fenced records that the fencing plugin powered a node off and confirmed
// it: the node is offline and runs nothing, so what it reported running
// (or blocked, a stop that failed) counts as stopped. It stays offline
// until it is heard again with an incarnation newer than Incarnation.
type Fenced struct {
	Node        string `json:"node"`
	Incarnation uint64 `json:"incarnation"` // the daemon that was fenced
	Reason      string `json:"reason"`
}

type NodeRemove struct {
	Node string `json:"node"`
}

// MaxHandover bounds one resource's hand-over state.
const MaxHandover = 64 << 10

// Handover is the hand-over state the owner of a group exported for one
// of its resources (plugins' Handover: the userspace director's
// persistence templates), opaque to the core. It is taken only from the
// node whose start of the group's current assignment was accepted, so an
// old owner that lags cannot overwrite its successor's; an empty State
// forgets the resource's.
type Handover struct {
	Node       string `json:"node"`
	Group      string `json:"group"`
	Resource   string `json:"resource"`
	Generation uint64 `json:"generation"`
	State      []byte `json:"state,omitempty"`
}
