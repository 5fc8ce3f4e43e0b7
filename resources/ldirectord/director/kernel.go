package director

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/ipvs"
)

// KernelDirector is the kernel IPVS Backend. Writes go through moby/ipvs
// (generic netlink). Reading back takes two requests whatever the table's
// size: one netlink dump of the services and one read of /proc/net/ip_vs
// for every real server (netlink wants a round trip per service for its
// reals, which is what made reading 10,000 services slow). /proc does not
// show connection thresholds, so those are taken from what this director
// last applied.
type KernelDirector struct {
	h        *ipvs.Handle
	procPath string
	mu       sync.Mutex
	applied  map[Key]map[netip.AddrPort]Dest // thresholds last written
}

// OpenKernel opens the kernel IPVS table of the current network namespace.
func OpenKernel() (*KernelDirector, error) {
	if _, err := os.Stat(procIPVS); err != nil {
		return nil, fmt.Errorf("kernel IPVS: %w (is the ip_vs module loaded?)", err)
	}
	h, err := ipvs.New("")
	if err != nil {
		return nil, fmt.Errorf("kernel IPVS: %w", err)
	}
	// /proc/net follows the process's first thread, which Go may have
	// parked in another namespace; thread-self is the caller's own.
	path := "/proc/thread-self/net/ip_vs"
	if _, err := os.Stat(path); err != nil {
		path = procIPVS
	}
	return &KernelDirector{h: h, procPath: path, applied: map[Key]map[netip.AddrPort]Dest{}}, nil
}

func (k *KernelDirector) Name() string { return Kernel }

func (k *KernelDirector) Close() error { k.h.Close(); return nil }

