package director

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// UserspaceOptions tune the userspace director.
type UserspaceOptions struct {
	Log *slog.Logger
	// DialTimeout bounds the connection to a real server (default 3s).
	DialTimeout time.Duration
	// UDPIdle ends a UDP session after this long without traffic (default
	// 300s, IPVS's udp timeout).
	UDPIdle time.Duration
	// Linger is how long a closed TCP connection still counts as
	// inactive (default 2m, IPVS's TIME_WAIT): the lc family weighs
	// inactive connections, which is what spreads a stream of short
	// connections over equal servers.
	Linger time.Duration
}

// NewUserspace returns the userspace director: a TCP and UDP proxy
// listening on each virtual service's address and forwarding every new
// connection (UDP: every new client address) to the real server its
// scheduler picks. Every forwarding method becomes a proxied connection
// to the real server's address and port (real servers must accept traffic
// to their own address); firewall-mark services need the kernel.
// Listeners bind with IP_FREEBIND, so a service may be added before its
// VIP is up.
func NewUserspace(o UserspaceOptions) *UserspaceDirector {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 3 * time.Second
	}
	if o.UDPIdle == 0 {
		o.UDPIdle = 300 * time.Second
	}
	if o.Linger == 0 {
		o.Linger = 2 * time.Minute
	}
	u := &UserspaceDirector{opts: o, services: map[Key]*uservice{}}
	// Generations of one director never repeat those of an earlier one
	// (a plugin restarted, a backend reopened): a caller holding an old
	// generation sees a change.
	u.persistGen.Store(uint64(time.Now().UnixNano()))
	return u
}

// UserspaceDirector is the userspace Backend.
type UserspaceDirector struct {
	opts     UserspaceOptions
	mu       sync.Mutex
	services map[Key]*uservice
	closed   bool
	// persistGen counts changes of the persistence tables (see
	// ExportPersistence); every service bumps it.
	persistGen atomic.Uint64
}

func (u *UserspaceDirector) Name() string { return Userspace }

func (u *UserspaceDirector) Read() (Table, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t := make(Table, len(u.services))
	for k, s := range u.services {
		t[k] = s.snapshot()
	}
	return t, nil
}

func (u *UserspaceDirector) Apply(ops []Op) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return errors.New("userspace director closed")
	}
	return applyAll(ops, u.apply)
}

func (u *UserspaceDirector) apply(op Op) error {
	s := u.services[op.Service.Key]
	if s == nil && op.Kind != AddService {
		return errors.New("no such service")
	}
	switch op.Kind {
	case AddService:
		if s != nil {
			return syscall.EEXIST
		}
		s, err := u.listen(op.Service)
		if err != nil {
			return err
		}
		u.services[op.Service.Key] = s
	case EditService:
		s.edit(op.Service)
	case DelService:
		delete(u.services, op.Service.Key)
		s.close()
	case AddDest, EditDest, DelDest:
		return s.setDest(op.Kind, op.Dest)
	}
	return nil
}

func (u *UserspaceDirector) Stats() (map[Key]ServiceStats, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[Key]ServiceStats, len(u.services))
	for k, s := range u.services {
		out[k] = s.stats()
	}
	return out, nil
}

// Close stops every listener and ends every proxied connection.
func (u *UserspaceDirector) Close() error {
	u.mu.Lock()
	svcs := u.services
	u.services, u.closed = map[Key]*uservice{}, true
	u.mu.Unlock()
	for _, s := range svcs {
		s.close()
		s.killConns()
	}
	for _, s := range svcs {
		s.wg.Wait()
	}
	return nil
}

// udest is one real server as the proxy tracks it.
type udest struct {
	Dest
	active, inactive atomic.Int64
	ctr              counters
}

func (d *udest) weight() int { return d.Weight }
func (d *udest) conns() (int64, int64) {
	return d.active.Load(), d.inactive.Load()
}
func (d *udest) overloaded() bool {
	return d.Upper > 0 && d.active.Load()+d.inactive.Load() >= int64(d.Upper)
}
func (d *udest) addrKey() string { return d.Addr.String() }

