package ipaddr

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// The view's bookkeeping, fed synthetic kernel messages: which requests
// it sends, and what it answers in between.

type sentReq struct {
	typ, flags uint16
	seq        uint32
}

type fakeKernel struct {
	t    *testing.T
	v    *view
	mu   sync.Mutex
	sent []sentReq
}

func (k *fakeKernel) sentNow() []sentReq {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]sentReq(nil), k.sent...)
}

const fakePid = 4242

func newFakeView(t *testing.T) *fakeKernel {
	k := &fakeKernel{t: t}
	k.v = newView(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, fakePid, func(b []byte) error {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.sent = append(k.sent, sentReq{typ: binary.NativeEndian.Uint16(b[4:]), flags: binary.NativeEndian.Uint16(b[6:]), seq: binary.NativeEndian.Uint32(b[8:])})
		return nil
	}, nil)
	t.Cleanup(func() {
		k.v.mu.Lock()
		if k.v.dump.timer != nil {
			k.v.dump.timer.Stop()
		}
		k.v.mu.Unlock()
	})
	return k
}

// last returns the last request sent, which must be of type typ.
func (k *fakeKernel) last(typ uint16) sentReq {
	k.t.Helper()
	sent := k.sentNow()
	if len(sent) == 0 || sent[len(sent)-1].typ != typ {
		k.t.Fatalf("last request %+v, want type %d", sent, typ)
	}
	return sent[len(sent)-1]
}

// waitReq waits for a request of type typ after the n-th (a retried dump
// is sent from a timer).
func (k *fakeKernel) waitReq(n int, typ uint16) sentReq {
	k.t.Helper()
	// The retry runs from a timer of a few milliseconds.
	sent := testutil.Eventually(k.t, 5*time.Second, fmt.Sprintf("request %d of type %d (the requests sent)", n, typ), func() ([]sentReq, bool) {
		sent := k.sentNow()
		return sent, len(sent) > n
	})
	if sent[n].typ != typ {
		k.t.Fatalf("request %d is %+v, want type %d", n, sent[n], typ)
	}
	return sent[n]
}

func (k *fakeKernel) feed(ms ...syscall.NetlinkMessage) {
	k.v.mu.Lock()
	defer k.v.mu.Unlock()
	for i := range ms {
		k.v.handle(&ms[i])
	}
}

func linkMsg(typ uint16, seq uint32, flags uint16, index int32, name string) syscall.NetlinkMessage {
	m := nl.NewIfInfomsg(unix.AF_UNSPEC)
	m.Index = index
	b := append(m.Serialize(), nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)).Serialize()...)
	h := syscall.NlMsghdr{Type: typ, Flags: flags, Seq: seq}
	if seq != 0 {
		h.Pid = fakePid
	}
	return syscall.NetlinkMessage{Header: h, Data: b}
}

func addrMsg(typ uint16, seq uint32, flags uint16, pf string, link uint32) syscall.NetlinkMessage {
	p := netip.MustParsePrefix(pf)
	fam := unix.AF_INET
	if p.Addr().Is6() {
		fam = unix.AF_INET6
	}
	m := nl.NewIfAddrmsg(fam)
	m.Prefixlen = uint8(p.Bits())
	m.Index = link
	b := m.Serialize()
	b = append(b, nl.NewRtAttr(unix.IFA_LOCAL, p.Addr().AsSlice()).Serialize()...)
	b = append(b, nl.NewRtAttr(unix.IFA_ADDRESS, p.Addr().AsSlice()).Serialize()...)
	h := syscall.NlMsghdr{Type: typ, Flags: flags, Seq: seq}
	if seq != 0 {
		h.Pid = fakePid
	}
	return syscall.NetlinkMessage{Header: h, Data: b}
}

func doneMsg(seq uint32, flags uint16) syscall.NetlinkMessage {
	return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.NLMSG_DONE, Flags: flags, Seq: seq, Pid: fakePid}, Data: make([]byte, 4)}
}

func errMsg(seq uint32, errno syscall.Errno) syscall.NetlinkMessage {
	b := make([]byte, 4+unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint32(b, uint32(-int32(errno)))
	return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.NLMSG_ERROR, Seq: seq, Pid: fakePid}, Data: b}
}

func (k *fakeKernel) ready() bool {
	k.v.mu.Lock()
	defer k.v.mu.Unlock()
	return k.v.ready
}

func present(v *view, ip string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.lookup(netip.MustParseAddr(ip))) > 0
}