func (k *KernelDirector) Read() (Table, error) {
	f, err := os.Open(k.procPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ParseProcIPVS(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, err
	}
	// /proc shows persistence timeouts in jiffies: take the services'
	// settings from one netlink dump instead.
	svcs, err := k.h.GetServices()
	if err != nil {
		return nil, err
	}
	for _, ks := range svcs {
		if s, ok := t[keyOf(ks)]; ok {
			s.Persistent, s.Netmask = 0, 0
			s.MHPort = ks.Flags&svcFlagMHPort != 0 && s.Scheduler == "mh"
			s.MHFallback = ks.Flags&svcFlagMHFallback != 0 && s.Scheduler == "mh"
			if ks.Flags&svcFlagPersistent != 0 {
				s.Persistent = ks.Timeout
				s.Netmask = uint32(bits.OnesCount32(ks.Netmask))
				if ks.AddressFamily == syscall.AF_INET6 {
					s.Netmask = ks.Netmask
				}
			}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for key, s := range t {
		for a, d := range s.Dests {
			if ad, ok := k.applied[key][a]; ok {
				d.Upper, d.Lower = ad.Upper, ad.Lower
				s.Dests[a] = d
			}
		}
	}
	return t, nil
}

func (k *KernelDirector) Apply(ops []Op) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return applyAll(ops, func(op Op) error {
		svc := toIPVSService(op.Service)
		var err error
		switch op.Kind {
		case AddService:
			err = k.h.NewService(svc)
		case EditService:
			err = k.h.UpdateService(svc)
		case DelService:
			err = k.h.DelService(svc)
			delete(k.applied, op.Service.Key)
		case AddDest:
			err = k.h.NewDestination(svc, toIPVSDest(op.Dest))
		case EditDest:
			err = k.h.UpdateDestination(svc, toIPVSDest(op.Dest))
		case DelDest:
			err = k.h.DelDestination(svc, toIPVSDest(op.Dest))
			delete(k.applied[op.Service.Key], op.Dest.Addr)
		}
		if err == nil && (op.Kind == AddDest || op.Kind == EditDest) {
			if k.applied[op.Service.Key] == nil {
				k.applied[op.Service.Key] = map[netip.AddrPort]Dest{}
			}
			k.applied[op.Service.Key][op.Dest.Addr] = op.Dest
		}
		return err
	})
}

// Stats asks netlink for counters: one dump of services and one per
// service for its reals (status is not a hot path).
func (k *KernelDirector) Stats() (map[Key]ServiceStats, error) {
	svcs, err := k.h.GetServices()
	if err != nil {
		return nil, err
	}
	out := map[Key]ServiceStats{}
	for _, s := range svcs {
		key := keyOf(s)
		st := ServiceStats{Counters: counterOf(ipvs.DstStats(s.Stats)), Dests: map[string]DestStats{}}
		ds, err := k.h.GetDestinations(s)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			ip, _ := netip.AddrFromSlice(d.Address)
			a := netip.AddrPortFrom(ip.Unmap(), d.Port)
			st.Dests[a.String()] = DestStats{Counters: counterOf(d.Stats),
				Active: int64(d.ActiveConnections), Inactive: int64(d.InactiveConnections)}
		}
		out[key] = st
	}
	return out, nil
}

func counterOf(s ipvs.DstStats) Counters {
	return Counters{Conns: uint64(s.Connections), InPkts: uint64(s.PacketsIn), OutPkts: uint64(s.PacketsOut),
		InBytes: s.BytesIn, OutBytes: s.BytesOut}
}

func keyOf(s *ipvs.Service) Key {
	if s.FWMark != 0 {
		return Key{Proto: FWM, FWMark: s.FWMark, V6: s.AddressFamily == syscall.AF_INET6}
	}
	ip, _ := netip.AddrFromSlice(s.Address)
	proto := TCP
	if s.Protocol == syscall.IPPROTO_UDP {
		proto = UDP
	}
	return Key{Proto: proto, Addr: netip.AddrPortFrom(ip.Unmap(), s.Port)}
}

// Service flags (include/uapi/linux/ip_vs.h); the mh scheduler reads
// SCHED1 as mh-fallback and SCHED2 as mh-port (ip_vs_mh.c).
const (
	svcFlagPersistent = 0x0001 // IP_VS_SVC_F_PERSISTENT
	svcFlagMHFallback = 0x0008 // IP_VS_SVC_F_SCHED1 = IP_VS_SVC_F_SCHED_MH_FALLBACK
	svcFlagMHPort     = 0x0010 // IP_VS_SVC_F_SCHED2 = IP_VS_SVC_F_SCHED_MH_PORT
)

func toIPVSService(s Service) *ipvs.Service {
	v6 := s.Key.V6 || s.Key.Addr.Addr().Is6()
	out := &ipvs.Service{SchedName: s.Scheduler, AddressFamily: syscall.AF_INET}
	if v6 {
		out.AddressFamily = syscall.AF_INET6
	}
	switch s.Key.Proto {
	case FWM:
		out.FWMark = s.Key.FWMark
	case UDP:
		out.Protocol = syscall.IPPROTO_UDP
	default:
		out.Protocol = syscall.IPPROTO_TCP
	}
	if s.Key.Proto != FWM {
		out.Address = net.IP(s.Key.Addr.Addr().AsSlice())
		out.Port = s.Key.Addr.Port()
	}
	// The kernel reads an IPv4 netmask as network-order mask bits and an
	// IPv6 one as a prefix length; moby/ipvs writes the number natively.
	out.Netmask = 0xFFFFFFFF
	if v6 {
		out.Netmask = 128
	}
	if s.MHPort {
		out.Flags |= svcFlagMHPort
	}
	if s.MHFallback {
		out.Flags |= svcFlagMHFallback
	}
	if s.Persistent > 0 {
		out.Flags |= svcFlagPersistent
		out.Timeout = s.Persistent
		if v6 {
			out.Netmask = s.Netmask
		} else {
			var m [4]byte
			binary.BigEndian.PutUint32(m[:], ^uint32(0)<<(32-s.Netmask))
			out.Netmask = binary.NativeEndian.Uint32(m[:])
		}
	}
	return out
}

func toIPVSDest(d Dest) *ipvs.Destination {
	out := &ipvs.Destination{Address: net.IP(d.Addr.Addr().AsSlice()), Port: d.Addr.Port(), Weight: d.Weight,
		UpperThreshold: d.Upper, LowerThreshold: d.Lower, AddressFamily: syscall.AF_INET}
	if d.Addr.Addr().Is6() {
		out.AddressFamily = syscall.AF_INET6
	}
	switch d.Forward {
	case Masq:
		out.ConnectionFlags = ipvs.ConnectionFlagMasq
	case IPIP:
		out.ConnectionFlags = ipvs.ConnectionFlagTunnel
	case Local:
		out.ConnectionFlags = ipvs.ConnectionFlagLocalNode
	default:
		out.ConnectionFlags = ipvs.ConnectionFlagDirectRoute
	}
	return out
}

var procForward = map[string]string{"Route": Gate, "Masq": Masq, "Tunnel": IPIP, "Local": Local}

// ParseProcIPVS reads the kernel's /proc/net/ip_vs listing.
//
//	TCP  0A000003:0050 wlc persistent 300 FFFFFF00
//	  -> 0A000102:0050      Route   5      0          0
//	UDP  [fd00::3]:0035 rr
//	FWM  00000001 rr
func ParseProcIPVS(r *bufio.Reader) (Table, error) {
	t := Table{}
	var cur *Service
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if line == "" && err != nil {
			break
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || n <= 3:
			continue
		case f[0] == "->":
			if cur == nil || len(f) < 4 {
				return nil, fmt.Errorf("line %d: real server outside a service: %q", n, line)
			}
			a, err := parseProcAddr(f[1])
			w, werr := strconv.Atoi(f[3])
			fwd, ok := procForward[f[2]]
			if err != nil || werr != nil || !ok {
				return nil, fmt.Errorf("line %d: bad real server %q", n, line)
			}
			cur.Dests[a] = Dest{Addr: a, Forward: fwd, Weight: w}
			if cur.Key.Proto == FWM && a.Addr().Is6() {
				cur.Key.V6 = true
			}
		default:
			s, err := parseProcService(f)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			cur = s
			t[s.Key] = s
		}
	}
	// fwmark keys learn their family from their reals: re-key them.
	for k, s := range t {
		if k != s.Key {
			delete(t, k)
			t[s.Key] = s
		}
	}
	return t, nil
}

