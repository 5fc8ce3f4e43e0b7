// Package timing derives every duration the cluster runs on from the
// heartbeat timing an operator writes in ha.toml (keepalive, deadtime,
// lease, ...): each relation between them is written here once, with its
// reason, and every component reads it from a Timing.
package timing

import "time"

// Defaults and bounds for ha.toml's timing.
const (
	DefaultKeepalive = time.Second
	// MinDeadBeats is how many keepalives must fit in deadtime: a peer must
	// miss at least this many beats in a row before it is declared dead.
	MinDeadBeats = 3
	// MinLeaseBeats is how many keepalives the lease lasts at least: a
	// node renews it with every heartbeat its peers echo, so it must
	// outlast one lost echo.
	MinLeaseBeats = 2
	// raftMinBeats is how many keepalives Raft's timeouts are at least.
	raftMinBeats = 5
)

// DefaultDeadtime is deadtime when ha.toml leaves it out: three beats and
// a half, VRRP's master-down interval (3 × advert_int plus a skew below
// one advert_int), so a peer is declared dead when keepalived's backup
// would take over — and the shortest whose lease (deadtime less
// LeaseMargin) is SteadyLease. (With a margin of a whole beat the lease
// was 2.5 beats and lapsed between echoes whenever the one voter left
// echoed late in its beat: the lab's survivor of a graceful stop stopped
// and started its group ten times a second.)
func DefaultDeadtime(keepalive time.Duration) time.Duration {
	return SteadyLeaseBeats*keepalive + keepalive/2
}

// SteadyLeaseBeats is how many keepalives a lease must last not to lapse
// between echoes: after its stop budget (a quarter) it must outlast the
// interval between two echoes (a keepalive) plus the age of an echo (up
// to a keepalive: the voter echoes in its next beat) and the network.
const SteadyLeaseBeats = 3

// DefaultWarntime is warntime when ha.toml leaves it out: a gap of half a
// deadtime is worth a warning long before the peer is declared dead.
func DefaultWarntime(deadtime time.Duration) time.Duration { return deadtime / 2 }

// DefaultInitdead is initdead when ha.toml leaves it out. heartbeat uses
// 12 s below 6 s deadtime: a guard for slow switch ports at boot. Raft
// already waits for a quorum, so twice the deadtime is enough here and
// keeps fast clusters fast to start.
func DefaultInitdead(deadtime time.Duration) time.Duration { return 2 * deadtime }

// DefaultLease is the lease when ha.toml leaves it out: the longest one
// MaxLease allows, so that a node rides out as many lost echoes as it can.
func DefaultLease(keepalive, deadtime time.Duration) time.Duration {
	return Timing{Keepalive: keepalive, Deadtime: deadtime}.MaxLease()
}

// DefaultFenceDelay is [fence]'s delay when ha.toml leaves it out: a node
// running no group gives the one running them, which saw the same silence,
// a deadtime's head start, so that it wins the race to fence.
func DefaultFenceDelay(deadtime time.Duration) time.Duration { return deadtime }

// Timing is the configured heartbeat timing; its methods are the durations
// derived from it.
type Timing struct {
	Keepalive time.Duration // between two heartbeats
	Warntime  time.Duration // a gap this long between heartbeats is logged
	Deadtime  time.Duration // silent this long on every link: dead
	Initdead  time.Duration // deadtime for a peer not yet heard since start
	Lease     time.Duration // a quorum's confirmation lets a node hold groups this long
	// AddressLifetime is the VIPs' kernel address lifetime (0: none).
	AddressLifetime time.Duration
}

// MinDeadtime is the shortest valid deadtime: MinDeadBeats missed beats.
func (t Timing) MinDeadtime() time.Duration { return MinDeadBeats * t.Keepalive }

// MinLease is the shortest valid lease: one lost echo must not end it.
func (t Timing) MinLease() time.Duration { return MinLeaseBeats * t.Keepalive }

// SteadyLease is the shortest lease that never lapses between echoes
// (SteadyLeaseBeats); a shorter one is valid but may flap.
func (t Timing) SteadyLease() time.Duration { return SteadyLeaseBeats * t.Keepalive }

// MaxLease is the longest valid lease: with LeaseMargin on top, a dead
// node's lease has run out when it is declared dead, or failover waits.
func (t Timing) MaxLease() time.Duration { return t.Deadtime - t.LeaseMargin() }

// LeaseMargin is added to every lease expiry computed for another node.
// The expiry a node keeps for itself starts at its beat's send time, read
// before the send; the one others compute starts at a voter's kernel
// receipt stamp of a later beat, and reaches them as an age subtracted
// from their own receipt stamp: both err late, so the margin covers only
// clock rates (parts per million of a lease) — half a beat is ample.
func (t Timing) LeaseMargin() time.Duration { return t.Keepalive / 2 }

// StopBudget is the part of the lease kept for stopping: a node stops its
// groups with a quarter of its lease left, so they are down before it ends.
func (t Timing) StopBudget() time.Duration { return t.Lease / 4 }

// Linger is how long past the end of its lease what a node holds may
// outlive every process of it: the VIPs' kernel address lifetime plus the
// kernel's slack in removing them (plugins.AddressLifetimeSlack), or 0
// without a lifetime.
func (t Timing) Linger(slack time.Duration) time.Duration {
	if t.AddressLifetime <= 0 {
		return 0
	}
	return t.AddressLifetime + slack
}

// PingInterval is how often a tie-breaker's ping nodes are asked: every
// beat, as the peer is.
func (t Timing) PingInterval() time.Duration { return t.Keepalive }