func lookupNow(v *view, ip netip.Addr) []addrEntry {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lookup(ip)
}

func linkNamed(v *view, name string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.linkByName(name)
	return ok
}

// fill completes the first dumps with eth0 (index 2) and 10.0.0.1/24.
func (k *fakeKernel) fill() {
	k.t.Helper()
	d := k.last(unix.RTM_GETLINK)
	k.feed(linkMsg(unix.RTM_NEWLINK, d.seq, unix.NLM_F_MULTI, 2, "eth0"), doneMsg(d.seq, unix.NLM_F_MULTI))
	d = k.last(unix.RTM_GETADDR)
	k.feed(addrMsg(unix.RTM_NEWADDR, d.seq, unix.NLM_F_MULTI, "10.0.0.1/24", 2), doneMsg(d.seq, unix.NLM_F_MULTI))
	if !k.ready() {
		k.t.Fatal("not ready after clean dumps")
	}
}

// An interrupted dump is repeated (after a backoff) and keeps the view
// unready; what it found stays; a clean one completes it.
func TestViewRetriesInterruptedDump(t *testing.T) {
	k := newFakeView(t)
	first := k.last(unix.RTM_GETLINK)
	if first.flags&unix.NLM_F_DUMP != unix.NLM_F_DUMP {
		t.Fatalf("first request %+v is not a dump", first)
	}
	k.feed(linkMsg(unix.RTM_NEWLINK, first.seq, unix.NLM_F_MULTI|unix.NLM_F_DUMP_INTR, 2, "eth0"), doneMsg(first.seq, unix.NLM_F_MULTI|unix.NLM_F_DUMP_INTR))
	again := k.waitReq(1, unix.RTM_GETLINK)
	if again.seq == first.seq {
		t.Fatal("retried dump reuses the sequence number")
	}
	k.feed(linkMsg(unix.RTM_NEWLINK, again.seq, unix.NLM_F_MULTI, 3, "eth1"), doneMsg(again.seq, unix.NLM_F_MULTI))
	addrs := k.last(unix.RTM_GETADDR)
	// The address dump fails outright once, then is interrupted, then clean.
	k.feed(errMsg(addrs.seq, unix.EBUSY))
	addrs2 := k.waitReq(3, unix.RTM_GETADDR)
	k.feed(addrMsg(unix.RTM_NEWADDR, addrs2.seq, unix.NLM_F_MULTI, "10.0.0.1/24", 2), doneMsg(addrs2.seq, unix.NLM_F_MULTI|unix.NLM_F_DUMP_INTR))
	if k.ready() {
		t.Fatal("ready after an interrupted address dump")
	}
	addrs3 := k.waitReq(4, unix.RTM_GETADDR)
	k.feed(addrMsg(unix.RTM_NEWADDR, addrs3.seq, unix.NLM_F_MULTI, "10.1.0.1/24", 3), doneMsg(addrs3.seq, unix.NLM_F_MULTI))
	if !k.ready() {
		t.Fatal("not ready after a clean address dump")
	}
	if k.v.interrupted.Load() != 2 {
		t.Errorf("interrupted = %d, want 2", k.v.interrupted.Load())
	}
	for _, ip := range []string{"10.0.0.1", "10.1.0.1"} {
		if !present(k.v, ip) {
			t.Errorf("%s missing", ip)
		}
	}
	for _, name := range []string{"eth0", "eth1"} {
		if !linkNamed(k.v, name) {
			t.Errorf("link %s missing", name)
		}
	}
	k.v.mu.Lock()
	l, b, ok := k.v.subnet(netip.MustParseAddr("10.1.0.77"), "")
	k.v.mu.Unlock()
	if !ok || l != 3 || b != 24 {
		t.Errorf("subnet of 10.1.0.77 = link %d /%d %v, want link 3 /24", l, b, ok)
	}
}

// An overrun empties the view and, during a dump, has it start over
// once that dump ends.
func TestViewOverrunRestartsDump(t *testing.T) {
	k := newFakeView(t)
	k.fill()
	k.v.overrun("test")
	if k.ready() || present(k.v, "10.0.0.1") {
		t.Fatal("view still trusted after an overrun")
	}
	d := k.last(unix.RTM_GETLINK)
	k.v.overrun("test") // again, during the link dump
	k.feed(linkMsg(unix.RTM_NEWLINK, d.seq, unix.NLM_F_MULTI, 2, "eth0"), doneMsg(d.seq, unix.NLM_F_MULTI))
	d2 := k.last(unix.RTM_GETLINK)
	if d2.seq == d.seq {
		t.Fatal("no new link dump after an overrun during the dump")
	}
	k.fill()
	if !present(k.v, "10.0.0.1") {
		t.Fatal("address missing after the resync")
	}
}

