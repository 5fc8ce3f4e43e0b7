package director

// The kernel's IPVS connection-sync daemons, driven over generic netlink.
// moby/ipvs speaks the IPVS family's service and destination commands but
// not its daemon commands, so this file adds those three beside it:
// IPVS_CMD_NEW_DAEMON, IPVS_CMD_DEL_DAEMON and IPVS_CMD_GET_DAEMON (a dump),
// each carrying one nested IPVS_CMD_ATTR_DAEMON. The numbers and attribute
// types are those of include/uapi/linux/ip_vs.h and of the kernel's
// ip_vs_daemon_policy / ip_vs_genl_fill_daemon (net/netfilter/ipvs/ip_vs_ctl.c,
// Linux 4.3 and later); the tests check the bytes against them.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Sync daemon states (IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP).
const (
	SyncMaster uint32 = 1
	SyncBackup uint32 = 2
)

// SyncStateName is "master", "backup" or the number.
func SyncStateName(s uint32) string {
	switch s {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return fmt.Sprintf("state %d", s)
}

// Kernel defaults for the zero values (ip_vs_sync.c start_sync_thread):
// group 224.0.0.81, port 8848, TTL 1, maxlen from the interface's MTU.
const (
	DefaultSyncGroup = "224.0.0.81"
	DefaultSyncPort  = 8848
	// IfNameMax is IP_VS_IFNAME_MAXLEN less its NUL: the longest
	// interface name the kernel takes.
	IfNameMax = 15
)

// SyncDaemon is one sync daemon's settings. Zero MaxLen, Port and TTL and
// an invalid Group ask for the kernel's defaults; GET_DAEMON reports the
// values the kernel settled on.
type SyncDaemon struct {
	State     uint32     `json:"-"`
	Role      string     `json:"role"` // SyncStateName(State), for status
	Interface string     `json:"interface"`
	SyncID    uint32     `json:"sync_id"`
	MaxLen    uint16     `json:"maxlen,omitempty"`
	Group     netip.Addr `json:"group,omitzero"`
	Port      uint16     `json:"port,omitempty"`
	TTL       uint8      `json:"ttl,omitempty"`
}

func (d SyncDaemon) String() string {
	role := d.Role // what survives JSON
	if d.State != 0 || role == "" {
		role = SyncStateName(d.State)
	}
	s := fmt.Sprintf("%s on %s syncid %d", role, d.Interface, d.SyncID)
	if d.Group.IsValid() || d.Port != 0 {
		s += fmt.Sprintf(" group %s port %d", d.Group, d.Port)
	}
	if d.TTL != 0 {
		s += fmt.Sprintf(" ttl %d", d.TTL)
	}
	if d.MaxLen != 0 {
		s += fmt.Sprintf(" maxlen %d", d.MaxLen)
	}
	return s
}

// Protocol numbers from linux/netlink.h, linux/genetlink.h and
// linux/ip_vs.h.
const (
	genlIDCtrl          = 0x10 // GENL_ID_CTRL
	ctrlCmdGetFamily    = 3    // CTRL_CMD_GETFAMILY
	ctrlAttrFamilyID    = 1    // CTRL_ATTR_FAMILY_ID (u16)
	ctrlAttrFamilyName  = 2    // CTRL_ATTR_FAMILY_NAME (string)
	ipvsGenlName        = "IPVS"
	ipvsGenlVersion     = 1 // IPVS_GENL_VERSION
	ipvsCmdNewDaemon    = 9 // IPVS_CMD_NEW_DAEMON
	ipvsCmdDelDaemon    = 10
	ipvsCmdGetDaemon    = 11
	ipvsCmdAttrDaemon   = 3 // IPVS_CMD_ATTR_DAEMON (nested)
	daemonAttrState     = 1 // IPVS_DAEMON_ATTR_STATE (u32)
	daemonAttrMcastIfn  = 2 // IPVS_DAEMON_ATTR_MCAST_IFN (NUL string, ≤ 16 with NUL)
	daemonAttrSyncID    = 3 // IPVS_DAEMON_ATTR_SYNC_ID (u32)
	daemonAttrSyncMaxLn = 4 // IPVS_DAEMON_ATTR_SYNC_MAXLEN (u16)
	daemonAttrGroup     = 5 // IPVS_DAEMON_ATTR_MCAST_GROUP (in_addr, 4 bytes, network order)
	daemonAttrGroup6    = 6 // IPVS_DAEMON_ATTR_MCAST_GROUP6 (in6_addr, 16 bytes)
	daemonAttrPort      = 7 // IPVS_DAEMON_ATTR_MCAST_PORT (u16, host order)
	daemonAttrTTL       = 8 // IPVS_DAEMON_ATTR_MCAST_TTL (u8)
	nlaFNested          = 1 << 15
	nlaTypeMask         = ^uint16(3 << 14) // NLA_TYPE_MASK
	nlmsgHdrLen         = 16
	genlHdrLen          = 4
)

// attrs builds netlink attributes, each padded to 4 bytes.
type attrs []byte

func (a attrs) add(typ uint16, val []byte) attrs {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(val)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	a = append(append(a, h[:]...), val...)
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

func (a attrs) u8(typ uint16, v uint8) attrs { return a.add(typ, []byte{v}) }

func (a attrs) u16(typ uint16, v uint16) attrs {
	return a.add(typ, binary.NativeEndian.AppendUint16(nil, v))
}

func (a attrs) u32(typ uint16, v uint32) attrs {
	return a.add(typ, binary.NativeEndian.AppendUint32(nil, v))
}

func (a attrs) str(typ uint16, s string) attrs { return a.add(typ, append([]byte(s), 0)) }

// daemonAttrs is the nested IPVS_CMD_ATTR_DAEMON of a NEW_DAEMON request:
// the attributes the kernel requires (state, interface, sync id) and each
// optional one that is set.
func daemonAttrs(d SyncDaemon) attrs {
	var in attrs
	in = in.u32(daemonAttrState, d.State).str(daemonAttrMcastIfn, d.Interface).u32(daemonAttrSyncID, d.SyncID)
	if d.MaxLen != 0 {
		in = in.u16(daemonAttrSyncMaxLn, d.MaxLen)
	}
	if d.Group.Is4() {
		b := d.Group.As4()
		in = in.add(daemonAttrGroup, b[:])
	} else if d.Group.Is6() {
		b := d.Group.As16()
		in = in.add(daemonAttrGroup6, b[:])
	}
	if d.Port != 0 {
		in = in.u16(daemonAttrPort, d.Port)
	}
	if d.TTL != 0 {
		in = in.u8(daemonAttrTTL, d.TTL)
	}
	return attrs(nil).add(ipvsCmdAttrDaemon|nlaFNested, in)
}

// genlMessage is one generic netlink request: nlmsghdr, genlmsghdr, attrs.
func genlMessage(family uint16, flags uint16, seq uint32, cmd, version uint8, a attrs) []byte {
	b := make([]byte, nlmsgHdrLen+genlHdrLen, nlmsgHdrLen+genlHdrLen+len(a))
	binary.NativeEndian.PutUint32(b[0:], uint32(nlmsgHdrLen+genlHdrLen+len(a)))
	binary.NativeEndian.PutUint16(b[4:], family)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	// nlmsg_pid 0: the kernel fills in the socket's port id.
	b[16], b[17] = cmd, version
	return append(b, a...)
}

// newDaemonRequest, delDaemonRequest and getDaemonRequest are the three
// daemon messages as sent (family is the IPVS family's resolved id).
func newDaemonRequest(family uint16, seq uint32, d SyncDaemon) []byte {
	return genlMessage(family, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, ipvsCmdNewDaemon, ipvsGenlVersion, daemonAttrs(d))
}

// delDaemonRequest names only the state: the kernel stops that daemon
// whatever its other settings (ip_vs_genl_del_daemon).
func delDaemonRequest(family uint16, seq uint32, state uint32) []byte {
	in := attrs(nil).u32(daemonAttrState, state)
	return genlMessage(family, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, ipvsCmdDelDaemon, ipvsGenlVersion,
		attrs(nil).add(ipvsCmdAttrDaemon|nlaFNested, in))
}

// getDaemonRequest asks for a dump: one NEW_DAEMON message per running
// daemon, then NLMSG_DONE.
func getDaemonRequest(family uint16, seq uint32) []byte {
	return genlMessage(family, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, ipvsCmdGetDaemon, ipvsGenlVersion, nil)
}

func getFamilyRequest(seq uint32, name string) []byte {
	return genlMessage(genlIDCtrl, unix.NLM_F_REQUEST, seq, ctrlCmdGetFamily, 1, attrs(nil).str(ctrlAttrFamilyName, name))
}

// parseAttrs walks a buffer of netlink attributes, calling f with each
// one's type (flags masked off) and value. It never reads past b.
func parseAttrs(b []byte, f func(typ uint16, val []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("netlink attribute: %d trailing bytes", len(b))
		}
		l := int(binary.NativeEndian.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return fmt.Errorf("netlink attribute: length %d of %d bytes", l, len(b))
		}
		if err := f(binary.NativeEndian.Uint16(b[2:])&nlaTypeMask, b[4:l]); err != nil {
			return err
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			l = len(b)
		}
		b = b[l:]
	}
	return nil
}

// parseDaemon reads one GET_DAEMON answer's attributes (after the genl
// header): one nested IPVS_CMD_ATTR_DAEMON. Unknown attributes are skipped
// (a newer kernel may add some); known ones of the wrong size are errors.
func parseDaemon(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	found := false
	err := parseAttrs(b, func(typ uint16, val []byte) error {
		if typ != ipvsCmdAttrDaemon {
			return nil
		}
		found = true
		return parseAttrs(val, func(typ uint16, v []byte) error {
			size := map[uint16]int{daemonAttrState: 4, daemonAttrSyncID: 4, daemonAttrSyncMaxLn: 2,
				daemonAttrGroup: 4, daemonAttrGroup6: 16, daemonAttrPort: 2, daemonAttrTTL: 1}[typ]
			if size != 0 && len(v) != size {
				return fmt.Errorf("daemon attribute %d: %d bytes, want %d", typ, len(v), size)
			}
			switch typ {
			case daemonAttrState:
				d.State = binary.NativeEndian.Uint32(v)
			case daemonAttrMcastIfn:
				if len(v) > IfNameMax+1 {
					return fmt.Errorf("daemon interface name of %d bytes", len(v))
				}
				d.Interface, _, _ = strings.Cut(string(v), "\x00")
			case daemonAttrSyncID:
				d.SyncID = binary.NativeEndian.Uint32(v)
			case daemonAttrSyncMaxLn:
				d.MaxLen = binary.NativeEndian.Uint16(v)
			case daemonAttrGroup:
				d.Group = netip.AddrFrom4([4]byte(v))
			case daemonAttrGroup6:
				d.Group = netip.AddrFrom16([16]byte(v))
			case daemonAttrPort:
				d.Port = binary.NativeEndian.Uint16(v)
			case daemonAttrTTL:
				d.TTL = v[0]
			}
			return nil
		})
	})
	if err == nil && !found {
		err = errors.New("no daemon attribute in the answer")
	}
	d.Role = SyncStateName(d.State)
	return d, err
}

// nlMessage is one received netlink message.
type nlMessage struct {
	typ   uint16
	flags uint16
	seq   uint32
	data  []byte // after the nlmsghdr
}

// parseMessages splits a datagram into netlink messages.
func parseMessages(b []byte) ([]nlMessage, error) {
	var out []nlMessage
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < nlmsgHdrLen || l > len(b) {
			return out, fmt.Errorf("netlink message: length %d of %d bytes", l, len(b))
		}
		out = append(out, nlMessage{typ: binary.NativeEndian.Uint16(b[4:]), flags: binary.NativeEndian.Uint16(b[6:]),
			seq: binary.NativeEndian.Uint32(b[8:]), data: b[nlmsgHdrLen:l]})
		l = (l + 3) &^ 3
		if l > len(b) {
			l = len(b)
		}
		b = b[l:]
	}
	return out, nil
}

