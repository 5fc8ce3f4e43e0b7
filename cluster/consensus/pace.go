package consensus

import (
	"github.com/hashicorp/raft"
)

// hashicorp/raft's leader sends its heartbeats every tenth of its
// HeartbeatTimeout, which is also, on a follower, how long it waits for
// the leader before it campaigns; and the leader lease may not exceed it.
// One setting for both made an idle leader send each follower 100 to 200
// AppendEntries a second at a 10 ms beat, half of a quiet cluster's CPU.
// The timeouts are reloadable per node, so each node runs with the ones
// of its role (Timing.Leading while it leads, the configured ones
// otherwise): a leader beats half as often, and a follower campaigns as
// soon as before.

// pace keeps the running Raft's timeouts those of its role, from its
// state observations, until done is closed. It also drops the log when
// an installed snapshot contradicts it (diverge.go): a restart of Raft,
// which Raft's own goroutine, where that is found, cannot do.
func (n *Node) pace(obs <-chan raft.Observation, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case at := <-n.diverged:
			n.dropLog(at)
		case <-obs:
		}
		// On every observation, from the state itself: a RecoverAlone
		// restart begins with the configured timeouts whatever the last
		// state was (reloadTimeouts does nothing when they are right).
		r := n.raft()
		n.reloadTimeouts(r, r.State() == raft.Leader)
	}
}

func (n *Node) reloadTimeouts(r *raft.Raft, leading bool) {
	rc := r.ReloadableConfig()
	hb, el := n.opt.Timing.Heartbeat, n.opt.Timing.Election
	if leading && n.opt.Timing.Leading > hb {
		hb, el = n.opt.Timing.Leading, max(el, n.opt.Timing.Leading)
	}
	if rc.HeartbeatTimeout == hb && rc.ElectionTimeout == el {
		return
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout = hb, el
	if err := r.ReloadConfig(rc); err != nil {
		n.log.Warn("raft timeouts not changed", "leading", leading, "heartbeat_timeout", hb, "err", err)
	}
}

// observeState registers, on r, an observer of its state changes that
// feeds ch (without blocking Raft: pace reads the state itself, so a
// dropped observation loses nothing once a later one arrives).
func observeState(r *raft.Raft, ch chan raft.Observation) {
	r.RegisterObserver(raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.RaftState)
		return ok
	}))
}
