package ipaddr

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The view is the plugin process's picture of the links and addresses of
// one network namespace, so that start, stop and monitor look one address
// up instead of listing every address of the host (a director holding a
// thousand VIPs would otherwise dump a thousand addresses per operation).
//
// It is kept current from one rtnetlink subscription (links, IPv4 and IPv6
// addresses). Requests of its own travel on that same socket, so their
// replies are queued behind every notification the kernel sent before:
//   - a dump (links, then addresses) fills it at first and after the
//     subscription overran; notifications are applied in order with the
//     dump, and a dump the kernel marks interrupted (NLM_F_DUMP_INTR) is
//     repeated after a short backoff until one is clean;
//   - a barrier (a request answered at once) tells when every change made
//     before it has been applied: that is how a lookup that finds nothing
//     is confirmed, and how the plugin's own changes, recorded from the
//     call's result the moment it returns, give way to the kernel's
//     notifications without ever going back to an older state.

// nsID names a network namespace (the device and inode of its nsfs file).
type nsID struct{ dev, ino uint64 }

// currentNS is the namespace of the calling thread: the plugin process's
// own, or in tests the one the goroutine was switched into.
func currentNS() (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return nsID{}, fmt.Errorf("network namespace: %w", err)
	}
	return nsID{uint64(st.Dev), st.Ino}, nil
}

// linkInfo is what the view keeps of a link.
type linkInfo struct {
	index int
	name  string
	mac   net.HardwareAddr
	mtu   int
	flags uint32 // IFF_*
}

func (l linkInfo) iface() *net.Interface {
	f := net.Flags(0)
	if l.flags&unix.IFF_UP != 0 {
		f |= net.FlagUp
	}
	if l.flags&unix.IFF_BROADCAST != 0 {
		f |= net.FlagBroadcast
	}
	if l.flags&unix.IFF_MULTICAST != 0 {
		f |= net.FlagMulticast
	}
	return &net.Interface{Index: l.index, Name: l.name, HardwareAddr: l.mac, MTU: l.mtu, Flags: f}
}

// addrEntry is one configured address. The kernel tells addresses apart
// by address, prefix length and link.
type addrEntry struct {
	ip    netip.Addr
	bits  int
	link  int
	flags uint32 // IFA_F_*
	peer  bool   // point-to-point: bits belong to the peer, not a subnet of ours
	own   bool   // from this plugin's own change, not yet confirmed by the kernel
}

func (e addrEntry) prefix() netip.Prefix { return netip.PrefixFrom(e.ip, e.bits) }

func (e addrEntry) same(o addrEntry) bool {
	return e.ip == o.ip && e.bits == o.bits && e.link == o.link
}

// override is this plugin's own change to one address, valid until the
// barrier sent after it is answered.
type override struct {
	e       addrEntry
	present bool
	barrier uint32
}

type barrierWaiter struct {
	seq  uint32
	done chan struct{}
}

type expiring struct {
	seq uint32
	ip  netip.Addr
}

// conn is the subscription socket (nl.NetlinkSocket; a fake in unit tests).
type conn interface {
	Receive() ([]syscall.NetlinkMessage, *unix.SockaddrNetlink, error)
	GetFd() int
	Close()
}