type counters struct {
	conns, inPkts, outPkts, inBytes, outBytes atomic.Uint64
}

func (c *counters) load() Counters {
	return Counters{Conns: c.conns.Load(), InPkts: c.inPkts.Load(), OutPkts: c.outPkts.Load(),
		InBytes: c.inBytes.Load(), OutBytes: c.outBytes.Load()}
}

// uservice is one virtual service of the proxy.
type uservice struct {
	opts UserspaceOptions
	ctx  context.Context // ends with the service: cancels its dials and sessions
	stop context.CancelFunc
	wg   sync.WaitGroup
	ln   net.Listener
	pc   net.PacketConn

	mu      sync.Mutex
	svc     Service // settings; Dests unused
	dests   []*udest
	sched   scheduler
	persist map[netip.Addr]persistEntry
	gen     *atomic.Uint64 // the director's persistGen
	ctr     counters
	live    map[io.Closer]struct{} // proxied connections, for Close
	udp     map[netip.AddrPort]*udpSession
}

type persistEntry struct {
	dest    *udest
	expires time.Time
}

func (u *UserspaceDirector) listen(svc Service) (*uservice, error) {
	if svc.Key.Proto == FWM {
		return nil, errors.New("firewall-mark services need kernel IPVS")
	}
	sched := newScheduler(svc.Scheduler)
	if sched == nil {
		return nil, fmt.Errorf("scheduler %q not supported", svc.Scheduler)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &uservice{opts: u.opts, ctx: ctx, stop: stop, svc: svc, sched: sched, gen: &u.persistGen,
		persist: map[netip.Addr]persistEntry{}, live: map[io.Closer]struct{}{}, udp: map[netip.AddrPort]*udpSession{}}
	s.svc.Dests = nil
	// No TCP keepalive on either leg (Go's default is on): IPVS and
	// HAProxy leave it to the endpoints, and the setsockopt calls cost
	// measurably per connection.
	lc := net.ListenConfig{Control: freebind, KeepAlive: -1}
	addr := svc.Key.Addr.String()
	var err error
	if svc.Key.Proto == UDP {
		s.pc, err = lc.ListenPacket(ctx, "udp", addr)
	} else {
		s.ln, err = lc.Listen(ctx, "tcp", addr)
	}
	if err != nil {
		stop()
		return nil, err
	}
	s.wg.Add(1)
	if s.ln != nil {
		go s.acceptLoop()
	} else {
		go s.udpLoop()
	}
	return s, nil
}

// freebind lets a listener bind the VIP before (or after) the address is
// on an interface, as a kernel virtual service needs no local address.
func freebind(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		if serr == nil {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func (s *uservice) edit(svc Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc.Scheduler != s.svc.Scheduler {
		if sched := newScheduler(svc.Scheduler); sched != nil {
			s.sched = sched
			s.sched.reset(s.nodes())
		}
	}
	if svc.Persistent != s.svc.Persistent || svc.Netmask != s.svc.Netmask {
		s.persist = map[netip.Addr]persistEntry{}
		s.gen.Add(1)
	}
	svc.Dests = nil
	s.svc = svc
}

func (s *uservice) setDest(kind OpKind, d Dest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := -1
	for j, x := range s.dests {
		if x.Addr == d.Addr {
			i = j
		}
	}
	switch {
	case kind == AddDest && i >= 0:
		return syscall.EEXIST
	case kind != AddDest && i < 0:
		return syscall.ENOENT
	case kind == AddDest:
		s.dests = append(s.dests, &udest{Dest: d})
	case kind == EditDest:
		// Keep the same udest: its live connections stay counted.
		s.dests[i].Dest = d
	default:
		// Established connections to a deleted real go on until they end,
		// as in IPVS; only new ones avoid it.
		s.dests = append(s.dests[:i], s.dests[i+1:]...)
		for k, p := range s.persist {
			if p.dest.Addr == d.Addr {
				delete(s.persist, k)
				s.gen.Add(1)
			}
		}
	}
	s.sched.reset(s.nodes())
	return nil
}

func (s *uservice) nodes() []node {
	ns := make([]node, len(s.dests))
	for i, d := range s.dests {
		ns[i] = d
	}
	return ns
}

// schedule picks the real for a client: its persistence template if any
// and still usable, else the scheduler's choice. skip excludes a real
// that just refused a connection.
func (s *uservice) schedule(src, dst netip.Addr, skip *udest) *udest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var key netip.Addr
	now := time.Now()
	if s.svc.Persistent > 0 {
		p, _ := src.Prefix(int(s.svc.Netmask))
		key = p.Addr()
		if e, ok := s.persist[key]; ok && now.Before(e.expires) && e.dest != skip && usable(e.dest) {
			// A refresh is no change to hand over (see handover.go).
			e.expires = now.Add(time.Duration(s.svc.Persistent) * time.Second)
			s.persist[key] = e
			return e.dest
		}
	}
	nodes := s.nodes()
	if skip != nil {
		for i, n := range nodes {
			if n == skip {
				nodes = append(nodes[:i:i], nodes[i+1:]...)
				break
			}
		}
	}
	n := s.sched.pick(nodes, src, dst)
	if n == nil {
		return nil
	}
	d := n.(*udest)
	if s.svc.Persistent > 0 {
		s.persist[key] = persistEntry{dest: d, expires: now.Add(time.Duration(s.svc.Persistent) * time.Second)}
		s.gen.Add(1)
	}
	return d
}

func (s *uservice) snapshot() *Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.svc
	c.Dests = make(map[netip.AddrPort]Dest, len(s.dests))
	for _, d := range s.dests {
		c.Dests[d.Addr] = d.Dest
	}
	return &c
}

func (s *uservice) stats() ServiceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServiceStats{Counters: s.ctr.load(), Dests: map[string]DestStats{}}
	for _, d := range s.dests {
		a, i := d.conns()
		st.Dests[d.Addr.String()] = DestStats{Counters: d.ctr.load(), Active: a, Inactive: i}
	}
	return st
}

