package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/cluster/tiebreak"
)

// A two_node pair has no third voter: once either node is gone the other
// has no quorum. The survivor takes over by becoming the only voter
// (consensus.RecoverAlone) — only when its peer has been silent on every
// link for deadtime and the tie-breakers agree — and lets the peer back in
// as a voter when it is heard again; Raft then replaces the peer's log
// with the survivor's (docs/SAFETY.md, "Two-node pairs").

// peer is the other node of a two_node pair.
func (c *Coordinator) peer() string {
	for _, n := range c.opt.Nodes {
		if n.Name != c.opt.Self {
			return n.Name
		}
	}
	return ""
}

// peerStatus is what membership says of the peer.
func (c *Coordinator) peerStatus(peer string) (membership.PeerStatus, bool) {
	for _, p := range c.opt.Members.Peers() {
		if p.Node == peer {
			return p, true
		}
	}
	return membership.PeerStatus{}, false
}

func (c *Coordinator) peerState(peer string) string {
	p, _ := c.peerStatus(peer)
	return p.State
}

// peerHeard is when the peer was last heard (when its state last changed
// if it never was).
func (c *Coordinator) peerHeard(peer string) time.Time {
	p, ok := c.peerStatus(peer)
	switch {
	case !ok:
		return c.now()
	case !p.LastHeard.IsZero():
		return p.LastHeard
	}
	return p.Since
}

// peerVotes reports whether the peer is still a Raft voter.
func (c *Coordinator) peerVotes(peer string) (bool, error) {
	voters, err := c.opt.Raft.Voters()
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(voters, func(p consensus.Peer) bool { return p.Name == peer }), nil
}

// holding reports whether any group is active here (false on a witness).
func (c *Coordinator) holding() bool {
	if c.opt.LRM == nil {
		return false
	}
	for _, g := range c.opt.LRM.Status() {
		if lrm.Active(g.State) {
			return true
		}
	}
	return false
}

// reportedHolding reports whether the replicated state still has this
// node's report of a group as running (or starting, stopping).
func (c *Coordinator) reportedHolding() (active bool) {
	c.opt.FSM.Read(func(s *fsm.State) {
		for _, g := range s.Groups {
			if r, ok := g.Reports[c.opt.Self]; ok && fsm.Active(r.State) {
				active = true
				return
			}
		}
	})
	return active
}

func (c *Coordinator) note(msg string, warn bool) {
	c.pairMu.Lock()
	changed := c.pairNote != msg
	c.pairNote = msg
	c.pairMu.Unlock()
	if changed && msg != "" {
		if warn {
			c.log.Warn(msg)
		} else {
			c.log.Info(msg)
		}
	}
}

// pair is the two_node step of the leader loop.
func (c *Coordinator) pair(ctx context.Context) {
	peer := c.peer()
	votes, err := c.peerVotes(peer)
	if err != nil {
		return
	}
	if _, _, deaf := c.opt.Lease.Deaf(peer); !deaf {
		// It hears this node, or says nothing of it: renewed as any
		// peer again, if pairDeaf stopped that (as a non-voter, after
		// a takeover, it is renewed only once back and online).
		c.opt.Lease.Withhold(peer, false)
	}
	switch state := c.peerState(peer); {
	case votes && state == "dead":
		// What the peer holds may outlive its lease (a release overrun,
		// a VIP's kernel lifetime when all its processes were killed):
		// its lease ran out by deadtime after it was last heard (lease
		// and margin fit in deadtime), the rest comes on top.
		over := c.opt.Lease.Overrun(peer)
		if gone := c.peerHeard(peer).Add(c.opt.Timing.Deadtime + over); c.now().Before(gone) {
			c.note(fmt.Sprintf("two_node: peer %s is silent on every link; waiting until what it holds is gone (%s past its lease)", peer, over), false)
			return
		}
		err := c.opt.TieBreak.Takeover(ctx, peer, c.peerHeard(peer), c.holding())
		if err == nil && c.peerState(peer) != "dead" {
			err = errors.New("it was heard again")
		}
		if err != nil {
			c.note(fmt.Sprintf("two_node: peer %s is silent on every link; not taking over: %v", peer, err), true)
			return
		}
		c.recoverAlone(peer, "is silent on every link and the tie-breakers agree")
	case votes && state == "up":
		c.pairDeaf(ctx, peer)
	case !votes && state == "up" && c.opt.Raft.IsLeader():
		if _, _, deaf := c.opt.Lease.Deaf(peer); deaf {
			// Back as a voter, a deaf peer would make a quorum of two
			// that cannot commit: it rejoins once it hears this node.
			c.note(fmt.Sprintf("two_node: peer %s is heard but hears this node no more: it rejoins once it does", peer), false)
			return
		}
		if err := c.opt.Raft.Rejoin(peer, c.opt.Timing.RejoinTimeout()); err != nil {
			c.log.Warn("two_node: peer heard again but cannot rejoin raft yet", "peer", peer, "err", err)
			return
		}
		c.note(fmt.Sprintf("two_node: peer %s heard again: rejoined as a voter; this node's state stands", peer), false)
	}
}

