// Package coord ties the cluster core together on one node: as Raft
// leader it turns membership into node states and runs placement; on
// every member it drives the local resource manager towards what the
// replicated state assigns, under the node's lease.
package coord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/cluster/placement"
	"github.com/vigil-ha/vigil/cluster/tiebreak"
	"github.com/vigil-ha/vigil/cluster/timing"
)

// Options configures a Coordinator.
type Options struct {
	Self        string
	Incarnation uint64 // this daemon's boot incarnation
	Role        string
	Timing      timing.Timing // ha.toml's; every timeout here is derived from it
	Placement   placement.Options
	Groups      []fsm.GroupSpec
	Nodes       []fsm.NodeSpec
	FSM         *fsm.FSM
	Raft        Raft
	Lease       Lease
	Members     Members
	LRM         LRM // nil on a witness
	// Clock is the wall clock unless set (tests).
	Clock Clock
	// TieBreak is set for a two_node pair: it decides whether this node
	// may take over alone from a silent peer.
	TieBreak *tiebreak.Breaker
	// Fencer is the [fence] plugin, nil without one: the leader fences a
	// node where a stop failed, so that its groups can move.
	Fencer Fencer
	Log    *slog.Logger
	// ObserveApply, if set, is told how long each command took to commit.
	ObserveApply func(time.Duration, error)
}

// Coordinator is the cluster core of one node.
type Coordinator struct {
	opt Options
	log *slog.Logger

	// leaseWaits is, by node, the end of its lease last logged as waited
	// for (logLeaseWait).
	leaseWaits struct {
		mu sync.Mutex
		at map[string]time.Time
	}

	mu      sync.Mutex
	groups  []fsm.GroupSpec // this node's definitions: its files, as last loaded
	version string

	differs   string // "cluster/here" versions last warned about (leader loop only)
	replacing string // "cluster/here" versions last replaced (leader loop only)

	pairMu   sync.Mutex
	pairNote string     // two_node: the latest takeover decision
	takeover sync.Mutex // one RecoverAlone at a time

	fenceRetry  map[string]time.Time // leader loop only: no fencing of a node before then
	fencedHeard map[string]uint64    // leader loop only: the incarnation last warned about

	held         holdTrack     // since when the lease has been held without a gap
	out          *outbox       // reports and claims for the committer
	reloaded     chan struct{} // this node's definitions changed (runLocal)
	filesChanged chan struct{} // the same, for reportFiles

	// Workers waiting for voters' reports (lease.ReleasedAt): runLocal
	// wakes them when a report comes.
	reportMu      sync.Mutex
	reportWaiters map[*worker]struct{}
	reportWait    chan struct{} // a worker began waiting
	// Workers that saw no lease: runLocal wakes them at its next pass
	// that finds the lease held. (runLocal looks at the lease at other
	// instants than the workers do: one that saw the lease out for a
	// moment runLocal never saw slept until something else woke it —
	// 10 s, until the crashed node came back, at 10 ms beats.)
	leaseWaiters map[*worker]struct{}

	// The lease as last handed to the LRM: renewed (on the heartbeat's
	// goroutine) and runLocal hand it on under holdMu, in order.
	holdMu     sync.Mutex
	leased     bool          // whether this node held the lease then
	flipped    chan struct{} // the hook saw the lease come back or go
	leaseTimer *time.Timer   // runLocal's, for the lease running out
	everyBeat  bool          // the hook runs every keepalive (Lease.OnRenew)

	// Work counters: worker steps and runLocal passes, for tests that
	// check that idle groups cost nothing.
	steps, localPasses atomic.Uint64

	announcing      chan struct{} // a slot per group re-announcing (announceParallel)
	announceWaiting atomic.Int64  // groups waiting for a slot, for tests
}

