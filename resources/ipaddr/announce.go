package ipaddr

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// One announcer per plugin process sends the announcements of every held
// VIP: one goroutine schedules them, one socket per interface and family
// (a wire) carries them and reads foreign claims for all the VIPs on it.
// (A thousand VIPs with a goroutine and a packet socket each would have
// the kernel copy every ARP frame of the link a thousand times.)
//
// Pacing: frames go out at most one per baseGap, faster when needed so
// that every queued first frame (of a takeover, a reload, a contest) goes
// out within half its VIP's arp_interval of being queued, before any
// other frame: after a failover of N VIPs the first announcement of each
// is out within the first interval, then the remaining repeats follow,
// each VIP's frames still arp_interval apart.

// wire sends announcements for the VIPs of one link and family and
// reports other hosts claiming them.
type wire interface {
	// frames builds what one announcement of vip is: for IPv4 a gratuitous
	// ARP request and a gratuitous ARP reply (hosts honour one or the
	// other), for IPv6 an unsolicited neighbour advertisement with the
	// override flag.
	frames(vip netip.Addr) ([][]byte, error)
	send(frames [][]byte) error
	// claim blocks until a frame from another hardware address claims an
	// address, and returns both; it fails once the wire is closed.
	claim() (netip.Addr, net.HardwareAddr, error)
	close() error
}

type wireKey struct {
	ns    nsID
	index int
	v6    bool
}

// Stats counts what was announced for a VIP; it is shown in monitor output.
type Stats struct {
	Sent, Failed, Contested atomic.Uint64
}

func (s *Stats) String() string {
	return fmt.Sprintf("announcements sent %d, failed %d; foreign claims seen %d", s.Sent.Load(), s.Failed.Load(), s.Contested.Load())
}

// Announced reads back, from a monitor's output (which ends with
// Stats.String while the VIP is held), how many announcements went out
// and how many failed.
func Announced(output string) (sent, failed uint64, ok bool) {
	i := strings.Index(output, "announcements sent ")
	if i < 0 {
		return 0, 0, false
	}
	_, err := fmt.Sscanf(output[i:], "announcements sent %d, failed %d;", &sent, &failed)
	return sent, failed, err == nil
}

// Steps is how many announcements a start sends in its bursts (the first
// and, with Repeat, the second; refreshes are not counted), and by when
// the last is due.
func (a Announce) Steps() (n int, within time.Duration) {
	if a.Count <= 0 {
		return 0, 0
	}
	burst := time.Duration(a.Count-1) * a.Interval
	if a.Repeat <= 0 {
		return a.Count, burst
	}
	return 2 * a.Count, 2*burst + a.Repeat
}

// contestQuiet is how long no foreign claim must be seen before a contest
// counts as over.
const contestQuiet = time.Second

// baseGap is the pace of announcements when nothing needs them faster.
var baseGap = 200 * time.Microsecond

type wireRef struct {
	key  wireKey
	w    wire
	vips map[netip.Addr]*vipAnn
}

// vipAnn is one held VIP's announcement schedule.
type vipAnn struct {
	id     string
	vip    netip.Addr
	cfg    Announce
	ref    *wireRef
	frames [][]byte
	log    *slog.Logger
	stats  Stats
	halted bool

	// queued in the first-frame queue (urgent) or the ready queue
	urgent, ready bool
	burst         bool   // the urgent frame starts a burst (else: one answer to a claim)
	why           string // of the urgent frame
	queued        time.Time

	burstLeft  int // frames left in the current burst, burstNext apart
	burstNext  time.Time
	burstWhy   string
	thenRepeat bool // a second burst follows this one (a takeover)
	repeatAt   time.Time
	refreshAt  time.Time
	quietAt    time.Time // a contest is over when no claim came until then
	lastSent   time.Time
	failing    bool
	idx        int // in the timer heap, -1 when not
}

// frameAt is when the next frame of a burst or refresh is due.
func (v *vipAnn) frameAt() time.Time {
	var t time.Time
	if v.burstLeft > 0 {
		t = v.burstNext
	}
	if !v.refreshAt.IsZero() && (t.IsZero() || v.refreshAt.Before(t)) {
		t = v.refreshAt
	}
	return t
}

// due is when the VIP needs attention next (zero: never).
func (v *vipAnn) due() time.Time {
	t := v.frameAt()
	for _, u := range []time.Time{v.repeatAt, v.quietAt} {
		if !u.IsZero() && (t.IsZero() || u.Before(t)) {
			t = u
		}
	}
	return t
}

