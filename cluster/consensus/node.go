// Package consensus runs hashicorp/raft for Vigil: a bbolt log and stable
// store and file snapshots under the data dir, a mutually authenticated TLS
// transport keyed from the cluster secret, bootstrap from ha.toml's node
// list, and forwarding of commands from any node to the leader.
package consensus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/timing"
)

// ErrRefused is the FSM's refusal, also when it comes from a forwarded
// command.
var ErrRefused = fsm.ErrRefused

// ErrNoLeader means no leader is known to forward to.
var ErrNoLeader = errors.New("no raft leader")

// errNotApplied marks a command the leader did not take because its
// leadership was moving (a hand-over to the witness, say): it was not
// appended, so Apply sends it again to whichever node leads next.
var errNotApplied = errors.New("not applied: leadership changing")

// Peer is one voter at bootstrap.
type Peer struct {
	Name    string
	Address string // host:port of its raft listener
}

// Timing is Raft's timing, derived from the heartbeat settings.
type Timing struct {
	Heartbeat   time.Duration // a follower without leader contact this long starts an election
	Election    time.Duration
	LeaderLease time.Duration // a leader without quorum contact this long steps down
	Commit      time.Duration
	// Leading is the HeartbeatTimeout while this node leads: its
	// heartbeats go every tenth of it (pace.go); 0 keeps Heartbeat.
	Leading time.Duration
}

// TimingFor is Raft's timing for the heartbeat timing t; timing.Timing's
// Raft methods say why each is what it is.
func TimingFor(t timing.Timing) Timing {
	return Timing{
		Heartbeat:   t.RaftTimeout(),
		Election:    t.RaftTimeout(),
		LeaderLease: t.RaftLeaderLease(),
		Commit:      t.RaftCommit(),
		Leading:     t.RaftLeading(),
	}
}

// Options configures a Node.
type Options struct {
	Cluster string
	Self    string
	Bind    string // host:port to listen on; it is also advertised
	Secret  []byte
	DataDir string
	Peers   []Peer // every voter, this node included, for bootstrap
	Timing  Timing
	FSM     raft.FSM
	Log     *slog.Logger
	// PeerWait, if set, returns for a peer's Raft address a channel
	// closed the next time the peer is heard after a death or a restart,
	// and whether it is dead now: a dial then waits for the channel
	// (at most the transport timeout), and a dial in flight when it
	// closes starts over.
	PeerWait func(addr string) (back <-chan struct{}, dead bool)
}

// Node is this node's Raft member.
type Node struct {
	opt   Options
	cfg   raft.Config
	r     atomic.Pointer[raft.Raft] // replaced by RecoverAlone
	layer *layer
	trans *raft.NetworkTransport
	store *raftboltdb.BoltStore
	snaps raft.SnapshotStore
	log   *slog.Logger

	barriers barriers
	// barrierEach issues a barrier per apply, as before they were
	// coalesced: only for the benchmark that measures the difference.
	barrierEach bool

	recovering sync.Mutex // one Raft restart at a time, none once closed
	closed     bool
	diverged   chan snapshotAt // an installed snapshot the log contradicts (diverge.go)
	boot       sync.WaitGroup  // the first start's bootstrap
	stopBoot   context.CancelFunc

	states    chan raft.Observation // Raft's state changes, for pace
	stopPace  chan struct{}
	paceOnce  sync.Once
	pacerDone chan struct{}
}

// openTransport is the transport as Raft sees it: Raft closes a transport
// that can be closed when it shuts down, and RecoverAlone restarts Raft on
// the same one. Node.Close closes it.
type openTransport interface {
	raft.Transport
	raft.WithPreVote
}

type keepOpen struct{ openTransport }

// raft returns the running Raft instance.
func (n *Node) raft() *raft.Raft { return n.r.Load() }