// addrWriter adds, changes and deletes addresses (an *nlWriter).
type addrWriter interface {
	// AddrAddAll adds addresses without a peer together, each with its
	// own result.
	AddrAddAll(addrs []*netlink.Addr) []error
	AddrReplace(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
	// AddrDelAll deletes addresses without a peer together, each with
	// its own result.
	AddrDelAll(addrs []*netlink.Addr) []error
	PromoteSecondaries(link int) error
}

const (
	dumpNone = iota
	dumpLinks
	dumpAddrs
)

// Dump retries: an interrupted dump is repeated after dumpBackoff,
// doubling up to dumpBackoffMax. Operations wait for a clean picture at
// most viewWait (or their own deadline), then fail with a non-fatal code.
var (
	dumpBackoff    = time.Millisecond
	dumpBackoffMax = 200 * time.Millisecond
	viewWait       = 10 * time.Second
)

type view struct {
	log     *slog.Logger
	sock    conn
	send    func(b []byte) error // a request on sock, to the kernel
	sockErr func() error         // takes sock's pending error (nil in unit tests)
	// more reads what else is queued on sock without waiting (nil in unit
	// tests), so that one hold of v.mu applies many messages.
	more   func() ([]syscall.NetlinkMessage, error)
	pid    uint32          // sock's port id: replies to us carry it
	writer chan addrWriter // a small pool: adds and deletes run in parallel
	done   chan struct{}   // run has returned

	mu       sync.Mutex
	progress chan struct{} // closed and replaced whenever ready or broken change
	seq      uint32        // last request sent on sock
	answered uint32        // highest barrier answered
	// waiters for barriers, in the order numbered: each is woken alone
	// (a thousand stops at once must not all wake at every answer).
	waiters []barrierWaiter
	// own changes by barrier, in the order numbered, to expire them
	expiry  []expiring
	ready   bool  // the maps hold a complete picture
	broken  error // the subscription is gone; a new view takes over
	closing bool  // close was called: the end of the subscription is no news
	dump    struct {
		kind     int
		seq      uint32
		intr     bool // the kernel marked it inconsistent
		again    bool // overrun during the dump: start over when it ends
		attempts int
		timer    *time.Timer
	}
	links     map[int]*linkInfo
	linkNames map[string]int
	addrs     map[netip.Addr][]addrEntry
	// nets indexes addresses by the subnet they make: subnet, link, address.
	nets     map[netip.Prefix]map[int]map[netip.Addr]struct{}
	override map[netip.Addr][]override

	dead atomic.Bool // broken is set: read without v.mu on every operation

	fd *fdGuard // nil in unit tests

	// counters, for tests and logs
	resyncs, interrupted atomic.Uint64
	loads                atomic.Uint64 // clean, complete loads (the first and every resync)
	// deleteCost is the release estimate's cost of one address deletion
	// (nanoseconds): a moving average of deletions timed in the kernel,
	// each over its own turn, replaced by the pace of a long run of them
	// (endDelete).
	deleteCost atomic.Int64
	dels       delPeriod
	adds       addQueue
}

// addQueue is the adds waiting to go to the kernel together (addBatched)
// and whether a goroutine sends them.
type addQueue struct {
	mu      sync.Mutex
	waiting []pendingAdd
	sending bool
}

type pendingAdd struct {
	a    *netlink.Addr
	e    addrEntry // what the view has once it is added
	done chan error
}

// delPeriod is the deletions in flight and, since there were none, when
// the current run of them began and how many of it completed: its pace.
type delPeriod struct {
	mu       sync.Mutex
	inflight int
	held     int // runs held open (holdRun) between their deletions
	from     time.Time
	done     int
	ended    uint64 // deletions ended, ever: a deletion's turn (see endDelete)
}

// openView subscribes in the calling thread's namespace and starts
// filling the view; await tells when it is complete.
func openView(log *slog.Logger, writers int) (*view, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR)
	if err != nil {
		return nil, fmt.Errorf("subscribe to address changes: %w", err)
	}
	// A burst of changes (a thousand VIPs added at once) must not overrun
	// the socket: that costs a full resync. Force needs CAP_NET_ADMIN,
	// which the plugin has anyway to add addresses.
	if err := s.SetReceiveBufferSize(8<<20, true); err != nil {
		_ = s.SetReceiveBufferSize(8<<20, false)
	}
	pid, err := s.GetPid()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("subscription socket: %w", err)
	}
	ws := make(chan addrWriter, writers)
	for range writers {
		w, err := openWriter(viewWait)
		if err != nil {
			s.Close()
			close(ws)
			for w := range ws {
				w.(*nlWriter).Close()
			}
			return nil, fmt.Errorf("netlink socket: %w", err)
		}
		ws <- w
	}
	// The raw descriptor is used besides the socket's own methods; fdMu
	// keeps close from handing its number to another file meanwhile.
	fd, g := s.GetFd(), &fdGuard{}
	v := newView(log, s, pid, func(b []byte) error {
		return g.use(func() error {
			// To the kernel, not to the groups the socket is bound to.
			return unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		})
	}, ws)
	v.fd = g
	buf := make([]byte, 1<<16)
	v.more = func() (ms []syscall.NetlinkMessage, err error) {
		err = g.use(func() error {
			n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil {
				return err
			}
			if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != nl.PidKernel || n < unix.NLMSG_HDRLEN {
				return nil
			}
			ms, err = syscall.ParseNetlinkMessage(append([]byte(nil), buf[:n]...))
			return err
		})
		return ms, err
	}
	v.sockErr = func() error {
		return g.use(func() error {
			n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && n != 0 {
				err = syscall.Errno(n)
			}
			return err
		})
	}
	go v.run()
	return v, nil
}

