// Package placement decides which node runs each group. It is a pure
// function of the replicated state, run by the Raft leader whenever
// something relevant changes; the decisions it returns are committed
// through Raft with their reasons.
package placement

import (
	"fmt"

	"github.com/vigil-ha/vigil/cluster/fsm"
)

// Options are the cluster-wide placement settings from ha.toml.
type Options struct {
	AutoFailback bool
	// MigrationThreshold failures of a group on a node make the node
	// ineligible for it until cleanup; 0 means never.
	MigrationThreshold int
}

// Decide returns the changes that bring every group to where it belongs,
// in group order. Rules, first match wins:
//   - a group whose stop failed somewhere stays where it is: it may still
//     run there, so it is started nowhere else;
//   - a group owned by a node in maintenance stays (unmanaged);
//   - a pin (`vigil move`) to an eligible node;
//   - with auto_failback, the preferred node when eligible;
//   - the current owner when eligible (stickiness);
//   - the preferred node when eligible;
//   - the first eligible node in configuration order;
//   - nowhere.
//
// Eligible: a member (not a witness), online, not in standby or
// maintenance, below the migration threshold for the group.
func Decide(s *fsm.State, o Options) []fsm.Change { return DecideGroups(s, o, s.GroupOrder) }

// DecideGroups is Decide for the named groups only, in the order given:
// the leader's pass after entries that changed only those groups.
func DecideGroups(s *fsm.State, o Options, names []string) []fsm.Change {
	var out []fsm.Change
	for _, name := range names {
		g := s.Groups[name]
		if g == nil {
			continue
		}
		to, reason := decide(s, o, g)
		if to != g.Owner {
			out = append(out, fsm.Change{Group: name, From: g.Owner, To: to, Reason: reason})
		}
	}
	return out
}

func decide(s *fsm.State, o Options, g *fsm.Group) (string, string) {
	for _, n := range s.NodeOrder {
		if r, ok := g.Reports[n]; ok && r.State == fsm.Blocked {
			return g.Owner, fmt.Sprintf("stop failed on %s: the group stays blocked until `vigil cleanup %s`", n, g.Name)
		}
	}
	if owner := s.Nodes[g.Owner]; owner != nil && owner.Maintenance {
		return g.Owner, fmt.Sprintf("%s is in maintenance", g.Owner)
	}
	ok, why := func(n string) bool { return eligible(s, o, g, n) == "" }, func(n string) string { return eligible(s, o, g, n) }
	switch {
	case g.Pinned != "" && ok(g.Pinned):
		return g.Pinned, fmt.Sprintf("moved to %s by operator", g.Pinned)
	case o.AutoFailback && g.Preferred != "" && ok(g.Preferred):
		if g.Owner != "" && g.Owner != g.Preferred {
			return g.Preferred, fmt.Sprintf("auto_failback: preferred node %s is back", g.Preferred)
		}
		return g.Preferred, fmt.Sprintf("preferred node %s", g.Preferred)
	case g.Owner != "" && ok(g.Owner):
		return g.Owner, g.Reason
	case g.Preferred != "" && ok(g.Preferred):
		if g.Owner != "" {
			return g.Preferred, fmt.Sprintf("%s %s; back to preferred node %s", g.Owner, why(g.Owner), g.Preferred)
		}
		return g.Preferred, fmt.Sprintf("preferred node %s", g.Preferred)
	}
	var because string
	switch {
	case g.Owner != "":
		because = fmt.Sprintf("%s %s", g.Owner, why(g.Owner))
	case g.Preferred != "":
		because = fmt.Sprintf("preferred node %s %s", g.Preferred, why(g.Preferred))
	}
	for _, n := range s.NodeOrder {
		if ok(n) {
			if because == "" {
				return n, fmt.Sprintf("first eligible node %s", n)
			}
			return n, because
		}
	}
	if because == "" {
		because = "no node is eligible"
	} else {
		because += "; no other node is eligible"
	}
	return "", because
}

// eligible returns "" when node n may run g, or why not.
func eligible(s *fsm.State, o Options, g *fsm.Group, n string) string {
	node := s.Nodes[n]
	switch {
	case node == nil:
		return "is not a cluster node"
	case node.Role == "witness":
		return "is a witness"
	case !node.Online:
		return "is offline"
	case node.Standby:
		return "is in standby"
	case node.Maintenance:
		return "is in maintenance"
	case node.Leaving:
		return "is shutting down"
	}
	if o.MigrationThreshold > 0 {
		if fc := s.Failcount(g.Name, n); fc >= fsm.Infinity {
			return "had a fatal failure (a start failed); `vigil cleanup` makes it eligible again"
		} else if fc >= o.MigrationThreshold {
			return fmt.Sprintf("reached the migration threshold (%d failures, threshold %d)", fc, o.MigrationThreshold)
		}
	}
	return ""
}