// Start opens the stores, bootstraps a new cluster from opt.Peers when the
// data dir is empty, and starts Raft.
func Start(opt Options) (_ *Node, err error) {
	creds, err := NewCredentials(opt.Cluster, opt.Self, opt.Secret)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("raft data dir: %w", err)
	}
	hl := hclogFor(opt.Log)
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(opt.DataDir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("raft store %s: %w", opt.DataDir, err)
	}
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	files, err := raft.NewFileSnapshotStoreWithLogger(opt.DataDir, 2, hl)
	if err != nil {
		return nil, fmt.Errorf("raft snapshots: %w", err)
	}
	ln, err := net.Listen("tcp", opt.Bind)
	if err != nil {
		return nil, fmt.Errorf("raft listen %s: %w", opt.Bind, err)
	}
	n := &Node{opt: opt, store: store, log: opt.Log, diverged: make(chan snapshotAt, 1)}
	n.snaps = &checkedSnapshots{SnapshotStore: files, dir: opt.DataDir, logs: store, diverged: func(at snapshotAt) {
		select { // from Raft's goroutine: the restart waits for it
		case n.diverged <- at:
		default: // one restart is pending already
		}
	}}
	n.barriers.run = func() { _ = n.raft().Barrier(0).Error() }
	n.layer = newLayer(ln, creds, opt.Log)
	n.layer.forward = n.local
	n.layer.hasState = func() bool { r := n.raft(); return r != nil && r.LastIndex() > 0 }
	n.layer.wait = opt.PeerWait
	n.layer.start() // (its handlers set: a request may come at once)
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.layer, MaxPool: 3, Timeout: 2 * time.Second, Logger: hl,
	})
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(opt.Self)
	cfg.HeartbeatTimeout = opt.Timing.Heartbeat
	cfg.ElectionTimeout = opt.Timing.Election
	cfg.LeaderLeaseTimeout = opt.Timing.LeaderLease
	cfg.CommitTimeout = opt.Timing.Commit
	cfg.Logger = hl
	cfg.SnapshotThreshold = 1024
	cfg.TrailingLogs = 1024
	if err := raft.ValidateConfig(cfg); err != nil {
		n.layer.Close()
		return nil, fmt.Errorf("raft config: %w", err)
	}
	exists, err := raft.HasExistingState(store, store, n.snaps)
	if err != nil {
		n.layer.Close()
		return nil, fmt.Errorf("raft state: %w", err)
	}
	n.cfg = *cfg
	r, err := raft.NewRaft(cfg, opt.FSM, store, store, n.snaps, keepOpen{n.trans})
	if err != nil {
		n.layer.Close()
		return nil, fmt.Errorf("raft: %w", err)
	}
	n.r.Store(r)
	n.states, n.stopPace, n.pacerDone = make(chan raft.Observation, 16), make(chan struct{}), make(chan struct{})
	observeState(r, n.states)
	go func() {
		defer close(n.pacerDone)
		n.pace(n.states, n.stopPace)
	}()
	if !exists {
		// Asking the peers takes up to a probe timeout: meanwhile this
		// node runs (heartbeats, a leader's log may arrive), without a
		// configuration of its own it just does not campaign.
		var ctx context.Context
		ctx, n.stopBoot = context.WithCancel(context.Background())
		n.boot.Add(1)
		go func() {
			defer n.boot.Done()
			n.bootstrap(ctx)
		}()
	}
	return n, nil
}

// bootstrap starts a new cluster from the configured peers unless one of
// them already runs it.
func (n *Node) bootstrap(ctx context.Context) {
	if n.joining(ctx) || ctx.Err() != nil {
		return
	}
	var conf raft.Configuration
	for _, p := range n.opt.Peers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.Name), Address: raft.ServerAddress(p.Address)})
	}
	// A leader's log that arrived meanwhile wins: Raft refuses then.
	if err := n.raft().BootstrapCluster(conf).Error(); err != nil {
		if !errors.Is(err, raft.ErrCantBootstrap) {
			n.log.Error("raft bootstrap failed", "err", err)
		}
		return
	}
	n.log.Info("raft cluster bootstrapped", "voters", len(conf.Servers))
}

