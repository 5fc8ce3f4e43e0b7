package consensus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/internal/testutil"
)

func freePorts(t testing.TB, n int) []string {
	// Every listener stays open until all are chosen: closed one by one,
	// the kernel may hand the same port out twice.
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out
}

type member struct {
	node *Node
	fsm  *fsm.FSM
}

func startCluster(t testing.TB, n int, timing Timing, log func(node string) *slog.Logger) []*member {
	t.Helper()
	addrs := freePorts(t, n)
	var peers []Peer
	for i, a := range addrs {
		peers = append(peers, Peer{Name: fmt.Sprintf("n%d", i+1), Address: a})
	}
	var ms []*member
	// Registered first, so nodes started before a failing one are closed.
	t.Cleanup(func() {
		for _, m := range ms {
			m.node.Close()
		}
	})
	for i, p := range peers {
		f := fsm.New(log(p.Name))
		node, err := Start(Options{Cluster: "test", Self: p.Name, Bind: p.Address, Secret: []byte("a secret of the cluster"),
			DataDir: t.TempDir(), Peers: peers, Timing: timing, FSM: f, Log: log(p.Name)})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		ms = append(ms, &member{node, f})
	}
	return ms
}

var fast = TimingFor(timing.Timing{Keepalive: 10 * time.Millisecond, Deadtime: 50 * time.Millisecond})

func testLog(t testing.TB) func(string) *slog.Logger {
	return func(node string) *slog.Logger { return testutil.Logger(t).With("node", node) }
}

// waitVersion waits until m has applied the groups version, or fails the
// test when ctx ends.
func waitVersion(t testing.TB, ctx context.Context, m *member, version string) {
	t.Helper()
	for {
		// The channel is taken before the state is read: taken after, a
		// change between the two (the last of a catch-up) was missed and
		// the wait lasted until ctx ended (TestJoin, once in a few runs).
		changed := m.fsm.Changed()
		got := m.fsm.View().GroupsVersion
		if got == version {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not apply %q (it has %q)", m.node.opt.Self, version, got)
		case <-changed:
		}
	}
}

func waitLeader(t testing.TB, ms []*member) *member {
	t.Helper()
	return testutil.Eventually(t, electionWait(ms), "a leader", func() (*member, bool) {
		for _, m := range ms {
			if m.node.IsLeader() {
				return m, true
			}
		}
		return nil, false
	})
}

// electionWait bounds a wait for the members to elect a leader, or for
// something that follows within a few rounds: many election timeouts,
// at least 10 s for the race detector on a busy machine.
func electionWait(ms []*member) time.Duration { return electionWaitFor(ms[0].node.opt.Timing) }

func electionWaitFor(t Timing) time.Duration { return max(10*time.Second, 20*t.Election) }

