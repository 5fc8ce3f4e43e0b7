package ipaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/internal/testutil"
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
	const hosts, secondaries = 2*nlBatch + 7, 4
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
	del = append(del[:nlBatch], append([]netip.Prefix{gone}, del[nlBatch:]...)...)

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

// Addresses added in a batch are what netlink.Handle.AddrAdd makes of
// the same: prefix, broadcast (given or computed), label, flags and
// lifetimes, IPv4 and IPv6. One namespace gets each way.
func TestAddrAddAllAsAddrAdd(t *testing.T) {
	nn := nstest.NewNetns(t)
	addrs := func() []*netlink.Addr {
		pf := func(s string) *net.IPNet {
			p := netip.MustParsePrefix(s)
			return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		}
		return []*netlink.Addr{
			{IPNet: pf("10.88.0.100/32")},
			{IPNet: pf("10.88.0.101/24"), Label: "eth0:vip"},
			{IPNet: pf("10.89.0.1/16"), Broadcast: net.IP{10, 89, 0, 255}}, // 4 bytes, as add gives it,
			{IPNet: pf("10.90.0.1/31")},
			{IPNet: pf("10.91.0.1/24"), ValidLft: 100, PreferedLft: 100},
			{IPNet: pf("fd00:88::100/64"), Flags: unix.IFA_F_NODAD},
			{IPNet: pf("fd00:89::100/128"), Flags: unix.IFA_F_NODAD, ValidLft: 100, PreferedLft: 100},
		}
	}
	made := map[string]string{}
	for _, how := range []string{"one by one", "in a batch"} {
		ns := nn.Add(strings.ReplaceAll(how, " ", ""))
		nn.Run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
		nn.Run("ip", "-n", ns, "link", "set", "eth0", "up")
		if err := nstest.InNS(ns, func() error {
			link, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			as := addrs()
			for _, a := range as {
				a.LinkIndex = link.Attrs().Index
			}
			if how == "one by one" {
				for _, a := range as {
					if err := netlink.AddrAdd(nil, a); err != nil {
						return fmt.Errorf("%s: %w", a, err)
					}
				}
				return nil
			}
			w, err := openWriter(viewWait)
			if err != nil {
				return err
			}
			defer w.Close()
			for i, err := range w.AddrAddAll(as) {
				if err != nil {
					return fmt.Errorf("%s: %w", as[i], err)
				}
			}
			// A second add of one is refused as AddrAdd's is.
			if err := w.AddrAddAll(as[:1])[0]; !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("adding %s again: %v, want EEXIST", as[0], err)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		// The lifetimes count down: their seconds are not compared.
		out := nn.Run("ip", "-n", ns, "-o", "addr", "show", "dev", "eth0", "scope", "global")
		made[how] = regexp.MustCompile(`_lft \d+sec`).ReplaceAllString(out, "_lft Nsec")
	}
	if made["one by one"] != made["in a batch"] {
		t.Errorf("added one by one:\n%s\nin a batch:\n%s", made["one by one"], made["in a batch"])
	}
	if !strings.Contains(made["in a batch"], "brd 10.88.0.255") || !strings.Contains(made["in a batch"], "brd 10.89.0.255") || !strings.Contains(made["in a batch"], "eth0:vip") {
		t.Errorf("no computed broadcast or no label:\n%s", made["in a batch"])
	}
}

// batchWriter takes batches of adds once its gate opens, and records
// their sizes.
type batchWriter struct {
	addrWriter
	gate  chan struct{}
	mu    sync.Mutex
	sizes []int
}

func (w *batchWriter) AddrAddAll(as []*netlink.Addr) []error {
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sizes = append(w.sizes, len(as))
	return make([]error, len(as))
}

// Adds that come while one is in flight go to the kernel together, in
// the next request, with one barrier for all; each is in the view when
// its caller returns.
func TestAddsBatched(t *testing.T) {
	k := newFakeView(t)
	w := &batchWriter{gate: make(chan struct{})}
	k.v.writer = make(chan addrWriter, 1)
	k.v.writer <- w
	vip := func(i int) (*netlink.Addr, addrEntry) {
		ip := netip.AddrFrom4([4]byte{10, 80, 0, byte(i + 1)})
		return &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}, LinkIndex: 2}, addrEntry{ip: ip, bits: 32, link: 2}
	}
	queued := func(want int, sending bool) {
		testutil.Eventually(t, time.Minute, fmt.Sprintf("%d adds waiting", want), func() (int, bool) {
			q := &k.v.adds
			q.mu.Lock()
			defer q.mu.Unlock()
			return len(q.waiting), len(q.waiting) == want && q.sending == sending
		})
	}
	const n = 10
	var wg sync.WaitGroup
	add := func(i int) {
		wg.Go(func() {
			a, e := vip(i)
			if err := k.v.addBatched(a, e); err != nil {
				t.Errorf("add %d: %v", i, err)
				return
			}
			k.v.mu.Lock()
			defer k.v.mu.Unlock()
			if len(k.v.lookup(e.ip)) == 0 {
				t.Errorf("%s added but not in the view", e.ip)
			}
		})
	}
	add(0)
	queued(0, true) // in flight
	for i := 1; i <= n; i++ {
		add(i)
	}
	queued(n, true)
	close(w.gate)
	wg.Wait()
	queued(0, false)
	if !slices.Equal(w.sizes, []int{1, n}) {
		t.Errorf("batches of %v, want [1 %d]", w.sizes, n)
	}
	barriers := 0
	for _, r := range k.sentNow() {
		if r.typ == unix.RTM_GETADDR && r.flags&unix.NLM_F_DUMP == 0 {
			barriers++
		}
	}
	if barriers != 2 {
		t.Errorf("%d barriers for 2 batches", barriers)
	}
}
