package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
)

var quiet = slog.New(slog.DiscardHandler)

// simLog is an in-memory Raft log shared by the nodes of a test: an entry
// is applied to every connected node's FSM, in log order, before Apply
// returns. A cut-off node neither commits nor receives entries.
type simLog struct {
	mu      sync.Mutex
	index   uint64
	fsms    map[string]*fsm.FSM
	cut     map[string]bool
	leader  string
	voters  []consensus.Peer
	byType  map[string]int
	clock   func() time.Time
	afterFn func(index uint64) // called after each entry, under mu
}

func newSimLog(leader string, clock func() time.Time) *simLog {
	return &simLog{fsms: map[string]*fsm.FSM{}, cut: map[string]bool{}, leader: leader, byType: map[string]int{}, clock: clock}
}

var errCut = errors.New("sim: no quorum reachable")

func (l *simLog) apply(from string, cmd []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut[from] {
		return fmt.Errorf("raft apply: %w", errCut)
	}
	l.index++
	var env fsm.Envelope
	_ = json.Unmarshal(cmd, &env)
	l.byType[env.Type]++
	if debugSim {
		fmt.Println(time.Now().Format("15:04:05.000"), from, env.Type, len(cmd))
	}
	var res error
	for name, f := range l.fsms {
		if l.cut[name] {
			continue
		}
		r := f.Apply(&raft.Log{Index: l.index, Type: raft.LogCommand, Data: cmd, AppendedAt: l.clock()})
		if name == l.leader {
			res, _ = r.(error)
		}
	}
	if l.afterFn != nil {
		l.afterFn(l.index)
	}
	return res
}

func (l *simLog) entries() (uint64, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.index, maps.Clone(l.byType)
}

// simRaft is one node's handle on a simLog.
type simRaft struct {
	log  *simLog
	self string
}

func (r *simRaft) Apply(_ context.Context, cmd []byte) error { return r.log.apply(r.self, cmd) }
func (r *simRaft) Barrier(time.Duration) error               { return nil }
func (r *simRaft) IsLeader() bool {
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	return r.log.leader == r.self && !r.log.cut[r.self]
}
func (r *simRaft) LeaderCh() <-chan bool { return nil }
func (r *simRaft) Voters() ([]consensus.Peer, error) {
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	return slices.Clone(r.log.voters), nil
}
func (r *simRaft) TransferLeadership(string, string) error        { return nil }
func (r *simRaft) StepDown() error                                { return nil }
func (r *simRaft) AddVoter(context.Context, consensus.Peer) error { return nil }
func (r *simRaft) RemoveServer(context.Context, string) error     { return nil }
func (r *simRaft) RecoverAlone(time.Duration) error               { return nil }
func (r *simRaft) Rejoin(string, time.Duration) error             { return nil }

// fakeLRM runs groups instantly; errors can be set per operation. Every
// start is checked against the other nodes' LRMs in registry: a group
// active on two nodes at once fails the test.
type fakeLRM struct {
	node     string
	registry *registry

	mu        sync.Mutex
	state     map[string]string
	starts    map[string]int
	ops       []string // "op group", in order
	failStart error
	failStop  error
	failMon   error
	failRecon error
	reconfChg bool
	onStart   func()    // runs as a start begins (a stall, a lease lapsing meanwhile)
	held      time.Time // the lease last handed over
	// handover holds each group's hand-over states (none: no resource
	// of the group has any); handoverAsks counts the calls.
	handover     map[string][]lrm.Handed
	handoverAsks int
	// reloadGate, when set, holds every reload until closed;
	// reloading counts those held.
	reloadGate chan struct{}
	reloading  int
}

func (l *fakeLRM) Hold(until time.Time) {
	l.mu.Lock()
	l.held = until
	l.mu.Unlock()
}

func (l *fakeLRM) holding() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

func newFakeLRM(node string, reg *registry) *fakeLRM {
	l := &fakeLRM{node: node, registry: reg, state: map[string]string{}, starts: map[string]int{}}
	if reg != nil {
		reg.add(l)
	}
	return l
}