// SyncHandle drives the sync daemons of the network namespace it was
// opened in. One request runs at a time; a request whose context ends
// first returns at once while the kernel finishes it in the background
// (DEL_DAEMON waits for the kernel thread to stop), and later requests
// wait for that one within their own context.
type SyncHandle struct {
	fd     int
	family uint16
	seq    atomic.Uint32
	turn   chan struct{} // one request at a time
	closed bool          // guarded by holding turn
}

// OpenSync opens a generic netlink socket in the caller's network
// namespace (lock the OS thread first when that matters) and resolves
// the IPVS family (the ip_vs module must be loaded).
func OpenSync() (*SyncHandle, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("sync daemons: netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sync daemons: bind netlink socket: %w", err)
	}
	// Bounds a lost answer; a slow request is bounded by its context.
	tv := unix.NsecToTimeval((10 * time.Minute).Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	h := &SyncHandle{fd: fd, turn: make(chan struct{}, 1)}
	msgs, err := h.roundTrip(context.Background(), getFamilyRequest(h.seq.Add(1), ipvsGenlName))
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sync daemons: resolve the %s generic netlink family (is ip_vs loaded?): %w", ipvsGenlName, err)
	}
	for _, m := range msgs {
		if len(m.data) < genlHdrLen {
			continue
		}
		_ = parseAttrs(m.data[genlHdrLen:], func(typ uint16, v []byte) error {
			if typ == ctrlAttrFamilyID && len(v) == 2 {
				h.family = binary.NativeEndian.Uint16(v)
			}
			return nil
		})
	}
	if h.family == 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("sync daemons: no id for the %s generic netlink family", ipvsGenlName)
	}
	return h, nil
}