type timers []*vipAnn

func (h timers) Len() int           { return len(h) }
func (h timers) Less(i, j int) bool { return h[i].due().Before(h[j].due()) }
func (h timers) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *timers) Push(x any)        { v := x.(*vipAnn); v.idx = len(*h); *h = append(*h, v) }
func (h *timers) Pop() any {
	old := *h
	v := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	v.idx = -1
	return v
}

type announcer struct {
	log    *slog.Logger
	open   func(ifi *net.Interface, v6 bool) (wire, error)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	mu       sync.Mutex
	vips     map[string]*vipAnn
	wires    map[wireKey]*wireRef
	urgent   []*vipAnn // first frames, in the order queued
	readyQ   []*vipAnn // other frames that are due, in the order due
	timers   timers
	nextSlot time.Time // the next frame goes no earlier
	idle     bool      // nothing was queued at the last step
}

func newAnnouncer(log *slog.Logger, open func(ifi *net.Interface, v6 bool) (wire, error)) *announcer {
	ctx, cancel := context.WithCancel(context.Background())
	a := &announcer{log: log, open: open, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1),
		vips: map[string]*vipAnn{}, wires: map[wireKey]*wireRef{}}
	a.wg.Add(1)
	go a.run()
	return a
}

func openWire(ifi *net.Interface, v6 bool) (wire, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s has no Ethernet address", ifi.Name)
	}
	if v6 {
		return openND(ifi)
	}
	return openARP(ifi)
}

// close stops every announcement and closes every wire.
func (a *announcer) close() {
	a.mu.Lock()
	for id := range a.vips {
		a.haltLocked(id)
	}
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
}

func (a *announcer) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// start announces vip for instance id on ifi (whose namespace is ns; the
// wire is opened here, in the caller's namespace), replacing what id
// announced before. The first announcement is queued at once.
func (a *announcer) start(id string, vip netip.Addr, ns nsID, ifi *net.Interface, cfg Announce) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.haltLocked(id)
	key := wireKey{ns: ns, index: ifi.Index, v6: vip.Is6()}
	ref := a.wires[key]
	if ref == nil {
		w, err := a.open(ifi, vip.Is6())
		if err != nil {
			return fmt.Errorf("announce %s on %s: %w", vip, ifi.Name, err)
		}
		ref = &wireRef{key: key, w: w, vips: map[netip.Addr]*vipAnn{}}
		a.wires[key] = ref
		a.wg.Add(1)
		go a.read(ref)
	}
	fs, err := ref.w.frames(vip)
	if err != nil {
		a.release(ref)
		return fmt.Errorf("announce %s on %s: %w", vip, ifi.Name, err)
	}
	v := &vipAnn{id: id, vip: vip, cfg: cfg, ref: ref, frames: fs, idx: -1,
		log: a.log.With("id", id, "vip", vip.String(), "interface", ifi.Name)}
	if old := ref.vips[vip]; old != nil {
		// Another instance with the same address on the same link: the
		// newer one answers its claims.
		v.log.Warn("VIP announced by two instances", "other", old.id)
	}
	ref.vips[vip] = v
	a.vips[id] = v
	now := time.Now()
	if cfg.Refresh > 0 {
		v.refreshAt = now.Add(cfg.Refresh)
	}
	if cfg.Count > 0 {
		v.thenRepeat = cfg.Repeat > 0
		a.queueUrgent(v, true, "takeover", now)
	}
	a.schedule(v)
	a.poke()
	return nil
}

// stop halts id's announcements: when it returns none is being sent or
// will be, so the address can go.
func (a *announcer) stop(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.haltLocked(id)
}

func (a *announcer) haltLocked(id string) {
	v := a.vips[id]
	if v == nil {
		return
	}
	delete(a.vips, id)
	v.halted = true
	if v.idx >= 0 {
		heap.Remove(&a.timers, v.idx)
	}
	if v.ref.vips[v.vip] == v {
		delete(v.ref.vips, v.vip)
	}
	a.release(v.ref)
}

// release closes a wire nothing announces on any more. Closing a packet
// socket takes milliseconds, so it happens off the caller's path.
func (a *announcer) release(ref *wireRef) {
	if len(ref.vips) > 0 || a.wires[ref.key] != ref {
		return
	}
	delete(a.wires, ref.key)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_ = ref.w.close()
	}()
}

