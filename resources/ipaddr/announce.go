package ipaddr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// wire sends announcements for one VIP on one link and reports other
// hosts claiming it.
type wire interface {
	// announce sends one announcement: for IPv4 a gratuitous ARP request
	// and a gratuitous ARP reply (hosts honour one or the other), for IPv6
	// an unsolicited neighbour advertisement with the override flag.
	announce() error
	// claimant blocks until a frame from another hardware address claims
	// the VIP and returns that address; it fails once the wire is closed.
	claimant() (net.HardwareAddr, error)
	close() error
}

// Stats counts what an announcer did; it is shown in monitor output.
type Stats struct {
	Sent, Failed, Contested atomic.Uint64
}

func (s *Stats) String() string {
	return fmt.Sprintf("announcements sent %d, failed %d; foreign claims seen %d", s.Sent.Load(), s.Failed.Load(), s.Contested.Load())
}

// announcer announces one held VIP: a burst at once, a second burst
// later, an optional refresh, and fresh bursts whenever ownership was
// contested or a contest ends.
type announcer struct {
	vip    netip.Addr
	ifname string
	cfg    Announce
	w      wire
	log    *slog.Logger
	stats  Stats

	kick   chan string
	claims chan net.HardwareAddr
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sendMu sync.Mutex
	halted bool
	last   time.Time // last announcement, for rate-limiting replies to claims
}

// contestQuiet is how long no foreign claim must be seen before a contest
// counts as over.
const contestQuiet = time.Second

func openWire(vip netip.Addr, ifi *net.Interface) (wire, error) {
	if vip.Is4() {
		return openARP(vip, ifi)
	}
	return openND(vip, ifi)
}

// startAnnouncer sends the first announcement before it returns, so a
// completed start means the network has been told; the rest runs in the
// background until stop.
func startAnnouncer(vip netip.Addr, ifi *net.Interface, cfg Announce, log *slog.Logger) (*announcer, error) {
	w, err := openWire(vip, ifi)
	if err != nil {
		return nil, fmt.Errorf("announce %s on %s: %w", vip, ifi.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &announcer{vip: vip, ifname: ifi.Name, cfg: cfg, w: w, log: log.With("vip", vip.String(), "interface", ifi.Name),
		kick: make(chan string, 1), claims: make(chan net.HardwareAddr, 16), cancel: cancel}
	sent := 0
	if cfg.Count > 0 {
		a.send("takeover")
		sent = 1
	}
	a.wg.Add(2)
	go a.run(ctx, sent)
	go a.watch(ctx)
	return a, nil
}

// halt stops sending at once: when it returns no announcement is being
// or will be sent, so the address can go.
func (a *announcer) halt() {
	a.cancel()
	a.sendMu.Lock()
	a.halted = true
	a.sendMu.Unlock()
}

// stop halts the announcer, closes its socket and waits for its
// goroutines (closing a packet socket takes milliseconds).
func (a *announcer) stop() {
	a.halt()
	_ = a.w.close() // unblocks watch
	a.wg.Wait()
}

// reannounce asks for a fresh burst (reload, or ownership just resolved).
func (a *announcer) reannounce(reason string) {
	select {
	case a.kick <- reason:
	default: // one is already pending
	}
}

func (a *announcer) send(why string) {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	if a.halted {
		return
	}
	a.last = time.Now()
	if err := a.w.announce(); err != nil {
		// Never fatal: the address is configured, and the next frame of the
		// burst, the refresh or the kernel's own replies may get through.
		a.stats.Failed.Add(1)
		a.log.Warn("announcement failed", "why", why, "err", err)
		return
	}
	a.stats.Sent.Add(1)
}

// burst sends cfg.Count announcements cfg.Interval apart, the first
// `skip` of which were already sent; it stops early on cancel.
func (a *announcer) burst(ctx context.Context, why string, skip int) {
	for i := skip; i < a.cfg.Count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(a.cfg.Interval):
			}
		}
		a.send(why)
	}
	a.log.Debug("announced", "why", why, "count", a.cfg.Count, "interval", a.cfg.Interval, "stats", a.stats.String())
}

func (a *announcer) run(ctx context.Context, sent int) {
	defer a.wg.Done()
	a.burst(ctx, "takeover", sent)
	var repeat, refresh, quiet <-chan time.Time
	if a.cfg.Repeat > 0 {
		repeat = time.After(a.cfg.Repeat)
	}
	if a.cfg.Refresh > 0 {
		t := time.NewTicker(a.cfg.Refresh)
		defer t.Stop()
		refresh = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-repeat:
			repeat = nil
			a.burst(ctx, "second burst", 0)
		case <-refresh:
			a.send("refresh")
		case why := <-a.kick:
			a.log.Info("re-announcing", "why", why)
			a.burst(ctx, why, 0)
		case mac := <-a.claims:
			a.stats.Contested.Add(1)
			// Answer each claim (after the first, at most once per
			// interval), so caches that just learned the claimant's
			// address learn ours again.
			if quiet == nil {
				a.log.Warn("another host claims the VIP; re-announcing while it does", "claimant", mac.String())
				a.send("contested")
			} else if time.Since(a.last) >= a.cfg.Interval {
				a.send("contested")
			}
			quiet = time.After(contestQuiet)
		case <-quiet:
			quiet = nil
			a.log.Info("contest over: no foreign claim for "+contestQuiet.String()+"; re-announcing", "stats", a.stats.String())
			a.burst(ctx, "contest over", 0)
		}
	}
}