// fdGuard keeps a socket's descriptor number from going to another file
// while it is used directly.
type fdGuard struct {
	mu     sync.RWMutex
	closed bool
}

// use runs f unless the socket is closed.
func (g *fdGuard) use(f func() error) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return net.ErrClosed
	}
	return f()
}

func newView(log *slog.Logger, s conn, pid uint32, send func([]byte) error, ws chan addrWriter) *view {
	v := &view{log: log, sock: s, send: send, pid: pid, writer: ws, done: make(chan struct{}),
		progress: make(chan struct{}), links: map[int]*linkInfo{}, linkNames: map[string]int{},
		addrs: map[netip.Addr][]addrEntry{}, nets: map[netip.Prefix]map[int]map[netip.Addr]struct{}{},
		override: map[netip.Addr][]override{}}
	v.mu.Lock()
	v.requestDump(dumpLinks)
	v.mu.Unlock()
	return v
}

// close ends the subscription and waits for run.
func (v *view) close() {
	v.mu.Lock()
	v.closing = true
	v.mu.Unlock()
	if v.fd != nil {
		v.fd.mu.Lock()
		v.fd.closed = true
		v.sock.Close()
		v.fd.mu.Unlock()
	} else {
		v.sock.Close()
	}
	<-v.done
	v.mu.Lock()
	if v.dump.timer != nil {
		v.dump.timer.Stop()
	}
	v.mu.Unlock()
	for range cap(v.writer) {
		if w, ok := (<-v.writer).(*nlWriter); ok {
			w.Close()
		}
	}
}

func (v *view) run() {
	defer close(v.done)
	for {
		msgs, from, err := v.sock.Receive()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				v.overrun("address subscription overran")
				continue
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			v.mu.Lock()
			if !v.closing {
				v.log.Warn("address subscription failed; the next operation opens a new one", "err", err)
			}
			v.broken = fmt.Errorf("address subscription: %w", err)
			v.dead.Store(true)
			v.release(^uint32(0))
			v.notify()
			v.mu.Unlock()
			return
		}
		if from.Pid != nl.PidKernel {
			msgs = nil
		}
		// Take what else is queued, then apply it all in one hold of the
		// lock: operations queue on it by the thousand in a failover.
		var moreErr error
		for i := 0; v.more != nil && i < 256; i++ {
			ms, err := v.more()
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					moreErr = err
				}
				break
			}
			msgs = append(msgs, ms...)
		}
		v.mu.Lock()
		for i := range msgs {
			v.handle(&msgs[i])
		}
		v.mu.Unlock()
		if errors.Is(moreErr, unix.ENOBUFS) {
			v.overrun("address subscription overran")
		}
	}
}

// notify wakes everyone waiting for progress; v.mu is held.
func (v *view) notify() {
	close(v.progress)
	v.progress = make(chan struct{})
}

// overrun: notifications were lost, so nothing in the maps can be
// trusted; start over from a dump.
func (v *view) overrun(why string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.overrunLocked(why)
}

// overran reports (and clears) an overrun the socket has not reported
// yet: a reply to a request of ours may be read before the error that
// notifications were dropped ahead of it.
func (v *view) overran() bool {
	if v.sockErr == nil {
		return false
	}
	return errors.Is(v.sockErr(), unix.ENOBUFS)
}

func (v *view) overrunLocked(why string) {
	v.resyncs.Add(1)
	v.log.Warn(why + "; reloading links and addresses")
	v.clear()
	v.ready = false
	if v.dump.kind != dumpNone {
		v.dump.again = true
	} else {
		v.requestDump(dumpLinks)
	}
	v.notify()
}

func (v *view) clear() {
	v.links = map[int]*linkInfo{}
	v.linkNames = map[string]int{}
	v.addrs = map[netip.Addr][]addrEntry{}
	v.nets = map[netip.Prefix]map[int]map[netip.Addr]struct{}{}
}

// request sends one message of ours, numbered seq, on the subscription
// socket.
func (v *view) request(typ, flags int, seq uint32, body nl.NetlinkRequestData) error {
	req := nl.NewNetlinkRequest(typ, flags)
	req.Seq = seq
	req.AddData(body)
	return v.send(req.Serialize())
}