// held reports whether id is announced, with its counters.
func (a *announcer) held(id string) (*Stats, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v := a.vips[id]; v != nil {
		return &v.stats, true
	}
	return nil, false
}

// reannounce asks for a fresh burst (reload, or ownership just resolved).
func (a *announcer) reannounce(id, why string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.vips[id]
	if v == nil {
		return false
	}
	v.log.Info("re-announcing", "why", why)
	if v.cfg.Count > 0 {
		a.queueUrgent(v, true, why, time.Now())
		a.poke()
	}
	return true
}

// queueUrgent queues v's first frame; a.mu is held.
func (a *announcer) queueUrgent(v *vipAnn, burst bool, why string, now time.Time) {
	if v.urgent {
		v.burst = v.burst || burst
		return
	}
	v.urgent, v.burst, v.why, v.queued = true, burst, why, now
	a.urgent = append(a.urgent, v)
}

// schedule puts v in the timer heap for its next due time; a.mu is held.
func (a *announcer) schedule(v *vipAnn) {
	if v.halted || v.ready {
		return
	}
	switch due := v.due(); {
	case due.IsZero() && v.idx >= 0:
		heap.Remove(&a.timers, v.idx)
	case due.IsZero():
	case v.idx >= 0:
		heap.Fix(&a.timers, v.idx)
	default:
		heap.Push(&a.timers, v)
	}
}

// claimed handles a foreign claim of v's address; a.mu is held. Each
// claim is answered (after the first, at most once per interval), so
// caches that just learned the claimant's address learn ours again; when
// the claims stop, a fresh burst follows.
func (a *announcer) claimed(v *vipAnn, mac net.HardwareAddr, now time.Time) {
	v.stats.Contested.Add(1)
	if v.quietAt.IsZero() {
		v.log.Warn("another host claims the VIP; re-announcing while it does", "claimant", mac.String())
		a.queueUrgent(v, false, "contested", now)
	} else if now.Sub(v.lastSent) >= v.cfg.Interval {
		a.queueUrgent(v, false, "contested", now)
	}
	v.quietAt = now.Add(contestQuiet)
	a.schedule(v)
	a.poke()
}

// read feeds foreign claims seen on ref until it is closed.
func (a *announcer) read(ref *wireRef) {
	defer a.wg.Done()
	for {
		ip, mac, err := ref.w.claim()
		if a.ctx.Err() != nil {
			return
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return
			}
			a.log.Debug("reading the link", "err", err)
			select {
			case <-a.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // back off from a persistent read error
			}
			continue
		}
		a.mu.Lock()
		if v := ref.vips[ip]; v != nil {
			a.claimed(v, mac, time.Now())
		}
		a.mu.Unlock()
	}
}

// run is the scheduler.
func (a *announcer) run() {
	defer a.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := a.step(time.Now())
		if wait == 0 {
			continue
		}
		t.Reset(wait)
		select {
		case <-a.ctx.Done():
			return
		case <-a.wake:
		case <-t.C:
		}
	}
}

// step does what is due at now: fires timers, sends at most one frame,
// and returns how long to sleep (0: call again at once).
func (a *announcer) step(now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.timers) > 0 && !a.timers[0].due().After(now) {
		v := a.timers[0]
		if !v.quietAt.IsZero() && !v.quietAt.After(now) {
			v.quietAt = time.Time{}
			v.log.Info("contest over: no foreign claim for "+contestQuiet.String()+"; re-announcing", "stats", v.stats.String())
			if v.cfg.Count > 0 {
				a.queueUrgent(v, true, "contest over", now)
			}
		}
		if !v.repeatAt.IsZero() && !v.repeatAt.After(now) {
			v.repeatAt = time.Time{}
			v.burstLeft, v.burstNext, v.burstWhy, v.thenRepeat = v.cfg.Count, now, "second burst", false
		}
		if f := v.frameAt(); !f.IsZero() && !f.After(now) {
			heap.Remove(&a.timers, v.idx)
			v.ready, v.queued = true, now
			a.readyQ = append(a.readyQ, v)
		} else {
			a.schedule(v)
		}
	}
	// Several frames per hold of the lock when they are due: starts
	// queue on it by the thousand in a failover, and one frame per turn
	// would wait behind all of them each time.
	for sent := 0; ; sent++ {
		a.urgent = dropHalted(a.urgent)
		a.readyQ = dropHalted(a.readyQ)
		var v *vipAnn
		switch {
		case len(a.urgent) > 0:
			v = a.urgent[0]
		case len(a.readyQ) > 0:
			v = a.readyQ[0]
		default:
			a.idle = true
			if len(a.timers) > 0 {
				return max(a.timers[0].due().Sub(now), time.Microsecond)
			}
			return time.Hour
		}
		if a.nextSlot.After(now) {
			return a.nextSlot.Sub(now)
		}
		if sent == maxBurst {
			return 0
		}
		if v.urgent {
			a.urgent = a.urgent[1:]
			a.sendUrgent(v)
		} else {
			a.readyQ = a.readyQ[1:]
			a.sendReady(v)
		}
		// Keep the schedule while busy: a timer fires late (sub-millisecond
		// sleeps round up), and the frames due meanwhile go out back to
		// back. Idle time earns no credit.
		if a.idle {
			a.nextSlot, a.idle = now, false
		}
		now = time.Now()
		a.nextSlot = a.nextSlot.Add(a.gap(now))
	}
}

