package heartbeat

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The filter program, run in x/net's BPF interpreter on a UDP header plus
// payload, accepts exactly the heartbeats of its own cluster.
func TestFilterProgram(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789._-"
	for n := 1; n <= maxName; n++ {
		var b strings.Builder
		for range n {
			b.WriteByte(letters[rng.IntN(len(letters))])
		}
		cluster := b.String()
		c := testCodec(t, cluster, "secret-secret-secret")
		raw, err := c.Filter("", 0)
		if err != nil {
			t.Fatalf("cluster of %d bytes: %v", n, err)
		}
		prog, _ := bpf.Disassemble(raw)
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatalf("cluster of %d bytes: %v", n, err)
		}
		accepts := func(payload []byte) bool {
			out, err := vm.Run(append(make([]byte, udpHeader), payload...))
			if err != nil {
				t.Fatal(err)
			}
			return out > 0
		}
		beat, err := c.Append(nil, &Message{Node: "n1", Incarnation: 1, Seq: 7, View: []ViewEntry{{"n2", StateUp}}})
		if err != nil {
			t.Fatal(err)
		}
		if !accepts(beat) {
			t.Fatalf("cluster %q: its own heartbeat is refused", cluster)
		}
		// Another cluster: same length, differing in one byte anywhere.
		for i := range n {
			other := []byte(cluster)
			other[i] ^= 0x20
			ob, _ := testCodec(t, string(other), "secret-secret-secret").Append(nil, &Message{Node: "n1", Incarnation: 1, Seq: 7})
			if accepts(ob) {
				t.Fatalf("cluster %q accepts %q's heartbeat", cluster, other)
			}
		}
		if n > 1 {
			ob, _ := testCodec(t, cluster[:n-1], "s").Append(nil, &Message{Node: "n1", Incarnation: 1, Seq: 7})
			if accepts(ob) {
				t.Fatalf("cluster %q accepts a shorter name's heartbeat", cluster)
			}
		}
		for name, bad := range map[string][]byte{
			"magic":     append([]byte("XGL"), beat[3:]...),
			"version":   append(append(append([]byte{}, beat[:3]...), Version+1), beat[4:]...),
			"type":      append(append(append([]byte{}, beat[:4]...), typeBeat+1), beat[5:]...),
			"truncated": beat[:minBeat(n)-1],
			"oversized": append(append([]byte{}, beat...), make([]byte, MaxPacket)...),
			"empty":     nil,
		} {
			if accepts(bad) {
				t.Fatalf("cluster %q accepts a packet with a bad %s", cluster, name)
			}
		}
	}
}

// The filter drops exactly the node's own beats (its name and
// incarnation): another node's, one of the same name and another
// incarnation (a daemon that clashes with it) and names that share a
// prefix with it pass, whatever the lengths of the cluster's and the
// node's names.
func TestFilterDropsOwnBeats(t *testing.T) {
	name := func(n int, c byte) string { return strings.Repeat(string(c), n) }
	for _, tc := range []struct{ cluster, self string }{
		{"lvs", "n1"}, {"lvs", "director-a"}, {name(maxName, 'c'), name(maxName, 's')}, {"x", name(maxName, 's')}, {name(maxName, 'c'), "a"},
	} {
		const inc = 0x0123456789abcdef
		c := testCodec(t, tc.cluster, "secret-secret-secret")
		raw, err := c.Filter(tc.self, inc)
		if err != nil {
			t.Fatalf("cluster %d bytes, node %d bytes: %v", len(tc.cluster), len(tc.self), err)
		}
		prog, _ := bpf.Disassemble(raw)
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		accepts := func(node string, incarnation uint64) bool {
			beat, err := c.Append(nil, &Message{Node: node, Incarnation: incarnation, Seq: 7, View: []ViewEntry{{"n2", StateUp}}})
			if err != nil {
				t.Fatal(err)
			}
			out, err := vm.Run(append(make([]byte, udpHeader), beat...))
			if err != nil {
				t.Fatal(err)
			}
			return out > 0
		}
		if accepts(tc.self, inc) {
			t.Errorf("cluster %q, node %q: its own beat passes", tc.cluster, tc.self)
		}
		others := []string{"z", tc.self + "x", name(maxName, 'o')}
		if len(tc.self) > 1 {
			others = append(others, tc.self[:len(tc.self)-1], tc.self[:len(tc.self)-1]+"z", "z"+tc.self[1:])
		}
		for _, o := range others {
			if len(o) > maxName || o == tc.self {
				continue
			}
			if !accepts(o, inc) {
				t.Errorf("cluster %q, node %q: the beat of %q is dropped", tc.cluster, tc.self, o)
			}
		}
		for _, other := range []uint64{inc + 1, inc ^ 1<<63, 1} {
			if !accepts(tc.self, other) {
				t.Errorf("cluster %q, node %q: its name with incarnation %#x is dropped: a clash would go unseen", tc.cluster, tc.self, other)
			}
		}
	}
}