// PingLease is how long a ping node's answer lets a two_node survivor hold
// its groups: it stands in for a quorum's confirmation, so a lease.
func (t Timing) PingLease() time.Duration { return t.Lease }

// PingSettle is how long the ping nodes must have answered without a gap
// before a takeover: a deadtime, the silence that made the peer dead; a
// node that was cut off itself has a gap in its answers within it.
func (t Timing) PingSettle() time.Duration { return t.Deadtime }

// RaftTimeout is Raft's heartbeat and election timeout: an election starts
// after one deadtime without the leader (hashicorp/raft randomises between
// 1 and 2 times it), but never on less than raftMinBeats keepalives. A
// director's death is the heartbeats' to declare (the leader, normally the
// witness, commits it), not Raft's: Raft's timeouts run over TCP and the
// Go scheduler, and at the default deadtime of 3.5 beats they made a
// loaded lab elect leaders over and over at a 10 ms beat.
func (t Timing) RaftTimeout() time.Duration {
	return max(t.Deadtime, raftMinBeats*t.Keepalive)
}

// RaftLeaderLease: a leader steps down when a quorum has been silent for
// a RaftTimeout (hashicorp/raft wants it no longer than a follower's
// heartbeat timeout), at least 5 ms (hashicorp/raft's minimum). The
// leader beats every tenth to fifth of RaftLeading: 2.5 to 5 beats per
// lease, as when both were half as long.
func (t Timing) RaftLeaderLease() time.Duration {
	return max(5*time.Millisecond, t.RaftTimeout())
}

// RaftLeading is a leader's own heartbeat timeout: hashicorp/raft's
// leader sends a heartbeat every tenth of it (randomised up to a fifth),
// so twice the RaftTimeout halves an idle cluster's Raft traffic while
// followers keep campaigning after one RaftTimeout of silence.
func (t Timing) RaftLeading() time.Duration { return 2 * t.RaftTimeout() }

// RaftCommit is Raft's commit timeout: how long an idle leader waits
// before it tells the followers what committed. Every command is followed
// by a barrier entry (consensus.Node.Apply), whose replication tells them
// at once, so only that no-op waits for it: four RaftTimeouts. (It was a
// beat, then one RaftTimeout, and an idle leader sent each follower an
// AppendEntries that often, each answered through Raft's main loop on
// both sides: at a 10 ms beat, a sixth of an idle leader's wake-ups.)
// It is also when a leader tries again to reach a follower whose
// replication failed, if no new entry comes first; every node that comes
// back brings one (it is marked online).
func (t Timing) RaftCommit() time.Duration { return 4 * t.RaftTimeout() }

// RaftOpTimeout bounds one Raft operation (an apply, a new leader's
// barrier, a survivor's recovery as the only voter): four deadtimes leave
// room for an election on the way, at least a second.
func (t Timing) RaftOpTimeout() time.Duration { return max(time.Second, 4*t.Deadtime) }

// RejoinTimeout bounds adding a two_node peer back as a voter: a
// configuration change the returning peer, perhaps still restarting, must
// answer, so ten deadtimes, more than RaftOpTimeout; at least a second.
func (t Timing) RejoinTimeout() time.Duration { return max(time.Second, 10*t.Deadtime) }

// LeaderTick is the longest the leader goes without a full pass: a
// deadtime, the scale node states change on, but no more often than
// every 50 ms at fast beats, as a pass places every group.
func (t Timing) LeaderTick() time.Duration { return max(t.Deadtime, 50*time.Millisecond) }

// DeafAfter is how long a node that is heard but hears no quorum stays
// an owner: a deadtime, the time a silent one is given, by which its
// lease (shorter) has surely run out, so the groups it cannot run move.
func (t Timing) DeafAfter() time.Duration { return t.Deadtime }

// HandOverInterval is the least time between two attempts to hand Raft
// leadership to the witness: five deadtimes and a second, room for the
// last attempt to finish, so that a failing transfer does not churn
// leadership.
func (t Timing) HandOverInterval() time.Duration { return 5*t.Deadtime + time.Second }

// FenceRetry is how long the leader waits before it tries to fence the
// same node again (or, for itself, steps down again): a deadtime, at least
// a second, as a fence plugin drives a BMC or a PDU, not to be asked on
// every pass.
func (t Timing) FenceRetry() time.Duration { return max(time.Second, t.Deadtime) }

// GatherQuiet is how long the committer waits after the last queued item
// for another (a failover's workers queue theirs within moments): a
// fiftieth of a beat, within 0.5 to 2 ms.
func (t Timing) GatherQuiet() time.Duration {
	return min(max(t.Keepalive/50, 500*time.Microsecond), 2*time.Millisecond)
}

// GatherMax bounds that gathering in all: a quarter beat, so a claim or
// report is at most that late for its entry.
func (t Timing) GatherMax() time.Duration { return t.Keepalive / 4 }

// CommitBackoff is the first wait before the committer tries again when
// nothing can be committed (no quorum): a beat, as quorum comes back with
// heartbeats.
func (t Timing) CommitBackoff() time.Duration { return t.Keepalive }

// Recheck is how long a node waits before it looks again at what
// heartbeats move (its lease, voters' reports, a claim, a leaving node's
// groups) when nothing wakes it sooner: a beat.
func (t Timing) Recheck() time.Duration { return t.Keepalive }

// LeaveTimeout bounds a graceful stop's hand-over: the leader's decision,
// the local stop and the peer's claim take a few deadtimes (twenty,
// generously), and the stop itself up to stop, an operation timeout.
func (t Timing) LeaveTimeout(stop time.Duration) time.Duration { return 20*t.Deadtime + stop }
