package lab_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/test/lab"
)

// scaleLab is issue #19's lab: directors n1 and n2, witness n3, and n
// groups of one IPaddr VIP each, all preferring n1, followed by an
// address watcher in both directors' namespaces.
type scaleLab struct {
	t       testing.TB
	l       *lab.Lab
	c       *lab.Cluster
	nodes   map[string]*lab.Node
	vips    []netip.Addr
	watch   *lab.AddrWatcher
	owner   string // the director expected to hold every VIP
	started time.Time
}

var otherDirector = map[string]string{"n1": "n2", "n2": "n1"}

func startScale(t testing.TB, l *lab.Lab, n int, ka, dt, initdead time.Duration, monitor string) *scaleLab {
	t.Helper()
	vips := lab.ScaleVIPs(n)
	c := &lab.Cluster{Name: "scale", Keepalive: ka, Deadtime: dt, Initdead: initdead, Secret: "scale-secret-0123456789abcdef",
		Resources: lab.ScaleResources(vips, "n1", monitor), Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	if addr := os.Getenv("VIGIL_SCALE_PPROF"); addr != "" {
		// Profiles of each daemon during a run (`ip netns exec NS curl
		// http://ADDR/debug/pprof/...`): each node listens in its own
		// namespace.
		c.Extra = fmt.Sprintf("metrics_listen = %q\nmetrics_pprof = true\n", addr)
	}
	c.Extra += rtPriority()
	s := &scaleLab{t: t, l: l, c: c, vips: vips, owner: "n1", started: time.Now()}
	s.nodes = l.Trio(vigilBin, c, false, nil)
	// The groups may have started already: the watcher begins with a dump.
	s.watch = l.StartAddrWatcher(vips, "n1", "n2")
	return s
}

// steady waits until the owner holds every VIP and the other director
// none, the witness leads (where the steady state has it) and sees every
// node online, and the VIPs are still where they were.
func (s *scaleLab) steady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	n, owner, other := len(s.vips), s.owner, otherDirector[s.owner]
	allOnOwner := func(h map[string]int) bool { return h[owner] == n && h[other] == 0 }
	for {
		if _, err := s.watch.Wait(time.Until(deadline), allOnOwner); err != nil {
			return fmt.Errorf("VIPs not all on %s: %w", owner, err)
		}
		st, err := s.nodes["n3"].WaitStatus(time.Until(deadline), func(st *api.Status) bool {
			if st.Core == nil || st.Core.Leader != "n3" || st.Core.State == nil {
				return false
			}
			for _, name := range []string{"n1", "n2", "n3"} {
				if nd := st.Core.State.Nodes[name]; nd == nil || !nd.Online {
					return false
				}
			}
			return true
		})
		if err != nil {
			leader := ""
			if st != nil && st.Core != nil {
				leader = st.Core.Leader
			}
			return fmt.Errorf("the witness does not lead with every node online (leader %q): %w", leader, err)
		}
		if allOnOwner(s.watch.Held()) {
			return nil
		}
	}
}

// trial is one crash of the owner.
type trial struct {
	survivor    string
	first, last time.Duration // from the kill to the first and last VIP up on the survivor
	up, left    int           // VIPs up on the survivor at the end of the window; groups left behind
	came        int           // VIPs that came up on the survivor after the kill
	forced      bool          // crashed from an unsettled state
	at          time.Time     // the kill
}

// crash powers the owner off at a random phase of the heartbeat cycle
// and waits up to window for every VIP to come up on the other director.
// It fails, without a crash, when the VIPs are not all on the owner just
// before the kill; with a crash (crashed true), when one moved between
// that check and the kill, as the times would not be a failover's.
// Forced, it crashes whatever the owner holds (the benchmark, when the
// cluster never settles).
func (s *scaleLab) crash(window time.Duration, forced bool) (tr trial, crashed bool, err error) {
	s.t.Helper()
	tr = trial{survivor: otherDirector[s.owner], forced: forced}
	n := len(s.vips)
	time.Sleep(rand.N(s.c.Keepalive)) // a random phase of the heartbeat cycle
	checked := time.Now()
	if h := s.watch.Held(); !forced && (h[s.owner] != n || h[tr.survivor] != 0) {
		return tr, false, fmt.Errorf("VIPs moved before the crash: held %v", h)
	}
	s.watch.SetDown(s.owner, true)
	t0 := s.l.Crash(s.nodes[s.owner])
	tr.at = t0
	held, _ := s.watch.Wait(window-time.Since(t0), func(h map[string]int) bool { return h[tr.survivor] == n })
	tr.up, tr.left = held[tr.survivor], n-held[tr.survivor]
	for _, e := range s.watch.Events(checked) {
		if !forced && !e.At.After(t0) {
			return tr, true, fmt.Errorf("%s went %s on %s just before the kill", e.Addr, map[bool]string{true: "up", false: "down"}[e.Up], e.Node)
		}
	}
	ups := s.watch.FirstUp(tr.survivor, t0)
	tr.came = len(ups)
	for _, at := range ups {
		d := at.Sub(t0)
		if tr.first == 0 || d < tr.first {
			tr.first = d
		}
		if d > tr.last {
			tr.last = d
		}
	}
	return tr, true, nil
}