// joining reports whether a peer already runs the cluster: a node with an
// empty data dir then waits for the leader's log (its own bootstrap entry
// would clash with the cluster's first one) — it is either among the
// voters already (a node whose disk was replaced) or waits for `vigil
// node add`. When no peer answers, the cluster is new and this node
// bootstraps it from ha.toml, like the others.
func (n *Node) joining(ctx context.Context) bool {
	found := make(chan string, len(n.opt.Peers))
	for _, p := range n.opt.Peers {
		if p.Name == n.opt.Self {
			found <- ""
			continue
		}
		go func() {
			if n.layer.probe(ctx, p.Address, joinProbeTimeout) {
				found <- p.Name
			} else {
				found <- ""
			}
		}()
	}
	peer := ""
	for range n.opt.Peers {
		if name := <-found; name != "" && peer == "" {
			peer = name
		}
	}
	if peer != "" {
		n.log.Info("raft: not bootstrapping: a peer already runs the cluster; this node takes the leader's log once it is a voter (vigil node add, for a new node)", "peer", peer)
	}
	return peer != ""
}

// joinProbeTimeout bounds the question to each peer at the first start.
const joinProbeTimeout = 500 * time.Millisecond

// RecoverAlone makes this node the only voter and its leader: the takeover
// of a two_node survivor whose peer is silent and whose tie-breakers
// agreed. Raft is restarted on the same stores and transport with a
// configuration of this node alone (raft.RecoverCluster: every entry in
// this node's log counts as committed); the peer joins again with
// Rejoin, and Raft replaces whatever its log holds beyond ours. It
// returns once this node leads, or with an error when timeout passes.
func (n *Node) RecoverAlone(timeout time.Duration) error {
	n.recovering.Lock()
	defer n.recovering.Unlock()
	if n.closed {
		return errors.New("raft recover: closed")
	}
	self := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.opt.Self), Address: n.trans.LocalAddr()}}}
	r, err := n.restart(func(cfg *raft.Config) error {
		if err := aloneTerm(n.store, time.Now()); err != nil {
			return err
		}
		// The FSM given to RecoverCluster replays the log only to write
		// a snapshot; the live one is restored from that snapshot on the
		// restart, never shown the history again.
		scratch := fsm.New(slog.New(slog.DiscardHandler))
		return raft.RecoverCluster(cfg, scratch, n.store, n.store, n.snaps, n.trans, self)
	})
	if err != nil {
		return fmt.Errorf("raft recover: %w", err)
	}
	// A lone voter would elect itself only after a heartbeat timeout (a
	// deadtime, or two): the TimeoutNow RPC of a leadership transfer,
	// sent to itself, makes it a candidate now. Its timing stays the
	// derived one, which the pair needs once the peer votes again.
	deadline := time.Now().Add(timeout)
	for r.State() != raft.Leader {
		if time.Now().After(deadline) {
			return fmt.Errorf("raft recover: not leader after %s", timeout)
		}
		if r.State() == raft.Follower {
			self := n.trans.LocalAddr()
			req := raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(n.opt.Self), Addr: []byte(self)}}
			if err := n.trans.TimeoutNow(raft.ServerID(n.opt.Self), self, &req, &raft.TimeoutNowResponse{}); err != nil {
				n.log.Warn("raft recover: campaign request failed", "err", err)
			}
		}
		time.Sleep(time.Millisecond)
	}
	n.log.Warn("raft recovered with this node as the only voter", "index", r.LastIndex())
	return nil
}

// restart shuts Raft down, runs between on its stores (n.recovering
// held), and starts it again on them and the same transport.
func (n *Node) restart(between func(cfg *raft.Config) error) (*raft.Raft, error) {
	shutdown := n.raft().Shutdown()
	n.layer.stopDials()
	err := shutdown.Error()
	n.layer.resume()
	if err != nil {
		return nil, fmt.Errorf("shutdown: %w", err)
	}
	cfg := n.cfg
	if err := between(&cfg); err != nil {
		return nil, err
	}
	r, err := raft.NewRaft(&cfg, n.opt.FSM, n.store, n.store, n.snaps, keepOpen{n.trans})
	if err != nil {
		return nil, fmt.Errorf("restart: %w", err)
	}
	n.r.Store(r)
	observeState(r, n.states)
	return r, nil
}