// requestDump asks for every link or every address; v.mu is held. A dump
// that cannot even be sent is retried like an interrupted one.
func (v *view) requestDump(kind int) {
	seq := v.nextSeq()
	var err error
	if kind == dumpLinks {
		err = v.request(unix.RTM_GETLINK, unix.NLM_F_DUMP, seq, nl.NewIfInfomsg(unix.AF_UNSPEC))
	} else {
		err = v.request(unix.RTM_GETADDR, unix.NLM_F_DUMP, seq, nl.NewIfAddrmsg(unix.AF_UNSPEC))
	}
	v.dump.kind, v.dump.seq, v.dump.intr = kind, seq, false
	if err != nil {
		v.log.Warn("cannot request a dump; retrying", "err", err)
		v.dump.seq = 0
		v.retryDump()
	}
}

// retryDump repeats the current dump after a backoff; v.mu is held.
func (v *view) retryDump() {
	v.dump.attempts++
	d := dumpBackoff << min(v.dump.attempts-1, 16)
	if d > dumpBackoffMax {
		d = dumpBackoffMax
	}
	if v.dump.attempts == 10 {
		v.log.Warn("address dumps keep being interrupted by concurrent changes; still retrying", "attempts", v.dump.attempts)
	}
	// The dump stays in progress meanwhile (an overrun sets again), but
	// no reply matches it.
	kind := v.dump.kind
	v.dump.seq = 0
	v.dump.timer = time.AfterFunc(d, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.broken == nil {
			v.requestDump(kind)
		}
	})
}

// A barrier is a request whose answer comes after every notification
// queued when it was sent. Its sequence number is taken under v.mu and it
// is sent without: answers may then come out of order, which is fine, as
// a barrier sent after a change covers it whichever its number.

// nextSeq numbers a request (a dump or a barrier); v.mu is held.
func (v *view) nextSeq() uint32 {
	v.seq++
	return v.seq
}

// sendBarrier sends barrier seq. It asks for RTM_GETADDR of no family
// without a dump, which no family answers but with an error carrying seq:
// it changes nothing, and the kernel answers it without taking the RTNL
// lock that adds and deletes hold.
func (v *view) sendBarrier(seq uint32) error {
	return v.request(unix.RTM_GETADDR, 0, seq, nl.NewIfAddrmsg(unix.AF_UNSPEC))
}

// handle applies one message; v.mu is held.
func (v *view) handle(m *syscall.NetlinkMessage) {
	h := m.Header
	if h.Pid == v.pid && h.Seq != 0 {
		if h.Seq != v.dump.seq || v.dump.kind == dumpNone {
			// A barrier's answer.
			if v.overran() {
				v.overrunLocked("address subscription overran")
				return
			}
			if h.Seq > v.answered {
				v.answered = h.Seq
				v.expire(h.Seq)
				v.release(h.Seq)
			}
			return
		}
		if h.Flags&unix.NLM_F_DUMP_INTR != 0 {
			v.dump.intr = true
		}
		switch h.Type {
		case unix.NLMSG_DONE:
			if v.overran() {
				v.overrunLocked("address subscription overran")
			}
			v.dumpDone(false)
			return
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 && binary.NativeEndian.Uint32(m.Data) != 0 {
				v.log.Warn("dump failed; retrying", "err", syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data))))
				v.dumpDone(true)
			}
			return
		}
	}
	switch h.Type {
	case unix.RTM_NEWLINK:
		if l, ok := parseLink(m.Data); ok {
			v.putLink(l)
		}
	case unix.RTM_DELLINK:
		if l, ok := parseLink(m.Data); ok {
			v.delLink(l.index)
		}
	case unix.RTM_NEWADDR:
		if e, ok := parseAddr(m.Data); ok {
			v.putAddr(e)
		}
	case unix.RTM_DELADDR:
		if e, ok := parseAddr(m.Data); ok {
			v.delAddr(e)
		}
	}
}

