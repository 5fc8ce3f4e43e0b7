package heartbeat

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Medium is one heartbeat path: a socket or a serial line. Each medium is
// shown as its own link in status, so that an operator sees which cable or
// network failed.
//
// Media are non-blocking descriptors that the engine drains when it wakes
// (see Engine): nothing blocks on them, so no thread wakes per packet.
type Medium interface {
	// Name identifies the link, e.g. "ucast:eth0" or "serial:/dev/ttyS0".
	Name() string
	// Send transmits one packet to every peer the medium reaches, without
	// blocking: a packet that does not fit now is dropped with an error.
	Send(pkt []byte) error
	// Drain reads what is ready without blocking, up to a bounded batch,
	// handing each complete packet to deliver (valid only during the
	// call) with its arrival time in Unix nanoseconds as the kernel
	// stamped it, or 0 if unknown. It returns how many malformed frames it
	// discarded, and more when it stopped with packets still waiting: a
	// flood must not keep the engine from beating and checking deadlines.
	Drain(deliver func(pkt []byte, arrived int64)) (bad int, more bool, err error)
	Close() error
}

// polled is a medium the engine waits on for packets.
type polled interface{ Fd() int }

// udpMedium covers unicast, broadcast and multicast: they differ only in how
// the socket is bound and where packets go.
type udpMedium struct {
	name  string
	fd    int
	dests []unix.Sockaddr
	raw   []rawInet4 // dests as the kernel reads them
	buf   []byte
	oob   []byte
	iov   unix.Iovec
	hdr   unix.Msghdr
}

const rcvBuf = 4 << 20

func (m *udpMedium) Name() string { return m.name }

// sendTo adds a destination.
func (m *udpMedium) sendTo(ap netip.AddrPort) {
	sa := inet4(ap)
	m.dests = append(m.dests, sa)
	m.raw = append(m.raw, toRawInet4(sa))
}

// Fd is the socket, for the engine to wait on.
func (m *udpMedium) Fd() int { return m.fd }

func (m *udpMedium) Send(pkt []byte) error {
	var errs []error
	for i := range m.raw {
		if err := rawSendto(m.fd, pkt, &m.raw[i]); err != nil {
			errs = append(errs, fmt.Errorf("%s: send to %s: %w", m.name, sockaddrString(m.dests[i]), err))
		}
	}
	return errors.Join(errs...)
}

// drainBatch bounds the datagrams one Drain reads: far more than any
// cluster's heartbeats between two wakes, few enough that the engine is
// back to beat and check deadlines within a fraction of a millisecond.
const drainBatch = 256

// Drain reads up to drainBatch datagrams. It uses recvmsg with a header
// prepared once, so a read allocates nothing, and takes the kernel's
// receive timestamp (SO_TIMESTAMPNS) from the control message.
func (m *udpMedium) Drain(deliver func([]byte, int64)) (int, bool, error) {
	for range drainBatch {
		m.hdr.Controllen = uint64(len(m.oob))
		n, errno := rawRecvmsg(m.fd, &m.hdr, unix.MSG_DONTWAIT)
		switch {
		case errno == unix.EAGAIN || errno == unix.EINTR:
			return 0, false, nil
		case errno != 0:
			return 0, false, fmt.Errorf("%s: %w", m.name, errno)
		}
		deliver(m.buf[:min(int(n), len(m.buf))], rxTimestamp(m.oob[:m.hdr.Controllen]))
	}
	return 0, true, nil
}

// KernelDrops is the socket's drop counter.
func (m *udpMedium) KernelDrops() (uint64, error) { return socketDrops(m.fd) }

// Filter has the kernel drop what prog refuses before it is queued.
func (m *udpMedium) Filter(prog []bpf.RawInstruction) error {
	if err := attachFilter(m.fd, prog); err != nil {
		return fmt.Errorf("%s: socket filter: %w", m.name, err)
	}
	return nil
}

// rxTimestamp finds SCM_TIMESTAMPNS in a control message buffer.
func rxTimestamp(oob []byte) int64 {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return ts.Nano()
		}
		oob = oob[min(len(oob), unix.CmsgSpace(l-unix.CmsgLen(0))):]
	}
	return 0
}

func (m *udpMedium) Close() error { return unix.Close(m.fd) }

func sockaddrString(sa unix.Sockaddr) string {
	if s, ok := sa.(*unix.SockaddrInet4); ok {
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(s.Port)).String()
	}
	return fmt.Sprint(sa)
}

func inet4(ap netip.AddrPort) *unix.SockaddrInet4 {
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

// udpSocket opens a non-blocking UDP socket bound to bind. SO_REUSEADDR
// lets several media (unicast on the node's address, broadcast on the
// broadcast address, a multicast group) share one port, each receiving only
// what is addressed to it.
func udpSocket(name string, bind netip.AddrPort, device string, setup func(fd int) error) (*udpMedium, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: socket: %w", name, err)
	}
	fail := func(what string, err error) (*udpMedium, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %s: %w", name, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("SO_TIMESTAMPNS", err)
	}
	// Sockets are drained once per wake, not per packet: leave room for a
	// burst (or a flood) between two wakes. FORCE passes rmem_max as root.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if device != "" {
		if err := unix.BindToDevice(fd, device); err != nil {
			return fail("bind to device "+device, err)
		}
	}
	if setup != nil {
		if err := setup(fd); err != nil {
			return fail("socket options", err)
		}
	}
	if err := unix.Bind(fd, inet4(bind)); err != nil {
		return fail("bind "+bind.String(), err)
	}
	m := &udpMedium{name: name, fd: fd, buf: make([]byte, 2*MaxPacket), oob: make([]byte, 128)}
	m.iov.Base = &m.buf[0]
	m.iov.SetLen(len(m.buf))
	m.hdr.Iov = &m.iov
	m.hdr.SetIovlen(1)
	m.hdr.Control = &m.oob[0]
	return m, nil
}

// NewUCast returns a unicast medium bound to bind that sends to each peer.
func NewUCast(name string, bind netip.Addr, port int, device string, peers []netip.Addr) (Medium, error) {
	m, err := udpSocket(name, netip.AddrPortFrom(bind, uint16(port)), device, nil)
	if err != nil {
		return nil, err
	}
	for _, p := range peers {
		m.sendTo(netip.AddrPortFrom(p, uint16(port)))
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
	m, err := udpSocket(name, ap, device, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	})
	if err != nil {
		return nil, err
	}
	m.sendTo(ap)
	return m, nil
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
	m, err := udpSocket(name, ap, device, func(fd int) error {
		mreq := &unix.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifi.Index)}
		return errors.Join(
			unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq),
			unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)}),
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, ttl),
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, boolInt(loop)),
		)
	})
	if err != nil {
		return nil, err
	}
	m.sendTo(ap)
	return m, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
