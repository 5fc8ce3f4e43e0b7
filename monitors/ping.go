package monitors

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ICMP is what an echo over one address family needs: the raw socket's
// network, the protocol number to parse replies with, the message types.
type ICMP struct {
	Network     string
	Proto       int
	Echo, Reply icmp.Type
}

// ICMPFor returns the ICMP family of ip.
func ICMPFor(ip netip.Addr) ICMP {
	if ip.Is4() {
		return ICMP{"ip4:icmp", 1, ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply}
	}
	return ICMP{"ip6:ipv6-icmp", 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply}
}

// Ping passes when Addr answers one ICMP echo. It needs a raw socket
// (root or CAP_NET_RAW), as ldirectord's and keepalived's ping checks do.
type Ping struct{ Addr string }

func (c Ping) String() string { return "ping " + c.Addr }

func (c Ping) Check(ctx context.Context) Result {
	start := time.Now()
	ip, err := netip.ParseAddr(c.Addr)
	if err != nil {
		return failed(start, "ping", err)
	}
	f := ICMPFor(ip)
	network, proto, typ, reply := f.Network, f.Proto, f.Echo, f.Reply
	conn, err := icmp.ListenPacket(network, "")
	if err != nil {
		return failed(start, "ping", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline(ctx, 5*time.Second))
	var b [4]byte
	_, _ = rand.Read(b[:])
	id, seq := int(binary.BigEndian.Uint16(b[:2])), int(binary.BigEndian.Uint16(b[2:]))
	msg, _ := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("vigil")}}).Marshal(nil)
	dst := &net.IPAddr{IP: ip.AsSlice()}
	if _, err := conn.WriteTo(msg, dst); err != nil {
		return failed(start, "ping", err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return failed(start, "ping", err)
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		// A raw socket sees every echo reply on the host: ours has our
		// id and sequence and comes from the target.
		if e, isEcho := m.Body.(*icmp.Echo); isEcho && e.ID == id && e.Seq == seq && from.String() == dst.String() {
			return passed(start, "echo reply")
		}
	}
}
