package ipaddr_test

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/resources/ipaddr"
)

// The scale tests: a thousand VIPs on the director's eth0, in
// 10.90.0.0/16 where the director has 10.90.0.1.

const scaleVIPs = 1000

func scaleVIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 90, byte(1 + i/250), byte(1 + i%250)})
}

func scaleParams(i int, extra ...string) map[string]string {
	p := map[string]string{"ip": scaleVIP(i).String(), "arp_count": "1", "arp_repeat": "0"}
	for j := 0; j+1 < len(extra); j += 2 {
		p[extra[j]] = extra[j+1]
	}
	return p
}

func newScaleLab(t *testing.T) *pairLab {
	l := newPairLab(t)
	// A thousand VIPs' worth of info lines would drown the warnings.
	if err := nstest.InNS(l.director, func() error { l.r.Close(); return nil }); err != nil {
		t.Fatal(err)
	}
	l.r = ipaddr.New(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	l.nn.Run("ip", "-n", l.director, "addr", "add", "10.90.0.1/16", "dev", "eth0")
	return l
}

// all runs operation name on instances [0, n) at once, as the daemon does
// on failover, and returns the results by instance.
func (l *pairLab) all(name string, n int, params func(int) map[string]string) []*pb.Result {
	l.t.Helper()
	res := make([]*pb.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { res[i], errs[i] = l.opID(name, fmt.Sprint("vip", i), params(i), 0) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			l.t.Fatalf("%s vip%d: %v", name, i, err)
		}
	}
	return res
}

// expect fails for every result whose code is not want, saying how many.
func expect(t *testing.T, what string, res []*pb.Result, want pb.Code) {
	t.Helper()
	bad := 0
	for i, r := range res {
		if r.Code != want {
			if bad < 5 {
				t.Errorf("%s vip%d (%s): %s %s, want %s", what, i, scaleVIP(i), r.Code, r.Reason, want)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d not %s", what, bad, len(res), want)
	}
}

// countVIPs counts the addresses of 10.90.1.0-10.90.4.255 on the
// director's eth0, as ip lists them.
func (l *pairLab) countVIPs() int {
	n := 0
	for _, line := range strings.Split(l.addrs(l.director, "eth0"), "\n") {
		for _, s := range []string{"inet 10.90.1.", "inet 10.90.2.", "inet 10.90.3.", "inet 10.90.4."} {
			if strings.Contains(line, s) {
				n++
			}
		}
	}
	return n
}

// A thousand VIPs started at once all come up, are monitored running,
// one deleted behind the plugin's back is reported not running at once,
// and stopped at once they are all gone, the host's address untouched.
func TestThousandVIPs(t *testing.T) {
	l := newScaleLab(t)
	params := func(i int) map[string]string { return scaleParams(i) }

	t0 := time.Now()
	expect(t, "start", l.all("start", scaleVIPs, params), pb.Code_SUCCESS)
	t.Logf("%d concurrent starts took %s", scaleVIPs, time.Since(t0).Round(time.Millisecond))
	if n := l.countVIPs(); n != scaleVIPs {
		t.Fatalf("%d VIPs on eth0 after the starts, want %d", n, scaleVIPs)
	}
	expect(t, "monitor", l.all("monitor", scaleVIPs, params), pb.Code_SUCCESS)

	gone := scaleVIP(500)
	l.nn.Run("ip", "-n", l.director, "addr", "del", gone.String()+"/16", "dev", "eth0")
	if res, err := l.opID("monitor", "vip500", params(500), 0); err != nil || res.Code != pb.Code_NOT_RUNNING {
		t.Fatalf("probe of %s deleted by hand: %v %v, want NOT_RUNNING", gone, res, err)
	}
	// A recurring monitor believes the view while it has the VIP: the
	// deletion's notification brings it there, at once or nearly.
	testutil.Eventually(t, 5*time.Second, "a recurring monitor to find "+gone.String()+" gone", func() (*pb.Result, bool) {
		res, err := l.opID("monitor", "vip500", params(500), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return res, res.Code == pb.Code_NOT_RUNNING
	})
	for _, interval := range []time.Duration{0, 10 * time.Second} {
		if res, err := l.opID("monitor", "vip501", params(501), interval); err != nil || res.Code != pb.Code_SUCCESS {
			t.Fatalf("monitor (interval %s) of its neighbour: %v %v, want SUCCESS", interval, res, err)
		}
	}

	t0 = time.Now()
	expect(t, "stop", l.all("stop", scaleVIPs, params), pb.Code_SUCCESS)
	t.Logf("%d concurrent stops took %s", scaleVIPs, time.Since(t0).Round(time.Millisecond))
	if n := l.countVIPs(); n != 0 {
		t.Fatalf("%d VIPs left after the stops", n)
	}
	if a := l.addrs(l.director, "eth0"); !strings.Contains(a, "inet 10.90.0.1/16") || !strings.Contains(a, "inet 10.88.0.1/24") {
		t.Fatalf("the host's own addresses are gone:\n%s", a)
	}
	expect(t, "monitor after stop", l.all("monitor", scaleVIPs, params), pb.Code_NOT_RUNNING)
}

// churn adds and deletes host addresses (each the primary of its own
// /32, so deleting one takes no other with it) on eth0 as fast as it can, and has the view reload now and then so that its dumps race the
// churn, until the test ends.
func (l *pairLab) churn() (ops *atomic.Int64) {
	ops = new(atomic.Int64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := nstest.InNS(l.director, func() error {
			link, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return nil
				default:
				}
				a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 91, byte(i/250%200), byte(1+i%250)), Mask: net.CIDRMask(32, 32)}}
				if err := netlink.AddrAdd(link, a); err != nil {
					return fmt.Errorf("churn add: %w", err)
				}
				if i >= 20 {
					j := i - 20
					old := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 91, byte(j/250%200), byte(1+j%250)), Mask: net.CIDRMask(32, 32)}}
					if err := netlink.AddrDel(link, old); err != nil {
						return fmt.Errorf("churn del: %w", err)
					}
				}
				ops.Add(1)
			}
		})
		if err != nil {
			l.t.Errorf("churn: %v", err)
		}
	})
	wg.Go(func() {
		// Reloads one after another: each forced once the one before
		// has completed and the view has then been up for as long as
		// that load took. Forced on a fixed clock, faster than a load
		// can finish while the churn interrupts its dumps, none would
		// ever complete; forced the moment one completes, an operation
		// waiting for it may not run before the next begins (a loaded
		// machine): livelocks of the test's making — in a plugin a
		// reload follows lost notifications, not the last reload.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		forcedAt, forced := l.r.ViewLoads(), time.Now() // the last force
		var up time.Time                                // when its load was seen done
		l.r.ForceResync()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if loads := l.r.ViewLoads(); loads > forcedAt && up.IsZero() {
					up = now
				}
				if !up.IsZero() && now.Sub(up) >= up.Sub(forced) {
					forcedAt, forced, up = l.r.ViewLoads(), now, time.Time{}
					l.r.ForceResync()
				}
			}
		}
	})
	l.t.Cleanup(func() { close(stop); wg.Wait() })
	return ops
}

