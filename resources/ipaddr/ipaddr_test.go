package ipaddr_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"go.uber.org/goleak"
	"golang.org/x/net/ipv6"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/resources/ipaddr"
)

var (
	directorMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x88, 0x01}
	clientMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0x88, 0x09}
	bogusMAC    = "02:00:00:00:88:99"
)

// pairLab is a director namespace and a client namespace joined by a veth
// pair (eth0 on both sides), with addresses in 10.88.0.0/24 and
// fd00:88::/64.
type pairLab struct {
	t                *testing.T
	nn               *nstest.Netns
	director, client string
	r                *ipaddr.IPaddr
}

func newPairLab(t *testing.T) *pairLab {
	t.Helper()
	// Registered first, so it runs after every other cleanup.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	nn := nstest.NewNetns(t)
	l := &pairLab{t: t, nn: nn, director: nn.Add("d"), client: nn.Add("c")}
	nn.Run("ip", "link", "add", "eth0", "netns", l.director, "address", directorMAC.String(), "type", "veth",
		"peer", "name", "eth0", "netns", l.client, "address", clientMAC.String())
	for ns, host := range map[string]string{l.director: "1", l.client: "9"} {
		nn.Run("ip", "-n", ns, "addr", "add", "10.88.0."+host+"/24", "dev", "eth0")
		nn.Run("ip", "-n", ns, "addr", "add", "fd00:88::"+host+"/64", "dev", "eth0", "nodad")
		nn.Run("ip", "-n", ns, "link", "set", "eth0", "up")
	}
	// A fresh interface takes a moment to get its IPv6 multicast route;
	// until then the client drops neighbour advertisements to ff02::1.
	testutil.Eventually(t, 10*time.Second, "an IPv6 multicast route on the client's eth0 (its local table)", func() (string, bool) {
		out := nn.Run("ip", "-n", l.client, "-6", "route", "show", "table", "local")
		return out, strings.Contains(out, "multicast ff00::/8 dev eth0")
	})
	l.r = ipaddr.New(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { _ = nstest.InNS(l.director, func() error { l.r.Close(); return nil }) })
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// op runs one resource operation of instance "vip" inside the director
// namespace.
func (l *pairLab) op(name string, params map[string]string, interval time.Duration) *pb.Result {
	l.t.Helper()
	res, err := l.opID(name, "vip", params, interval)
	if err != nil {
		l.t.Fatalf("%s: %v", name, err)
	}
	return res
}

// opID runs one operation of instance id in the director namespace; safe
// from any goroutine.
func (l *pairLab) opID(name, id string, params map[string]string, interval time.Duration) (*pb.Result, error) {
	return l.opIn(name, &pb.Instance{Id: id, Type: "IPaddr", Params: params, IntervalMs: interval.Milliseconds()})
}

// opIn runs one operation on in, in the director namespace.
func (l *pairLab) opIn(name string, in *pb.Instance) (*pb.Result, error) {
	var res *pb.Result
	err := nstest.InNS(l.director, func() (err error) {
		ctx := context.Background()
		switch name {
		case "start":
			res, err = l.r.Start(ctx, in)
		case "stop":
			res, err = l.r.Stop(ctx, in)
		case "monitor":
			res, err = l.r.Monitor(ctx, in)
		case "reload":
			res, err = l.r.Reload(ctx, in)
		default:
			err = fmt.Errorf("no operation %q", name)
		}
		return err
	})
	return res, err
}

func (l *pairLab) mustOp(name string, params map[string]string) *pb.Result {
	l.t.Helper()
	res := l.op(name, params, 0)
	if res.Code != pb.Code_SUCCESS {
		l.t.Fatalf("%s: %s %s", name, res.Code, res.Reason)
	}
	return res
}

// addrs lists the addresses of dev in ns as "ip -o addr" prints them.
func (l *pairLab) addrs(ns, dev string) string {
	return l.nn.Run("ip", "-n", ns, "-o", "addr", "show", "dev", dev)
}

// waitNeigh waits until the client's neighbour entry for ip has mac.
func (l *pairLab) waitNeigh(ip string, mac net.HardwareAddr) {
	l.t.Helper()
	testutil.Eventually(l.t, 3*time.Second, fmt.Sprintf("the client's neighbour entry for %s to have %s", ip, mac), func() (string, bool) {
		out := l.nn.Run("ip", "-n", l.client, "neigh", "show", ip, "dev", "eth0")
		return strings.TrimSpace(out), strings.Contains(out, "lladdr "+mac.String())
	})
}

// frame is one captured announcement.
type frame struct {
	at       time.Time
	op       string
	sha, tha net.HardwareAddr
	spa, tpa netip.Addr
	hopLimit int
	override bool
}

// capture records frames on the client's eth0 until the test ends; read
// is the reader for one family.
type capture struct {
	mu     sync.Mutex
	frames []frame
	more   chan struct{}
}

func (c *capture) add(f frame) {
	c.mu.Lock()
	c.frames = append(c.frames, f)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// wait returns the frames once keep(frames) holds, failing after timeout.
func (c *capture) wait(t *testing.T, timeout time.Duration, what string, keep func([]frame) bool) []frame {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		fs := append([]frame(nil), c.frames...)
		c.mu.Unlock()
		if keep(fs) {
			return fs
		}
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("waiting for %s; captured %d frames: %+v", what, len(fs), fs)
		}
	}
}

