package coord

import (
	"context"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
)

// What the coordinator drives, as small interfaces: the daemon passes the
// real parts (consensus.Node, lrm.Manager, lease.Tracker,
// membership.Tracker), tests pass fakes.

// Raft commits commands and changes the voters (consensus.Node).
type Raft interface {
	// Apply commits cmd (forwarded to the leader when this node does not
	// lead); the error is the FSM's when the command was refused.
	Apply(ctx context.Context, cmd []byte) error
	Barrier(timeout time.Duration) error
	IsLeader() bool
	LeaderCh() <-chan bool
	Voters() ([]consensus.Peer, error)
	TransferLeadership(name, addr string) error
	StepDown() error
	AddVoter(ctx context.Context, p consensus.Peer) error
	RemoveServer(ctx context.Context, name string) error
	RecoverAlone(timeout time.Duration) error
	Rejoin(name string, timeout time.Duration) error
}

// LRM runs groups on this node (lrm.Manager).
type LRM interface {
	Probe(ctx context.Context, g config.Group)
	State(group string) string
	Start(ctx context.Context, g config.Group) error
	Stop(ctx context.Context, g config.Group) error
	Monitor(ctx context.Context, g config.Group) error
	Reload(ctx context.Context, g config.Group, match func(config.Binding) bool) error
	Reconfigure(ctx context.Context, g config.Group) (bool, error)
	Status() []lrm.GroupStatus
	// Handover returns the hand-over states of the group's running
	// resources that are not generation have[resource] any more; more is
	// false when none of its resources has any.
	Handover(ctx context.Context, g config.Group, have map[string]uint64) (states []lrm.Handed, more bool, err error)
	// Hold hands the node's lease (when stopping must have begun) to
	// the resource plugins, which release what they hold by themselves
	// once it passes unrenewed.
	Hold(until time.Time)
}

// Lease says whether this node may hold groups, and when another node
// surely holds none (lease.Tracker).
type Lease interface {
	HoldUntil(now time.Time) time.Time
	// OnRenew has f called, on the caller's goroutine and without
	// blocking, whenever HoldUntil may have moved forward (nil: none).
	// everyBeat says whether f is also called every keepalive (the
	// coordinator then need not look at the lease on a timer of its own).
	OnRenew(f func()) (everyBeat bool)
	ReleasedAt(node string, downIndex uint64) (time.Time, bool)
	// Overrun is how long past the end of its lease node may still hold
	// resources (its release overrun, the VIPs' kernel lifetime).
	Overrun(node string) time.Duration
	// Reported is signalled when a peer said it applied more of the log
	// (ReleasedAt may have become true).
	Reported() <-chan struct{}
	Applied(node string) uint64
	// Deaf reports whether node (a two_node peer) says, since since,
	// that its hold lapsed and it hears this node no more; released is
	// when what it held is surely gone.
	Deaf(node string) (since, released time.Time, ok bool)
	// Withhold stops (on) or resumes renewing node's lease.
	Withhold(node string, on bool)
}

// Members is the membership view (membership.Tracker).
type Members interface {
	Peers() []membership.PeerStatus
	Subscribe(buf int) (<-chan membership.Event, func())
}

// Clock tells the time; tests of single decisions fix it.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }
