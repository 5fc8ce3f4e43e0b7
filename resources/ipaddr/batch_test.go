package ipaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/nstest"
)

// A release deletes in batches only what takes nothing else with it:
// every other VIP goes through remove, which saves the secondaries.
func TestReleasable(t *testing.T) {
	v := &view{addrs: map[netip.Addr][]addrEntry{}, nets: map[netip.Prefix]map[int]map[netip.Addr]struct{}{}, override: map[netip.Addr][]override{}}
	entry := func(pf string, flags uint32) addrEntry {
		p := netip.MustParsePrefix(pf)
		return addrEntry{ip: p.Addr(), bits: p.Bits(), link: 2, flags: flags}
	}
	for _, e := range []addrEntry{
		entry("10.0.0.1/24", 0), // the interface's own address
		entry("10.0.0.100/24", unix.IFA_F_SECONDARY),
		entry("10.1.0.1/24", 0), // a primary alone in its subnet
		entry("10.2.0.1/24", 0), // a primary with an operator's secondary
		entry("10.2.0.2/24", unix.IFA_F_SECONDARY),
		entry("10.3.0.5/32", 0),
		entry("fd00::5/64", 0),
	} {
		v.putAddr(e)
	}
	peer := entry("10.4.0.1/32", 0)
	peer.peer, peer.bits = true, 24
	v.putAddr(peer)
	just := entry("10.5.0.1/24", 0)
	just.own = true
	v.override[just.ip] = []override{{e: just, present: true}}

	added := entry("fd00::9/128", 0)
	for _, tc := range []struct {
		ip    string
		added addrEntry
		fast  int
		slow  bool
	}{
		{"10.0.0.100", addrEntry{}, 1, false},
		{"10.1.0.1", addrEntry{}, 1, false},
		{"10.2.0.2", addrEntry{}, 1, false},
		{"10.3.0.5", addrEntry{}, 1, false},
		{"fd00::5", addrEntry{}, 1, false},
		{"10.0.0.1", addrEntry{}, 0, true}, // primary of 10.0.0.100
		{"10.2.0.1", addrEntry{}, 0, true},
		{"10.4.0.1", addrEntry{}, 0, true},
		{"10.5.0.1", addrEntry{}, 0, true}, // its flags are not known yet
		{"fd00::9", added, 1, false},       // added, its notification still on its way
		{"10.9.9.9", addrEntry{}, 0, false},
	} {
		fast, slow := v.releasable(netip.MustParseAddr(tc.ip), tc.added)
		if len(fast) != tc.fast || slow != tc.slow {
			t.Errorf("%s: %d to delete in a batch, slow %v; want %d, %v", tc.ip, len(fast), slow, tc.fast, tc.slow)
		}
	}
}

// A batch of deletions, in a real namespace: more than one message's
// worth, each answered on its own (one already gone does not stop the
// others), secondaries deleted without their primary, nothing else
// touched.
func TestAddrDelAll(t *testing.T) {
	nn := nstest.NewNetns(t)
	ns := nn.Add("d")
	nn.Run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	nn.Run("ip", "-n", ns, "addr", "add", "10.88.0.1/24", "dev", "eth0")
	const hosts, secondaries = 2*delBatch + 7, 4
	var batch strings.Builder
	var del []netip.Prefix
	for i := range hosts {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 81, byte(i / 250), byte(1 + i%250)}), 32)
		fmt.Fprintf(&batch, "addr add %s dev eth0\n", p)
		del = append(del, p)
	}
	for i := range secondaries {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 88, 0, byte(100 + i)}), 24)
		fmt.Fprintf(&batch, "addr add %s dev eth0\n", p)
		if i%2 == 0 {
			del = append(del, p) // the others are an operator's: they stay
		}
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v %s", err, out)
	}
	gone := netip.MustParsePrefix("10.81.9.9/32")
	del = append(del[:delBatch], append([]netip.Prefix{gone}, del[delBatch:]...)...)

	var errs []error
	if err := nstest.InNS(ns, func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		w, err := openWriter(viewWait)
		if err != nil {
			return err
		}
		defer w.Close()
		as := make([]*netlink.Addr, len(del))
		for i, p := range del {
			as[i] = &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}, LinkIndex: link.Attrs().Index}
		}
		errs = w.AddrDelAll(as)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(errs) != len(del) {
		t.Fatalf("%d results for %d deletions", len(errs), len(del))
	}
	for i, err := range errs {
		if want := del[i] == gone; errors.Is(err, unix.EADDRNOTAVAIL) != want || !want && err != nil {
			t.Errorf("deleting %s: %v", del[i], err)
		}
	}
	out := nn.Run("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0")
	if n := strings.Count(out, " inet "); n != 1+secondaries/2 {
		t.Errorf("%d addresses left, want the interface's own and %d secondaries:\n%s", n, secondaries/2, out)
	}
	for _, keep := range []string{"10.88.0.1/24", "10.88.0.101/24", "10.88.0.103/24"} {
		if !strings.Contains(out, " "+keep+" ") {
			t.Errorf("%s deleted:\n%s", keep, out)
		}
	}
}