// maxBurst bounds the frames sent in one hold of the scheduler's lock.
const maxBurst = 64

// gap is the pause before the next frame: baseGap, or less when the
// queued frames would not otherwise make it out within half an interval
// of being queued.
func (a *announcer) gap(now time.Time) time.Duration {
	q := a.urgent
	if len(q) == 0 {
		q = a.readyQ
	}
	g := baseGap
	if n := len(q); n > 0 {
		head, tail := q[0], q[n-1]
		if d := head.queued.Add(head.cfg.Interval / 2).Sub(now); d < g {
			g = d
		}
		if d := tail.queued.Add(tail.cfg.Interval/2).Sub(now) / time.Duration(n); d < g {
			g = d
		}
	}
	return max(g, 0)
}

func dropHalted(q []*vipAnn) []*vipAnn {
	for len(q) > 0 && q[0].halted {
		q[0].urgent, q[0].ready = false, false
		q = q[1:]
	}
	return q
}

func (a *announcer) sendUrgent(v *vipAnn) {
	v.urgent = false
	now := a.send(v, v.why)
	if v.burst {
		v.burstLeft, v.burstNext, v.burstWhy = v.cfg.Count-1, now.Add(v.cfg.Interval), v.why
		if v.burstLeft == 0 {
			a.burstDone(v, now)
		}
	}
	a.schedule(v)
}

func (a *announcer) sendReady(v *vipAnn) {
	v.ready = false
	burst := v.burstLeft > 0 && !v.burstNext.After(v.queued)
	refresh := !v.refreshAt.IsZero() && !v.refreshAt.After(v.queued)
	// Nothing may be left when a first frame overtook this one and
	// restarted the burst.
	if !burst && !refresh {
		a.schedule(v)
		return
	}
	why := "refresh"
	if burst {
		why = v.burstWhy
	}
	now := a.send(v, why)
	if burst {
		v.burstLeft--
		v.burstNext = now.Add(v.cfg.Interval)
		if v.burstLeft == 0 {
			a.burstDone(v, now)
		}
	}
	if refresh {
		v.refreshAt = now.Add(v.cfg.Refresh)
	}
	a.schedule(v)
}

func (a *announcer) burstDone(v *vipAnn, now time.Time) {
	v.log.Debug("announced", "why", v.burstWhy, "count", v.cfg.Count, "interval", v.cfg.Interval, "stats", v.stats.String())
	if v.thenRepeat {
		v.thenRepeat = false
		v.repeatAt = now.Add(v.cfg.Repeat)
	}
}

// send sends one announcement and returns when it went; a.mu is held,
// so a stop waits for it.
func (a *announcer) send(v *vipAnn, why string) time.Time {
	err := v.ref.w.send(v.frames)
	now := time.Now()
	v.lastSent = now
	if err != nil {
		// Never fatal: the address is configured, and the next frame of
		// the burst, the refresh or the kernel's own replies may get
		// through. Logged when it starts failing, not for every frame.
		v.stats.Failed.Add(1)
		if !v.failing {
			v.log.Warn("announcement failed", "why", why, "err", err)
		}
		v.failing = true
		return now
	}
	if v.failing {
		v.log.Info("announcements go out again", "why", why)
	}
	v.failing = false
	v.stats.Sent.Add(1)
	return now
}

// arpWire announces IPv4 VIPs with gratuitous ARP on a packet socket.
type arpWire struct {
	c   *packet.Conn
	mac net.HardwareAddr
	buf []byte
}