func (l *fakeLRM) set(g, state string) {
	l.mu.Lock()
	l.state[g] = state
	l.mu.Unlock()
}

func (l *fakeLRM) record(op, g string) {
	l.ops = append(l.ops, op+" "+g)
}

func (l *fakeLRM) takeOps() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops := l.ops
	l.ops = nil
	return ops
}

func (l *fakeLRM) Probe(_ context.Context, g config.Group) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record("probe", g.Name)
	if !lrm.Active(l.state[g.Name]) {
		l.state[g.Name] = lrm.Stopped
	}
}

func (l *fakeLRM) State(g string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.state[g]; ok {
		return s
	}
	return lrm.Unknown
}

func (l *fakeLRM) Start(_ context.Context, g config.Group) error {
	if l.registry != nil {
		l.registry.starting(l, g.Name)
	}
	if l.onStart != nil {
		l.onStart()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record("start", g.Name)
	if l.failStart != nil {
		l.state[g.Name] = lrm.Failed
		return l.failStart
	}
	l.state[g.Name] = lrm.Running
	l.starts[g.Name]++
	return nil
}

func (l *fakeLRM) Stop(_ context.Context, g config.Group) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record("stop", g.Name)
	if l.failStop != nil {
		l.state[g.Name] = lrm.Blocked
		return l.failStop
	}
	l.state[g.Name] = lrm.Stopped
	return nil
}

func (l *fakeLRM) Monitor(_ context.Context, g config.Group) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record("monitor", g.Name)
	return l.failMon
}

func (l *fakeLRM) Reload(_ context.Context, g config.Group, _ func(config.Binding) bool) error {
	l.mu.Lock()
	gate := l.reloadGate
	l.reloading++
	l.mu.Unlock()
	if gate != nil {
		<-gate
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reloading--
	l.record("reload", g.Name)
	return nil
}

func (l *fakeLRM) Reconfigure(_ context.Context, g config.Group) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record("reconfigure", g.Name)
	return l.reconfChg, l.failRecon
}

func (l *fakeLRM) Status() []lrm.GroupStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []lrm.GroupStatus
	for g, s := range l.state {
		out = append(out, lrm.GroupStatus{Name: g, State: s})
	}
	return out
}

// Handover returns the states set in handover for g whose generation is
// not the one the caller has; none set: the group has none.
func (l *fakeLRM) Handover(_ context.Context, g config.Group, have map[string]uint64) ([]lrm.Handed, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handoverAsks++
	hs, ok := l.handover[g.Name]
	var out []lrm.Handed
	for _, h := range hs {
		if have[h.Resource] != h.Generation {
			out = append(out, h)
		}
	}
	return out, ok, nil
}

func (l *fakeLRM) active(g string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return lrm.Active(l.state[g])
}

// registry knows every node's fake LRM and records a group found active
// on two nodes at once.
type registry struct {
	mu    sync.Mutex
	lrms  []*fakeLRM
	dual  []string
	check int // how many checks ran
}

func (r *registry) add(l *fakeLRM) {
	r.mu.Lock()
	r.lrms = append(r.lrms, l)
	r.mu.Unlock()
}

// starting is called before l starts g.
func (r *registry) starting(l *fakeLRM, g string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.lrms {
		if o != l && o.active(g) {
			r.dual = append(r.dual, fmt.Sprintf("%s started on %s while active on %s", g, l.node, o.node))
		}
	}
}

// checkAll looks at every group on every node.
func (r *registry) checkAll(groups []string, at string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.check++
	for _, g := range groups {
		var on []string
		for _, l := range r.lrms {
			if l.active(g) {
				on = append(on, l.node)
			}
		}
		if len(on) > 1 {
			r.dual = append(r.dual, fmt.Sprintf("%s active on %v at %s", g, on, at))
		}
	}
}

func (r *registry) problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dual)
}