// pairDeaf takes over from a peer that is heard but deaf (a link that
// carries only what it sends): its lease ran out, so what it owns runs
// nowhere, and the pair has no quorum. Its view saying this node is dead
// is not enough — its tie-breakers may still let it hold (a firewall
// dropping only heartbeats to it) — so its beats must also say that its
// hold lapsed, a promise to hold nothing until this node renews a beat it
// sends later (package lease, Deaf). From the first such beat this node
// renews none of its beats, so the lease it last gave it runs out too;
// it waits for that and for the peer's overrun (released), for the lapse
// to have lasted DeafAfter (one seen for an instant is no failure), then
// withholds every renewal and takes over if its own tie-breakers agree,
// as for a silent peer (docs/SAFETY.md, rule 7). A peer of an older
// build never says it lapsed: nothing changes.
func (c *Coordinator) pairDeaf(ctx context.Context, peer string) {
	since, released, ok := c.opt.Lease.Deaf(peer)
	if !ok {
		return
	}
	now := c.now()
	if at := later(since.Add(c.opt.Timing.DeafAfter()), released); now.Before(at) {
		c.note(fmt.Sprintf("two_node: peer %s is heard but hears this node no more and its hold lapsed; waiting %s until what it held is surely gone", peer, at.Sub(now).Round(time.Millisecond)), false)
		return
	}
	if theirs, ours := c.opt.Lease.Applied(peer), c.opt.FSM.Applied(); theirs > ours {
		// Recovering alone on a shorter log would drop entries the
		// peer applied (committed, perhaps acknowledged) and leave two
		// histories to merge (just after a rejoin, say).
		c.note(fmt.Sprintf("two_node: peer %s is heard but hears this node no more and its hold lapsed; not taking over: it applied the log up to %d, this node only to %d", peer, theirs, ours), false)
		return
	}
	// From here on the peer gets no lease from this node, whatever it
	// says; its lapse must still be the one that began at since.
	c.opt.Lease.Withhold(peer, true)
	again, _, ok := c.opt.Lease.Deaf(peer)
	if ok && again.Equal(since) {
		err := c.opt.TieBreak.Takeover(ctx, peer, now, c.holding())
		if err == nil {
			if again, _, ok = c.opt.Lease.Deaf(peer); !ok || !again.Equal(since) {
				err = errors.New("it hears this node again")
			}
		}
		if err == nil {
			c.recoverAlone(peer, "is heard but deaf, its hold lapsed, and the tie-breakers agree")
			return // withheld until it hears this node again
		}
		c.note(fmt.Sprintf("two_node: peer %s is heard but hears this node no more and its hold lapsed; not taking over: %v", peer, err), true)
	}
	c.opt.Lease.Withhold(peer, false)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (c *Coordinator) recoverAlone(peer, why string) {
	// The leader loop and `vigil takeover` may both get here.
	c.takeover.Lock()
	defer c.takeover.Unlock()
	if votes, err := c.peerVotes(peer); err != nil || !votes {
		return
	}
	if err := c.opt.Raft.RecoverAlone(c.opt.Timing.RaftOpTimeout()); err != nil {
		c.note(fmt.Sprintf("two_node: peer %s %s; taking over failed: %v", peer, why, err), true)
		return
	}
	c.note(fmt.Sprintf("two_node: peer %s %s: took over as the only voter", peer, why), true)
}

// Takeover is `vigil takeover`: the operator confirms that the silent
// peer of a two_node pair is off (the tie-breaker of last resort), and
// this node becomes the only voter.
func (c *Coordinator) Takeover(ctx context.Context) error {
	if c.opt.TieBreak == nil {
		return fmt.Errorf("%w: takeover is for two_node pairs; a cluster with a quorum fails over by itself", fsm.ErrRefused)
	}
	peer := c.peer()
	if state := c.peerState(peer); state != "dead" {
		return fmt.Errorf("%w: peer %s is %s, not silent: nothing to take over from", fsm.ErrRefused, peer, state)
	}
	votes, err := c.peerVotes(peer)
	if err != nil {
		return err
	}
	if !votes {
		return fmt.Errorf("%w: this node already runs alone", fsm.ErrRefused)
	}
	c.recoverAlone(peer, "is silent on every link and the operator confirmed it is off (vigil takeover)")
	if votes, _ := c.peerVotes(peer); votes {
		return errors.New(c.pairNoteNow())
	}
	return nil
}

func (c *Coordinator) pairNoteNow() string {
	c.pairMu.Lock()
	defer c.pairMu.Unlock()
	return c.pairNote
}

// Pair returns the two_node status, nil for other clusters.
func (c *Coordinator) Pair(now time.Time) *tiebreak.PairStatus {
	if c.opt.TieBreak == nil {
		return nil
	}
	return &tiebreak.PairStatus{Peer: c.peer(), Note: c.pairNoteNow(), TieBreak: c.opt.TieBreak.Status(now)}
}