// captureARP reads every ARP frame the client sees; the returned client
// can also send (a foreign claim).
func (l *pairLab) captureARP() (*capture, *arp.Client) {
	l.t.Helper()
	cp := &capture{more: make(chan struct{}, 1)}
	c := nstest.CaptureARP(l.t, l.client, "eth0", func(at time.Time, p *arp.Packet) {
		cp.add(frame{at: at, op: strings.TrimPrefix(p.Operation.String(), "Operation"), sha: p.SenderHardwareAddr, tha: p.TargetHardwareAddr, spa: p.SenderIP, tpa: p.TargetIP})
	})
	return cp, c
}

func announcements(fs []frame, from net.HardwareAddr) []frame {
	var out []frame
	for _, f := range fs {
		if bytes.Equal(f.sha, from) {
			out = append(out, f)
		}
	}
	return out
}

// The VIP is added once (a second start is no failure), announced in two
// bursts of gratuitous requests and replies that move the client's
// neighbour entry, reported missing when deleted by hand, and removed by
// stop without touching the host's own address.
func TestStartAnnounceStop(t *testing.T) {
	l := newPairLab(t)
	vip := netip.MustParseAddr("10.88.0.100")
	// The client believes the VIP is elsewhere, and recently confirmed so:
	// only a gratuitous frame may override an entry that fresh.
	l.nn.Run("ip", "-n", l.client, "neigh", "replace", vip.String(), "lladdr", bogusMAC, "dev", "eth0", "nud", "reachable")
	capt, _ := l.captureARP()
	p := map[string]string{"ip": vip.String(), "arp_count": "3", "arp_interval": "50ms", "arp_repeat": "300ms"}

	started := time.Now()
	l.mustOp("start", p)
	if a := l.addrs(l.director, "eth0"); !strings.Contains(a, "inet 10.88.0.100/24") {
		t.Fatalf("VIP not on eth0 with the subnet's prefix:\n%s", a)
	}
	l.waitNeigh(vip.String(), directorMAC)

	fs := announcements(capt.wait(t, 5*time.Second, "two bursts of 3 requests and 3 replies", func(fs []frame) bool {
		return len(announcements(fs, directorMAC)) >= 12
	}), directorMAC)
	var reqs []frame
	for _, f := range fs[:12] {
		if f.spa != vip || f.tpa != vip {
			t.Errorf("frame %+v: sender and target must both be the VIP", f)
		}
		switch f.op {
		case "Request":
			if !bytes.Equal(f.tha, net.HardwareAddr{0, 0, 0, 0, 0, 0}) {
				t.Errorf("request's target hardware address %s, want zero (RFC 5227)", f.tha)
			}
			reqs = append(reqs, f)
		case "Reply":
			if !bytes.Equal(f.tha, ethernet.Broadcast) {
				t.Errorf("reply's target hardware address %s, want broadcast (Linux's gratuitous reply)", f.tha)
			}
		}
	}
	if len(reqs) != 6 {
		t.Fatalf("%d requests among the first 12 frames, want 6 (one per announcement, each with a reply)", len(reqs))
	}
	if first := reqs[0].at.Sub(started); first > time.Second {
		t.Errorf("first announcement %s after start, want at once", first)
	}
	for i := 1; i < 3; i++ {
		if gap := reqs[i].at.Sub(reqs[i-1].at); gap < 40*time.Millisecond {
			t.Errorf("announcements %d and %d only %s apart, want arp_interval 50ms", i-1, i, gap)
		}
	}
	if gap := reqs[3].at.Sub(reqs[0].at); gap < 290*time.Millisecond {
		t.Errorf("second burst %s after the first, want arp_repeat 300ms", gap)
	}
	for i, r := range reqs {
		t.Logf("announcement %d at +%s", i, r.at.Sub(started).Round(time.Millisecond))
	}

	l.mustOp("start", p) // idempotent
	if n := strings.Count(l.addrs(l.director, "eth0"), "10.88.0.100/"); n != 1 {
		t.Fatalf("VIP configured %d times after a second start", n)
	}
	if res := l.mustOp("monitor", p); !strings.Contains(res.Output, "sent") {
		t.Errorf("monitor output %q lacks the announcement counters", res.Output)
	}

	l.nn.Run("ip", "-n", l.director, "addr", "del", "10.88.0.100/24", "dev", "eth0")
	if res := l.op("monitor", p, 0); res.Code != pb.Code_NOT_RUNNING {
		t.Fatalf("monitor after the VIP was deleted by hand: %s %s, want NOT_RUNNING", res.Code, res.Reason)
	}

	l.mustOp("start", p)
	l.mustOp("stop", p)
	a := l.addrs(l.director, "eth0")
	if strings.Contains(a, "10.88.0.100") || !strings.Contains(a, "inet 10.88.0.1/24") {
		t.Fatalf("after stop, want only the host's own address:\n%s", a)
	}
	l.mustOp("stop", p) // stopping a stopped VIP succeeds
	if res := l.op("monitor", p, 0); res.Code != pb.Code_NOT_RUNNING {
		t.Fatalf("monitor after stop: %s", res.Code)
	}
}