// Rejoin adds a bootstrap peer back to the voters after RecoverAlone.
func (n *Node) Rejoin(name string, timeout time.Duration) error {
	for _, p := range n.opt.Peers {
		if p.Name == name {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return n.AddVoter(ctx, p)
		}
	}
	return fmt.Errorf("raft rejoin: %q is not a configured node", name)
}

// Close stops Raft and closes the stores.
func (n *Node) Close() error {
	if n.stopBoot != nil {
		n.stopBoot()
	}
	n.boot.Wait()
	n.recovering.Lock() // not while a restart runs, and none after
	n.closed = true
	n.recovering.Unlock()
	err := n.raft().Shutdown().Error()
	n.paceOnce.Do(func() { close(n.stopPace) })
	<-n.pacerDone
	n.barriers.close()
	n.trans.Close()
	n.layer.Close()
	n.layer.wg.Wait()
	return errors.Join(err, n.store.Close())
}

// Apply commits cmd: directly on the leader, forwarded to it elsewhere.
// While no leader is known (an election), or the leader refuses it
// because leadership is moving, it tries again until ctx ends. The error
// is the FSM's when the command was refused.
func (n *Node) Apply(ctx context.Context, cmd []byte) error {
	return n.onLeader(ctx, request{Cmd: cmd})
}

// request is what only the leader can do, sent to it by the others: a
// command to commit, or a change of the voters.
type request struct {
	// ID names the request across attempts, so that a leader receiving
	// it again (its reply was lost with a connection) does not apply it
	// twice.
	ID    string       `json:"id,omitempty"`
	Cmd   []byte       `json:"cmd,omitempty"`
	Voter *voterChange `json:"voter,omitempty"`
	// Probe asks whether the node has a Raft log (served by any node).
	Probe bool `json:"probe,omitempty"`
}

type voterChange struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"` // empty: remove
}

// onLeader carries out req on the leader, as Apply describes.
func (n *Node) onLeader(ctx context.Context, req request) error {
	req.ID = rand.Text()
	for {
		var err error
		if n.raft().State() == raft.Leader {
			err = n.local(ctx, req)
		} else if addr, _ := n.raft().LeaderWithID(); addr != "" {
			err = n.layer.sendForward(ctx, string(addr), req)
		} else {
			err = errNotApplied
		}
		if !errors.Is(err, errNotApplied) {
			return err
		}
		select {
		case <-ctx.Done():
			if err == errNotApplied {
				return ErrNoLeader
			}
			return err
		case <-time.After(n.opt.Timing.Heartbeat): // one Raft timeout before asking again
		}
	}
}

// local carries out req on this node, the leader.
func (n *Node) local(ctx context.Context, req request) error {
	if n.raft() == nil {
		// Forwarded before Raft runs here: the listener serves from the
		// start, and a peer may still take this restarted node for the
		// leader. Not taken: the sender tries the leader again.
		return errNotApplied
	}
	if v := req.Voter; v != nil {
		timeout := 10 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		var f raft.IndexFuture
		if v.Address != "" {
			f = n.raft().AddVoter(raft.ServerID(v.Name), raft.ServerAddress(v.Address), 0, timeout)
		} else {
			f = n.raft().RemoveServer(raft.ServerID(v.Name), 0, timeout)
		}
		return notApplied(f.Error())
	}
	return n.applyLocal(ctx, req.Cmd)
}

// notApplied marks the errors after which a request may go to the next
// leader.
func notApplied(err error) error {
	if errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrRaftShutdown) {
		return fmt.Errorf("%w: %w", errNotApplied, err)
	}
	return err
}