func TestApplyForwardedToLeader(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the cluster's own cleanup
	ms := startCluster(t, 3, fast, testLog(t))
	leader := waitLeader(t, ms)
	var follower *member
	for _, m := range ms {
		if m != leader {
			follower = m
		}
	}
	cmd, _ := fsm.Encode(fsm.TypeSetGroups, fsm.SetGroups{Version: "v1", Nodes: []fsm.NodeSpec{{Name: "n1", Role: "member"}}, Groups: []fsm.GroupSpec{{Name: "web", Preferred: "n1"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// At these timings a loaded machine can see the leader step down;
	// an apply that meets a leader change is retried, as a client would.
	for {
		err := follower.node.Apply(ctx, cmd)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "not the leader") && !strings.Contains(err.Error(), "leadership lost") && !strings.Contains(err.Error(), "no leader") {
			t.Fatalf("apply through follower: %v", err)
		}
		t.Logf("retrying after a leader change: %v", err)
	}
	// The FSM's refusal comes back through forwarding as ErrRefused.
	bad, _ := fsm.Encode(fsm.TypeMove, fsm.Move{Group: "nope", Node: "n1"})
	if err := follower.node.Apply(ctx, bad); !errors.Is(err, ErrRefused) {
		t.Fatalf("refused command: got %v, want ErrRefused", err)
	}
	// The leader may have changed meanwhile at these timings: the barrier
	// runs on whichever node leads now.
	for err := waitLeader(t, ms).node.Barrier(5 * time.Second); err != nil; err = waitLeader(t, ms).node.Barrier(5 * time.Second) {
		if ctx.Err() != nil || !strings.Contains(err.Error(), "not the leader") && !strings.Contains(err.Error(), "leadership lost") {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		waitVersion(t, ctx, m, "v1")
	}
}

// A machine without the cluster secret can neither join nor talk to Raft:
// its TLS handshake fails on both sides and the connection is counted.
func TestTransportRefusesWrongSecret(t *testing.T) {
	ms := startCluster(t, 1, fast, testLog(t))
	waitLeader(t, ms)
	addr := ms[0].node.opt.Bind
	for _, secret := range []string{"another secret", ""} {
		before := ms[0].node.Rejected()
		var cfg *tls.Config
		if secret != "" {
			creds, err := NewCredentials("test", "intruder", []byte(secret))
			if err != nil {
				t.Fatal(err)
			}
			cfg = creds.Client
		} else {
			cfg = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} // no client certificate at all
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			// TLS 1.3 finishes the client side before the server checked
			// the client certificate: the refusal shows on first read.
			c.Write([]byte{connRaft})
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Fatalf("secret %q: connection accepted", secret)
		}
		if _, ok := testutil.EventuallyOK(electionWait(ms), func() (uint64, bool) {
			return ms[0].node.Rejected(), ms[0].node.Rejected() != before
		}); !ok {
			t.Errorf("secret %q: rejection not counted", secret)
		}
	}
}

// State survives a restart: the log and snapshots are on disk.
func TestStateSurvivesRestart(t *testing.T) {
	addr := freePorts(t, 1)[0]
	dir := t.TempDir()
	open := func() *member {
		f := fsm.New(testutil.Logger(t))
		n, err := Start(Options{Cluster: "test", Self: "n1", Bind: addr, Secret: []byte("s"), DataDir: dir,
			Peers: []Peer{{"n1", addr}}, Timing: TimingFor(timing.Timing{Keepalive: 10 * time.Millisecond, Deadtime: 50 * time.Millisecond}), FSM: f, Log: testutil.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return &member{n, f}
	}
	m := open()
	waitLeader(t, []*member{m})
	cmd, _ := fsm.Encode(fsm.TypeSetGroups, fsm.SetGroups{Version: "v7"})
	if err := m.node.Apply(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	m.node.Close()
	m = open()
	defer m.node.Close()
	waitLeader(t, []*member{m})
	if err := m.node.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if v := m.fsm.View().GroupsVersion; v != "v7" {
		t.Fatalf("after restart: groups version %q, want v7", v)
	}
}

// BenchmarkApply measures the Raft apply latency (commit on a quorum,
// bbolt fsync included, and the FSM applied on the leader) in a
// three-node cluster over TLS on loopback, with the timing derived from
// two heartbeat settings. Reported: median and p95 per command.
func BenchmarkApply(b *testing.B) {
	for _, tc := range []struct{ ka, dt time.Duration }{
		{10 * time.Millisecond, 50 * time.Millisecond},
		{100 * time.Millisecond, 500 * time.Millisecond},
	} {
		b.Run(fmt.Sprintf("keepalive=%s/deadtime=%s", tc.ka, tc.dt), func(b *testing.B) {
			quiet := func(string) *slog.Logger { return slog.New(slog.DiscardHandler) }
			leader := waitLeader(b, startCluster(b, 3, TimingFor(timing.Timing{Keepalive: tc.ka, Deadtime: tc.dt}), quiet))
			cmd, _ := fsm.Encode(fsm.TypeNodeState, fsm.NodeState{Node: "n1"})
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := leader.node.Apply(context.Background(), cmd); err != nil && !errors.Is(err, ErrRefused) {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			b.ReportMetric(us(lat[len(lat)/2]), "median-µs")
			b.ReportMetric(us(lat[len(lat)*95/100]), "p95-µs")
		})
	}
}

// pair is a two_node pair at the Raft level, each node on its own data
// dir across restarts.
type pair struct {
	t     *testing.T
	peers []Peer
	dirs  []string
	ms    []*member
	ctx   context.Context
}

func newPair(t *testing.T) *pair {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	addrs := freePorts(t, 2)
	p := &pair{t: t, peers: []Peer{{Name: "n1", Address: addrs[0]}, {Name: "n2", Address: addrs[1]}},
		dirs: []string{t.TempDir(), t.TempDir()}, ms: make([]*member, 2)}
	t.Cleanup(func() {
		for i := range p.ms {
			p.stop(i)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*electionWaitFor(fast))
	t.Cleanup(cancel)
	p.ctx = ctx
	p.start(0)
	p.start(1)
	return p
}

// start starts node i from its disk.
func (p *pair) start(i int) *member {
	f := fsm.New(testLog(p.t)(p.peers[i].Name))
	node, err := Start(Options{Cluster: "test", Self: p.peers[i].Name, Bind: p.peers[i].Address, Secret: []byte("s"),
		DataDir: p.dirs[i], Peers: p.peers, Timing: fast, FSM: f, Log: testLog(p.t)(p.peers[i].Name)})
	if err != nil {
		p.t.Fatal(err)
	}
	p.ms[i] = &member{node, f}
	return p.ms[i]
}

func (p *pair) stop(i int) {
	if p.ms[i] != nil {
		p.ms[i].node.Close()
		p.ms[i] = nil
	}
}

func (p *pair) setCtx(ctx context.Context, i int, version string) error {
	cmd, _ := fsm.Encode(fsm.TypeSetGroups, fsm.SetGroups{Version: version, Nodes: []fsm.NodeSpec{{Name: "n1", Role: "member"}, {Name: "n2", Role: "member"}}})
	return p.ms[i].node.Apply(ctx, cmd)
}

func (p *pair) set(i int, version string) {
	p.t.Helper()
	if err := p.setCtx(p.ctx, i, version); err != nil {
		p.t.Fatalf("n%d: apply %q: %v", i+1, version, err)
	}
}

// recoverAlone makes node i the only voter, as a two_node takeover does.
func (p *pair) recoverAlone(i int) {
	p.t.Helper()
	if err := p.ms[i].node.RecoverAlone(5 * time.Second); err != nil {
		p.t.Fatal(err)
	}
	if v, _ := p.ms[i].node.Voters(); len(v) != 1 || v[0].Name != p.peers[i].Name {
		p.t.Fatalf("voters after recovery: %v", v)
	}
}

// merge lets the other node back in from leader i, as the pair step does
// once it hears it, and checks that the other takes i's state: it comes
// to the groups version i has, a command committed after the merge
// reaches it, and it counts both as voters. If the other leads alone
// too, it tries the same first, to no effect: its term is the lower.
func (p *pair) merge(i int) {
	p.t.Helper()
	waitLeader(p.t, p.ms[i:i+1])
	other := 1 - i
	want := p.ms[i].fsm.View().GroupsVersion
	if p.ms[other].node.IsLeader() {
		_ = p.ms[other].node.Rejoin(p.peers[i].Name, time.Second)
	}
	if err := p.ms[i].node.Rejoin(p.peers[other].Name, 5*time.Second); err != nil {
		p.t.Fatal(err)
	}
	// Its own state is gone, not mixed with i's.
	waitVersion(p.t, p.ctx, p.ms[other], want)
	// The rejoined voter may cost the leader its lease while it catches
	// up (leadership lost, then won again): retry, as a client would.
	for err := p.setCtx(p.ctx, i, "merged"); err != nil; err = p.setCtx(p.ctx, i, "merged") {
		if p.ctx.Err() != nil || !strings.Contains(err.Error(), "leadership lost") && !strings.Contains(err.Error(), "not the leader") {
			p.t.Fatal(err)
		}
		p.t.Logf("retrying after a leader change: %v", err)
	}
	waitVersion(p.t, p.ctx, p.ms[other], "merged")
	if v, _ := p.ms[other].node.Voters(); len(v) != 2 {
		p.t.Fatalf("n%d's voters after the merge: %v", other+1, v)
	}
}

// TestRecoverAloneAndRejoin is the two_node takeover and merge at the Raft
// level: a pair loses one node, the survivor becomes the only voter and
// commits alone; the lost node comes back from its disk, joins as a voter
// again and catches up with what the survivor committed alone.
func TestRecoverAloneAndRejoin(t *testing.T) {
	p := newPair(t)
	waitLeader(t, p.ms)
	p.set(0, "both")
	waitVersion(t, p.ctx, p.ms[0], "both")
	// n2 goes away; n1 alone cannot commit.
	p.stop(1)
	short, scancel := context.WithTimeout(p.ctx, 300*time.Millisecond)
	err := p.setCtx(short, 0, "no-quorum")
	scancel()
	if err == nil || p.ms[0].fsm.View().GroupsVersion != "both" {
		t.Fatalf("a pair without one node committed a command (%v)", err)
	}
	p.recoverAlone(0)
	p.set(0, "alone")
	// n2 comes back from its disk and joins again.
	p.start(1)
	p.merge(0)
}

// TestJoin: a node that starts with an empty data dir while its peers run
// the cluster does not bootstrap a cluster of its own; a new node joins
// once `vigil node add` (AddVoter, here from a follower) adds it, and a
// voter whose disk was replaced takes the leader's log.
func TestJoin(t *testing.T) {
	// At the fast timing a loaded machine loses leaders mid-test; the
	// joins are what is tested here.
	ms := startCluster(t, 3, calm, testLog(t))
	leader := waitLeader(t, ms)
	// One bound for the whole test, which runs a dozen elections and
	// catch-ups: on a loaded machine (with -race) it takes half a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A change that meets a leader change is retried, as a client would.
	retry := func(what string, op func() error) {
		t.Helper()
		for err := op(); err != nil; err = op() {
			if ctx.Err() != nil || !strings.Contains(err.Error(), "leadership lost") && !strings.Contains(err.Error(), "not the leader") {
				t.Fatalf("%s: %v", what, err)
			}
			t.Logf("%s: retrying after a leader change: %v", what, err)
		}
	}
	set := func(version string) {
		t.Helper()
		cmd, _ := fsm.Encode(fsm.TypeSetGroups, fsm.SetGroups{Version: version})
		retry("apply "+version, func() error { return leader.node.Apply(ctx, cmd) })
	}
	set("v1")
	var followers []*member
	for _, m := range ms {
		if m != leader {
			followers = append(followers, m)
		}
	}
	follower, lost := followers[0], followers[1]
	start := func(self Peer, dir string) *member {
		t.Helper()
		peers := append(slices.Clone(ms[0].node.opt.Peers), self)
		peers = slices.CompactFunc(peers, func(a, b Peer) bool { return a.Name == b.Name })
		f := fsm.New(testLog(t)(self.Name))
		node, err := Start(Options{Cluster: "test", Self: self.Name, Bind: self.Address, Secret: []byte("a secret of the cluster"),
			DataDir: dir, Peers: peers, Timing: calm, FSM: f, Log: testLog(t)(self.Name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		return &member{node, f}
	}

	n4 := start(Peer{Name: "n4", Address: freePorts(t, 1)[0]}, t.TempDir())
	n4.node.boot.Wait() // it has asked its peers
	if last := n4.node.raft().LastIndex(); last != 0 {
		t.Fatalf("n4 bootstrapped a cluster of its own (last index %d)", last)
	}
	retry("add voter from a follower", func() error { return follower.node.AddVoter(ctx, Peer{Name: "n4", Address: n4.node.opt.Bind}) })
	waitVersion(t, ctx, n4, "v1")
	set("v2")
	waitVersion(t, ctx, n4, "v2")
	if v, _ := waitLeader(t, ms).node.Voters(); len(v) != 4 {
		t.Fatalf("voters after the add: %v", v)
	}

	// A voter's disk is replaced: it comes back empty and catches up.
	self := Peer{Name: lost.node.opt.Self, Address: lost.node.opt.Bind}
	lost.node.Close()
	back := start(self, t.TempDir())
	waitVersion(t, ctx, back, "v2")

	retry("remove voter from a follower", func() error { return follower.node.RemoveServer(ctx, "n4") })
	if v, _ := waitLeader(t, ms).node.Voters(); len(v) != 3 || slices.ContainsFunc(v, func(p Peer) bool { return p.Name == "n4" }) {
		t.Fatalf("voters after the remove: %v", v)
	}
}