// The plugin's own change wins over notifications queued before it, and
// gives way to the kernel once the barrier sent after it is answered.
func TestViewOwnChangeUntilBarrier(t *testing.T) {
	k := newFakeView(t)
	k.fill()
	vip := addrEntry{ip: netip.MustParseAddr("10.0.0.100"), bits: 24, link: 2}

	// Start adds the VIP; then stop deletes it before the notification of
	// the add was read.
	k.v.own(vip, true)
	k.v.own(vip, false)
	b := k.last(unix.RTM_GETADDR)
	k.feed(addrMsg(unix.RTM_NEWADDR, 0, 0, "10.0.0.100/24", 2)) // the add's notification, late
	if present(k.v, "10.0.0.100") {
		t.Fatal("a stale notification of the add brought the deleted VIP back")
	}
	k.feed(addrMsg(unix.RTM_DELADDR, 0, 0, "10.0.0.100/24", 2), errMsg(b.seq, unix.EOPNOTSUPP))
	if present(k.v, "10.0.0.100") {
		t.Fatal("VIP present after its deletion was confirmed")
	}
	if len(k.v.override) != 0 {
		t.Fatalf("overrides left after the barrier: %v", k.v.override)
	}

	// An own add is seen at once, and an external deletion after the
	// barrier is seen too.
	k.v.own(vip, true)
	if es := lookupNow(k.v, vip.ip); len(es) != 1 || !es[0].own {
		t.Fatalf("own add not seen at once: %+v", es)
	}
	b = k.last(unix.RTM_GETADDR)
	k.feed(addrMsg(unix.RTM_NEWADDR, 0, 0, "10.0.0.100/24", 2), errMsg(b.seq, unix.EOPNOTSUPP))
	if es := lookupNow(k.v, vip.ip); len(es) != 1 || es[0].own {
		t.Fatalf("after the barrier, want the kernel's entry: %+v", es)
	}
	k.feed(addrMsg(unix.RTM_DELADDR, 0, 0, "10.0.0.100/24", 2))
	if present(k.v, "10.0.0.100") {
		t.Fatal("external deletion not seen")
	}
}

// sync returns once the barrier is answered, and only when the view is
// complete.
func TestViewSyncWaitsForBarrier(t *testing.T) {
	k := newFakeView(t)
	errc := make(chan error, 1)
	go func() { errc <- k.v.sync(context.Background()) }()
	// sync runs in its goroutine.
	b := testutil.Eventually(t, 5*time.Second, "sync to send a barrier (the last request that is no dump)", func() (sentReq, bool) {
		var b sentReq
		for _, s := range k.sentNow() {
			if s.flags&unix.NLM_F_DUMP == 0 {
				b = s
			}
		}
		return b, b.typ != 0
	})
	k.feed(errMsg(b.seq, unix.EOPNOTSUPP))
	select {
	case err := <-errc:
		t.Fatalf("sync returned %v before the view was complete", err)
	case <-time.After(20 * time.Millisecond):
	}
	d := k.sentNow()[0]
	k.feed(doneMsg(d.seq, unix.NLM_F_MULTI))
	d = k.last(unix.RTM_GETADDR)
	k.feed(doneMsg(d.seq, unix.NLM_F_MULTI))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A recurring monitor's lookup (seen) believes the view when it has the
// address, with no request to the kernel; an address it lacks is asked
// for with a barrier, as find does.
func TestSeenAsksOnlyForAbsent(t *testing.T) {
	k := newFakeView(t)
	k.fill()
	n := len(k.sentNow())
	es, err := seen(context.Background(), k.v, netip.MustParseAddr("10.0.0.1"))
	if err != nil || len(es) != 1 || len(k.sentNow()) != n {
		t.Fatalf("present address: %v, %v, %d requests sent", es, err, len(k.sentNow())-n)
	}
	type found struct {
		es  []addrEntry
		err error
	}
	got := make(chan found, 1)
	go func() {
		es, err := seen(context.Background(), k.v, netip.MustParseAddr("10.0.0.99"))
		got <- found{es, err}
	}()
	b := k.waitReq(n, unix.RTM_GETADDR)
	if b.flags&unix.NLM_F_DUMP != 0 {
		t.Fatalf("an absent address was asked for with %+v, want a barrier", b)
	}
	select {
	case f := <-got:
		t.Fatalf("absent address: returned %v, %v before the kernel answered", f.es, f.err)
	default:
	}
	k.feed(errMsg(b.seq, unix.EOPNOTSUPP))
	if f := <-got; f.err != nil || len(f.es) != 0 {
		t.Fatalf("absent address after the barrier: %v, %v", f.es, f.err)
	}
}

// Bridge-port link messages (AF_BRIDGE) do not delete links.
func TestViewIgnoresBridgeLinkMessages(t *testing.T) {
	k := newFakeView(t)
	k.fill()
	m := linkMsg(unix.RTM_DELLINK, 0, 0, 2, "eth0")
	m.Data[0] = unix.AF_BRIDGE
	k.feed(m)
	if !linkNamed(k.v, "eth0") {
		t.Fatal("an AF_BRIDGE RTM_DELLINK removed eth0")
	}
	k.feed(linkMsg(unix.RTM_DELLINK, 0, 0, 2, "eth0"))
	if linkNamed(k.v, "eth0") || present(k.v, "10.0.0.1") {
		t.Fatal("link deletion left the link or its address")
	}
}

// serialWriter deletes in cost each, one at a time, as the kernel does.
type serialWriter struct {
	addrWriter
	mu   sync.Mutex
	cost time.Duration
}

func (w *serialWriter) AddrDel(netlink.Link, *netlink.Addr) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	time.Sleep(w.cost) // the kernel's work, not a wait for anything
	return nil
}

