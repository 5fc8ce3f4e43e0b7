package ipaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// placement is where a VIP goes: the link and the exact address.
type placement struct {
	link   netlink.Link
	prefix netip.Prefix
}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func toPrefix(a netlink.Addr) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), bits), true
}

// find returns the address ip as configured on any link, if it is.
func find(ip netip.Addr) (netlink.Link, *netlink.Addr, error) {
	addrs, err := netlink.AddrList(nil, family(ip))
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses: %w", err)
	}
	for i, a := range addrs {
		if p, ok := toPrefix(a); ok && p.Addr() == ip {
			link, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, nil, fmt.Errorf("link %d: %w", a.LinkIndex, err)
			}
			return link, &addrs[i], nil
		}
	}
	return nil, nil, nil
}

// resolve decides where p's VIP belongs: the named interface, or the one
// whose subnet holds the VIP (the longest such prefix); the prefix length
// is the configured one, else that subnet's, else a host route.
func resolve(p Params) (placement, error) {
	addrs, err := netlink.AddrList(nil, family(p.IP))
	if err != nil {
		return placement{}, fmt.Errorf("list addresses: %w", err)
	}
	best, bestBits := -1, -1
	for _, a := range addrs {
		pf, ok := toPrefix(a)
		if !ok || pf.Addr() == p.IP || !pf.Masked().Contains(p.IP) || pf.Bits() <= bestBits {
			continue
		}
		if p.NIC != "" {
			if l, err := netlink.LinkByIndex(a.LinkIndex); err != nil || l.Attrs().Name != p.NIC {
				continue
			}
		}
		best, bestBits = a.LinkIndex, pf.Bits()
	}
	var link netlink.Link
	switch {
	case p.NIC != "":
		if link, err = netlink.LinkByName(p.NIC); err != nil {
			return placement{}, fmt.Errorf("interface %s: %w", p.NIC, err)
		}
	case best >= 0:
		if link, err = netlink.LinkByIndex(best); err != nil {
			return placement{}, fmt.Errorf("link %d: %w", best, err)
		}
	default:
		return placement{}, fmt.Errorf("no interface has a subnet holding %s: set nic", p.IP)
	}
	bits := p.Bits
	if bits == 0 {
		bits = bestBits
	}
	if bits <= 0 {
		bits = p.IP.BitLen()
	}
	return placement{link: link, prefix: netip.PrefixFrom(p.IP, bits)}, nil
}

// add configures the VIP; it reports whether the address was already
// there (then it is left as it is: a second start is not a failure).
func add(p Params, at placement) (already bool, err error) {
	if l, a, err := find(p.IP); err != nil {
		return false, err
	} else if a != nil {
		if l.Attrs().Index != at.link.Attrs().Index {
			return false, fmt.Errorf("%s is already configured on %s, not %s", p.IP, l.Attrs().Name, at.link.Attrs().Name)
		}
		return true, nil
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.IP.AsSlice(), Mask: net.CIDRMask(at.prefix.Bits(), p.IP.BitLen())}, Label: p.Label}
	if p.Broadcast.IsValid() {
		a.Broadcast = p.Broadcast.AsSlice()
	}
	if p.IP.Is6() {
		// Duplicate address detection would hold the address tentative
		// (unusable) for a second or more after a failover; the cluster
		// already guarantees that no other director holds it.
		a.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(at.link, a); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return true, nil
		}
		return false, fmt.Errorf("add %s to %s: %w", at.prefix, at.link.Attrs().Name, err)
	}
	return false, nil
}

// remove deletes the VIP from wherever it is configured and touches
// nothing else. Deleting a primary IPv4 address normally deletes the
// secondaries of its subnet with it, so when the VIP is a primary with
// secondaries, promote_secondaries is switched on for that interface
// first and note says so.
func remove(ip netip.Addr) (removed bool, note string, err error) {
	link, a, err := find(ip)
	if err != nil || a == nil {
		return false, "", err
	}
	name := link.Attrs().Name
	if ip.Is4() && a.Flags&unix.IFA_F_SECONDARY == 0 {
		if n, err := secondaries(link, a); err != nil {
			return false, "", err
		} else if n > 0 {
			if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+name+"/promote_secondaries", []byte("1"), 0); err != nil {
				return false, "", fmt.Errorf("%s is the primary address of its subnet on %s with %d secondaries, and promote_secondaries cannot be set: %w", ip, name, n, err)
			}
			note = fmt.Sprintf("set promote_secondaries on %s so that its %d other addresses survive", name, n)
		}
	}
	if err := netlink.AddrDel(link, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return false, note, fmt.Errorf("delete %s from %s: %w", ip, name, err)
	}
	return true, note, nil
}

// secondaries counts the other addresses in a's subnet on link.
func secondaries(link netlink.Link, a *netlink.Addr) (int, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return 0, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	self, _ := toPrefix(*a)
	n := 0
	for _, o := range addrs {
		if p, ok := toPrefix(o); ok && p.Addr() != self.Addr() && self.Masked().Contains(p.Addr()) && p.Bits() == self.Bits() {
			n++
		}
	}
	return n, nil
}
