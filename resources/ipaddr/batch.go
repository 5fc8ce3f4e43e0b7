package ipaddr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// nlBatch is how many address changes go to the kernel in one message
// (a release's deletions, a burst of starts' adds). The kernel still
// takes them one by one, but the request, the wake-up and the answer are
// paid once per batch, not per address: in the lab, 1,000 deletions took
// 25 µs each one at a time and 11 µs each 64 at a time (more per batch
// gained nothing). Their answers, 64 short acknowledgements, fit any
// socket buffer.
const nlBatch = 64

// nlWriter is a writer of the view's pool: a netlink handle for single
// changes and a socket of its own for batches and requests the handle
// cannot send (it waits for each answer before the next request, and has
// no call for an interface's IPv4 settings).
type nlWriter struct {
	*netlink.Handle
	fd  int
	seq uint32
	buf []byte
}

// openWriter opens a writer in the calling thread's namespace; each of
// its requests waits at most wait for the kernel's answer.
func openWriter(wait time.Duration) (*nlWriter, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	if err := h.SetSocketTimeout(wait); err != nil {
		h.Close()
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, err
	}
	tv := unix.NsecToTimeval(wait.Nanoseconds())
	err = errors.Join(
		unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}),
		// An error's answer without a copy of the request.
		unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1),
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	if err != nil {
		h.Close()
		unix.Close(fd)
		return nil, err
	}
	return &nlWriter{Handle: h, fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (w *nlWriter) Close() {
	w.Handle.Close()
	unix.Close(w.fd)
}

// AddrDelAll deletes as, nlBatch to a message, and returns each one's
// result (nil: deleted). A kernel that refuses one still takes the
// others.
func (w *nlWriter) AddrDelAll(as []*netlink.Addr) []error { return w.all(as, delRequest) }

// AddrAddAll adds as (none with a peer), nlBatch to a message, and
// returns each one's result as AddrAdd would (EEXIST: it is there).
func (w *nlWriter) AddrAddAll(as []*netlink.Addr) []error { return w.all(as, addRequest) }

// all sends the request build makes of each of as, nlBatch to a
// message, and returns each one's result.
func (w *nlWriter) all(as []*netlink.Addr, build func(seq uint32, a *netlink.Addr) []byte) []error {
	errs := make([]error, len(as))
	for lo := 0; lo < len(as); lo += nlBatch {
		hi := min(len(as), lo+nlBatch)
		w.exchange(func(seq uint32, i int) []byte { return build(seq, as[lo+i]) }, errs[lo:hi])
	}
	return errs
}

// PromoteSecondaries switches promote_secondaries on for link: deleting
// its primary address then leaves its secondaries up. Set with netlink,
// not in /proc/sys, so that it is the link of the namespace the socket
// was opened in whatever thread calls.
func (w *nlWriter) PromoteSecondaries(link int) error {
	errs := make([]error, 1)
	w.exchange(func(seq uint32, _ int) []byte {
		req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
		req.Seq = seq
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.Data[0].(*nl.IfInfomsg).Index = int32(link)
		spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
		conf := spec.AddRtAttr(unix.AF_INET, nil).AddRtAttr(unix.IFLA_INET_CONF, nil)
		conf.AddRtAttr(ipv4DevconfPromoteSecondaries, nl.Uint32Attr(1))
		req.AddData(spec)
		return req.Serialize()
	}, errs)
	return errs[0]
}

// ipv4DevconfPromoteSecondaries is IPV4_DEVCONF_PROMOTE_SECONDARIES
// (linux/ip.h), which x/sys/unix does not name.
const ipv4DevconfPromoteSecondaries = 20

// exchange sends len(errs) requests, the i-th made by build with its
// sequence number, in one message, and sets errs[i] to the kernel's
// answer to it (nil: done).
func (w *nlWriter) exchange(build func(seq uint32, i int) []byte, errs []error) {
	base := w.seq + 1
	var b []byte
	for i := range errs {
		b = append(b, build(base+uint32(i), i)...)
	}
	w.seq += uint32(len(errs))
	if err := unix.Sendto(w.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return
	}
	answered := make([]bool, len(errs))
	for left := len(errs); left > 0; {
		n, _, err := unix.Recvfrom(w.fd, w.buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		var ms []syscall.NetlinkMessage
		if err == nil {
			ms, err = syscall.ParseNetlinkMessage(w.buf[:n])
		}
		if err != nil {
			// No answer within the wait: the rest count as failed, and a
			// late answer is told apart by its number next time.
			for i, done := range answered {
				if !done {
					errs[i] = fmt.Errorf("the kernel's answer: %w", err)
				}
			}
			return
		}
		for _, m := range ms {
			i := m.Header.Seq - base
			if m.Header.Type != unix.NLMSG_ERROR || i >= uint32(len(errs)) || answered[i] || len(m.Data) < 4 {
				continue // not an answer to these requests
			}
			answered[i], left = true, left-1
			if errno := -int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
				errs[i] = unix.Errno(errno)
			}
		}
	}
}

// addrRequest is what an RTM_NEWADDR and an RTM_DELADDR for a have in
// common, as netlink.Handle sends them for an address without a peer:
// the interface, the prefix length, the address as local and as address.
func addrRequest(typ, flags int, seq uint32, a *netlink.Addr) (*nl.NetlinkRequest, *nl.IfAddrmsg, net.IP) {
	req := nl.NewNetlinkRequest(typ, flags)
	req.Seq = seq
	family := nl.GetIPFamily(a.IP)
	msg := nl.NewIfAddrmsg(family)
	msg.Index = uint32(a.LinkIndex)
	bits, _ := a.Mask.Size()
	msg.Prefixlen = uint8(bits)
	ip := a.IP.To16()
	if family == unix.AF_INET {
		ip = a.IP.To4()
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
	return req, msg, ip
}

// addRequest is RTM_NEWADDR for a as netlink.Handle.AddrAdd sends it
// for an address without a peer or a scope: label, flags, broadcast
// (given, or computed for an IPv4 prefix up to /30) and lifetimes.
func addRequest(seq uint32, a *netlink.Addr) []byte {
	req, msg, ip := addrRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK, seq, a)
	if a.Flags != 0 {
		if a.Flags <= 0xff {
			msg.Flags = uint8(a.Flags)
		} else {
			req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(uint32(a.Flags))))
		}
	}
	if msg.Family == unix.AF_INET {
		brd := a.Broadcast.To4()
		if bits, size := a.Mask.Size(); brd == nil && bits < 31 {
			brd = make(net.IP, size/8)
			for i := range ip {
				brd[i] = ip[i] | ^a.Mask[i]
			}
		}
		if brd != nil && !brd.Equal(net.IPv4zero) {
			req.AddData(nl.NewRtAttr(unix.IFA_BROADCAST, brd))
		}
		if a.Label != "" {
			req.AddData(nl.NewRtAttr(unix.IFA_LABEL, nl.ZeroTerminated(a.Label)))
		}
	}
	if a.ValidLft > 0 || a.PreferedLft > 0 {
		ci := nl.IfaCacheInfo{IfaCacheinfo: unix.IfaCacheinfo{Valid: uint32(a.ValidLft), Prefered: uint32(a.PreferedLft)}}
		req.AddData(nl.NewRtAttr(unix.IFA_CACHEINFO, ci.Serialize()))
	}
	return req.Serialize()
}

// delRequest is RTM_DELADDR for a as netlink.Handle.AddrDel sends it for
// an address without a peer or a label, less the broadcast it adds for
// a short IPv4 prefix, which the kernel does not match a deletion on.
func delRequest(seq uint32, a *netlink.Addr) []byte {
	req, _, _ := addrRequest(unix.RTM_DELADDR, unix.NLM_F_ACK, seq, a)
	return req.Serialize()
}