// A labelled VIP that is the primary address of its subnet: other
// addresses added later in that subnet survive its removal.
func TestLabelAndSecondariesSurviveStop(t *testing.T) {
	l := newPairLab(t)
	l.nn.Run("ip", "link", "add", "eth1", "netns", l.director, "type", "veth", "peer", "name", "eth1", "netns", l.client)
	l.nn.Run("ip", "-n", l.director, "link", "set", "eth1", "up")
	p := map[string]string{"ip": "10.89.0.100", "cidr_netmask": "24", "nic": "eth1", "label": "vip", "arp_count": "1", "arp_repeat": "0"}
	l.mustOp("start", p)
	if a := l.addrs(l.director, "eth1"); !strings.Contains(a, "inet 10.89.0.100/24") || !strings.Contains(a, "eth1:vip") {
		t.Fatalf("want 10.89.0.100/24 labelled eth1:vip:\n%s", a)
	}
	l.nn.Run("ip", "-n", l.director, "addr", "add", "10.89.0.101/24", "dev", "eth1")
	l.mustOp("stop", p)
	a := l.addrs(l.director, "eth1")
	if strings.Contains(a, "10.89.0.100") || !strings.Contains(a, "inet 10.89.0.101/24") {
		t.Fatalf("stop must remove the VIP and nothing else:\n%s", a)
	}
}

