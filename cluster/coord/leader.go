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
	"sync"
	"time"

	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lease"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/cluster/placement"
	"github.com/vigil-ha/vigil/cluster/tiebreak"
)

// Options configures a Coordinator.
type Options struct {
	Self        string
	Incarnation uint64 // this daemon's boot incarnation
	Role        string
	Keepalive   time.Duration
	Deadtime    time.Duration
	Placement   placement.Options
	Groups      []fsm.GroupSpec
	Nodes       []fsm.NodeSpec
	FSM         *fsm.FSM
	Raft        *consensus.Node
	Lease       *lease.Tracker
	Members     *membership.Tracker
	LRM         *lrm.Manager // nil on a witness
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

	mu      sync.Mutex
	groups  []fsm.GroupSpec // this node's definitions: its files, as last loaded
	version string

	differs string // the replicated version last warned about (leader loop only)

	pairMu   sync.Mutex
	pairNote string     // two_node: the latest takeover decision
	takeover sync.Mutex // one RecoverAlone at a time

	fenceRetry  map[string]time.Time // leader loop only: no fencing of a node before then
	fencedHeard map[string]uint64    // leader loop only: the incarnation last warned about
}

// New returns a coordinator.
func New(opt Options) *Coordinator {
	return &Coordinator{opt: opt, log: opt.Log, groups: opt.Groups, version: GroupsVersion(opt.Groups, opt.Nodes),
		fenceRetry: map[string]time.Time{}, fencedHeard: map[string]uint64{}}
}

// configured returns this node's own group definitions and their version.
func (c *Coordinator) configured() ([]fsm.GroupSpec, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.groups, c.version
}

// Reload replicates changed group definitions (`vigil reload` on this
// node) as the next generation, so that every node applies them and no
// daemon's older files replace them; it reports whether they differed
// from the cluster's.
func (c *Coordinator) Reload(ctx context.Context, groups []fsm.GroupSpec, nodes []fsm.NodeSpec) (bool, error) {
	version := GroupsVersion(groups, nodes)
	st := c.opt.FSM.View()
	changed := st.GroupsVersion != version
	if changed {
		if err := c.Apply(ctx, fsm.TypeSetGroups, fsm.SetGroups{Version: version, Generation: st.GroupsGeneration + 1, Groups: groups, Nodes: nodes}); err != nil {
			return false, fmt.Errorf("reload: %w", err)
		}
		c.log.Info("group definitions reloaded", "version", version, "generation", st.GroupsGeneration+1)
	}
	c.mu.Lock()
	c.groups, c.version = groups, version
	c.mu.Unlock()
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
	done := make(chan struct{})
	if c.opt.LRM != nil {
		go func() {
			defer close(done)
			c.runLocal(ctx)
		}()
	} else {
		close(done)
	}
	c.runLeader(ctx)
	<-done
	return nil
}

// Apply commits one command with a bounded wait.
func (c *Coordinator) Apply(ctx context.Context, typ string, cmd any) error {
	b, err := fsm.Encode(typ, cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, max(time.Second, 4*c.opt.Deadtime))
	defer cancel()
	start := time.Now()
	err = c.opt.Raft.Apply(ctx, b)
	if c.opt.ObserveApply != nil && !errors.Is(err, fsm.ErrRefused) {
		c.opt.ObserveApply(time.Since(start), err)
	}
	return err
}

// runLeader does the leader's work whenever this node leads: on every
// membership event, replicated change, and at least every deadtime.
func (c *Coordinator) runLeader(ctx context.Context) {
	events, unsub := c.opt.Members.Subscribe(64)
	defer unsub()
	tick := time.NewTicker(max(c.opt.Deadtime, 50*time.Millisecond))
	defer tick.Stop()
	leading := false
	var lastTransfer time.Time
	for {
		changed := c.opt.FSM.Changed()
		if c.opt.TieBreak != nil {
			c.pair(ctx)
		}
		if c.opt.Raft.IsLeader() {
			if !leading {
				// Decide only on everything committed before us.
				if err := c.opt.Raft.Barrier(max(time.Second, 4*c.opt.Deadtime)); err != nil {
					c.log.Warn("new leader: barrier failed", "err", err)
				} else {
					leading = true
					c.log.Info("leading the cluster")
				}
			}
			if leading {
				c.lead(ctx)
				if time.Since(lastTransfer) > 5*c.opt.Deadtime+time.Second && c.handOver() {
					lastTransfer = time.Now()
				}
			}
		} else if leading {
			leading = false
			c.log.Info("no longer leading")
		}
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-changed:
		case <-c.opt.Raft.LeaderCh():
		case <-tick.C:
		}
	}
}