// New returns a coordinator.
func New(opt Options) *Coordinator {
	if opt.Clock == nil {
		opt.Clock = wallClock{}
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Coordinator{opt: opt, log: opt.Log, groups: opt.Groups, version: GroupsVersion(opt.Groups, opt.Nodes),
		fenceRetry: map[string]time.Time{}, fencedHeard: map[string]uint64{},
		out: newOutbox(), reloaded: make(chan struct{}, 1), filesChanged: make(chan struct{}, 1), flipped: make(chan struct{}, 1),
		reportWaiters: map[*worker]struct{}{}, reportWait: make(chan struct{}, 1), leaseWaiters: map[*worker]struct{}{},
		announcing: make(chan struct{}, announceParallel)}
}

func (c *Coordinator) now() time.Time { return c.opt.Clock.Now() }

// configured returns this node's own group definitions and their version.
func (c *Coordinator) configured() ([]fsm.GroupSpec, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups, c.version
}

// FilesVersion is the digest of this node's own group definitions, as
// last loaded (status compares it with the replicated one).
func (c *Coordinator) FilesVersion() string {
	_, v := c.configured()
	return v
}

// noteDefinitions logs, once per pair of versions, that this node's files
// are not the group definitions the cluster runs: the operator sees on
// every node, not only the leader, that another node's files (or a
// reload) won. The leader whose files differ from definitions no reload
// set replaces them instead (lead logs that).
func (c *Coordinator) noteDefinitions() {
	var cluster string
	var generation uint64
	c.opt.FSM.Read(func(s *fsm.State) { cluster, generation = s.GroupsVersion, s.GroupsGeneration })
	_, here := c.configured()
	switch {
	case cluster == "" || cluster == here:
		c.differs = ""
		return
	case generation == 0 && c.opt.Raft.IsLeader():
		return // lead replaces them, and says so
	}
	if key := cluster + "/" + here; c.differs != key {
		c.differs = key
		how := "which the leader's files set at start"
		if generation > 0 {
			how = fmt.Sprintf("which vigil reload set (generation %d)", generation)
		}
		c.log.Warn("this node's resources.toml differs from the cluster's group definitions, "+how+"; the cluster's are in force (make the files equal on every node, then vigil reload)",
			"cluster", cluster, "generation", generation, "here", here)
	}
}

// reportFiles keeps this node's files digest in the replicated state
// (fsm.Node.Files), so that the status of every node shows whose files
// are not what the cluster runs. It has its own goroutine: a commit
// without a leader waits, and the leader's work must not.
func (c *Coordinator) reportFiles(ctx context.Context) {
	tick := time.NewTicker(c.opt.Timing.LeaderTick())
	defer tick.Stop()
	for {
		changed := c.opt.FSM.Changed()
		var recorded string
		known := false
		c.opt.FSM.Read(func(s *fsm.State) {
			if n := s.Nodes[c.opt.Self]; n != nil {
				recorded, known = n.Files, true
			}
		})
		// Ticks only while the digest is to be recorded (a failed
		// Apply is tried again): otherwise only the log or this node's
		// files change it, and both say so. (Ticking always woke every
		// node 20 times a second at fast beats.)
		var retry <-chan time.Time
		if here := c.FilesVersion(); known && recorded != here {
			retry = tick.C
			if err := c.Apply(ctx, fsm.TypeNodeState, fsm.NodeState{Node: c.opt.Self, Files: here}); err != nil && ctx.Err() == nil {
				c.log.Debug("cannot record this node's files digest yet", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-c.filesChanged:
		case <-retry:
		}
	}
}

// Reload replicates changed group definitions (`vigil reload` on this
// node) as the next generation, so that every node applies them and no
// daemon's older files replace them; it reports whether they differed
// from the cluster's.
func (c *Coordinator) Reload(ctx context.Context, groups []fsm.GroupSpec, nodes []fsm.NodeSpec) (bool, error) {
	version := GroupsVersion(groups, nodes)
	var current string
	var generation uint64
	c.opt.FSM.Read(func(s *fsm.State) { current, generation = s.GroupsVersion, s.GroupsGeneration })
	changed := current != version
	if changed {
		if err := c.Apply(ctx, fsm.TypeSetGroups, fsm.SetGroups{Version: version, Generation: generation + 1, Groups: groups, Nodes: nodes}); err != nil {
			return false, fmt.Errorf("reload: %w", err)
		}
		c.log.Info("group definitions reloaded", "version", version, "generation", generation+1)
	}
	c.mu.Lock()
	c.groups, c.version = groups, version
	c.mu.Unlock()
	for _, ch := range []chan struct{}{c.reloaded, c.filesChanged} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return changed, nil
}

// GroupsVersion is a digest of the configured groups and nodes: the leader
// replaces the replicated definitions when its own differ.
func GroupsVersion(groups []fsm.GroupSpec, nodes []fsm.NodeSpec) string {
	b, _ := json.Marshal(struct {
		G []fsm.GroupSpec
		N []fsm.NodeSpec
	}{groups, nodes})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Run runs the node's part until ctx ends.
func (c *Coordinator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if c.opt.LRM != nil {
		// The committer outlives the workers' last reports only as long
		// as ctx: what is queued when the daemon stops is not sent.
		wg.Go(func() { c.commit(ctx) })
		wg.Go(func() { c.runLocal(ctx) })
	}
	wg.Go(func() { c.reportFiles(ctx) })
	c.runLeader(ctx)
	wg.Wait()
	return nil
}

// Apply commits one command with a bounded wait.
func (c *Coordinator) Apply(ctx context.Context, typ string, cmd any) error {
	b, err := fsm.Encode(typ, cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timing.RaftOpTimeout())
	defer cancel()
	start := time.Now()
	err = c.opt.Raft.Apply(ctx, b)
	if c.opt.ObserveApply != nil && !errors.Is(err, fsm.ErrRefused) {
		c.opt.ObserveApply(time.Since(start), err)
	}
	return err
}

// runLeader does the leader's work whenever this node leads: on every
// membership event, replicated change, and at least every deadtime. A
// replicated change that names only groups costs placement of those
// groups; anything else (nodes, definitions, membership, the tick) a full
// pass. Both read the state in place: nothing is copied per entry.
func (c *Coordinator) runLeader(ctx context.Context) {
	events, unsub := c.opt.Members.Subscribe(64)
	defer unsub()
	tick := time.NewTicker(c.opt.Timing.LeaderTick())
	defer tick.Stop()
	leading := false
	full := true
	var seen uint64
	var lastTransfer time.Time
	for {
		changed := c.opt.FSM.Changed()
		if c.opt.TieBreak != nil {
			c.pair(ctx)
		}
		t := c.opt.FSM.Since(seen)
		seen = t.To
		c.noteDefinitions()
		if c.opt.Raft.IsLeader() {
			if !leading {
				// Decide only on everything committed before us.
				if err := c.opt.Raft.Barrier(c.opt.Timing.RaftOpTimeout()); err != nil {
					c.log.Warn("new leader: barrier failed", "err", err)
				} else {
					leading, full = true, true
					c.log.Info("leading the cluster")
				}
			}
			if leading {
				full = !c.lead(ctx, full || t.All || t.Nodes || t.Defs, t.Groups)
				if time.Since(lastTransfer) > c.opt.Timing.HandOverInterval() && c.handOver() {
					lastTransfer = time.Now()
				}
			}
		} else if leading {
			leading = false
			c.log.Info("no longer leading")
		}
		// A follower has nothing to do on a tick but a two_node pair's
		// checks: it becomes leader through LeaderCh. (Its ticks woke
		// every follower 20 times a second at fast beats.)
		var ticks <-chan time.Time
		if c.opt.TieBreak != nil || c.opt.Raft.IsLeader() {
			ticks = tick.C
		}
		select {
		case <-ctx.Done():
			return
		case <-events:
			full = true
		case <-changed:
		case <-c.opt.Raft.LeaderCh():
			full = true
		case <-ticks:
			full = true
		}
	}
}

// node is what lead needs of a node.
type node struct {
	name                         string
	online, leaving              bool
	incarnation, fenced, downIdx uint64
}

// lead brings the replicated state in line with what the leader sees: on
// a full pass every group is placed, otherwise only those in touched. It
// reports whether it got through (a failed commit makes the next pass a
// full one).
func (c *Coordinator) lead(ctx context.Context, full bool, touched map[string]bool) bool {
	var clusterVersion string
	var generation uint64
	var nodes []node
	c.opt.FSM.Read(func(s *fsm.State) {
		clusterVersion, generation = s.GroupsVersion, s.GroupsGeneration
		for _, name := range s.NodeOrder {
			if n := s.Nodes[name]; n != nil {
				nodes = append(nodes, node{name: name, online: n.Online, leaving: n.Leaving, incarnation: n.Incarnation, fenced: n.Fenced, downIdx: n.DownIndex})
			}
		}
	})
	groups, version := c.configured()
	switch {
	case clusterVersion == version:
	case generation > 0:
		// Set by `vigil reload`: a leader's own files, perhaps older,
		// must not undo it (noteDefinitions says so).
	default:
		if key := clusterVersion + "/" + version; clusterVersion != "" && c.replacing != key {
			// Another node's files were in force: say which won (once,
			// also when the commit fails and the next pass tries again).
			c.replacing = key
			c.log.Warn("this node's resources.toml differs from the cluster's group definitions (no vigil reload set them): the leader's files replace them (make the files equal on every node)",
				"cluster", clusterVersion, "here", version)
		}
		if err := c.Apply(ctx, fsm.TypeSetGroups, fsm.SetGroups{Version: version, Groups: groups, Nodes: c.opt.Nodes}); err != nil {
			c.log.Error("cannot replicate group definitions", "err", err)
			return false
		}
		// The next pass, woken by this entry, places the new groups.
		return false
	}
	peers := map[string]membership.PeerStatus{}
	for _, p := range c.opt.Members.Peers() {
		peers[p.Node] = p
	}
	voters := make([]string, 0, len(nodes))
	for _, n := range nodes {
		voters = append(voters, n.name)
	}
	for _, n := range nodes {
		name := n.name
		online, reason := n.online, ""
		switch p, known := peers[name]; {
		case name == c.opt.Self:
			online, reason = true, "marked itself online as Raft leader"
		case !known:
			continue // added with `vigil node add`, not heard of yet
		case p.State == "up" && n.leaving && p.Incarnation > n.incarnation:
			// It shut down gracefully and is back: eligible again.
			no := false
			if err := c.Apply(ctx, fsm.TypeNodeState, fsm.NodeState{Node: name, Leaving: &no, Reason: "restarted"}); err != nil {
				c.log.Error("cannot record node state", "node", name, "err", err)
				return false
			}
			full = true // a node changed: every group may move
			continue
		case p.State == "up" && n.fenced != 0 && p.Incarnation <= n.fenced:
			// The daemon that was fenced is still heard: the plugin
			// said OFF, wrongly. It gets nothing until it restarts.
			if c.fencedHeard[name] != p.Incarnation {
				c.fencedHeard[name] = p.Incarnation
				c.log.Error("a fenced node is still heard: the fence plugin confirmed OFF but it runs; it stays offline until it restarts", "node", name)
			}
			continue
		case p.State == "up" && !n.online && c.opt.Lease.Applied(name) < n.downIdx:
			// Heard again, but Raft has not reached it yet (hashicorp/raft
			// backs off from a peer that failed): assigning it a group now
			// would stop the group where it runs and leave it stopped until
			// the node can claim it.
			continue
		case p.State == "up" && c.opt.TieBreak == nil && deaf(p, voters, c.now(), c.opt.Timing.DeafAfter()):
			// Heard, but it hears no quorum (a one-way link): its
			// lease ran out, so what it owns runs nowhere. It goes
			// offline and stays so while deaf, even if Raft (TCP)
			// reaches it. A two_node pair has no quorum to commit this
			// without it: the pair's own rules decide there.
			if !n.online {
				continue
			}
			online, reason = false, "heard, but hears no quorum for deadtime (one-way link)"
		case p.State == "up" && c.opt.TieBreak != nil && c.deafAlone(name):
			// Its two_node survivor took over from it (pairDeaf): it
			// stays offline while deaf.
			if !n.online {
				continue
			}
			online, reason = false, "heard, but hears its peer no more and its hold lapsed (one-way link; two_node)"
		case p.State == "up":
			online, reason = true, "heartbeats resumed"
		case p.State == "dead":
			online, reason = false, "silent on every link for deadtime"
		}
		if online != n.online {
			if err := c.Apply(ctx, fsm.TypeNodeState, fsm.NodeState{Node: name, Online: &online, Reason: reason}); err != nil {
				c.log.Error("cannot record node state", "node", name, "err", err)
				return false
			}
			c.log.Info("node state", "node", name, "online", online, "reason", reason)
			full = true
		}
	}
	if c.opt.Fencer != nil && !c.fenceBlocked(ctx, full, touched, peers) {
		return false
	}
	var changes []fsm.Change
	c.opt.FSM.Read(func(s *fsm.State) {
		if full {
			changes = placement.Decide(s, c.opt.Placement)
		} else if len(touched) > 0 {
			changes = placement.DecideGroups(s, c.opt.Placement, slices.Sorted(maps.Keys(touched)))
		}
	})
	if len(changes) == 0 {
		return true
	}
	if err := c.Apply(ctx, fsm.TypeAssign, fsm.Assign{Changes: changes}); err != nil {
		c.log.Error("cannot commit placement", "err", err)
		return false
	}
	for _, ch := range changes {
		c.log.Info("placement", "group", ch.Group, "from", ch.From, "to", ch.To, "reason", ch.Reason)
	}
	return true
}

// deafAlone reports whether this node runs alone (it took over as the
// only voter of a pair) from name, which is heard but deaf.
func (c *Coordinator) deafAlone(name string) bool {
	if _, _, deaf := c.opt.Lease.Deaf(name); !deaf {
		return false
	}
	votes, err := c.peerVotes(name)
	return err == nil && !votes
}

// deaf reports whether p, up (heard) for at least window, sees too few
// of the other voters to hold a lease: its heartbeats, which arrive,
// carry its view, where they are dead (silent to it for deadtime). Such
// a node (a link that carries only what it sends) looks alive, yet its
// lease has run out and what it owns runs nowhere. A peer it has not
// heard yet ("init", as after a restart) is no evidence either way.
func deaf(p membership.PeerStatus, voters []string, now time.Time, window time.Duration) bool {
	q := len(voters)/2 + 1
	if p.State != "up" || now.Sub(p.Since) < window || len(p.View) == 0 || q == 1 || !slices.Contains(voters, p.Node) {
		return false
	}
	dead := map[string]bool{}
	for _, v := range p.View {
		dead[v.Node] = v.State == heartbeat.StateDead
	}
	heard := 0
	for _, v := range voters {
		if v != p.Node && !dead[v] {
			heard++
		}
	}
	return heard < q-1
}

// handOver passes leadership to an online witness when this node may run
// resources: when a director dies, the survivor then needs no election
// before it takes over. It reports whether it tried.
func (c *Coordinator) handOver() bool {
	if c.opt.Role == "witness" {
		return false
	}
	voters, err := c.opt.Raft.Voters()
	if err != nil {
		return false
	}
	for _, v := range voters {
		witness := false
		c.opt.FSM.Read(func(s *fsm.State) {
			n := s.Nodes[v.Name]
			witness = n != nil && n.Role == "witness" && n.Online
		})
		if !witness {
			continue
		}
		c.log.Info("handing raft leadership to the witness", "witness", v.Name)
		if err := c.opt.Raft.TransferLeadership(v.Name, v.Address); err != nil && !errors.Is(err, context.Canceled) {
			c.log.Warn("leadership transfer failed", "witness", v.Name, "err", err)
		}
		return true
	}
	return false
}

// AddNode adds a voter (a member) to Raft and the replicated state, on
// the leader wherever this runs.
func (c *Coordinator) AddNode(ctx context.Context, name, addr string) error {
	if name == "" || addr == "" {
		return fmt.Errorf("%w: node add needs a name and the raft address host:port", fsm.ErrRefused)
	}
	if err := c.Apply(ctx, fsm.TypeNodeAdd, fsm.NodeAdd{Node: name, Role: "member"}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, voterTimeout)
	defer cancel()
	if err := c.opt.Raft.AddVoter(ctx, consensus.Peer{Name: name, Address: addr}); err != nil {
		return fmt.Errorf("raft add voter %s: %w", name, err)
	}
	c.log.Info("node added", "node", name, "raft", addr)
	return nil
}

// RemoveNode removes a node that owns no group from Raft and the state.
func (c *Coordinator) RemoveNode(ctx context.Context, name string) error {
	if err := c.Apply(ctx, fsm.TypeNodeRemove, fsm.NodeRemove{Node: name}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, voterTimeout)
	defer cancel()
	if err := c.opt.Raft.RemoveServer(ctx, name); err != nil {
		return fmt.Errorf("raft remove %s: %w", name, err)
	}
	c.log.Info("node removed", "node", name)
	return nil
}

// voterTimeout bounds a change of the Raft voters.
const voterTimeout = 10 * time.Second