// Close closes the socket (after any request still running).
func (h *SyncHandle) Close() error {
	h.turn <- struct{}{}
	defer func() { <-h.turn }()
	if h.closed {
		return nil
	}
	h.closed = true
	return unix.Close(h.fd)
}

// Start starts a sync daemon (IPVS_CMD_NEW_DAEMON). The kernel answers
// EEXIST when one of that state runs already.
func (h *SyncHandle) Start(ctx context.Context, d SyncDaemon) error {
	if d.Interface == "" || len(d.Interface) > IfNameMax {
		return fmt.Errorf("sync daemon interface %q: want 1..%d characters", d.Interface, IfNameMax)
	}
	_, err := h.roundTrip(ctx, newDaemonRequest(h.family, h.seq.Add(1), d))
	if err != nil {
		return fmt.Errorf("start %s sync daemon: %w", SyncStateName(d.State), err)
	}
	return nil
}

// Stop stops the sync daemon of that state (IPVS_CMD_DEL_DAEMON); ESRCH
// when none runs.
func (h *SyncHandle) Stop(ctx context.Context, state uint32) error {
	_, err := h.roundTrip(ctx, delDaemonRequest(h.family, h.seq.Add(1), state))
	if err != nil {
		return fmt.Errorf("stop %s sync daemon: %w", SyncStateName(state), err)
	}
	return nil
}