// dumpDone ends a dump: retried when interrupted or failed, followed by
// the address dump after the links, and complete after a clean address
// dump; v.mu is held.
func (v *view) dumpDone(failed bool) {
	if failed || v.dump.intr {
		if !failed {
			v.interrupted.Add(1)
		}
		// What was dumped stays: every entry was real when dumped and any
		// later change to it has a notification applied after it. Only
		// entries the interrupted dump skipped are missing; a clean pass
		// finds them.
		v.retryDump()
		return
	}
	if v.dump.again {
		v.dump.again = false
		v.dump.attempts = 0
		v.requestDump(dumpLinks)
		return
	}
	if v.dump.kind == dumpLinks {
		v.requestDump(dumpAddrs)
		return
	}
	seq := v.dump.seq
	v.dump.kind, v.dump.attempts = dumpNone, 0
	v.ready = true
	v.loads.Add(1)
	// Every request sent before this dump is answered by it, even a
	// barrier whose reply an overrun dropped.
	if seq-1 > v.answered {
		v.answered = seq - 1
	}
	v.expire(seq - 1)
	v.release(v.answered)
	v.notify()
}

// release wakes the waiters for barriers up to seq; v.mu is held.
func (v *view) release(seq uint32) {
	i := 0
	for ; i < len(v.waiters) && v.waiters[i].seq <= seq; i++ {
		close(v.waiters[i].done)
	}
	v.waiters = v.waiters[i:]
}

// expire drops own changes confirmed by the barrier seq; v.mu is held.
func (v *view) expire(seq uint32) {
	for len(v.expiry) > 0 && v.expiry[0].seq <= seq {
		ip := v.expiry[0].ip
		v.expiry = v.expiry[1:]
		v.dropOverrides(ip, func(o override) bool { return o.barrier <= seq })
	}
}

// dropOverrides removes ip's own changes for which gone holds; v.mu is
// held.
func (v *view) dropOverrides(ip netip.Addr, gone func(override) bool) {
	if os := slices.DeleteFunc(v.override[ip], gone); len(os) > 0 {
		v.override[ip] = os
	} else {
		delete(v.override, ip)
	}
}

func (v *view) putLink(l linkInfo) {
	if old := v.links[l.index]; old != nil && old.name != l.name && v.linkNames[old.name] == l.index {
		delete(v.linkNames, old.name)
	}
	v.links[l.index] = &l
	v.linkNames[l.name] = l.index
}

func (v *view) delLink(index int) {
	if old := v.links[index]; old != nil && v.linkNames[old.name] == index {
		delete(v.linkNames, old.name)
	}
	delete(v.links, index)
	// The kernel notifies the deletion of each address too; this is in
	// case a notification was folded into the link's.
	for _, es := range v.addrs {
		for _, e := range es {
			if e.link == index {
				v.delAddr(e)
			}
		}
	}
}

func (v *view) putAddr(e addrEntry) {
	es := v.addrs[e.ip]
	for i := range es {
		if es[i].same(e) {
			es[i] = e
			return
		}
	}
	v.addrs[e.ip] = append(es, e)
	if e.peer {
		return
	}
	sub := e.prefix().Masked()
	byLink := v.nets[sub]
	if byLink == nil {
		byLink = map[int]map[netip.Addr]struct{}{}
		v.nets[sub] = byLink
	}
	if byLink[e.link] == nil {
		byLink[e.link] = map[netip.Addr]struct{}{}
	}
	byLink[e.link][e.ip] = struct{}{}
}

func (v *view) delAddr(e addrEntry) {
	es := v.addrs[e.ip]
	for i := range es {
		if !es[i].same(e) {
			continue
		}
		peer := es[i].peer
		es = append(es[:i], es[i+1:]...)
		if len(es) == 0 {
			delete(v.addrs, e.ip)
		} else {
			v.addrs[e.ip] = es
		}
		if peer {
			return
		}
		sub := e.prefix().Masked()
		if set := v.nets[sub][e.link]; set != nil {
			delete(set, e.ip)
			if len(set) == 0 {
				delete(v.nets[sub], e.link)
				if len(v.nets[sub]) == 0 {
					delete(v.nets, sub)
				}
			}
		}
		return
	}
}

// await waits until the view holds a complete picture.
func (v *view) await(ctx context.Context) error {
	return v.wait(ctx, func() bool { return v.ready }, nil)
}

// with runs f with v.mu held once the view holds a complete picture
// (a resync empties it meanwhile).
func (v *view) with(ctx context.Context, f func()) error {
	return v.wait(ctx, func() bool { return v.ready }, f)
}