// loopMedium opens a UDP medium on a free loopback port, closed with
// the engine that runs it (or by the test), and returns its address.
func loopMedium(t *testing.T) (*udpMedium, unix.Sockaddr) {
	t.Helper()
	m, err := udpSocket("ucast:lo", netip.MustParseAddrPort("127.0.0.1:0"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(m.fd)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m, sa
}

// startEngine runs an engine of cfg until the test ends.
func startEngine(t *testing.T, cfg EngineConfig) *Engine {
	e := NewEngine(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		e.BeatNow() // its sleep may be an hour long
		<-done
	})
	return e
}

// A medium that reaches its own node (a broadcast, here a unicast to
// itself) gets its own beats back: the engine's filter has the kernel
// drop them, so they wake nothing, while a beat of another daemon that
// uses this node's name still reaches the engine and is reported.
func TestEngineDropsOwnBeats(t *testing.T) {
	c := testCodec(t, "lvs", "secret-secret-secret")
	m, sa := loopMedium(t)
	self := netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))
	m.sendTo(self)
	e := startEngine(t, EngineConfig{Codec: c, Node: "n1", Incarnation: 7, Keepalive: time.Hour, Media: []Medium{m}, Observer: &recorder{heard: map[uint64]bool{}}})
	const beats = 20
	for n := uint64(1); n < beats; n++ {
		waitCount(t, "a beat sent", e.stats[0].sent.Load, func(s uint64) bool { return s >= n })
		e.BeatNow()
	}
	waitCount(t, "every beat sent", e.stats[0].sent.Load, func(s uint64) bool { return s >= beats })
	// The clash: this node's name, another incarnation.
	send, _ := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(send)
	pkt, _ := c.Append(nil, &Message{Node: "n1", Incarnation: 8, Seq: 1})
	if err := unix.Sendto(send, pkt, 0, sa); err != nil {
		t.Fatal(err)
	}
	waitCount(t, "the clash reported", e.stats[0].dropped[DropDuplicateSelf].Load, func(n uint64) bool { return n == 1 })
	if own := e.stats[0].own.Load(); own != 0 {
		t.Errorf("%d of the node's own beats reached the engine", own)
	}
	if drops, err := m.KernelDrops(); err != nil || drops < beats {
		t.Errorf("kernel dropped %d (%v), want the %d own beats", drops, err, beats)
	}
}