func openARP(ifi *net.Interface) (*arpWire, error) {
	c, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return nil, err
	}
	return &arpWire{c: c, mac: ifi.HardwareAddr, buf: make([]byte, 1500)}, nil
}

func (w *arpWire) frames(vip netip.Addr) ([][]byte, error) {
	// RFC 5227's announcement (a request with sender = target = VIP,
	// target hardware zero) and the reply form Linux treats as gratuitous
	// only when its target hardware address is broadcast.
	req, err := arp.NewPacket(arp.OperationRequest, w.mac, vip, net.HardwareAddr{0, 0, 0, 0, 0, 0}, vip)
	if err != nil {
		return nil, err
	}
	rep, err := arp.NewPacket(arp.OperationReply, w.mac, vip, ethernet.Broadcast, vip)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, p := range []*arp.Packet{req, rep} {
		pb, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		f, err := (&ethernet.Frame{Destination: ethernet.Broadcast, Source: w.mac, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func (w *arpWire) send(frames [][]byte) error {
	var errs []error
	for _, f := range frames {
		if _, err := w.c.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *arpWire) claim() (netip.Addr, net.HardwareAddr, error) {
	for {
		n, _, err := w.c.ReadFrom(w.buf)
		if err != nil {
			return netip.Addr{}, nil, err
		}
		var f ethernet.Frame
		var p arp.Packet
		if f.UnmarshalBinary(w.buf[:n]) != nil || p.UnmarshalBinary(f.Payload) != nil {
			continue
		}
		if !bytes.Equal(p.SenderHardwareAddr, w.mac) {
			return p.SenderIP, p.SenderHardwareAddr, nil
		}
	}
}

func (w *arpWire) close() error { return w.c.Close() }

// ndWire announces IPv6 VIPs with unsolicited neighbour advertisements on
// a raw ICMPv6 socket (the kernel fills in the checksum).
type ndWire struct {
	pc  *ipv6.PacketConn
	ifi *net.Interface
	buf []byte
}

const (
	icmpNA     = 136
	naOverride = 0x20
	optTLLA    = 2
)

var allNodes = &net.IPAddr{IP: net.ParseIP("ff02::1")}

func openND(ifi *net.Interface) (*ndWire, error) {
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, err
	}
	pc := ipv6.NewPacketConn(c)
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	err = errors.Join(pc.SetICMPFilter(&f), pc.SetMulticastLoopback(false),
		pc.SetControlMessage(ipv6.FlagInterface, true), pc.SetMulticastHopLimit(255), pc.SetMulticastInterface(ifi))
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &ndWire{pc: pc, ifi: ifi, buf: make([]byte, 1500)}, nil
}

func (w *ndWire) frames(vip netip.Addr) ([][]byte, error) {
	// Type, code, checksum, flags (override; not solicited, not a router),
	// target, and the target link-layer address option (RFC 4861 4.4).
	na := make([]byte, 0, 32)
	na = append(na, icmpNA, 0, 0, 0, naOverride, 0, 0, 0)
	na = append(na, vip.AsSlice()...)
	na = append(na, optTLLA, 1)
	na = append(na, w.ifi.HardwareAddr...)
	return [][]byte{na}, nil
}

func (w *ndWire) send(frames [][]byte) error {
	var errs []error
	for _, f := range frames {
		// Neighbour discovery messages must arrive with hop limit 255.
		if _, err := w.pc.WriteTo(f, &ipv6.ControlMessage{HopLimit: 255, IfIndex: w.ifi.Index}, allNodes); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *ndWire) claim() (netip.Addr, net.HardwareAddr, error) {
	b := w.buf
	for {
		n, cm, _, err := w.pc.ReadFrom(b)
		if err != nil {
			return netip.Addr{}, nil, err
		}
		if cm != nil && cm.IfIndex != w.ifi.Index || n < 24 || b[0] != icmpNA {
			continue
		}
		target, _ := netip.AddrFromSlice(b[8:24])
		for o := b[24:n]; len(o) >= 8 && o[1] > 0 && int(o[1])*8 <= len(o); o = o[int(o[1])*8:] {
			if o[0] == optTLLA && !bytes.Equal(o[2:8], w.ifi.HardwareAddr) {
				return target, net.HardwareAddr(bytes.Clone(o[2:8])), nil
			}
		}
	}
}

func (w *ndWire) close() error { return w.pc.Close() }
