package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Medium is one heartbeat path: a socket or a serial line. Each medium is
// shown as its own link in status, so that an operator sees which cable or
// network failed.
type Medium interface {
	// Name identifies the link, e.g. "ucast:eth0" or "serial:/dev/ttyS0".
	Name() string
	// Send transmits one packet to every peer the medium reaches.
	Send(pkt []byte) error
	// Receive blocks for the next packet and returns its length in buf.
	// It returns net.ErrClosed once the medium is closed.
	Receive(buf []byte) (int, error)
	Close() error
}

// udpMedium covers unicast, broadcast and multicast: they differ only in how
// the socket is bound and where packets go.
type udpMedium struct {
	name  string
	conn  *net.UDPConn
	dests []netip.AddrPort
}

func (m *udpMedium) Name() string { return m.name }

func (m *udpMedium) Send(pkt []byte) error {
	var errs []error
	for _, d := range m.dests {
		if _, err := m.conn.WriteToUDPAddrPort(pkt, d); err != nil {
			errs = append(errs, fmt.Errorf("%s: send to %s: %w", m.name, d, err))
		}
	}
	return errors.Join(errs...)
}

func (m *udpMedium) Receive(buf []byte) (int, error) {
	n, _, err := m.conn.ReadFromUDPAddrPort(buf)
	return n, err
}

func (m *udpMedium) Close() error { return m.conn.Close() }

// listenUDP binds with SO_REUSEADDR so that several media (unicast on the
// node's address, broadcast on the broadcast address, a multicast group)
// can share one port, each receiving only what is addressed to it.
func listenUDP(bind netip.AddrPort, device string, setup func(fd int) error) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if device != "" {
				if serr = unix.BindToDevice(int(fd), device); serr != nil {
					serr = fmt.Errorf("bind to device %s: %w", device, serr)
					return
				}
			}
			if setup != nil {
				serr = setup(int(fd))
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", bind.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// NewUCast returns a unicast medium bound to bind that sends to each peer.
func NewUCast(name string, bind netip.Addr, port int, device string, peers []netip.Addr) (Medium, error) {
	conn, err := listenUDP(netip.AddrPortFrom(bind, uint16(port)), device, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m := &udpMedium{name: name, conn: conn}
	for _, p := range peers {
		m.dests = append(m.dests, netip.AddrPortFrom(p, uint16(port)))
	}
	return m, nil
}

// NewBCast returns a medium on the IPv4 broadcast address of device. The
// socket is bound to the broadcast address itself, so it sees broadcasts
// only, and unicast or multicast heartbeats on the same port are counted
// against their own links.
func NewBCast(name, device string, port int) (Medium, error) {
	bcast, err := broadcastAddr(device)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ap := netip.AddrPortFrom(bcast, uint16(port))
	conn, err := listenUDP(ap, device, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &udpMedium{name: name, conn: conn, dests: []netip.AddrPort{ap}}, nil
}

func broadcastAddr(device string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(device)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil {
			continue
		}
		ip, mask := ipn.IP.To4(), ipn.Mask
		if len(mask) == 16 {
			mask = mask[12:]
		}
		var b [4]byte
		for i := range b {
			b[i] = ip[i] | ^mask[i]
		}
		return netip.AddrFrom4(b), nil
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address to broadcast from", device)
}

// NewMCast returns a medium on an IPv4 multicast group joined on device.
func NewMCast(name string, group netip.Addr, device string, port, ttl int, loop bool) (Medium, error) {
	ifi, err := net.InterfaceByName(device)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ap := netip.AddrPortFrom(group, uint16(port))
	conn, err := listenUDP(ap, device, func(fd int) error {
		mreq := &unix.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifi.Index)}
		return errors.Join(
			unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq),
			unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)}),
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, ttl),
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, boolInt(loop)),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &udpMedium{name: name, conn: conn, dests: []netip.AddrPort{ap}}, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