// While another process adds and deletes addresses as fast as it can and
// the view reloads under it, rounds of starts, monitors and stops of many
// VIPs all succeed: no interrupted dump or concurrent change ever fails an
// operation.
func TestChurnNeverFails(t *testing.T) {
	l := newScaleLab(t)
	// A few hundred other addresses, so that a dump takes several parts
	// and a change between them marks it interrupted.
	var batch strings.Builder
	for i := range 500 {
		fmt.Fprintf(&batch, "addr add 10.92.%d.%d/16 dev eth0\n", i/250, 1+i%250)
	}
	ipBatch(t, l.director, batch.String())
	// The view is open before the churn starts (the first operation opens it).
	if res, err := l.opID("monitor", "vip0", scaleParams(0), 0); err != nil || res.Code != pb.Code_NOT_RUNNING {
		t.Fatalf("first monitor: %v %v", res, err)
	}
	ops := l.churn()
	const n = 200
	params := func(i int) map[string]string { return scaleParams(i) }
	for round := range 3 {
		expect(t, fmt.Sprint("round ", round, " start"), l.all("start", n, params), pb.Code_SUCCESS)
		expect(t, fmt.Sprint("round ", round, " monitor"), l.all("monitor", n, params), pb.Code_SUCCESS)
		expect(t, fmt.Sprint("round ", round, " stop"), l.all("stop", n, params), pb.Code_SUCCESS)
		expect(t, fmt.Sprint("round ", round, " monitor after stop"), l.all("monitor", n, params), pb.Code_NOT_RUNNING)
	}
	resyncs, interrupted := l.r.ViewCounters()
	t.Logf("churn: %d add/delete pairs; view reloads %d, interrupted dumps retried %d", ops.Load(), resyncs, interrupted)
	if ops.Load() == 0 {
		t.Fatal("the churn made no change")
	}
	if resyncs == 0 {
		t.Fatal("the view never reloaded under the operations")
	}
	if n := l.countVIPs(); n != 0 {
		t.Fatalf("%d VIPs left", n)
	}
}