// wait waits until cond (called with v.mu held) holds, then runs f if
// set, still holding v.mu; it gives up when the view breaks, viewWait
// passes or ctx ends.
func (v *view) wait(ctx context.Context, cond func() bool, f func()) error {
	var cancel context.CancelFunc // the viewWait limit, set once there is a wait
	for {
		v.mu.Lock()
		if v.broken == nil && cond() {
			if f != nil {
				f()
			}
			v.mu.Unlock()
			return nil
		}
		broken, ch := v.broken, v.progress
		v.mu.Unlock()
		if broken != nil {
			return broken
		}
		if cancel == nil {
			ctx, cancel = context.WithTimeout(ctx, viewWait)
			defer cancel()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the kernel's address list (dumps interrupted %d times, resyncs %d): %w",
				v.interrupted.Load(), v.resyncs.Load(), ctx.Err())
		}
	}
}

// sync returns once every change the kernel made before the call is in
// the view.
func (v *view) sync(ctx context.Context) error {
	v.mu.Lock()
	seq := v.nextSeq()
	w := barrierWaiter{seq: seq, done: make(chan struct{})}
	v.waiters = append(v.waiters, w)
	v.mu.Unlock()
	if err := v.sendBarrier(seq); err != nil {
		return fmt.Errorf("address subscription: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, viewWait)
	defer cancel()
	select {
	case <-w.done:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the kernel's answer (dumps interrupted %d times, resyncs %d): %w",
			v.interrupted.Load(), v.resyncs.Load(), ctx.Err())
	}
	// Answered, or the view broke or was reloaded meanwhile.
	return v.await(ctx)
}

// own records the result of this plugin's own change at once: the
// kernel's notification of it may still be queued behind older ones.
func (v *view) own(e addrEntry, present bool) {
	v.ownAll([]addrEntry{e}, present)
}

// ownAll is own for several changes, made together: one barrier ends
// all their overrides.
func (v *view) ownAll(es []addrEntry, present bool) {
	if len(es) == 0 {
		return
	}
	v.mu.Lock()
	seq := v.nextSeq()
	for _, e := range es {
		e.own = true
		os := slices.DeleteFunc(v.override[e.ip], func(o override) bool { return o.e.same(e) })
		v.override[e.ip] = append(os, override{e: e, present: present, barrier: seq})
		v.expiry = append(v.expiry, expiring{seq: seq, ip: e.ip})
	}
	v.mu.Unlock()
	if err := v.sendBarrier(seq); err != nil {
		// Without its barrier the overrides would not expire until another
		// one's; the notifications of the changes bring the view there.
		v.log.Debug("no barrier after an own change", "err", err)
		v.mu.Lock()
		for _, e := range es {
			v.dropOverrides(e.ip, func(o override) bool { return o.barrier == seq })
		}
		v.mu.Unlock()
	}
}

// The lookups below need v.mu held and the view complete: see with.

// lookup returns where ip is configured.
func (v *view) lookup(ip netip.Addr) []addrEntry {
	var out []addrEntry
	os := v.override[ip]
base:
	for _, e := range v.addrs[ip] {
		for _, o := range os {
			if o.e.same(e) {
				continue base
			}
		}
		out = append(out, e)
	}
	for _, o := range os {
		if o.present {
			out = append(out, o.e)
		}
	}
	return out
}

func (v *view) linkByIndex(i int) (linkInfo, bool) {
	if l := v.links[i]; l != nil {
		return *l, true
	}
	return linkInfo{}, false
}

// linkName names link i (its number when the view does not know it).
func (v *view) linkName(i int) string {
	if l := v.links[i]; l != nil {
		return l.name
	}
	return fmt.Sprint(i)
}

func (v *view) linkByName(name string) (linkInfo, bool) {
	if i, ok := v.linkNames[name]; ok {
		return *v.links[i], true
	}
	return linkInfo{}, false
}

// subnet finds the longest subnet holding ip that some other address
// makes, on the link named nic if set, and returns that link (the lowest
// index when several) and the prefix length.
func (v *view) subnet(ip netip.Addr, nic string) (link, bits int, ok bool) {
	want := -1
	if nic != "" {
		i, found := v.linkNames[nic]
		if !found {
			return 0, 0, false
		}
		want = i
	}
	for b := ip.BitLen(); b > 0; b-- {
		byLink := v.nets[netip.PrefixFrom(ip, b).Masked()]
		best := -1
		for l, set := range byLink {
			if want >= 0 && l != want {
				continue
			}
			if _, self := set[ip]; len(set) > 1 || !self {
				if best < 0 || l < best {
					best = l
				}
			}
		}
		if best >= 0 {
			return best, b, true
		}
	}
	return 0, 0, false
}

// others counts the other addresses of e's subnet on e's link.
func (v *view) others(e addrEntry) int {
	set := v.nets[e.prefix().Masked()][e.link]
	n := len(set)
	if _, self := set[e.ip]; self {
		n--
	}
	return n
}

// addBatched adds a, which the view then has as e, together with the
// adds that wait meanwhile: a burst of starts (a takeover) costs the
// kernel one request and the view one barrier per batch, not per VIP.
// The first add of a burst goes at once; the next batch holds what came
// while it was in flight.
func (v *view) addBatched(a *netlink.Addr, e addrEntry) error {
	p := pendingAdd{a: a, e: e, done: make(chan error, 1)}
	q := &v.adds
	q.mu.Lock()
	q.waiting = append(q.waiting, p)
	start := !q.sending
	q.sending = true
	q.mu.Unlock()
	if start {
		go v.sendAdds()
	}
	return <-p.done
}

// sendAdds sends the waiting adds, a batch at a time, until none waits.
func (v *view) sendAdds() {
	q := &v.adds
	for {
		q.mu.Lock()
		batch := q.waiting[:min(len(q.waiting), nlBatch)]
		q.waiting = q.waiting[len(batch):]
		if len(batch) == 0 {
			q.waiting, q.sending = nil, false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		as := make([]*netlink.Addr, len(batch))
		for i, p := range batch {
			as[i] = p.a
		}
		errs := v.writeAll(len(as), func(w addrWriter) []error { return w.AddrAddAll(as) })
		var added []addrEntry
		for i, err := range errs {
			if err == nil {
				added = append(added, batch[i].e)
			}
		}
		// Before any caller returns: what it added is in the view.
		v.ownAll(added, true)
		for i, p := range batch {
			p.done <- errs[i]
		}
	}
}

// writeAll runs f, a batch of n changes, with one of the pooled netlink
// handles and returns each change's result; without a handle (the view
// broke), each gets that error.
func (v *view) writeAll(n int, f func(addrWriter) []error) []error {
	var errs []error
	if err := v.write(func(w addrWriter) error { errs = f(w); return nil }); err != nil {
		errs = make([]error, n)
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// write runs f with one of the pooled netlink handles.
func (v *view) write(f func(addrWriter) error) error {
	var w addrWriter
	select {
	case w = <-v.writer:
	case <-v.done:
		// Broken (and being closed: its handles go with it).
		return fmt.Errorf("address subscription: %w", net.ErrClosed)
	}
	defer func() { v.writer <- w }()
	return f(w)
}

// parseLink reads an RTM_NEWLINK/RTM_DELLINK. Messages of other families
// (a bridge port's AF_BRIDGE ones) describe something else and are
// skipped.
func parseLink(b []byte) (linkInfo, bool) {
	if len(b) < unix.SizeofIfInfomsg {
		return linkInfo{}, false
	}
	msg := nl.DeserializeIfInfomsg(b)
	if msg.Family != unix.AF_UNSPEC || msg.Index <= 0 {
		return linkInfo{}, false
	}
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofIfInfomsg:])
	if err != nil {
		return linkInfo{}, false
	}
	l := linkInfo{index: int(msg.Index), flags: msg.Flags}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_IFNAME:
			l.name = unix.ByteSliceToString(a.Value)
		case unix.IFLA_ADDRESS:
			l.mac = net.HardwareAddr(append([]byte(nil), a.Value...))
		case unix.IFLA_MTU:
			if len(a.Value) >= 4 {
				l.mtu = int(binary.NativeEndian.Uint32(a.Value))
			}
		}
	}
	return l, l.name != ""
}