// Daemons lists the running sync daemons (IPVS_CMD_GET_DAEMON), master
// first.
func (h *SyncHandle) Daemons(ctx context.Context) ([]SyncDaemon, error) {
	msgs, err := h.roundTrip(ctx, getDaemonRequest(h.family, h.seq.Add(1)))
	if err != nil {
		return nil, fmt.Errorf("list sync daemons: %w", err)
	}
	var out []SyncDaemon
	for _, m := range msgs {
		if m.typ != h.family || len(m.data) < genlHdrLen {
			continue
		}
		d, err := parseDaemon(m.data[genlHdrLen:])
		if err != nil {
			return nil, fmt.Errorf("list sync daemons: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// roundTrip sends req and collects the answer: the messages up to the
// acknowledgement or NLMSG_DONE, or the kernel's error. It waits for its
// turn and for the answer only as long as ctx lets it.
func (h *SyncHandle) roundTrip(ctx context.Context, req []byte) ([]nlMessage, error) {
	select {
	case h.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("an earlier request is still running: %w", ctx.Err())
	}
	type result struct {
		msgs []nlMessage
		err  error
	}
	done := make(chan result, 1)
	if h.closed {
		<-h.turn
		return nil, fmt.Errorf("sync daemon socket: %w", net.ErrClosed)
	}
	go func() {
		defer func() { <-h.turn }()
		msgs, err := h.exchange(req)
		done <- result{msgs, err}
	}()
	select {
	case r := <-done:
		return r.msgs, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("the kernel has not answered: %w", ctx.Err())
	}
}

func (h *SyncHandle) exchange(req []byte) ([]nlMessage, error) {
	seq := binary.NativeEndian.Uint32(req[8:])
	if err := unix.Sendto(h.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	dump := binary.NativeEndian.Uint16(req[6:])&unix.NLM_F_DUMP != 0
	ack := binary.NativeEndian.Uint16(req[6:])&unix.NLM_F_ACK != 0
	var out []nlMessage
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(h.fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := parseMessages(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.seq != seq {
				continue // the late answer of a request given up on
			}
			switch m.typ {
			case unix.NLMSG_ERROR:
				if len(m.data) < 4 {
					return nil, errors.New("short netlink error message")
				}
				if e := int32(binary.NativeEndian.Uint32(m.data)); e != 0 {
					return nil, unix.Errno(-e)
				}
				return out, nil // the acknowledgement
			case unix.NLMSG_DONE:
				return out, nil // the end of a dump (dumps are not acknowledged)
			default:
				out = append(out, nlMessage{typ: m.typ, flags: m.flags, seq: m.seq, data: append([]byte(nil), m.data...)})
				if !dump && !ack {
					return out, nil
				}
			}
		}
	}
}