// Changes made while the subscription cannot keep up overrun it; the view
// reloads and then answers right: VIPs deleted behind its back are not
// running, the others are, and an address added behind its back is found.
func TestOverrunResync(t *testing.T) {
	l := newScaleLab(t)
	const n = 50
	params := func(i int) map[string]string { return scaleParams(i) }
	expect(t, "start", l.all("start", n, params), pb.Code_SUCCESS)

	resume := l.r.StallViews()
	var batch strings.Builder
	for i := range 300 {
		fmt.Fprintf(&batch, "addr add 10.93.%d.%d/16 dev eth0\n", i/250, 1+i%250)
	}
	for i := range 10 {
		fmt.Fprintf(&batch, "addr del %s/16 dev eth0\n", scaleVIP(i))
	}
	fmt.Fprintf(&batch, "addr add %s/16 dev eth0\n", scaleVIP(n))
	ipBatch(t, l.director, batch.String())
	resume()

	res := l.all("monitor", n+1, params)
	for i, r := range res {
		want := pb.Code_SUCCESS
		if i < 10 {
			want = pb.Code_NOT_RUNNING
		}
		if r.Code != want {
			t.Errorf("monitor vip%d: %s %s, want %s", i, r.Code, r.Reason, want)
		}
	}
	if resyncs, _ := l.r.ViewCounters(); resyncs == 0 {
		t.Fatal("the stalled subscription did not overrun: the test tested nothing")
	}
	// The address added behind the view's back is found by a start.
	if r, err := l.opID("start", fmt.Sprint("vip", n), params(n), 0); err != nil || r.Code != pb.Code_SUCCESS || !strings.Contains(r.Output, "already present") {
		t.Fatalf("start of an address added by hand: %v %v, want already present", r, err)
	}
	expect(t, "stop", l.all("stop", n+1, params), pb.Code_SUCCESS)
	if n := l.countVIPs(); n != 0 {
		t.Fatalf("%d VIPs left", n)
	}
}

// arpCapture records every ARP frame on the client's eth0 with the
// kernel's receive time.
type arpCapture struct {
	mu     sync.Mutex
	frames []frame
}

func (l *pairLab) captureARPStamped() *arpCapture {
	l.t.Helper()
	var fd int
	err := nstest.InNS(l.client, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ARP))
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		l.t.Fatal(err)
	}
	c := &arpCapture{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, oob := make([]byte, 1500), make([]byte, 128)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, oobn, _, _, err := unix.Recvmsg(fd, b, oob, 0)
			if err != nil {
				continue // the receive timeout, to look at stop
			}
			var at time.Time
			if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, cm := range cms {
					if cm.Header.Level == unix.SOL_SOCKET && cm.Header.Type == unix.SO_TIMESTAMPNS && len(cm.Data) >= 16 {
						at = time.Unix(int64(binary.NativeEndian.Uint64(cm.Data)), int64(binary.NativeEndian.Uint64(cm.Data[8:])))
					}
				}
			}
			var f ethernet.Frame
			var p arp.Packet
			if at.IsZero() || f.UnmarshalBinary(b[:n]) != nil || p.UnmarshalBinary(f.Payload) != nil {
				continue
			}
			c.mu.Lock()
			c.frames = append(c.frames, frame{at: at, op: strings.TrimPrefix(p.Operation.String(), "Operation"), sha: p.SenderHardwareAddr, tha: p.TargetHardwareAddr, spa: p.SenderIP, tpa: p.TargetIP})
			c.mu.Unlock()
		}
	}()
	l.t.Cleanup(func() { close(stop); <-done; unix.Close(fd) })
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// requests returns, by VIP, the times of the director's gratuitous
// requests.
func (c *arpCapture) requests() map[netip.Addr][]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[netip.Addr][]time.Time{}
	for _, f := range c.frames {
		if f.op == "Request" && f.spa == f.tpa && string(f.sha) == string(directorMAC) {
			out[f.spa] = append(out[f.spa], f.at)
		}
	}
	return out
}