// TestDeleteCostConcurrent: deletions timed while others are in flight
// give the release estimate about what one costs, as deletions timed one
// by one do — not that times the number in flight.
func TestDeleteCostConcurrent(t *testing.T) {
	w := &serialWriter{cost: 2 * time.Millisecond}
	alone, together := &view{}, &view{}
	for range 20 {
		if err := timedDel(alone, w, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() { _ = timedDel(together, w, nil) })
		}
		wg.Wait()
	}
	a, c := alone.deleteCostNow(), together.deleteCostNow()
	t.Logf("one at a time: %s; %d at a time: %s", a, writers, c)
	if c > 2*a {
		t.Errorf("estimate %s with %d deletions in flight, %s one at a time: the others' turns were counted", c, writers, a)
	}
	if c < w.cost/2 {
		t.Errorf("estimate %s, under half of one deletion's %s", c, w.cost)
	}
}

// gatedWriter is a serialWriter whose deletions wait for a gate.
type gatedWriter struct {
	serialWriter
	gate chan struct{}
}

func (w *gatedWriter) AddrDel(l netlink.Link, a *netlink.Addr) error {
	<-w.gate
	return w.serialWriter.AddrDel(l, a)
}

// A run of deletions (a burst of stops) counts by its pace, start to
// end, which replaces an estimate inflated by earlier samples; a run too
// short to be a measure is a sample among others.
func TestDeleteCostRun(t *testing.T) {
	const inflated = 50 * time.Millisecond
	for _, tc := range []struct {
		n        int
		replaced bool
	}{{paceSample, true}, {paceSample - 1, false}} {
		v := &view{}
		v.deleteCost.Store(int64(inflated))
		w := &gatedWriter{serialWriter: serialWriter{cost: time.Millisecond}, gate: make(chan struct{})}
		t0 := time.Now()
		var wg sync.WaitGroup
		for range tc.n {
			wg.Go(func() { _ = timedDel(v, w, nil) })
		}
		testutil.Eventually(t, time.Minute, "every deletion in flight", func() (int, bool) {
			v.dels.mu.Lock()
			defer v.dels.mu.Unlock()
			return v.dels.inflight, v.dels.inflight == tc.n
		})
		close(w.gate)
		wg.Wait()
		took, c := time.Since(t0), v.deleteCostNow()
		t.Logf("%d deletions in %s: estimate %s", tc.n, took, c)
		if tc.replaced && c > took/time.Duration(tc.n) {
			t.Errorf("estimate %s after a run of %d deletions in %s (%s each)", c, tc.n, took, took/time.Duration(tc.n))
		}
		if !tc.replaced && c < inflated/2 {
			t.Errorf("a run of %d deletions replaced the estimate (%s → %s): too short to be a measure", tc.n, inflated, c)
		}
	}
}