// IPv6: the VIP is usable at once (no DAD) and announced with unsolicited
// neighbour advertisements (override set, hop limit 255, our link-layer
// address) that update the client's neighbour entry.
func TestIPv6NeighbourAdvertisement(t *testing.T) {
	l := newPairLab(t)
	vip := netip.MustParseAddr("fd00:88::100")
	l.nn.Run("ip", "-n", l.client, "neigh", "replace", vip.String(), "lladdr", bogusMAC, "dev", "eth0", "nud", "reachable")
	var pc *ipv6.PacketConn
	if err := nstest.InNS(l.client, func() error {
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		pc = ipv6.NewPacketConn(c)
		return pc.SetControlMessage(ipv6.FlagHopLimit, true)
	}); err != nil {
		t.Fatal(err)
	}
	capt := &capture{more: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 1500)
		for {
			n, cm, _, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			if n < 32 || b[0] != 136 || cm == nil {
				continue
			}
			target, _ := netip.AddrFromSlice(b[8:24])
			f := frame{at: time.Now(), op: "NA", tpa: target, hopLimit: cm.HopLimit, override: b[4]&0x20 != 0}
			if b[24] == 2 && b[25] == 1 {
				f.tha = net.HardwareAddr(bytes.Clone(b[26:32]))
			}
			capt.add(f)
		}
	}()
	defer func() { pc.Close(); <-done }()

	p := map[string]string{"ip": vip.String(), "arp_count": "2", "arp_interval": "50ms", "arp_repeat": "0"}
	l.mustOp("start", p)
	a := l.nn.Run("ip", "-n", l.director, "-o", "-6", "addr", "show", "dev", "eth0", "to", vip.String())
	if !strings.Contains(a, "fd00:88::100/64") || strings.Contains(a, "tentative") {
		t.Fatalf("want fd00:88::100/64 usable at once (no DAD):\n%s", a)
	}
	fs := capt.wait(t, 5*time.Second, "two neighbour advertisements", func(fs []frame) bool { return len(fs) >= 2 })
	l.waitNeigh(vip.String(), directorMAC)
	for _, f := range fs[:2] {
		if f.tpa != vip || !f.override || f.hopLimit != 255 || !bytes.Equal(f.tha, directorMAC) {
			t.Errorf("NA %+v: want target %s, override, hop limit 255, link-layer address %s", f, vip, directorMAC)
		}
	}
	l.mustOp("stop", p)
	if a := l.nn.Run("ip", "-n", l.director, "-o", "-6", "addr", "show", "dev", "eth0"); strings.Contains(a, "fd00:88::100") {
		t.Fatalf("VIP left after stop:\n%s", a)
	}
}

// Another host claiming the VIP is answered and counted, and when the
// claims stop the owner announces again, so caches that followed the
// claimant come back.
func TestContestedReannounce(t *testing.T) {
	l := newPairLab(t)
	vip := netip.MustParseAddr("10.88.0.100")
	capt, claimant := l.captureARP()
	p := map[string]string{"ip": vip.String(), "arp_count": "1", "arp_interval": "20ms", "arp_repeat": "0"}
	l.mustOp("start", p)
	capt.wait(t, 5*time.Second, "the takeover announcement", func(fs []frame) bool { return len(announcements(fs, directorMAC)) >= 2 })

	claim, err := arp.NewPacket(arp.OperationRequest, clientMAC, vip, net.HardwareAddr{0, 0, 0, 0, 0, 0}, vip)
	if err != nil {
		t.Fatal(err)
	}
	claimed := time.Now()
	if err := claimant.WriteTo(claim, ethernet.Broadcast); err != nil {
		t.Fatal(err)
	}
	after := func(fs []frame, t0 time.Time) int {
		n := 0
		for _, f := range announcements(fs, directorMAC) {
			if f.at.After(t0) && f.op == "Request" {
				n++
			}
		}
		return n
	}
	fs := capt.wait(t, 5*time.Second, "an answer to the claim and a burst when the contest is over", func(fs []frame) bool {
		return after(fs, claimed) >= 2
	})
	var answers []time.Time
	for _, f := range announcements(fs, directorMAC) {
		if f.at.After(claimed) && f.op == "Request" {
			answers = append(answers, f.at)
		}
	}
	if d := answers[0].Sub(claimed); d > 500*time.Millisecond {
		t.Errorf("claim answered after %s, want at once", d)
	}
	if d := answers[1].Sub(claimed); d < 900*time.Millisecond {
		t.Errorf("contest-over burst %s after the claim, want after a quiet second", d)
	}
	if res := l.mustOp("monitor", p); !strings.Contains(res.Output, "foreign claims seen 1") {
		t.Errorf("monitor output %q: want one foreign claim counted", res.Output)
	}
	// Reload (ownership just resolved) re-announces too.
	reloaded := time.Now()
	l.mustOp("reload", p)
	capt.wait(t, 5*time.Second, "an announcement after reload", func(fs []frame) bool { return after(fs, reloaded) >= 1 })
	l.mustOp("stop", p)
}

// A node that cannot hold the VIP says so as a node-local error.
func TestStartWhereNoSubnet(t *testing.T) {
	l := newPairLab(t)
	for _, p := range []map[string]string{{"ip": "10.99.0.1"}, {"ip": "10.88.0.100", "nic": "nosuch0"}} {
		res := l.op("start", p, 0)
		if res.Code != pb.Code_ERR_INSTALLED {
			t.Errorf("start %v: %s %q, want ERR_INSTALLED", p, res.Code, res.Reason)
		}
		t.Log(fmt.Sprint(p), ": ", res.Reason)
	}
	if res := l.op("start", map[string]string{"ip": "10.88.0.100", "bogus": "1"}, 0); res.Code != pb.Code_ERR_CONFIGURED {
		t.Errorf("unknown parameter: %s, want ERR_CONFIGURED", res.Code)
	}
}