// parseAddr reads an RTM_NEWADDR/RTM_DELADDR.
func parseAddr(b []byte) (addrEntry, bool) {
	if len(b) < unix.SizeofIfAddrmsg {
		return addrEntry{}, false
	}
	msg := nl.DeserializeIfAddrmsg(b)
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofIfAddrmsg:])
	if err != nil {
		return addrEntry{}, false
	}
	e := addrEntry{bits: int(msg.Prefixlen), link: int(msg.Index), flags: uint32(msg.Flags)}
	var local, address netip.Addr
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(a.Value)
		case unix.IFA_ADDRESS:
			address, _ = netip.AddrFromSlice(a.Value)
		case unix.IFA_FLAGS:
			if len(a.Value) >= 4 {
				e.flags = binary.NativeEndian.Uint32(a.Value)
			}
		}
	}
	switch {
	case local.IsValid():
		e.ip, e.peer = local.Unmap(), address.IsValid() && address.Unmap() != local.Unmap()
	case address.IsValid():
		e.ip = address.Unmap()
	default:
		return addrEntry{}, false
	}
	return e, e.bits <= e.ip.BitLen()
}

// deleteCostStart is the deletion cost assumed before one was measured,
// and a fresh plugin's first release is what a crash of the node's
// daemon leaves to it. A release of 1,000 VIPs in batches took 16–22 µs
// each in BenchmarkRelease, quiet or with both cores busy, and in the
// lab's daemons 20 µs quiet and 58 µs loaded; the plugin begins it
// releaseLead (2) times the estimate early, and an underestimate is
// unsafe. deleteCostFloor bounds a measure from below.
const (
	deleteCostStart = 50 * time.Microsecond
	deleteCostFloor = 10 * time.Microsecond
)