func (n *Node) applyLocal(ctx context.Context, cmd []byte) error {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.raft().Apply(cmd, timeout)
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft apply: %w", notApplied(err))
	}
	// Followers learn that an entry committed only from the leader's next
	// AppendEntries, which an idle leader sends after CommitTimeout: a
	// no-op barrier entry sends it now, so every node acts on the command
	// (a hand-over's stop, then its claim) within a round trip. Applies
	// completing together share one.
	if n.barrierEach {
		_ = n.raft().Barrier(0).Error()
	} else {
		n.barriers.after(ctx)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return nil
}

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.raft().State() == raft.Leader }

// Leader returns the leader's name, or "".
func (n *Node) Leader() string {
	_, id := n.raft().LeaderWithID()
	return string(id)
}

// LeaderCh delivers true when this node becomes leader, false when it
// stops being leader.
func (n *Node) LeaderCh() <-chan bool { return n.raft().LeaderCh() }

// State returns the Raft state name.
func (n *Node) State() string { return n.raft().State().String() }

// Stats returns raft's statistics (term, indexes, last contact...).
func (n *Node) Stats() map[string]string { return n.raft().Stats() }

// Rejected counts connections refused at the TLS handshake.
func (n *Node) Rejected() uint64 { return n.layer.rejected.Load() }

// ForwardStats are counters of command forwarding.
type ForwardStats struct {
	Dialled   uint64 // forwarding connections this node dialled (attempts)
	Lost      uint64 // requests whose connection broke before the reply (sent again)
	Accepted  uint64 // forwarding connections served
	Malformed uint64 // served connections dropped for a malformed frame
}

// Forwarding returns the forwarding counters.
func (n *Node) Forwarding() ForwardStats {
	l := n.layer
	return ForwardStats{Dialled: l.fwd.dials.Load(), Lost: l.fwd.lost.Load(), Accepted: l.muxAccepted.Load(), Malformed: l.malformed.Load()}
}

// Barrier waits until everything committed before it is applied here
// (used by a new leader before it decides anything).
func (n *Node) Barrier(timeout time.Duration) error { return n.raft().Barrier(timeout).Error() }

// Voters lists the current voters.
func (n *Node) Voters() ([]Peer, error) {
	f := n.raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Peer
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, Peer{Name: string(s.ID), Address: string(s.Address)})
		}
	}
	return out, nil
}

// AddVoter adds a node to the voters, on the leader wherever it runs.
func (n *Node) AddVoter(ctx context.Context, p Peer) error {
	if p.Address == "" {
		return fmt.Errorf("%w: add voter %s: no address", ErrRefused, p.Name)
	}
	return n.onLeader(ctx, request{Voter: &voterChange{Name: p.Name, Address: p.Address}})
}

// RemoveServer removes a node from the voters, on the leader wherever it
// runs.
func (n *Node) RemoveServer(ctx context.Context, name string) error {
	return n.onLeader(ctx, request{Voter: &voterChange{Name: name}})
}

// TransferLeadership hands leadership to the named voter.
func (n *Node) TransferLeadership(name, addr string) error {
	return n.raft().LeadershipTransferToServer(raft.ServerID(name), raft.ServerAddress(addr)).Error()
}

// StepDown hands leadership to the most up-to-date other voter.
func (n *Node) StepDown() error { return n.raft().LeadershipTransfer().Error() }

// hclogFor sends hashicorp/raft's hclog output to slog, keeping levels.
func hclogFor(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Output: slogWriter{log}, Level: hclog.Info, DisableTime: true})
}

// slogWriter takes hclog's lines, one per Write.
type slogWriter struct{ log *slog.Logger }

var hclogLevels = []struct {
	tag   string
	level slog.Level
}{{"[ERROR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelInfo}, {"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}}

func (w slogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		level, msg := slog.LevelInfo, line
		for _, l := range hclogLevels {
			if i := strings.Index(line, l.tag); i >= 0 {
				level, msg = l.level, strings.TrimSpace(line[i+len(l.tag):])
				break
			}
		}
		w.log.Log(context.Background(), level, msg)
	}
	return len(p), nil
}