// watch feeds foreign claims to run until the wire is closed.
func (a *announcer) watch(ctx context.Context) {
	defer a.wg.Done()
	for {
		mac, err := a.w.claimant()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return
			}
			a.log.Debug("reading the link", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // back off from a persistent read error
			}
			continue
		}
		select {
		case a.claims <- mac:
		default: // run is busy with a burst that answers it anyway
		}
	}
}

// arpWire announces an IPv4 VIP with gratuitous ARP.
type arpWire struct {
	c        *arp.Client
	mac      net.HardwareAddr
	vip      netip.Addr
	req, rep *arp.Packet
}

func openARP(vip netip.Addr, ifi *net.Interface) (*arpWire, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s has no Ethernet address", ifi.Name)
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, err
	}
	w := &arpWire{c: c, mac: ifi.HardwareAddr, vip: vip}
	// RFC 5227's announcement (a request with sender = target = VIP, target
	// hardware zero) and the reply form Linux treats as gratuitous only
	// when its target hardware address is broadcast.
	if w.req, err = arp.NewPacket(arp.OperationRequest, w.mac, vip, net.HardwareAddr{0, 0, 0, 0, 0, 0}, vip); err == nil {
		w.rep, err = arp.NewPacket(arp.OperationReply, w.mac, vip, ethernet.Broadcast, vip)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return w, nil
}

func (w *arpWire) announce() error {
	return errors.Join(w.c.WriteTo(w.req, ethernet.Broadcast), w.c.WriteTo(w.rep, ethernet.Broadcast))
}

func (w *arpWire) claimant() (net.HardwareAddr, error) {
	for {
		p, _, err := w.c.Read()
		if err != nil {
			return nil, err
		}
		if p.SenderIP == w.vip && !bytes.Equal(p.SenderHardwareAddr, w.mac) {
			return p.SenderHardwareAddr, nil
		}
	}
}

func (w *arpWire) close() error { return w.c.Close() }

// ndWire announces an IPv6 VIP with unsolicited neighbour advertisements
// on a raw ICMPv6 socket (the kernel fills in the checksum).
type ndWire struct {
	pc  *ipv6.PacketConn
	ifi *net.Interface
	vip netip.Addr
	na  []byte
}

const (
	icmpNA     = 136
	naOverride = 0x20
	optTLLA    = 2
)

var allNodes = &net.IPAddr{IP: net.ParseIP("ff02::1")}

func openND(vip netip.Addr, ifi *net.Interface) (*ndWire, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s has no Ethernet address", ifi.Name)
	}
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
	// Type, code, checksum, flags (override; not solicited, not a router),
	// target, and the target link-layer address option (RFC 4861 4.4).
	na := make([]byte, 0, 32)
	na = append(na, icmpNA, 0, 0, 0, naOverride, 0, 0, 0)
	na = append(na, vip.AsSlice()...)
	na = append(na, optTLLA, 1)
	na = append(na, ifi.HardwareAddr...)
	return &ndWire{pc: pc, ifi: ifi, vip: vip, na: na}, nil
}

func (w *ndWire) announce() error {
	// Neighbour discovery messages must arrive with hop limit 255.
	_, err := w.pc.WriteTo(w.na, &ipv6.ControlMessage{HopLimit: 255, IfIndex: w.ifi.Index}, allNodes)
	return err
}

func (w *ndWire) claimant() (net.HardwareAddr, error) {
	b := make([]byte, 1500)
	for {
		n, cm, _, err := w.pc.ReadFrom(b)
		if err != nil {
			return nil, err
		}
		if cm != nil && cm.IfIndex != w.ifi.Index || n < 24 || b[0] != icmpNA {
			continue
		}
		if t, ok := netip.AddrFromSlice(b[8:24]); !ok || t != w.vip {
			continue
		}
		for o := b[24:n]; len(o) >= 8 && o[1] > 0 && int(o[1])*8 <= len(o); o = o[int(o[1])*8:] {
			if o[0] == optTLLA && !bytes.Equal(o[2:8], w.ifi.HardwareAddr) {
				return net.HardwareAddr(bytes.Clone(o[2:8])), nil
			}
		}
	}
}

func (w *ndWire) close() error { return w.pc.Close() }
