// Package director holds the IPVS table model, the diff that reconciles a
// backend towards a desired table, and the two director backends: kernel
// IPVS through netlink (moby/ipvs) and a userspace TCP/UDP proxy with the
// same schedulers for hosts whose kernel has no IPVS.
package director

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Forwarding methods, with ldirectord's names.
const (
	Gate  = "gate" // direct routing (-g, keepalived DR)
	Masq  = "masq" // NAT (-m)
	IPIP  = "ipip" // tunnel (-i, keepalived TUN)
	Local = "local"
)

// Protocols.
const (
	TCP = "tcp"
	UDP = "udp"
	FWM = "fwm"
)

// Key identifies a virtual service: protocol + address:port, or a
// firewall mark (with the address family it applies to).
type Key struct {
	Proto  string
	Addr   netip.AddrPort // zero for fwmark services
	FWMark uint32
	V6     bool // fwmark services only: the family
}

func (k Key) String() string {
	if k.Proto == FWM {
		if k.V6 {
			return fmt.Sprintf("FWM  %d IPv6", k.FWMark)
		}
		return fmt.Sprintf("FWM  %d", k.FWMark)
	}
	return strings.ToUpper(k.Proto) + "  " + k.Addr.String()
}

// Less orders keys the way ipvsadm -Ln lists them closely enough to be
// stable: by protocol, then address, then mark.
func (k Key) Less(o Key) bool {
	if k.Proto != o.Proto {
		return k.Proto < o.Proto
	}
	if c := k.Addr.Compare(o.Addr); c != 0 {
		return c < 0
	}
	return k.FWMark < o.FWMark
}

// Service is one virtual service's settings (its real servers are kept in
// Dests).
type Service struct {
	Key        Key
	Scheduler  string
	Persistent uint32 // seconds; 0 = not persistent
	Netmask    uint32 // persistence granularity: prefix length (IPv4 /32 and IPv6 /128 are the defaults)
	// The mh scheduler's flags (IP_VS_SVC_F_SCHED_MH_PORT and _FALLBACK
	// in the kernel; the userspace director ignores them).
	MHPort     bool
	MHFallback bool
	Dests      map[netip.AddrPort]Dest
}

// Dest is one real server of a service.
type Dest struct {
	Addr    netip.AddrPort
	Forward string
	Weight  int
	Upper   uint32 // connection thresholds (ldirectord u:N / l:N); 0 = none
	Lower   uint32
}

// Table is a whole director table.
type Table map[Key]*Service

// Keys returns t's keys in order.
func (t Table) Keys() []Key {
	keys := make([]Key, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
	return keys
}

// SortedDests returns s's real servers in address order.
func (s *Service) SortedDests() []Dest {
	ds := make([]Dest, 0, len(s.Dests))
	for _, d := range s.Dests {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Addr.Compare(ds[j].Addr) < 0 })
	return ds
}

// sameSettings reports whether two services need no edit.
func (s *Service) sameSettings(o *Service) bool {
	return s.Scheduler == o.Scheduler && s.Persistent == o.Persistent && (s.Persistent == 0 || s.Netmask == o.Netmask) &&
		s.MHPort == o.MHPort && s.MHFallback == o.MHFallback
}

// Clone copies t deeply.
func (t Table) Clone() Table {
	c := make(Table, len(t))
	for k, s := range t {
		cs := *s
		cs.Dests = make(map[netip.AddrPort]Dest, len(s.Dests))
		for a, d := range s.Dests {
			cs.Dests[a] = d
		}
		c[k] = &cs
	}
	return c
}

// OpKind is what one change does.
type OpKind int

const (
	AddService OpKind = iota
	EditService
	DelService
	AddDest
	EditDest
	DelDest
)

var opNames = [...]string{"add service", "edit service", "delete service", "add real", "edit real", "delete real"}

func (k OpKind) String() string { return opNames[k] }

// Op is one change to a backend. Service carries the service's settings
// (without Dests); Dest is set for real-server ops.
type Op struct {
	Kind    OpKind
	Service Service
	Dest    Dest
}

func (o Op) String() string {
	switch o.Kind {
	case AddService, EditService:
		return fmt.Sprintf("%s %s %s%s", o.Kind, o.Service.Key, o.Service.Scheduler, persistText(o.Service))
	case DelService:
		return fmt.Sprintf("%s %s", o.Kind, o.Service.Key)
	case DelDest:
		return fmt.Sprintf("%s %s -> %s", o.Kind, o.Service.Key, o.Dest.Addr)
	}
	return fmt.Sprintf("%s %s -> %s %s weight %d", o.Kind, o.Service.Key, o.Dest.Addr, o.Dest.Forward, o.Dest.Weight)
}

func persistText(s Service) string {
	t := ""
	if s.MHPort {
		t += " mh-port"
	}
	if s.MHFallback {
		t += " mh-fallback"
	}
	if s.Persistent == 0 {
		return t
	}
	return t + fmt.Sprintf(" persistent %d", s.Persistent)
}

// Diff returns the changes that turn have into want, touching only the
// services in scope (nil scope: want's keys): a director shares the kernel
// table with whatever else programs it, so services it does not own are
// never deleted. Order: services added or edited first, then real servers
// added, edited and deleted, then services deleted.
func Diff(have, want Table, scope map[Key]bool) []Op {
	var adds, dests, dels []Op
	for _, k := range want.Keys() {
		w := want[k]
		h, ok := have[k]
		bare := *w
		bare.Dests = nil
		switch {
		case !ok:
			adds = append(adds, Op{Kind: AddService, Service: bare})
		case !h.sameSettings(w):
			adds = append(adds, Op{Kind: EditService, Service: bare})
		}
		for _, d := range w.SortedDests() {
			var hd Dest
			var present bool
			if ok {
				hd, present = h.Dests[d.Addr]
			}
			switch {
			case !present:
				dests = append(dests, Op{Kind: AddDest, Service: bare, Dest: d})
			case hd != d:
				dests = append(dests, Op{Kind: EditDest, Service: bare, Dest: d})
			}
		}
		if ok {
			for _, d := range h.SortedDests() {
				if _, keep := w.Dests[d.Addr]; !keep {
					dests = append(dests, Op{Kind: DelDest, Service: bare, Dest: d})
				}
			}
		}
	}
	for _, k := range have.Keys() {
		if _, ok := want[k]; ok || (scope != nil && !scope[k]) || scope == nil {
			continue
		}
		bare := *have[k]
		bare.Dests = nil
		dels = append(dels, Op{Kind: DelService, Service: bare})
	}
	return append(append(adds, dests...), dels...)
}