// On a real socket the kernel drops a flood of garbage before it is
// queued: a heartbeat sent after 50,000 garbage datagrams — far more than
// the receive buffer holds — still arrives. Without the filter the buffer
// fills with garbage and the kernel drops the heartbeat.
func TestFilterOnSocket(t *testing.T) {
	c := testCodec(t, "lvs", "secret-secret-secret")
	recv, err := udpSocket("ucast:lo", netip.MustParseAddrPort("127.0.0.1:0"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	sa, err := unix.Getsockname(recv.fd)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := c.Filter("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := recv.Filter(prog); err != nil {
		t.Fatal(err)
	}
	send, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(send)
	garbage := make([]byte, 200)
	foreign, _ := testCodec(t, "lvx", "secret-secret-secret").Append(nil, &Message{Node: "n2", Incarnation: 1, Seq: 1})
	var sent uint64
	for i := range 50000 {
		pkt := garbage
		if i%2 == 1 {
			pkt = foreign
		}
		garbage[0] = byte(i)
		switch err := unix.Sendto(send, pkt, 0, sa); err {
		case nil:
			sent++
		case unix.ENOBUFS, unix.EAGAIN:
		default:
			t.Fatal(err)
		}
	}
	beat, _ := c.Append(nil, &Message{Node: "n2", Incarnation: 1, Seq: 2})
	if err := unix.Sendto(send, beat, 0, sa); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for {
		_, more, err := recv.Drain(func(p []byte, _ int64) { got = append(got, append([]byte{}, p...)) })
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	if len(got) != 1 || string(got[0]) != string(beat) {
		t.Fatalf("received %d datagrams, want only the heartbeat", len(got))
	}
	// What the filter dropped is counted by the kernel, and reported.
	if drops, err := recv.KernelDrops(); err != nil || drops != sent {
		t.Errorf("kernel drop counter %d (%v), want the %d garbage datagrams sent", drops, err, sent)
	}
}

// A medium with more queued than one batch says so, and the engine keeps
// beating on time while it reads the backlog in batches.
func TestDrainBatches(t *testing.T) {
	recv, err := udpSocket("ucast:lo", netip.MustParseAddrPort("127.0.0.1:0"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	sa, _ := unix.Getsockname(recv.fd)
	send, _ := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(send)
	const n = 3*drainBatch + 5
	for range n {
		if err := unix.Sendto(send, []byte("x"), 0, sa); err != nil {
			t.Fatal(err)
		}
	}
	var calls, total int
	for more := true; more; calls++ {
		var got int
		_, more, err = recv.Drain(func([]byte, int64) { got++ })
		if err != nil {
			t.Fatal(err)
		}
		if got > drainBatch {
			t.Fatalf("one drain read %d datagrams, more than a batch of %d", got, drainBatch)
		}
		total += got
	}
	if total != n || calls != 4 {
		t.Errorf("read %d datagrams in %d drains, want %d in 4", total, calls, n)
	}
}

// recorder is an Observer that counts what it hears.
type recorder struct {
	mu    sync.Mutex
	heard map[uint64]bool
}

func (r *recorder) Heard(_ string, m *Message, _ time.Time) DropReason {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.heard[m.Seq] = true
	return Accepted
}

func (r *recorder) Check(time.Time) time.Time { return time.Time{} }

// The engine attaches the filter itself: a peer's heartbeats interleaved
// with garbage all reach the observer, and no garbage is counted as
// dropped by the daemon (the kernel dropped it).
func TestEngineFiltersGarbage(t *testing.T) {
	c := testCodec(t, "lvs", "secret-secret-secret")
	m, sa := loopMedium(t)
	e := startEngine(t, EngineConfig{Codec: c, Node: "n1", Incarnation: 1, Keepalive: 5 * time.Millisecond, Media: []Medium{m}, Observer: &recorder{heard: map[uint64]bool{}}})
	send, _ := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(send)
	// Wait until the engine runs (its own beats are sent to no one: the
	// medium has no destinations), then send.
	waitCount(t, "the engine's first beat", e.stats[0].sent.Load, func(n uint64) bool { return n > 0 })
	const beats = 50
	for seq := uint64(1); seq <= beats; seq++ {
		for range 200 {
			_ = unix.Sendto(send, []byte("VGL garbage garbage garbage garbage"), 0, sa)
		}
		pkt, _ := c.Append(nil, &Message{Node: "n2", Incarnation: 1, Seq: seq})
		if err := unix.Sendto(send, pkt, 0, sa); err != nil {
			t.Fatal(err)
		}
	}
	waitCount(t, "the heartbeats received", e.stats[0].received.Load, func(n uint64) bool { return n >= beats })
	if got := e.stats[0].received.Load(); got != beats {
		t.Errorf("engine accepted %d of %d heartbeats", got, beats)
	}
	for _, r := range DropReasons() {
		if v := e.stats[0].dropped[r].Load(); v != 0 {
			t.Errorf("%d packets reached the engine and were dropped as %s: the kernel should have dropped them", v, r)
		}
	}
}

// waitCount polls a counter until ok holds. The engines here beat on
// demand or every few milliseconds and the packets go over loopback: a
// minute is the bound of a test that waits on something that never
// happens, not a timing the test relies on.
func waitCount(t *testing.T, what string, get func() uint64, ok func(uint64) bool) {
	t.Helper()
	testutil.Eventually(t, time.Minute, what, func() (uint64, bool) {
		n := get()
		return n, ok(n)
	})
}

// stamped records when the engine handed each beat over.
type stamped struct {
	mu    sync.Mutex
	heard []uint64
}

func (s *stamped) Heard(_ string, m *Message, _ time.Time) DropReason {
	s.mu.Lock()
	s.heard = append(s.heard, m.Seq)
	s.mu.Unlock()
	return Accepted
}

func (s *stamped) Check(time.Time) time.Time { return time.Time{} }

func (s *stamped) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heard)
}

// An engine whose schedule has nothing due for an hour still beats at
// once when asked, and hands over each packet as it arrives: parked in
// the netpoller, and on a real-time thread of its own (rt_priority).
func TestEngineWakesEarly(t *testing.T) {
	defer func(d time.Duration) { maxPoll = d }(maxPoll)
	maxPoll = time.Hour
	t.Run("netpoller", func(t *testing.T) { testEngineWakesEarly(t, 0) })
	t.Run("realtime", func(t *testing.T) {
		attr := unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}
		runtime.LockOSThread()
		err := unix.SchedSetAttr(0, &attr, 0)
		attr.Policy, attr.Priority = 0, 0 // SCHED_OTHER
		unix.SchedSetAttr(0, &attr, 0)
		runtime.UnlockOSThread()
		if err != nil {
			t.Skipf("no SCHED_FIFO here: %v", err)
		}
		testEngineWakesEarly(t, 1)
	})
}

func testEngineWakesEarly(t *testing.T, rt int) {
	c := testCodec(t, "lvs", "secret-secret-secret")
	m, sa := loopMedium(t)
	obs := &stamped{}
	e := startEngine(t, EngineConfig{Codec: c, Node: "n1", Incarnation: 1, Keepalive: time.Hour, Media: []Medium{m}, Observer: obs, RTPriority: rt})
	waitCount(t, "one beat sent", e.stats[0].sent.Load, func(n uint64) bool { return n == 1 })
	e.BeatNow()
	waitCount(t, "two beats sent", e.stats[0].sent.Load, func(n uint64) bool { return n == 2 })

	send, _ := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(send)
	for seq := uint64(1); seq <= 3; seq++ {
		pkt, _ := c.Append(nil, &Message{Node: "n2", Incarnation: 1, Seq: seq})
		if err := unix.Sendto(send, pkt, 0, sa); err != nil {
			t.Fatal(err)
		}
		waitCount(t, "the observer to hear the heartbeat", func() uint64 { return uint64(obs.count()) }, func(n uint64) bool { return n == seq })
	}
	if n := e.stats[0].sent.Load(); n != 2 {
		t.Errorf("packets made the engine beat: %d sent, want 2", n)
	}
}

// countedMedium counts its drains.
type countedMedium struct {
	*udpMedium
	drains atomic.Int64
}

func (m *countedMedium) Drain(deliver func([]byte, int64)) (int, bool, error) {
	m.drains.Add(1)
	return m.udpMedium.Drain(deliver)
}

// The engine reads, when it wakes, the media that have something to
// read, not all of them: packets arriving on one medium cost the other
// nothing, and every packet on either is handed over.
func TestEngineReadsReadyMedia(t *testing.T) {
	c := testCodec(t, "lvs", "secret-secret-secret")
	open := func() (*countedMedium, unix.Sockaddr) {
		m, sa := loopMedium(t)
		return &countedMedium{udpMedium: m}, sa
	}
	busy, busyAddr := open()
	quiet, quietAddr := open()
	obs := &stamped{}
	startEngine(t, EngineConfig{Codec: c, Node: "n1", Incarnation: 1, Keepalive: time.Hour, Media: []Medium{busy, quiet}, Observer: obs})
	send, _ := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(send)
	const onBusy, onQuiet = 30, 3
	seq := uint64(0)
	beat := func(to unix.Sockaddr) {
		seq++
		pkt, _ := c.Append(nil, &Message{Node: "n2", Incarnation: 1, Seq: seq})
		if err := unix.Sendto(send, pkt, 0, to); err != nil {
			t.Fatal(err)
		}
		waitCount(t, "the beat handed over", func() uint64 { return uint64(obs.count()) }, func(n uint64) bool { return n == seq })
	}
	for range onBusy {
		beat(busyAddr)
	}
	for range onQuiet {
		beat(quietAddr)
	}
	// The first pass reads both; then each medium once per wake for it
	// (a wake may also find a packet's successor: fewer, never more).
	if d := quiet.drains.Load(); d > 1+onQuiet {
		t.Errorf("the quiet medium was read %d times for %d packets of its own (%d on the other)", d, onQuiet, onBusy)
	}
	if d := busy.drains.Load(); d < onBusy/2 {
		t.Errorf("the busy medium was read %d times for %d packets", d, onBusy)
	}
}