// lead brings the replicated state in line with what the leader sees.
func (c *Coordinator) lead(ctx context.Context) {
	st := c.opt.FSM.View()
	groups, version := c.configured()
	switch {
	case st.GroupsVersion == version:
	case st.GroupsGeneration > 0:
		// Set by `vigil reload`: a leader's own files, perhaps older,
		// must not undo it.
		if c.differs != st.GroupsVersion {
			c.differs = st.GroupsVersion
			c.log.Warn("this node's resources.toml differs from the cluster's group definitions, which vigil reload set; the cluster's stay in force (run vigil reload here to replace them)",
				"cluster", st.GroupsVersion, "generation", st.GroupsGeneration, "here", version)
		}
	default:
		if err := c.Apply(ctx, fsm.TypeSetGroups, fsm.SetGroups{Version: version, Groups: groups, Nodes: c.opt.Nodes}); err != nil {
			c.log.Error("cannot replicate group definitions", "err", err)
			return
		}
		st = c.opt.FSM.View()
	}
	changed := false
	peers := map[string]membership.PeerStatus{}
	for _, p := range c.opt.Members.Peers() {
		peers[p.Node] = p
	}
	for _, name := range st.NodeOrder {
		n := st.Nodes[name]
		online, reason := n.Online, ""
		switch p, known := peers[name]; {
		case name == c.opt.Self:
			online, reason = true, "leader"
		case !known:
			continue // added with `vigil node add`, not heard of yet
		case p.State == "up" && n.Leaving && p.Incarnation > n.Incarnation:
			// It shut down gracefully and is back: eligible again.
			no := false
			if err := c.Apply(ctx, fsm.TypeNodeState, fsm.NodeState{Node: name, Leaving: &no, Reason: "restarted"}); err != nil {
				c.log.Error("cannot record node state", "node", name, "err", err)
				return
			}
			changed = true
			continue
		case p.State == "up" && n.Fenced != 0 && p.Incarnation <= n.Fenced:
			// The daemon that was fenced is still heard: the plugin
			// said OFF, wrongly. It gets nothing until it restarts.
			if c.fencedHeard[name] != p.Incarnation {
				c.fencedHeard[name] = p.Incarnation
				c.log.Error("a fenced node is still heard: the fence plugin confirmed OFF but it runs; it stays offline until it restarts", "node", name)
			}
			continue
		case p.State == "up" && !n.Online && c.opt.Lease.Applied(name) < n.DownIndex:
			// Heard again, but Raft has not reached it yet (hashicorp/raft
			// backs off from a peer that failed): assigning it a group now
			// would stop the group where it runs and leave it stopped until
			// the node can claim it.
			continue
		case p.State == "up":
			online, reason = true, "heartbeats resumed"
		case p.State == "dead":
			online, reason = false, "silent on every link for deadtime"
		}
		if online != n.Online {
			if err := c.Apply(ctx, fsm.TypeNodeState, fsm.NodeState{Node: name, Online: &online, Reason: reason}); err != nil {
				c.log.Error("cannot record node state", "node", name, "err", err)
				return
			}
			c.log.Info("node state", "node", name, "online", online, "reason", reason)
			changed = true
		}
	}
	if changed {
		st = c.opt.FSM.View()
	}
	if c.opt.Fencer != nil && c.fenceBlocked(ctx, st, peers) {
		st = c.opt.FSM.View()
	}
	changes := placement.Decide(st, c.opt.Placement)
	if len(changes) == 0 {
		return
	}
	if err := c.Apply(ctx, fsm.TypeAssign, fsm.Assign{Changes: changes}); err != nil {
		c.log.Error("cannot commit placement", "err", err)
		return
	}
	for _, ch := range changes {
		c.log.Info("placement", "group", ch.Group, "from", ch.From, "to", ch.To, "reason", ch.Reason)
	}
}

// handOver passes leadership to an online witness when this node may run
// resources: when a director dies, the survivor then needs no election
// before it takes over. It reports whether it tried.
func (c *Coordinator) handOver() bool {
	if c.opt.Role == "witness" {
		return false
	}
	st := c.opt.FSM.View()
	voters, err := c.opt.Raft.Voters()
	if err != nil {
		return false
	}
	for _, v := range voters {
		n := st.Nodes[v.Name]
		if n == nil || n.Role != "witness" || !n.Online {
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