func parseProcService(f []string) (*Service, error) {
	if len(f) < 3 {
		return nil, fmt.Errorf("bad service %q", strings.Join(f, " "))
	}
	s := &Service{Scheduler: f[2], Dests: map[netip.AddrPort]Dest{}}
	switch f[0] {
	case "TCP", "UDP":
		a, err := parseProcAddr(f[1])
		if err != nil {
			return nil, err
		}
		s.Key = Key{Proto: strings.ToLower(f[0]), Addr: a}
	case "FWM":
		m, err := strconv.ParseUint(f[1], 16, 32)
		if err != nil {
			return nil, fmt.Errorf("bad mark %q", f[1])
		}
		s.Key = Key{Proto: FWM, FWMark: uint32(m)}
	default:
		return nil, fmt.Errorf("protocol %q not supported", f[0])
	}
	for i := 3; i+2 < len(f); i++ {
		if f[i] != "persistent" {
			continue
		}
		to, err1 := strconv.ParseUint(f[i+1], 10, 32)
		mask, err2 := strconv.ParseUint(f[i+2], 16, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad persistence %q", strings.Join(f[i:], " "))
		}
		s.Persistent = uint32(to)
		if s.Key.Addr.Addr().Is6() {
			s.Netmask = uint32(mask)
		} else {
			s.Netmask = uint32(bits.OnesCount32(uint32(mask)))
		}
	}
	return s, nil
}

// parseProcAddr reads "0A000003:0050" or "[fd00::3]:0050".
func parseProcAddr(s string) (netip.AddrPort, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(s[i+1:], 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	h := s[:i]
	if strings.HasPrefix(h, "[") {
		ip, err := netip.ParseAddr(strings.Trim(h, "[]"))
		if err != nil {
			return netip.AddrPort{}, err
		}
		return netip.AddrPortFrom(ip, uint16(port)), nil
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 4 {
		return netip.AddrPort{}, errors.New("bad IPv4 address " + h)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b)), uint16(port)), nil
}