// Release (the node's lease ran out unrenewed) removes every VIP the
// plugin holds — IPv4 and IPv6, secondaries, host prefixes and a primary
// with an operator's secondary, silencing their announcements — and
// nothing else; a stop afterwards still succeeds, and what was stopped
// before is not released again.
func TestRelease(t *testing.T) {
	l := newPairLab(t)
	quiet := map[string]string{"arp_count": "1", "arp_repeat": "0"}
	with := func(ip string) map[string]string {
		p := maps.Clone(quiet)
		p["ip"] = ip
		return p
	}
	for id, ip := range map[string]string{"v1": "10.88.0.101", "v2": "10.88.0.102", "v6": "fd00:88::103", "gone": "10.88.0.104", "p1": "10.89.0.1"} {
		p := with(ip)
		switch id {
		case "v2":
			p["cidr_netmask"] = "32" // a host prefix
		case "p1":
			// The primary of a subnet of its own, which an operator's
			// address joins below: not deleted in a batch (it would
			// take the operator's with it).
			p["cidr_netmask"], p["nic"] = "24", "eth0"
		}
		if res, err := l.opID("start", id, p, 0); err != nil || res.Code != pb.Code_SUCCESS {
			t.Fatalf("start %s: %v %v", id, res, err)
		}
	}
	if res, err := l.opID("stop", "gone", with("10.88.0.104"), 0); err != nil || res.Code != pb.Code_SUCCESS {
		t.Fatalf("stop: %v %v", res, err)
	}
	l.nn.Run("ip", "-n", l.director, "addr", "add", "10.89.0.2/24", "dev", "eth0")
	// Four VIPs held: the estimate the peers wait for covers four
	// removals at least (never an underestimate of a fast kernel).
	if rt := l.r.ReleaseTime(); rt < 4*10*time.Microsecond {
		t.Errorf("release time %s for four VIPs", rt)
	}
	var ids []string
	if err := nstest.InNS(l.director, func() error { ids = l.r.Release(context.Background()); return nil }); err != nil {
		t.Fatal(err)
	}
	if rt := l.r.ReleaseTime(); rt != 0 {
		t.Errorf("release time %s with nothing held", rt)
	}
	if !slices.Equal(ids, []string{"p1", "v1", "v2", "v6"}) {
		t.Fatalf("released %v, want p1 v1 v2 v6", ids)
	}
	a := l.addrs(l.director, "eth0")
	for _, ip := range []string{"10.88.0.101", "10.88.0.102", "fd00:88::103", "10.89.0.1"} {
		if strings.Contains(a, ip+"/") {
			t.Errorf("%s still configured after the release:\n%s", ip, a)
		}
	}
	if !strings.Contains(a, "inet 10.88.0.1/24") || !strings.Contains(a, "fd00:88::1/64") || !strings.Contains(a, "inet 10.89.0.2/24") {
		t.Errorf("the release took the interface's or an operator's addresses:\n%s", a)
	}
	if res, err := l.opID("stop", "v1", with("10.88.0.101"), 0); err != nil || res.Code != pb.Code_SUCCESS {
		t.Fatalf("stop after the release: %v %v", res, err)
	}
	if err := nstest.InNS(l.director, func() error { ids = l.r.Release(context.Background()); return nil }); err != nil || len(ids) != 0 {
		t.Fatalf("a second release: %v %v", ids, err)
	}
	// A VIP this process finds but did not add (its predecessor did,
	// before a plugin restart) is released too.
	l.nn.Run("ip", "-n", l.director, "addr", "add", "10.88.0.105/32", "dev", "eth0")
	if res, err := l.opID("monitor", "found", with("10.88.0.105"), 0); err != nil || res.Code != pb.Code_SUCCESS {
		t.Fatalf("monitor: %v %v", res, err)
	}
	if err := nstest.InNS(l.director, func() error { ids = l.r.Release(context.Background()); return nil }); err != nil || !slices.Equal(ids, []string{"found"}) {
		t.Fatalf("release of a VIP found by a monitor: %v %v", ids, err)
	}
	if strings.Contains(l.addrs(l.director, "eth0"), "10.88.0.105/") {
		t.Error("the VIP found by a monitor survived the release")
	}
}