// fakeLease holds until a set time; released says when other nodes
// surely hold nothing.
type fakeLease struct {
	mu       sync.Mutex
	until    func(now time.Time) time.Time
	released map[string]time.Time // node → released at (missing: at once)
	unknown  map[string]bool      // node → not enough voters reported
	applied  map[string]uint64
	deaf     map[string][2]time.Time // node → since, released (missing: not deaf)
	withheld map[string]bool
	reported chan struct{}
	renew    func() // the renewal hook (OnRenew)
	// everyBeat: the test calls renew every keepalive, as the heartbeat
	// engine does (else runLocal looks at the lease on its own timer).
	everyBeat bool
}

func newFakeLease() *fakeLease {
	return &fakeLease{until: func(now time.Time) time.Time { return now.Add(time.Hour) },
		released: map[string]time.Time{}, unknown: map[string]bool{}, applied: map[string]uint64{}, reported: make(chan struct{}, 1),
		deaf: map[string][2]time.Time{}, withheld: map[string]bool{}}
}

func (l *fakeLease) OnRenew(f func()) bool {
	l.mu.Lock()
	l.renew = f
	l.mu.Unlock()
	return l.everyBeat
}

// renewed runs the renewal hook, as the heartbeat's goroutine does, and
// reports whether one was set.
func (l *fakeLease) renewed() bool {
	l.mu.Lock()
	f := l.renew
	l.mu.Unlock()
	if f != nil {
		f()
	}
	return f != nil
}

func (l *fakeLease) Reported() <-chan struct{} { return l.reported }

func (l *fakeLease) Overrun(string) time.Duration { return 0 }

// report has node's voters reported: ReleasedAt answers, and whoever
// waits on Reported is told.
func (l *fakeLease) report(node string) {
	l.mu.Lock()
	delete(l.unknown, node)
	l.mu.Unlock()
	select {
	case l.reported <- struct{}{}:
	default:
	}
}

func (l *fakeLease) HoldUntil(now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until(now)
}

func (l *fakeLease) setUntil(f func(now time.Time) time.Time) {
	l.mu.Lock()
	l.until = f
	l.mu.Unlock()
}

func (l *fakeLease) ReleasedAt(node string, _ uint64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unknown[node] {
		return time.Time{}, false
	}
	return l.released[node], true
}

func (l *fakeLease) Deaf(node string) (since, released time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.deaf[node]
	return d[0], d[1], ok
}

func (l *fakeLease) Withhold(node string, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.withheld[node] = on
}

func (l *fakeLease) Applied(node string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied[node]
}

// fakeMembers is a membership view set by the test.
type fakeMembers struct {
	mu    sync.Mutex
	peers map[string]membership.PeerStatus
	subs  []chan membership.Event
}

func newFakeMembers(peers ...string) *fakeMembers {
	m := &fakeMembers{peers: map[string]membership.PeerStatus{}}
	for _, p := range peers {
		m.peers[p] = membership.PeerStatus{Node: p, State: "up", Incarnation: 1}
	}
	return m
}

func (m *fakeMembers) Peers() []membership.PeerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []membership.PeerStatus
	for _, p := range m.peers {
		out = append(out, p)
	}
	return out
}

func (m *fakeMembers) set(p membership.PeerStatus) {
	m.mu.Lock()
	m.peers[p.Node] = p
	subs := slices.Clone(m.subs)
	m.mu.Unlock()
	kind := membership.NodeUp
	if p.State == "dead" {
		kind = membership.NodeDead
	}
	for _, ch := range subs {
		select {
		case ch <- membership.Event{Kind: kind, Node: p.Node}:
		default:
		}
	}
}

// emit sends ev to the subscribers.
func (m *fakeMembers) emit(ev membership.Event) {
	m.mu.Lock()
	subs := slices.Clone(m.subs)
	m.mu.Unlock()
	for _, ch := range subs {
		ch <- ev
	}
}

func (m *fakeMembers) Subscribe(buf int) (<-chan membership.Event, func()) {
	ch := make(chan membership.Event, buf)
	m.mu.Lock()
	m.subs = append(m.subs, ch)
	m.mu.Unlock()
	return ch, func() {
		m.mu.Lock()
		m.subs = slices.DeleteFunc(m.subs, func(c chan membership.Event) bool { return c == ch })
		m.mu.Unlock()
	}
}

// fakeClock is a time the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var debugSim = false