// track registers (on) or forgets a proxied socket; it refuses new ones
// once the service is gone.
func (s *uservice) track(c io.Closer, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.live, c)
		return true
	}
	if s.ctx.Err() != nil {
		return false
	}
	s.live[c] = struct{}{}
	return true
}

// close stops taking new connections; established ones go on.
func (s *uservice) close() {
	s.stop()
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.pc != nil {
		_ = s.pc.Close()
	}
}

// killConns ends every established connection (director shutdown).
func (s *uservice) killConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.live {
		_ = c.Close()
	}
}

func (s *uservice) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.opts.Log.Warn("userspace director: accept", "service", s.svc.Key.String(), "err", err)
			}
			return
		}
		s.wg.Add(1)
		go s.proxyTCP(c.(*net.TCPConn))
	}
}

func addrOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *uservice) proxyTCP(c *net.TCPConn) {
	defer s.wg.Done()
	defer c.Close()
	if !s.track(c, true) {
		return
	}
	defer s.track(c, false)
	src, dst := addrOf(c.RemoteAddr()), addrOf(c.LocalAddr())
	var d *udest
	var up *net.TCPConn
	// A real that refuses gets one stand-in: health checks take it out
	// within seconds, a client should not pay for the gap.
	for try := 0; try < 2; try++ {
		d = s.schedule(src, dst, d)
		if d == nil {
			return
		}
		dctx, cancel := context.WithTimeout(s.ctx, s.opts.DialTimeout)
		dl := net.Dialer{KeepAlive: -1}
		conn, err := dl.DialContext(dctx, "tcp", d.Addr.String())
		cancel()
		if err == nil {
			up = conn.(*net.TCPConn)
			break
		}
		s.opts.Log.Debug("userspace director: real refused", "service", s.svc.Key.String(), "real", d.Addr.String(), "err", err)
	}
	if up == nil {
		return
	}
	defer up.Close()
	if !s.track(up, true) {
		return
	}
	defer s.track(up, false)
	s.ctr.conns.Add(1)
	d.ctr.conns.Add(1)
	d.active.Add(1)
	defer func() {
		d.active.Add(-1)
		d.inactive.Add(1)
		time.AfterFunc(s.opts.Linger, func() { d.inactive.Add(-1) })
	}()

	done := make(chan struct{})
	go func() {
		n, _ := io.Copy(up, c)
		s.ctr.inBytes.Add(uint64(n))
		d.ctr.inBytes.Add(uint64(n))
		_ = up.CloseWrite()
		close(done)
	}()
	n, _ := io.Copy(c, up)
	s.ctr.outBytes.Add(uint64(n))
	d.ctr.outBytes.Add(uint64(n))
	_ = c.CloseWrite()
	<-done
}