// A thousand VIPs started at once: the client sees the first gratuitous
// ARP of every one within one arp_interval of its start returning, and
// the second an interval after the first.
func TestThousandVIPsAnnounced(t *testing.T) {
	l := newScaleLab(t)
	capt := l.captureARPStamped()
	// The pacer aims at half of it (see slowdown for the rest).
	const interval = time.Second * slowdown
	params := func(i int) map[string]string {
		return scaleParams(i, "arp_count", "2", "arp_interval", interval.String())
	}
	started := make([]time.Time, scaleVIPs)
	var wg sync.WaitGroup
	errs := make(chan error, scaleVIPs)
	for i := range scaleVIPs {
		wg.Go(func() {
			res, err := l.opID("start", fmt.Sprint("vip", i), params(i), 0)
			started[i] = time.Now()
			if err == nil && res.Code != pb.Code_SUCCESS {
				err = fmt.Errorf("start vip%d: %s %s", i, res.Code, res.Reason)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10*interval + 10*time.Second)
	var reqs map[netip.Addr][]time.Time
	for {
		reqs = capt.requests()
		complete := 0
		for i := range scaleVIPs {
			if len(reqs[scaleVIP(i)]) >= 2 {
				complete++
			}
		}
		if complete == scaleVIPs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d VIPs seen announced twice", complete, scaleVIPs)
		}
		time.Sleep(50 * time.Millisecond) // polling the capture
	}
	var worst time.Duration
	late := 0
	for i := range scaleVIPs {
		ts := reqs[scaleVIP(i)]
		d := ts[0].Sub(started[i])
		worst = max(worst, d)
		if d > interval {
			if late < 5 {
				t.Errorf("%s: first announcement %s after its start returned, want within %s", scaleVIP(i), d, interval)
			}
			late++
		}
		// The frames' receive times on the other side of the veth; the
		// sender timed the second from when the first went.
		if gap := ts[1].Sub(ts[0]); gap < interval-5*time.Millisecond {
			t.Errorf("%s: announcements %s apart, want %s", scaleVIP(i), gap, interval)
		}
	}
	t.Logf("first announcement at most %s after the start returned", worst.Round(time.Millisecond))
	if late > 0 {
		t.Fatalf("%d of %d VIPs announced late", late, scaleVIPs)
	}
	expect(t, "stop", l.all("stop", scaleVIPs, params), pb.Code_SUCCESS)
}

// When the subscription fails, the operation that finds it so fails with
// a non-fatal code at worst, and the next one opens a new view that sees
// the VIPs as they are.
func TestBrokenSubscriptionReopens(t *testing.T) {
	l := newScaleLab(t)
	params := func(i int) map[string]string { return scaleParams(i) }
	expect(t, "start", l.all("start", 10, params), pb.Code_SUCCESS)
	l.r.BreakViews()
	l.nn.Run("ip", "-n", l.director, "addr", "del", scaleVIP(0).String()+"/16", "dev", "eth0")
	res := l.all("monitor", 10, params)
	for i, r := range res {
		want := pb.Code_SUCCESS
		if i == 0 {
			want = pb.Code_NOT_RUNNING
		}
		if r.Code != want {
			t.Errorf("monitor vip%d after the subscription broke: %s %s, want %s", i, r.Code, r.Reason, want)
		}
	}
	expect(t, "stop", l.all("stop", 10, params), pb.Code_SUCCESS)
	if n := l.countVIPs(); n != 0 {
		t.Fatalf("%d VIPs left", n)
	}
}