// reboot brings the crashed owner back, without the VIPs the crash left
// configured, and makes the survivor the owner.
func (s *scaleLab) reboot() {
	s.t.Helper()
	old := s.owner
	if err := s.l.FlushAddrs(old, s.vips); err != nil {
		s.t.Fatalf("reboot %s: %v", old, err)
	}
	if _, err := s.watch.Wait(30*time.Second, func(h map[string]int) bool { return h[old] == 0 }); err != nil {
		s.t.Fatalf("reboot %s: %v", old, err)
	}
	s.watch.SetDown(old, false)
	s.l.Isolate(old, false)
	s.l.Restart(vigilBin, s.nodes[old])
	s.owner = otherDirector[old]
}

// leasesLost returns the lines of a node's log from offset from on that
// say it stopped a group because it lost its lease, and the log's size.
func (s *scaleLab) leasesLost(node string, from int64) ([]string, int64) {
	s.t.Helper()
	lines, size, err := lab.LogLines(s.nodes[node].Proc.LogPath, "lease lost", from)
	if err != nil {
		s.t.Fatalf("log of %s: %v", node, err)
	}
	return lines, size
}

func envInt(t testing.TB, key string, def int) int {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", key, v)
	}
	return n
}

func envDuration(t testing.TB, key string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration, like 30s", key, v)
	}
	return d
}

// The address watcher sees a second holder when there is one, and none
// in a hand-over or while the first holder is marked down.
func TestAddrWatcher(t *testing.T) {
	l := needLab(t)
	l.AddNS("n1")
	l.AddNS("n2")
	vips := lab.ScaleVIPs(2)
	ip := func(node, op string, a netip.Addr) {
		t.Helper()
		if out, err := exec.Command("ip", "-n", l.NS(node), "addr", op, a.String()+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("ip addr %s %s in %s: %v %s", op, a, node, err, out)
		}
	}
	ip("n1", "add", vips[1]) // present before the watcher starts
	w := l.StartAddrWatcher(vips, "n1", "n2")
	if h := w.Held(); h["n1"] != 1 || h["n2"] != 0 {
		t.Fatalf("held at start %v, want n1:1 n2:0", h)
	}
	wait := func(want map[string]int) {
		t.Helper()
		if _, err := w.Wait(10*time.Second, func(h map[string]int) bool { return h["n1"] == want["n1"] && h["n2"] == want["n2"] }); err != nil {
			t.Fatal(err)
		}
	}

	// A hand-over: n1 deletes, then n2 adds.
	t0 := time.Now()
	ip("n1", "del", vips[1])
	ip("n2", "add", vips[1])
	wait(map[string]int{"n2": 1})
	if up := w.FirstUp("n2", t0); up[vips[1]].IsZero() || len(up) != 1 {
		t.Errorf("FirstUp(n2) = %v, want %s only", up, vips[1])
	}
	// A dead director's addresses do not count.
	w.SetDown("n2", true)
	ip("n1", "add", vips[1])
	wait(map[string]int{"n1": 1, "n2": 1})
	if rep := w.Report(); len(rep.Dual) != 0 || rep.Err != nil {
		t.Fatalf("after a hand-over and a takeover from a dead holder: %+v", rep)
	}
	// Back up while holding it: one dual holder.
	w.SetDown("n2", false)
	// Both up and a second live holder appears.
	ip("n1", "add", vips[0])
	ip("n2", "add", vips[0])
	wait(map[string]int{"n1": 2, "n2": 2})
	rep := w.Report()
	if len(rep.Dual) != 2 || rep.Err != nil || rep.Resyncs != 0 {
		t.Fatalf("want 2 dual holders (%s back up, %s added twice): %+v", vips[1], vips[0], rep)
	}
	t.Logf("%+v", rep)
}

