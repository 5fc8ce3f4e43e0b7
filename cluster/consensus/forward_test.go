package consensus

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/internal/testutil"
)

// calm is timing at which a three-node cluster on a busy machine keeps
// its leader for the length of a test.
var calm = TimingFor(timing.Timing{Keepalive: 100 * time.Millisecond, Deadtime: 500 * time.Millisecond})

func leakCheck(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the cluster's own cleanup
}

// settled waits for every node's first-start probes, so the forwarding
// counters taken next count only what the test does.
func settled(t *testing.T, ms []*member) (leader, follower *member) {
	t.Helper()
	leader = waitLeader(t, ms)
	for _, m := range ms {
		m.node.boot.Wait()
	}
	for _, m := range ms {
		if m != leader {
			return leader, m
		}
	}
	t.Fatal("a single node has no follower")
	return nil, nil
}

func term(m *member) uint64 {
	n, _ := strconv.ParseUint(m.node.Stats()["term"], 10, 64)
	return n
}

func maxTerm(ms []*member) uint64 {
	var t uint64
	for _, m := range ms {
		t = max(t, term(m))
	}
	return t
}

func accepted(ms []*member) uint64 {
	var n uint64
	for _, m := range ms {
		n += m.node.Forwarding().Accepted
	}
	return n
}

