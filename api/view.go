package api

import (
	"time"

	"github.com/vigil-ha/vigil/cluster/fsm"
)

// GroupView is one group as status shows it: where it runs and what each
// node last reported, with an offline node's report marked as only its
// last known state, so that a group never looks as if it ran twice.
type GroupView struct {
	Name      string `json:"name"`
	Owner     string `json:"owner,omitempty"`
	Preferred string `json:"preferred,omitempty"`
	Pinned    string `json:"pinned,omitempty"`
	// State is the owner's report; "unknown" when the owner is offline
	// (its last report is in Nodes), "-" when it reported nothing yet.
	State  string          `json:"state"`
	Reason string          `json:"reason,omitempty"`
	Nodes  []GroupNodeView `json:"nodes"`
}

// GroupNodeView is what one node last reported about a group.
type GroupNodeView struct {
	Node string `json:"node"`
	// State is the node's report, or "offline": the cluster holds the node
	// offline, so LastKnown is only what it said before.
	State        string    `json:"state"`
	LastKnown    string    `json:"last_known,omitempty"`
	OfflineSince time.Time `json:"offline_since,omitzero"`
	Failcount    int       `json:"failcount,omitempty"`
	// Last is the operation that made the report: "start OK", "stop OK:
	// assigned to lvs2".
	Last string `json:"last,omitempty"`
	// Unrecorded: State is this node's own, as its resource manager has
	// it now, which no leader recorded (LastKnown is the stale record):
	// a node cut off from the quorum stops its groups and cannot say so.
	Unrecorded bool `json:"unrecorded,omitempty"`
}

// Placement is every group of the replicated state, node by node, as
// Render, OneLine and --json show it (nil without cluster state).
func Placement(s *Status) []GroupView {
	if s.Core == nil || s.Core.State == nil {
		return nil
	}
	st := s.Core.State
	offline := func(node string) (time.Time, bool) { return Offline(s, node) }
	// Without a leader nothing records what this node does (it stopped
	// its groups when its lease ran out): its own rows are what its
	// resource manager has now, not its last replicated report.
	local := map[string]string{}
	if s.Core.Leader == "" {
		for _, g := range s.Groups {
			if g.State != "" {
				local[g.Name] = g.State
			}
		}
	}
	var out []GroupView
	for _, name := range st.GroupOrder {
		g := st.Groups[name]
		if g == nil {
			continue
		}
		v := GroupView{Name: name, Owner: g.Owner, Preferred: g.Preferred, Pinned: g.Pinned, State: "-", Reason: g.Reason}
		if r, ok := g.Reports[g.Owner]; ok {
			v.State = r.State
		}
		if _, off := offline(g.Owner); off && g.Owner != "" {
			v.State = fsm.Unknown
		}
		here, unrecorded := local[name]
		if unrecorded && g.Owner == s.Node && g.Owner != "" {
			v.State = here
		}
		for _, node := range st.NodeOrder {
			r, ok := g.Reports[node]
			if !ok {
				continue
			}
			nv := GroupNodeView{Node: node, State: r.State, Failcount: st.Failcount(name, node), Last: lastOp(r)}
			if since, off := offline(node); off {
				nv.State, nv.LastKnown, nv.OfflineSince = "offline", r.State, since
			} else if node == s.Node && unrecorded && here != r.State {
				nv.State, nv.LastKnown, nv.Unrecorded = here, r.State, true
			}
			v.Nodes = append(v.Nodes, nv)
		}
		out = append(out, v)
	}
	return out
}

// Offline reports whether status must show a node as offline, and since
// when: the cluster holds it offline, or, while this node knows no leader
// (its replicated state is only as last applied, and nothing updates it),
// this node does not hear it.
func Offline(s *Status, node string) (time.Time, bool) {
	c := s.Core
	if c == nil || c.State == nil {
		return time.Time{}, false
	}
	n := c.State.Nodes[node]
	if n == nil {
		return time.Time{}, false
	}
	if !n.Online {
		return n.Since, true
	}
	if c.Leader == "" && node != s.Node {
		for _, m := range s.Nodes {
			if m.Name == node && m.State == "dead" {
				return m.Since, true
			}
		}
	}
	return time.Time{}, false
}

func lastOp(r fsm.NodeReport) string {
	last := r.Op
	if r.Result != "" {
		last += " " + r.Result
	}
	if r.Reason != "" {
		last += ": " + r.Reason
	}
	return last
}

// Running reports whether the group is confirmed running: its owner is
// online and says so.
func (v GroupView) Running() bool { return v.Owner != "" && v.State == fsm.Running }