// TestScaleFailover is issue #19's lab scale test: 200 groups
// (VIGIL_SCALE_TEST_N) of one VIP each on n1 at keepalive 100 ms /
// deadtime 500 ms, monitored every 2 s. Once they run, the owner idles for
// two monitor intervals and must lose no lease and drop no VIP; then it
// loses power. Every VIP must come up on n2 within initdead + 8 ×
// deadtime of the kill (a bound on a busy machine, not the performance
// target, which `make bench-scale` measures), no group may be left behind;
// n1 then comes back, and n2, which announces every VIP again, must lose
// no lease and drop no VIP; at no instant may both directors, reachable,
// hold the same VIP.
func TestScaleFailover(t *testing.T) {
	l := needLab(t)
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) }) // registered first: runs after the lab's cleanup
	n := envInt(t, "VIGIL_SCALE_TEST_N", 200)
	const (
		ka, dt   = 100 * time.Millisecond, 500 * time.Millisecond
		initdead = 2 * dt
		monitor  = 2 * time.Second
	)
	s := startScale(t, l, n, ka, dt, initdead, monitor.String())

	// Starting n groups is n starts and reports through the cluster: allow
	// far more than the failover bound, but not forever.
	if err := s.steady(60 * time.Second); err != nil {
		lost, _ := s.leasesLost("n1", 0)
		t.Fatalf("%d groups never all ran on n1: %v; n1 logged \"lease lost\" %d times", n, err, len(lost))
	}
	t.Logf("%d groups running on n1 %s after the daemons started", n, time.Since(s.started).Round(time.Millisecond))

	// Idle: every group monitored at least twice.
	idleFrom := time.Now()
	time.Sleep(2*monitor + ka) // the idle window itself, observed below
	if changes := s.watch.Events(idleFrom); len(changes) > 0 {
		t.Errorf("while idle, %d VIP changes on the directors (first: %+v)", len(changes), changes[0])
	}
	if lost, _ := s.leasesLost("n1", 0); len(lost) > 0 {
		t.Errorf(`n1 logged "lease lost" %d times before the crash, while its peers were all up; first: %s`, len(lost), lost[0])
	}

	bound := initdead + 8*dt
	tr, crashed, err := s.crash(bound, false)
	if !crashed {
		t.Fatal(err)
	}
	if err != nil {
		t.Errorf("the failover is not from a steady state: %v", err)
	}
	t.Logf("crash of n1: first VIP up on n2 after %s, last after %s; %d of %d up within %s",
		tr.first.Round(time.Millisecond), tr.last.Round(time.Millisecond), tr.up, n, bound)
	if tr.left > 0 {
		t.Errorf("%d of %d groups not running on n2 %s after n1 lost power (initdead %s + 8 × deadtime %s)", tr.left, n, bound, initdead, dt)
	}

	// n1 comes back: n2 announces every VIP again, and that must cost it
	// nothing it holds (all at once, the announcements once starved its
	// heartbeat until its lease ran out).
	_, from := s.leasesLost("n2", 0)
	s.reboot()
	testutil.Eventually(t, bound, "every VIP announced again on n2", func() (int, bool) {
		lines, _, err := lab.LogLines(s.nodes["n2"].Proc.LogPath, "msg=re-announcing", from)
		if err != nil {
			t.Fatal(err)
		}
		return len(lines), len(lines) >= n
	})
	for _, e := range s.watch.Events(tr.at) {
		if !e.Up && e.Node == "n2" {
			t.Errorf("n2 dropped %s at %s, after it took over", e.Addr, e.At.Format("15:04:05.000"))
		}
	}
	if lost, _ := s.leasesLost("n2", 0); len(lost) > 0 {
		t.Errorf(`n2 logged "lease lost" %d times after it took over; first: %s`, len(lost), lost[0])
	}

	rep := s.watch.Report()
	if rep.Err != nil {
		t.Errorf("address watcher: %v", rep.Err)
	}
	if rep.Resyncs > 0 {
		t.Errorf("the address watcher lost its event stream %d times: a dual holder meanwhile could be missed", rep.Resyncs)
	}
	if len(rep.Dual) > 0 {
		t.Errorf("two reachable directors held the same VIP %d times: %s", len(rep.Dual), strings.Join(rep.Dual[:min(10, len(rep.Dual))], "; "))
	}
	if len(rep.Unresolved) > 0 {
		t.Logf("%d suspected overlaps not confirmed by the kernel (hand-overs read out of order): %s", len(rep.Unresolved), strings.Join(rep.Unresolved[:min(10, len(rep.Unresolved))], "; "))
	}
	t.Logf("%d address changes watched, none held by two reachable directors", rep.Changes)
}