// udpSession is one client's flow to its real server.
type udpSession struct {
	up   *net.UDPConn
	dest *udest
	last atomic.Int64 // unix nanos of the last datagram either way
}

func (s *uservice) udpLoop() {
	defer s.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() == nil {
				s.opts.Log.Warn("userspace director: udp read", "service", s.svc.Key.String(), "err", err)
			}
			return
		}
		client, err := netip.ParseAddrPort(from.String())
		if err != nil {
			continue
		}
		sess := s.udpSession(client)
		if sess == nil {
			continue // no real server: dropped, as IPVS drops it
		}
		sess.last.Store(time.Now().UnixNano())
		if _, err := sess.up.Write(buf[:n]); err == nil {
			s.ctr.inPkts.Add(1)
			s.ctr.inBytes.Add(uint64(n))
			sess.dest.ctr.inPkts.Add(1)
			sess.dest.ctr.inBytes.Add(uint64(n))
		}
	}
}

func (s *uservice) udpSession(client netip.AddrPort) *udpSession {
	s.mu.Lock()
	sess := s.udp[client]
	s.mu.Unlock()
	if sess != nil {
		return sess
	}
	d := s.schedule(client.Addr().Unmap(), s.svc.Key.Addr.Addr(), nil)
	if d == nil {
		return nil
	}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(d.Addr))
	if err != nil {
		return nil
	}
	sess = &udpSession{up: up, dest: d}
	sess.last.Store(time.Now().UnixNano())
	s.mu.Lock()
	s.udp[client] = sess
	s.live[up] = struct{}{}
	s.mu.Unlock()
	s.ctr.conns.Add(1)
	d.ctr.conns.Add(1)
	d.inactive.Add(1) // IPVS counts UDP flows as inactive connections
	s.wg.Add(1)
	go s.udpReplies(client, sess)
	return sess
}

// udpReplies copies the real's answers back to the client from the VIP,
// ending the session after UDPIdle without traffic.
func (s *uservice) udpReplies(client netip.AddrPort, sess *udpSession) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.udp, client)
		delete(s.live, sess.up)
		s.mu.Unlock()
		sess.dest.inactive.Add(-1)
		_ = sess.up.Close()
	}()
	to := net.UDPAddrFromAddrPort(client)
	buf := make([]byte, 64<<10)
	for {
		_ = sess.up.SetReadDeadline(time.Unix(0, sess.last.Load()).Add(s.opts.UDPIdle))
		n, err := sess.up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, sess.last.Load())) < s.opts.UDPIdle {
				continue
			}
			return
		}
		sess.last.Store(time.Now().UnixNano())
		if _, err := s.pc.WriteTo(buf[:n], to); err == nil {
			s.ctr.outPkts.Add(1)
			s.ctr.outBytes.Add(uint64(n))
			sess.dest.ctr.outPkts.Add(1)
			sess.dest.ctr.outBytes.Add(uint64(n))
		}
	}
}