// nodeStateCmd is a command the FSM refuses (no such node): the refusal
// comes from the leader's FSM, so it proves the command got there.
func nodeStateCmd(t testing.TB) []byte {
	cmd, err := fsm.Encode(fsm.TypeNodeState, fsm.NodeState{Node: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func applied(err error) bool { return err == nil || errors.Is(err, ErrRefused) }

// applyMany applies cmd n times from m over workers goroutines and
// returns the first error that is not the FSM's answer.
func applyMany(ctx context.Context, m *member, cmd []byte, n, workers int) error {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		fail error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := m.node.Apply(ctx, cmd); !applied(err) {
					mu.Lock()
					fail = errors.Join(fail, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return fail
}

// Many concurrent forwarded applies share one connection: without the
// pool every one of them would be a TLS handshake and an accepted
// connection on the leader.
func TestForwardSharesOneConnection(t *testing.T) {
	leakCheck(t)
	ms := startCluster(t, 3, calm, testLog(t))
	leader, follower := settled(t, ms)
	follower.node.layer.fwd.closeAll(false) // the probes' connections: count from none
	dialled0, accepted0, term0 := follower.node.Forwarding().Dialled, accepted(ms), maxTerm(ms)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := applyMany(ctx, follower, nodeStateCmd(t), 500, 50); err != nil {
		t.Fatal(err)
	}
	dialled, acc := follower.node.Forwarding().Dialled-dialled0, accepted(ms)-accepted0
	// A leader change (a busy machine) legitimately dials the new one.
	changes := maxTerm(ms) - term0
	t.Logf("500 forwarded applies: %d connections dialled, %d accepted, %d leader changes", dialled, acc, changes)
	if dialled == 0 || dialled > 1+changes {
		t.Errorf("500 forwarded applies dialled %d connections, want at most 1 (+%d leader changes)", dialled, changes)
	}
	if acc != dialled {
		t.Errorf("%d forwarding connections accepted in the cluster, %d dialled by the follower", acc, dialled)
	}
	if changes == 0 {
		open := follower.node.layer.fwd.openConns()
		if len(open) != 1 || open[0].addr != leader.node.opt.Bind {
			t.Errorf("open forwarding connections %v, want one to the leader %s", addrs(open), leader.node.opt.Bind)
		}
	}
}

func addrs(cs []*fwdConn) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.addr)
	}
	return out
}

// A connection that breaks with requests in flight fails them with an
// error onLeader sends again on a new connection: every apply succeeds.
func TestForwardConnectionLostMidFlight(t *testing.T) {
	leakCheck(t)
	ms := startCluster(t, 3, calm, testLog(t))
	_, follower := settled(t, ms)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fwd := follower.node.layer.fwd
	fwd.closeAll(false) // the probes' connections: count from none
	dialled0 := follower.node.Forwarding().Dialled
	stop := make(chan struct{})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fail  error
		count atomic.Int64
	)
	cmd := nodeStateCmd(t)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := follower.node.Apply(ctx, cmd); !applied(err) {
					mu.Lock()
					fail = errors.Join(fail, err)
					mu.Unlock()
					cancel() // the waits below end
					return
				}
				count.Add(1)
			}
		}()
	}
	// Cut the TCP connection under TLS (no close_notify, as a reset
	// would) while requests wait on it, until one cut caught some.
	kills := 0
	for follower.node.Forwarding().Lost == 0 && ctx.Err() == nil {
		for _, fc := range fwd.openConns() {
			fc.mu.Lock()
			if len(fc.pending) > 0 {
				fc.c.NetConn().Close()
				kills++
			}
			fc.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
	lost := follower.node.Forwarding().Lost
	// Applies go on over the new connection.
	for after := count.Load() + 100; count.Load() < after && ctx.Err() == nil; {
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
	close(stop)
	wg.Wait()
	if fail != nil {
		t.Fatalf("applies failed after the connection was cut: %v", fail)
	}
	if ctx.Err() != nil {
		t.Fatal("applies did not go on after the connection was cut")
	}
	dialled := follower.node.Forwarding().Dialled - dialled0
	t.Logf("%d cuts, %d requests lost in flight and sent again, %d dials, %d applies", kills, lost, dialled, count.Load())
	if lost == 0 {
		t.Fatal("no request was in flight when the connection was cut")
	}
	if dialled < 2 {
		t.Errorf("dialled %d connections, want a new one after the cut", dialled)
	}
}

// A request sent again with the same id (its reply was lost) is answered
// from memory, not applied again; one the leader did not take is not
// remembered, so the next attempt runs it.
func TestRecentRepliesOncePerID(t *testing.T) {
	var r recentReplies
	ctx := context.Background()
	calls := 0
	fn := func() forwardReply { calls++; return forwardReply{Error: "first"} }
	a := r.do(ctx, "x", fn)
	b := r.do(ctx, "x", fn)
	if calls != 1 || a != b {
		t.Fatalf("same id twice: %d calls, replies %v %v", calls, a, b)
	}
	r.do(ctx, "", fn)
	r.do(ctx, "", fn)
	if calls != 3 {
		t.Fatalf("requests without an id: %d calls, want each run", calls-1)
	}
	notTaken := 0
	r.do(ctx, "y", func() forwardReply { notTaken++; return forwardReply{NotApplied: true} })
	r.do(ctx, "y", func() forwardReply { notTaken++; return forwardReply{} })
	if notTaken != 2 {
		t.Fatalf("a request not applied ran %d times, want 2", notTaken)
	}
	// A repeat that arrives while the first still runs waits for its reply.
	release := make(chan struct{})
	started := make(chan struct{})
	go r.do(ctx, "z", func() forwardReply { close(started); <-release; return forwardReply{Error: "z"} })
	<-started
	got := make(chan forwardReply)
	go func() { got <- r.do(ctx, "z", func() forwardReply { t.Error("ran twice"); return forwardReply{} }) }()
	close(release)
	if rep := <-got; rep.Error != "z" {
		t.Fatalf("repeat got %v", rep)
	}
	// The memory is bounded.
	for i := range recentMax + 10 {
		r.do(ctx, strconv.Itoa(i), func() forwardReply { return forwardReply{} })
	}
	if len(r.byID) > recentMax {
		t.Fatalf("%d replies remembered, at most %d", len(r.byID), recentMax)
	}
}

// An id not applied and then taken is remembered for as long as any
// other: the slot its first attempt held does not drop the second one.
func TestRecentRepliesRetakenIDKept(t *testing.T) {
	var r recentReplies
	ctx := context.Background()
	r.do(ctx, "y", func() forwardReply { return forwardReply{NotApplied: true} })
	r.do(ctx, "y", func() forwardReply { return forwardReply{Error: "taken"} })
	for i := range recentMax - 1 { // the first attempt's slot is reused
		r.do(ctx, strconv.Itoa(i), func() forwardReply { return forwardReply{} })
	}
	rep := r.do(ctx, "y", func() forwardReply { t.Error("applied twice"); return forwardReply{} })
	if rep.Error != "taken" {
		t.Fatalf("repeat got %+v, want the reply of the attempt taken", rep)
	}
}

// Leadership moves while a follower forwards: the requests go to the new
// leader, over a connection to it.
func TestForwardFollowsLeaderChange(t *testing.T) {
	leakCheck(t)
	ms := startCluster(t, 3, calm, testLog(t))
	leader, follower := settled(t, ms)
	var next *member
	for _, m := range ms {
		if m != leader && m != follower {
			next = m
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := nodeStateCmd(t)
	if err := follower.node.Apply(ctx, cmd); !applied(err) {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A command in the leader's log when it hands over may
				// end "leadership lost" (committed or not): the caller's
				// to retry, as coord does.
				if err := follower.node.Apply(ctx, cmd); applied(err) {
					ok.Add(1)
				} else if !strings.Contains(err.Error(), "leadership lost") {
					t.Errorf("apply during the hand-over: %v", err)
					return
				}
			}
		}()
	}
	for err := leader.node.TransferLeadership(next.node.opt.Self, next.node.opt.Bind); err != nil; err = leader.node.TransferLeadership(next.node.opt.Self, next.node.opt.Bind) {
		if ctx.Err() != nil {
			t.Fatalf("transfer: %v", err)
		}
		t.Logf("transfer: %v", err)
	}
	for !next.node.IsLeader() && ctx.Err() == nil {
		<-time.After(5 * time.Millisecond)
	}
	for after := ok.Load() + 50; ok.Load() < after && ctx.Err() == nil; {
		<-time.After(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("applies did not go on after the hand-over")
	}
	if err := follower.node.Apply(ctx, cmd); !applied(err) {
		t.Fatalf("apply after the hand-over: %v", err)
	}
	if l := follower.node.Leader(); l != next.node.opt.Self {
		t.Skipf("leadership moved again, to %s", l) // a busy machine
	}
	found := false
	for _, fc := range follower.node.layer.fwd.openConns() {
		found = found || fc.addr == next.node.opt.Bind
	}
	if !found {
		t.Fatalf("no forwarding connection to the new leader %s: %v", next.node.opt.Bind, addrs(follower.node.layer.fwd.openConns()))
	}
}

// rawMux opens a forwarding connection as a peer would.
func rawMux(t *testing.T, addr string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	creds, err := NewCredentials("test", "raw", []byte("a secret of the cluster"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, creds.Client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{connMux}); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if b, err := br.ReadByte(); err != nil || b != muxAck {
		t.Fatalf("no acknowledgement of the connection kind: %q %v", b, err)
	}
	return c, br
}

func header(n uint32, id uint64) []byte {
	h := make([]byte, frameHeader)
	binary.BigEndian.PutUint32(h, n)
	binary.BigEndian.PutUint64(h[4:], id)
	return h
}

// A malformed frame ends its connection (nothing after it can be
// trusted) and is counted; a truncated one ends it without hanging the
// server; the server goes on serving other connections.
func TestForwardDropsMalformedFrames(t *testing.T) {
	leakCheck(t)
	ms := startCluster(t, 1, fast, testLog(t))
	m := waitLeader(t, ms)
	addr := m.node.opt.Bind

	// Well formed: replies come back under the request's id.
	c, br := rawMux(t, addr)
	for _, id := range []uint64{7, 1 << 40} {
		if err := writeFrame(c, id, muxRequest{request: request{Probe: true}}); err != nil {
			t.Fatal(err)
		}
		var rep forwardReply
		got, err := readFrame(br, &rep)
		if err != nil || got != id || !rep.HasState {
			t.Fatalf("probe %d: reply %d %+v %v", id, got, rep, err)
		}
	}

	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"too long", header(maxForward+1, 1)},
		{"empty", header(0, 1)},
		{"not json", append(header(9, 1), "not json{"...)},
		{"json of the wrong shape", append(header(2, 1), "[]"...)},
	} {
		before := m.node.Forwarding().Malformed
		c, br := rawMux(t, addr)
		if _, err := c.Write(tc.frame); err != nil {
			t.Fatal(err)
		}
		// The server closes the connection: the read ends without a reply.
		if _, err := readFrame(br, new(forwardReply)); err == nil {
			t.Errorf("%s: got a reply", tc.name)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: the server kept the connection open", tc.name)
		}
		if got := m.node.Forwarding().Malformed; got != before+1 {
			t.Errorf("%s: malformed count %d, want %d", tc.name, got, before+1)
		}
	}

	// Truncated: the client goes away mid-frame; the server's reader
	// ends (goleak checks it) and nothing is counted.
	before := m.node.Forwarding().Malformed
	c, _ = rawMux(t, addr)
	c.Write(append(header(100, 1), "{\"probe\""...))
	c.Close()

	// The node still forwards and serves.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !m.node.layer.probe(ctx, addr, 5*time.Second) {
		t.Fatal("probe after malformed frames failed")
	}
	if got := m.node.Forwarding().Malformed; got != before {
		t.Errorf("a truncated frame was counted as malformed (%d, was %d)", got, before)
	}
}

// A peer from before connMux closes such a connection: requests to it go
// one per connection, as before.
func TestForwardToPeerWithoutMux(t *testing.T) {
	leakCheck(t)
	ms := startCluster(t, 3, calm, testLog(t))
	leader, follower := settled(t, ms)
	leader.node.layer.legacyOnly.Store(true)
	follower.node.layer.fwd.closeAll(false) // the probes' connections
	accepted0 := leader.node.Forwarding().Accepted
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := applyMany(ctx, follower, nodeStateCmd(t), 20, 4); err != nil {
		if maxTerm(ms) != term(leader) {
			t.Skipf("leadership moved: %v", err)
		}
		t.Fatal(err)
	}
	if got := leader.node.Forwarding().Accepted; got != accepted0 {
		t.Errorf("the old peer served %d multiplexed connections", got-accepted0)
	}
	fwd := follower.node.layer.fwd
	fwd.mu.Lock()
	fc := fwd.conns[leader.node.opt.Bind]
	fwd.mu.Unlock()
	if fc == nil || !errors.Is(fc.err, errLegacy) {
		t.Errorf("the old peer is not marked as one request per connection: %+v", fc)
	}
}

// forwardedOnce starts a three-node cluster and forwards one apply from
// a follower, so that it has a forwarding connection to the leader; ctx
// is the test's, 30 s.
func forwardedOnce(t *testing.T) (ms []*member, follower *member, ctx context.Context) {
	t.Helper()
	leakCheck(t)
	ms = startCluster(t, 3, calm, testLog(t))
	_, follower = settled(t, ms)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := follower.node.Apply(ctx, nodeStateCmd(t)); !applied(err) {
		t.Fatal(err)
	}
	return ms, follower, ctx
}

// Forwarding connections left unused are closed after the idle time; the
// next request dials again.
func TestForwardIdleClose(t *testing.T) {
	leakCheck(t)
	ms := startCluster(t, 3, calm, testLog(t))
	_, follower := settled(t, ms)
	const idle = 50 * time.Millisecond
	fwd := follower.node.layer.fwd
	fwd.idle.Store(int64(idle))
	fwd.closeAll(false) // the probes' connections, armed with the longer idle time
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := nodeStateCmd(t)
	if err := follower.node.Apply(ctx, cmd); !applied(err) {
		t.Fatal(err)
	}
	if len(fwd.openConns()) == 0 {
		t.Fatal("no forwarding connection after an apply")
	}
	testutil.Eventually(t, 600*idle, fmt.Sprintf("the forwarding connections to close after %s idle (open ones)", idle), func() (int, bool) {
		n := len(fwd.openConns())
		return n, n == 0
	})
	if err := follower.node.Apply(ctx, cmd); !applied(err) {
		t.Fatalf("apply after the idle close: %v", err)
	}
}

// RecoverAlone's pause closes forwarding connections like Raft's.
func TestStopDialsClosesForwarding(t *testing.T) {
	ms, follower, ctx := forwardedOnce(t)
	l := follower.node.layer
	if len(l.fwd.openConns()) == 0 {
		t.Fatal("no forwarding connection after an apply")
	}
	l.stopDials()
	defer l.resume()
	if n := len(l.fwd.openConns()); n != 0 {
		t.Fatalf("%d forwarding connections open after stopDials", n)
	}
	if _, err := l.fwd.ask(ctx, ms[0].node.opt.Bind, request{Probe: true}); err == nil {
		t.Fatal("a forwarding dial succeeded while paused")
	}
}

var _ io.Writer = (*tls.Conn)(nil)

// A connection on which nothing comes back while a request waits out its
// deadline (a black hole) is given up: the next request dials anew
// instead of waiting on it too.
func TestForwardSilentConnectionRedialled(t *testing.T) {
	leakCheck(t)
	ms := startCluster(t, 1, fast, testLog(t))
	m := waitLeader(t, ms)
	m.node.boot.Wait()
	creds, err := NewCredentials("test", "silent", []byte("a secret of the cluster"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", creds.Server)
	if err != nil {
		t.Fatal(err)
	}
	// Acknowledges the kind, reads every request, answers none.
	defer testutil.Serve(t, ln, func(c net.Conn) {
		var kind [1]byte
		if _, err := io.ReadFull(c, kind[:]); err == nil {
			c.Write([]byte{muxAck})
			io.Copy(io.Discard, c)
		}
	})()
	l := m.node.layer
	dialled0 := m.node.Forwarding().Dialled
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := l.fwd.ask(ctx, ln.Addr().String(), request{Probe: true})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("request %d to a silent peer: %v, want the deadline", i, err)
		}
	}
	if got := m.node.Forwarding().Dialled - dialled0; got != 2 {
		t.Fatalf("%d dials for two requests to a silent peer, want 2 (the silent connection given up)", got)
	}
	if n := len(l.fwd.openConns()); n != 0 {
		t.Fatalf("%d connections to the silent peer still open", n)
	}
}

// A command over the frame limit is refused before it is sent, once (not
// retried), and the connection stays in use.
func TestForwardTooLarge(t *testing.T) {
	_, follower, ctx := forwardedOnce(t)
	dialled0, leader0 := follower.node.Forwarding().Dialled, follower.node.Leader()
	if err := follower.node.Apply(ctx, make([]byte, maxForward)); !errors.Is(err, errTooLarge) {
		t.Fatalf("a command of %d bytes: %v, want errTooLarge", maxForward, err)
	}
	if ctx.Err() != nil {
		t.Fatal("the too large command was retried until the deadline")
	}
	if err := follower.node.Apply(ctx, nodeStateCmd(t)); !applied(err) {
		t.Fatal(err)
	}
	// A leader elected meanwhile (a loaded machine) is dialled anew.
	if got := follower.node.Forwarding().Dialled - dialled0; got != 0 && follower.node.Leader() == leader0 {
		t.Fatalf("%d dials after a too large command, want the connection kept", got)
	}
}

// A request forwarded to a node whose Raft is not running yet (the
// listener serves from the start; a peer may still take the restarted
// node for the leader) is answered "not applied", so the sender tries
// the leader again — it crashed the daemon before.
func TestForwardBeforeRaftRuns(t *testing.T) {
	n := &Node{}
	err := n.local(context.Background(), request{Cmd: []byte("x")})
	if !errors.Is(err, errNotApplied) {
		t.Fatalf("err %v, want errNotApplied", err)
	}
}
