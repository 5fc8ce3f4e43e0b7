package tiebreak

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"

	"github.com/vigil-ha/vigil/monitors"
)

// family is one ICMP socket (IPv4 or IPv6) and the ping nodes it reaches.
type family struct {
	monitors.ICMP
	targets []netip.Addr
	names   []string // as configured, for Status
	conn    *icmp.PacketConn
}

// Run pings every ping node each Interval until ctx ends, over one raw
// socket per address family (root or CAP_NET_RAW, as heartbeat's ping
// directive needed). Without ping nodes it returns at once.
func (b *Breaker) Run(ctx context.Context) error {
	if len(b.opt.PingNodes) == 0 {
		return nil
	}
	v4 := &family{ICMP: monitors.ICMPFor(netip.IPv4Unspecified())}
	v6 := &family{ICMP: monitors.ICMPFor(netip.IPv6Unspecified())}
	for _, s := range b.opt.PingNodes {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("ping node %q: %w", s, err)
		}
		f := v6
		if a.Is4() {
			f = v4
		}
		f.targets, f.names = append(f.targets, a), append(f.names, s)
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := int(binary.BigEndian.Uint16(idb[:]))
	// On the way out, whether ctx ended or a socket could not be opened,
	// the senders stop and the receivers' sockets close before the wait.
	// (Closing them from context.AfterFunc raced with its stop: Run saw
	// ctx done, stopped the AfterFunc before it ran, and waited forever
	// for a receiver blocked in a read.)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var conns []*icmp.PacketConn
	defer func() {
		cancel()
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	for _, f := range []*family{v4, v6} {
		if len(f.targets) == 0 {
			continue
		}
		conn, err := icmp.ListenPacket(f.Network, "")
		if err != nil {
			return fmt.Errorf("ping nodes: %w", err)
		}
		f.conn = conn
		conns = append(conns, conn)
		var sent sentRing
		wg.Add(2)
		go func() {
			defer wg.Done()
			b.receive(f, id, &sent)
		}()
		go func() {
			defer wg.Done()
			b.send(ctx, f, id, &sent)
		}()
	}
	<-ctx.Done()
	return nil
}

// sentRing remembers when recent echo requests left: an answer to an
// older one counts for nothing.
type sentRing struct {
	mu sync.Mutex
	at [256]struct {
		seq uint16
		t   time.Time
	}
}

func (r *sentRing) put(seq uint16, t time.Time) {
	r.mu.Lock()
	r.at[seq%256].seq, r.at[seq%256].t = seq, t
	r.mu.Unlock()
}

func (r *sentRing) get(seq uint16) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.at[seq%256]; e.seq == seq {
		return e.t
	}
	return time.Time{}
}

func (b *Breaker) send(ctx context.Context, f *family, id int, sent *sentRing) {
	tick := time.NewTicker(b.opt.Interval)
	defer tick.Stop()
	var seq uint16
	for {
		seq++
		msg, _ := (&icmp.Message{Type: f.Echo, Body: &icmp.Echo{ID: id, Seq: int(seq), Data: []byte("vigil tiebreak")}}).Marshal(nil)
		sent.put(seq, time.Now())
		for _, a := range f.targets {
			// An unreachable network is what the ping nodes are for:
			// the error means no answer, nothing more.
			_, _ = f.conn.WriteTo(msg, &net.IPAddr{IP: a.AsSlice(), Zone: a.Zone()})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (b *Breaker) receive(f *family, id int, sent *sentRing) {
	buf := make([]byte, 1500)
	for {
		n, from, err := f.conn.ReadFrom(buf)
		if err != nil {
			return // closed at the end of Run
		}
		m, err := icmp.ParseMessage(f.Proto, buf[:n])
		if err != nil || m.Type != f.Reply {
			continue
		}
		// A raw socket sees every echo reply on the host: ours carry our
		// id and come from a ping node.
		e, ok := m.Body.(*icmp.Echo)
		if !ok || e.ID != id {
			continue
		}
		ip, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		src, _ := netip.AddrFromSlice(ip.IP)
		src = src.Unmap()
		for i, a := range f.targets {
			if a.Unmap() == src {
				if at := sent.get(uint16(e.Seq)); !at.IsZero() {
					b.answer(f.names[i], at)
				}
			}
		}
	}
}
