package fsm

import (
	"maps"
	"slices"
	"time"
)

// The state words of a group or resource, as node reports, the local
// resource manager and the control API carry them. They are here, in the
// lowest package that holds them, so every layer compares against the
// same constants.
const (
	Starting = "starting"
	Running  = "running"
	Stopping = "stopping"
	Stopped  = "stopped"
	Failed   = "failed"
	Unknown  = "unknown"
	Blocked  = "blocked" // a stop failed: the group may still run here
	Partial  = "partial" // a probe found some of its resources running
)

// Report states that mean a group may be running on the reporting node.
// Anything else (stopped, failed after a clean stop, unknown) means it is
// not.
var activeStates = map[string]bool{Starting: true, Running: true, Stopping: true, Blocked: true, Partial: true}

// Active reports whether a group in report state s may be running.
func Active(s string) bool { return activeStates[s] }

// Infinity is the failcount of a fatal failure: the node is out for the
// group until `vigil cleanup`.
const Infinity = 1_000_000

// How many failures and decisions the state remembers.
const (
	keepFailures  = 50
	keepDecisions = 50
)

// State is the replicated cluster state. Times come from the log entries
// (when the leader appended them), so every node computes the same state.
type State struct {
	Index         uint64 `json:"index"` // last applied log index
	GroupsVersion string `json:"groups_version"`
	// GroupsGeneration counts the definitions set by `vigil reload`.
	GroupsGeneration uint64            `json:"groups_generation,omitempty"`
	Nodes            map[string]*Node  `json:"nodes"`
	NodeOrder        []string          `json:"node_order"`
	Groups           map[string]*Group `json:"groups"`
	GroupOrder       []string          `json:"group_order"`
	Failures         []Failure         `json:"failures"`
	Decisions        []Decision        `json:"decisions"`
	Skipped          uint64            `json:"skipped"` // commands of unknown type or version
	// Moves counts groups given a new owner (failovers, moves, failbacks).
	Moves uint64 `json:"moves,omitempty"`
}

// Node is one cluster member as the cluster sees it.
type Node struct {
	Name        string `json:"name"`
	Role        string `json:"role"`
	Online      bool   `json:"online"`
	Standby     bool   `json:"standby"`
	Maintenance bool   `json:"maintenance"`
	Leaving     bool   `json:"leaving,omitempty"`
	// Files is the digest of the node's own group definitions (its
	// resources.toml and instance files) as it last reported them: status
	// shows every node whose files are not what the cluster runs.
	Files       string `json:"files,omitempty"`
	Incarnation uint64 `json:"incarnation,omitempty"`
	DownIndex   uint64 `json:"down_index,omitempty"` // the entry that last took it offline
	// Fenced is the incarnation of the daemon the fencing plugin powered
	// off (0: not fenced); the node stays offline until a newer one is
	// heard.
	Fenced uint64    `json:"fenced,omitempty"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// Group is one resource group and its placement.
type Group struct {
	GroupSpec
	Owner        string                    `json:"owner"`
	Pinned       string                    `json:"pinned,omitempty"` // `vigil move`
	Reason       string                    `json:"reason,omitempty"` // why Owner was chosen
	AssignIndex  uint64                    `json:"assign_index"`
	Since        time.Time                 `json:"since"`
	Claimed      string                    `json:"claimed,omitempty"`     // whose start was accepted for this assignment
	ClaimIndex   uint64                    `json:"claim_index,omitempty"` // the entry that accepted it
	CleanupIndex uint64                    `json:"cleanup_index,omitempty"`
	Reports      map[string]NodeReport     `json:"reports"`
	Failcounts   map[string]map[string]int `json:"failcounts,omitempty"` // node → resource → count
	// Handover is each resource's hand-over state as its owner last
	// exported it (resource id → state); the next owner's start gets it.
	Handover map[string]HandoverState `json:"handover,omitempty"`
}

// HandoverState is one resource's hand-over state (see Handover).
type HandoverState struct {
	Node       string `json:"node"` // who exported it
	Generation uint64 `json:"generation"`
	Index      uint64 `json:"index"` // the entry that recorded it
	Size       int    `json:"size"`  // of State, for status (which leaves State out)
	State      []byte `json:"state"`
}

// NodeReport is the last thing a node reported about a group.
type NodeReport struct {
	State    string    `json:"state"`
	Op       string    `json:"op,omitempty"`
	Resource string    `json:"resource,omitempty"`
	Result   string    `json:"result,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Index    uint64    `json:"index"`
	At       time.Time `json:"at"`
}

// Failure is one failed operation.
type Failure struct {
	Time     time.Time `json:"time"`
	Index    uint64    `json:"index,omitempty"` // the report's log entry
	Node     string    `json:"node"`
	Group    string    `json:"group"`
	Resource string    `json:"resource"`
	Op       string    `json:"op"`
	Result   string    `json:"result"`
	Reason   string    `json:"reason"`
}

// Decision is one placement change.
type Decision struct {
	Time   time.Time `json:"time"`
	Index  uint64    `json:"index"`
	Group  string    `json:"group"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Nodes: map[string]*Node{}, Groups: map[string]*Group{}}
}

// Failcount returns the failures of group g on node n (the sum over its
// resources).
func (s *State) Failcount(g, n string) int {
	grp := s.Groups[g]
	if grp == nil {
		return 0
	}
	total := 0
	for _, c := range grp.Failcounts[n] {
		total = min(Infinity, total+c)
	}
	return total
}

// Quorum is the number of votes a majority of the current voters needs.
func (s *State) Quorum() int { return len(s.NodeOrder)/2 + 1 }

// Clone returns a deep copy, for readers outside the FSM lock.
func (s *State) Clone() *State {
	c := *s
	c.Nodes = make(map[string]*Node, len(s.Nodes))
	for k, n := range s.Nodes {
		nn := *n
		c.Nodes[k] = &nn
	}
	c.Groups = make(map[string]*Group, len(s.Groups))
	for k, g := range s.Groups {
		gg := *g
		gg.Resources = slices.Clone(g.Resources)
		gg.Reports = maps.Clone(g.Reports)
		gg.Handover = maps.Clone(g.Handover) // the states' bytes are never changed in place
		gg.Failcounts = make(map[string]map[string]int, len(g.Failcounts))
		for n, fc := range g.Failcounts {
			gg.Failcounts[n] = maps.Clone(fc)
		}
		c.Groups[k] = &gg
	}
	c.NodeOrder = slices.Clone(s.NodeOrder)
	c.GroupOrder = slices.Clone(s.GroupOrder)
	c.Failures = slices.Clone(s.Failures)
	c.Decisions = slices.Clone(s.Decisions)
	return &c
}