// deleted folds one measured deletion into deleteCost: up fast, down
// slowly, since erring long only delays a takeover.
func (v *view) deleted(d time.Duration) {
	d = max(d, deleteCostFloor)
	old := time.Duration(v.deleteCost.Load())
	if old == 0 {
		old = deleteCostStart
	}
	if d > old {
		v.deleteCost.Store(int64(old + (d-old)/2))
	} else {
		v.deleteCost.Store(int64(old + (d-old)/16))
	}
}

// paceSample is how many deletions a run of them (one after another
// without a pause: a release, a burst of stops) must count for its pace
// to replace the deletion cost.
const paceSample = 16

// beginDelete counts a deletion in flight and returns the count of
// deletions ended so far, for endDelete.
func (v *view) beginDelete() uint64 {
	p := &v.dels
	p.mu.Lock()
	defer p.mu.Unlock()
	p.begin()
	p.inflight++
	return p.ended
}

func (p *delPeriod) begin() {
	if p.inflight+p.held == 0 {
		p.from, p.done = time.Now(), 0
	}
}

// holdRun keeps one run of deletions going until the returned function
// is called, across the pauses between them: a release looks each VIP up
// before it deletes it, and its pace is that of the whole.
func (v *view) holdRun() (end func()) {
	p := &v.dels
	p.mu.Lock()
	p.begin()
	p.held++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.held--
		v.endRun()
	}
}

// endDelete ends a deletion begun when ended was what beginDelete
// returned, which took took, folded in when it succeeded. The kernel
// takes deletions one at a time, so one that waited for others' turns
// took theirs too: the deletions that ended meanwhile, and itself, share
// its time. (Divided by the deletions in flight when it began, one begun
// first and served last counted all the others' turns.)
//
// The run ends with the last deletion in flight: a long one's pace,
// start to end, is exactly what ReleaseTime predicts, so it replaces the
// estimate. The latencies of single deletions timed while both cores
// were busy include their waits for a CPU (milliseconds each, where a
// run of a thousand took 150 µs each), and one inflated sample made the
// next takeover from this node wait 5 s for a release of 150 ms.
//
// A request of n deletions (a batch) is n turns, done of which succeeded.
func (v *view) endDelete(ended uint64, took time.Duration, n, done int) {
	p := &v.dels
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight--
	turns := p.ended - ended + uint64(n)
	p.ended += uint64(n)
	if done > 0 {
		p.done += done
		v.deleted(took / time.Duration(turns))
	}
	v.endRun()
}

// endRun replaces the estimate by the pace of a run that just ended, if
// it was long enough (dels.mu held).
func (v *view) endRun() {
	p := &v.dels
	if p.inflight+p.held == 0 && p.done >= paceSample {
		v.deleteCost.Store(int64(max(time.Since(p.from)/time.Duration(p.done), deleteCostFloor)))
	}
}

// deleteCostNow is the current estimate of one deletion.
func (v *view) deleteCostNow() time.Duration {
	if c := time.Duration(v.deleteCost.Load()); c > 0 {
		return c
	}
	return deleteCostStart
}
