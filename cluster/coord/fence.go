package coord

import (
	"context"
	"fmt"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
)

// Fencer powers a node off and confirms it (tiebreak.Breaker.Fence): nil
// error only when the plugin answered OFF.
type Fencer interface {
	Fence(ctx context.Context, node string) error
}

// A failed stop leaves a group blocked: it may still run on that node, so
// it starts nowhere else. With a fencing plugin the leader powers the node
// off instead, and once the plugin confirmed it the group is free to move
// (fsm.Fenced): what the node ran counts as stopped, and the node stays
// offline until it is heard again from a new daemon.

// fenceBlocked fences each node on which a group is blocked (among the
// touched groups, or all on a full pass), and reports whether lead may go
// on (false when it could not record a fence). peers is lead's membership
// view: the daemon fenced is the incarnation it heard last.
func (c *Coordinator) fenceBlocked(ctx context.Context, full bool, touched map[string]bool, peers map[string]membership.PeerStatus) bool {
	type blocked struct{ group, node string }
	var found []blocked
	c.opt.FSM.Read(func(st *fsm.State) {
		for _, name := range st.GroupOrder {
			if !full && !touched[name] {
				continue
			}
			g := st.Groups[name]
			for _, node := range st.NodeOrder {
				if r, ok := g.Reports[node]; ok && r.State == lrm.Blocked {
					found = append(found, blocked{name, node})
				}
			}
		}
	})
	fenced := map[string]bool{} // one fence per node and pass
	for _, b := range found {
		name, node := b.group, b.node
		now := c.now()
		if fenced[node] || now.Before(c.fenceRetry[node]) {
			continue
		}
		retry := now.Add(c.opt.Timing.FenceRetry())
		if node == c.opt.Self {
			// A node does not fence itself: another leader will.
			c.fenceRetry[node] = retry
			c.log.Warn("a stop failed here: handing raft leadership over so that another node fences this one", "group", name)
			if err := c.opt.Raft.StepDown(); err != nil {
				c.log.Error("cannot hand leadership over; the group stays blocked", "group", name, "err", err)
			}
			return true
		}
		reason := fmt.Sprintf("fenced: the stop of %s failed there", name)
		c.log.Warn("fencing a node where a stop failed", "node", node, "group", name)
		if err := c.opt.Fencer.Fence(ctx, node); err != nil {
			c.fenceRetry[node] = retry
			c.log.Error("fencing failed; the group stays blocked", "node", node, "group", name, "err", err)
			continue
		}
		if err := c.Apply(ctx, fsm.TypeFenced, fsm.Fenced{Node: node, Incarnation: peers[node].Incarnation, Reason: reason}); err != nil {
			// Fenced again next time: powering off an off node is
			// harmless, and only a committed entry frees its groups.
			c.log.Error("cannot record the fence", "node", node, "err", err)
			return false
		}
		c.log.Warn("node fenced: its groups may move", "node", node, "group", name)
		fenced[node] = true
	}
	return true
}