// A release's own pace replaces the deletion cost the peers' wait is
// derived from (ReleaseTime): one inflated sample (a deletion timed
// while the host's CPUs were busy) must not make the next takeover wait
// seconds for a release that takes milliseconds. A small release is one
// sample among others.
func TestReleasePaceReplacesEstimate(t *testing.T) {
	l := newPairLab(t)
	start := func(n int) {
		for i := range n {
			p := map[string]string{"ip": fmt.Sprintf("10.88.0.%d", 100+i), "cidr_netmask": "32", "arp_count": "1", "arp_repeat": "0"}
			if res, err := l.opID("start", fmt.Sprintf("v%d", i), p, 0); err != nil || res.Code != pb.Code_SUCCESS {
				t.Fatalf("start v%d: %v %v", i, res, err)
			}
		}
	}
	release := func() (ids []string, took time.Duration) {
		t0 := time.Now()
		if err := nstest.InNS(l.director, func() error { ids = l.r.Release(context.Background()); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids, time.Since(t0)
	}
	const inflated = 50 * time.Millisecond

	start(2)
	l.r.SetDeleteCost(inflated)
	if ids, _ := release(); len(ids) != 2 {
		t.Fatalf("released %v, want 2", ids)
	}
	if c := l.r.DeleteCost(); c < inflated*3/4 {
		t.Errorf("a release of 2 VIPs took the estimate from %s to %s: a sample, not a measure", inflated, c)
	}

	const n = 20
	start(n)
	l.r.SetDeleteCost(inflated)
	ids, took := release()
	if len(ids) != n {
		t.Fatalf("released %d VIPs, want %d", len(ids), n)
	}
	c := l.r.DeleteCost()
	t.Logf("%d VIPs released in %s; estimate of one deletion now %s", n, took, c)
	if c > took/n {
		t.Errorf("estimate of one deletion %s after a release of %d that took %s (%s each): still the inflated %s's trace", c, n, took, took/n, inflated)
	}
}

// lifetimes returns what `ip addr` says of ip's valid lifetime in ns
// ("forever", "2sec"), "" when ip is not configured.
func (l *pairLab) lifetime(ip string) string {
	for _, line := range strings.Split(l.addrs(l.director, "eth0"), "\n") {
		f := strings.Fields(line)
		if i := slices.Index(f, "valid_lft"); i > 0 && i+1 < len(f) && slices.ContainsFunc(f, func(s string) bool { return strings.HasPrefix(s, ip+"/") }) {
			return f[i+1]
		}
	}
	return ""
}

// With the cluster's address lifetime, a VIP gets it at start (also one
// already there), Keep extends only what is due, with the lease's
// lifetime, only through under, and 0 makes it permanent again; a VIP
// nobody extends is removed by the kernel.
func TestAddressLifetime(t *testing.T) {
	l := newPairLab(t)
	lease := func(life time.Duration) *pb.Lease { return &pb.Lease{Seq: 1, LifetimeNs: int64(life)} }
	start := func(id, ip string, life time.Duration) {
		t.Helper()
		in := &pb.Instance{Id: id, Type: "IPaddr", Params: map[string]string{"ip": ip, "arp_count": "0"}, Lease: lease(life)}
		if res, err := l.opIn("start", in); err != nil || res.Code != pb.Code_SUCCESS {
			t.Fatalf("start %s: %v %v", id, res, err)
		}
	}
	keep := func(life time.Duration, allow bool) (calls int) {
		t.Helper()
		under := func(f func()) bool {
			calls++
			if allow {
				f()
			}
			return allow
		}
		if err := nstest.InNS(l.director, func() error { l.r.Keep(context.Background(), life, under); return nil }); err != nil {
			t.Fatal(err)
		}
		return calls
	}
	want := func(what string, lfts map[string]string) {
		t.Helper()
		for ip, lft := range lfts {
			if got := l.lifetime(ip); got != lft {
				t.Errorf("%s: %s has valid_lft %q, want %q", what, ip, got, lft)
			}
		}
	}
	l.nn.Run("ip", "-n", l.director, "addr", "add", "10.88.0.113/32", "dev", "eth0")
	start("v4", "10.88.0.111", 30*time.Second)
	start("v6", "fd00:88::112", 30*time.Second)
	start("there", "10.88.0.113", 30*time.Second)
	all := func(lft string) map[string]string {
		return map[string]string{"10.88.0.111": lft, "fd00:88::112": lft, "10.88.0.113": lft}
	}
	// (The kernel counts down whole seconds: a second may have passed.)
	if got := l.lifetime("10.88.0.111"); got != "30sec" && got != "29sec" {
		t.Errorf("started with a 30s lifetime: valid_lft %q", got)
	}
	if n := keep(30*time.Second, true); n != 1 {
		t.Errorf("extended %d VIPs, want only the one that was there already", n)
	}
	if n := keep(30*time.Second, true); n != 0 {
		t.Errorf("extended %d VIPs just given their lifetime", n)
	}
	if n := keep(40*time.Second, true); n != 3 {
		t.Errorf("a new lifetime extended %d VIPs, want 3", n)
	}
	want("a new lifetime", all("40sec"))
	// The view missed the IPv6 VIP's notification (it lags behind the
	// add under load): Keep asks the kernel, and does not count a VIP
	// extended that it did not reach (a switched-off lifetime was lost).
	l.r.ForgetInView(netip.MustParseAddr("fd00:88::112"))
	if n := keep(45*time.Second, true); n != 3 {
		t.Errorf("with the view behind: extended %d VIPs, want 3", n)
	}
	want("with the view behind", all("45sec"))
	if n := keep(40*time.Second, true); n != 3 {
		t.Errorf("back to 40s: extended %d VIPs, want 3", n)
	}
	if n := keep(50*time.Second, false); n != 1 {
		t.Errorf("under refused: Keep went on after it (%d calls)", n)
	}
	want("under refused", all("40sec"))
	keep(0, true)
	want("lifetime off", all("forever"))

	// Nobody extends it: the kernel removes it, within its slack (the
	// bound itself is BenchmarkAddressLifetime's).
	start("short", "10.88.0.114", time.Second)
	testutil.Eventually(t, time.Second+plugins.AddressLifetimeSlack+10*time.Second, "the kernel to remove a VIP whose lifetime ran out (its lifetime)", func() (string, bool) {
		lt := l.lifetime("10.88.0.114")
		return lt, lt == ""
	})
	if res, err := l.opID("monitor", "short", map[string]string{"ip": "10.88.0.114"}, time.Second); err != nil || res.Code != pb.Code_NOT_RUNNING {
		t.Errorf("monitor of the expired VIP: %v %v", res, err)
	}
}

// A plugin process's resource (ForProcess) acts in the namespace its first
// call ran in, whatever thread later calls run on; New's reads each
// call's own.
func TestForProcessKeepsItsNamespace(t *testing.T) {
	l := newPairLab(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	params := map[string]string{"ip": "10.88.0.70", "cidr_netmask": "32", "nic": "eth0", "arp_count": "0"}
	monitorIn := func(r *ipaddr.IPaddr, ns string) pb.Code {
		t.Helper()
		var res *pb.Result
		if err := nstest.InNS(ns, func() (err error) {
			res, err = r.Monitor(context.Background(), &pb.Instance{Id: "vip", Type: "IPaddr", Params: params})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return res.GetCode()
	}
	l.mustOp("start", params)
	pinned := ipaddr.ForProcess(log)
	t.Cleanup(func() { _ = nstest.InNS(l.director, func() error { pinned.Close(); return nil }) })
	if c := monitorIn(pinned, l.director); c != pb.Code_SUCCESS {
		t.Fatalf("monitor in the director: %s", c)
	}
	// The client namespace has no such address: a pinned resource still
	// looks in the director's, a per-thread one in the client's.
	if c := monitorIn(pinned, l.client); c != pb.Code_SUCCESS {
		t.Errorf("pinned, called from the client's namespace: %s, want the director's VIP found running", c)
	}
	perThread := ipaddr.New(log)
	t.Cleanup(func() { _ = nstest.InNS(l.client, func() error { perThread.Close(); return nil }) })
	if c := monitorIn(perThread, l.client); c != pb.Code_NOT_RUNNING {
		t.Errorf("per thread, called from the client's namespace: %s, want not running", c)
	}
	l.mustOp("stop", params)
}
