package coord

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/cluster/placement"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/internal/testutil"
)

// simNode is one node of a simulated cluster.
type simNode struct {
	name  string
	c     *Coordinator
	fsm   *fsm.FSM
	lrm   *fakeLRM // nil on the witness
	lease *fakeLease
	mem   *fakeMembers
}

type simCluster struct {
	t      *testing.T
	log    *simLog
	reg    *registry
	nodes  map[string]*simNode
	groups []string
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Timing of the simulation: the real clock, fake everything else.
const (
	simKeepalive = 20 * time.Millisecond
	simDeadtime  = 5 * simKeepalive
	// After it is cut off, n1 holds its groups for simHold; the others
	// take it as released simLease after the cut. The difference is
	// n1's budget for stopping every group, generous for -race on a
	// loaded machine: a stop is a few function calls here.
	simHold  = 2 * simKeepalive
	simLease = 1500 * time.Millisecond
)

// newSimCluster runs members n1, n2 and witness w, which leads, with
// groups groups preferring n1, over one in-memory log.
func newSimCluster(t *testing.T, groups int, setup ...func(*simNode)) *simCluster {
	sc := &simCluster{t: t, log: newSimLog("w", time.Now), reg: &registry{}, nodes: map[string]*simNode{}}
	var specs []fsm.GroupSpec
	for i := range groups {
		name := fmt.Sprintf("g%04d", i)
		sc.groups = append(sc.groups, name)
		specs = append(specs, fsm.GroupSpec{Name: name, Preferred: "n1",
			Resources: []fsm.Resource{{ID: "vip" + name, Type: "IPaddr", Params: map[string]string{"ip": fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)}}}})
	}
	for _, n := range nodes3 {
		sc.log.voters = append(sc.log.voters, consensus.Peer{Name: n.Name, Address: n.Name + ":7946"})
	}
	sc.log.afterFn = func(index uint64) { sc.reg.checkAll(sc.groups, fmt.Sprintf("entry %d", index)) }
	ctx, cancel := context.WithCancel(context.Background())
	sc.cancel = cancel
	for _, ns := range nodes3 {
		var others []string
		for _, o := range nodes3 {
			if o.Name != ns.Name {
				others = append(others, o.Name)
			}
		}
		n := &simNode{name: ns.Name, fsm: fsm.New(quiet), lease: newFakeLease(), mem: newFakeMembers(others...)}
		sc.log.fsms[ns.Name] = n.fsm
		opt := Options{Self: ns.Name, Role: ns.Role, Timing: timing.Timing{Keepalive: simKeepalive, Deadtime: simDeadtime},
			Placement: placement.Options{MigrationThreshold: 3}, Groups: specs, Nodes: nodes3, FSM: n.fsm,
			Raft: &simRaft{log: sc.log, self: ns.Name}, Lease: n.lease, Members: n.mem, Log: quiet}
		if ns.Role == "member" {
			n.lrm = newFakeLRM(ns.Name, sc.reg)
			opt.LRM = n.lrm
		}
		for _, f := range setup {
			f(n)
		}
		n.c = New(opt)
		sc.nodes[ns.Name] = n
	}
	// Every node is in the log before any runs.
	for _, n := range sc.nodes {
		sc.wg.Go(func() { n.c.Run(ctx) })
	}
	t.Cleanup(sc.stop)
	return sc
}

func (sc *simCluster) stop() {
	sc.cancel()
	sc.wg.Wait()
}

// waitAll waits until every group satisfies ok in w's state.
func (sc *simCluster) waitAll(what string, ok func(g *fsm.Group) bool) {
	sc.t.Helper()
	f := sc.nodes["w"].fsm
	// A bound, not a pacing: far above what the passes take.
	deadline := time.After(100 * simLease)
	for {
		changed := f.Changed()
		done, missing := true, ""
		f.Read(func(s *fsm.State) {
			for _, name := range sc.groups {
				if g := s.Groups[name]; g == nil || !ok(g) {
					done, missing = false, name
					return
				}
			}
		})
		if done {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			var g fsm.Group
			f.Read(func(s *fsm.State) {
				if p := s.Groups[missing]; p != nil {
					g = *p
				}
			})
			sc.t.Fatalf("%s: group %s is %+v", what, missing, g)
		}
	}
}

func runsOn(node string) func(g *fsm.Group) bool {
	return func(g *fsm.Group) bool { return g.Owner == node && g.Reports[node].State == lrm.Running }
}

// TestSimulatedFailover runs 1,000 groups on n1, cuts n1 off (its lease
// runs out, the others see it dead) and checks that every group then runs
// on n2, started there exactly once, never on two nodes at once (checked
// at every entry and every start), in a number of Raft entries that grows
// with the passes, not the groups.
func TestSimulatedFailover(t *testing.T) {
	groups := 1000
	if testing.Short() {
		groups = 200
	}
	sc := newSimCluster(t, groups)
	sc.waitAll("start on n1", runsOn("n1"))
	started, byType := sc.log.entries()
	t.Logf("%d groups running on n1 after %d entries %v", groups, started, byType)

	// n1 is cut off: it commits and hears nothing more; its lease holds
	// until simHold from now, the others take it as gone after simLease.
	cut := time.Now()
	n1, n2, w := sc.nodes["n1"], sc.nodes["n2"], sc.nodes["w"]
	sc.log.mu.Lock()
	sc.log.cut["n1"] = true
	sc.log.mu.Unlock()
	n1.lease.setUntil(func(time.Time) time.Time { return cut.Add(simHold) })
	for _, n := range []*simNode{n2, w} {
		n.lease.mu.Lock()
		n.lease.released["n1"] = cut.Add(simLease)
		n.lease.mu.Unlock()
		n.mem.set(membership.PeerStatus{Node: "n1", State: "dead", Incarnation: 1})
	}
	sc.waitAll("failover to n2", runsOn("n2"))
	took := time.Since(cut)
	total, byType := sc.log.entries()
	failover := total - started
	t.Logf("failover of %d groups took %v (the old owner's lease: %v) and %d entries %v; %d checks",
		groups, took.Round(time.Millisecond), simLease, failover, byType, sc.reg.check)

	for _, p := range sc.reg.problems() {
		t.Error(p)
	}
	for _, g := range sc.groups {
		n2.lrm.mu.Lock()
		starts := n2.lrm.starts[g]
		n2.lrm.mu.Unlock()
		if starts != 1 {
			t.Errorf("%s started %d times on n2", g, starts)
		}
		if n1.lrm.active(g) {
			t.Errorf("%s still active on n1", g)
		}
	}
	// O(passes), not O(groups): one entry for the node state, one for
	// the placement, a few rounds of claims and reports.
	if limit := uint64(60); failover > limit {
		t.Errorf("failover took %d entries, want at most %d for %d groups", failover, limit, groups)
	}
	if limit := uint64(100); started > limit {
		t.Errorf("start took %d entries, want at most %d for %d groups", started, limit, groups)
	}
}

// waitPasses waits until n's runLocal has looked at the lease and the
// log count more times: it looks at least every keepalive.
func (sc *simCluster) waitPasses(n *simNode, count uint64) {
	sc.t.Helper()
	target := n.c.localPasses.Load() + count
	testutil.Eventually(sc.t, 100*simLease, fmt.Sprintf("%s: %d runLocal passes", n.name, target), func() (uint64, bool) {
		p := n.c.localPasses.Load()
		return p, p >= target
	})
}

// Idle groups cost nothing: with every group running, keepalives pass
// without a worker step, and an entry about one group steps only that
// group's worker.
func TestWakeOnlyAffected(t *testing.T) {
	sc := newSimCluster(t, 100)
	sc.waitAll("start on n1", runsOn("n1"))
	n1, n2 := sc.nodes["n1"], sc.nodes["n2"]
	// Whatever the start left queued is committed, and n1 has looked.
	for _, n := range []*simNode{n1, n2} {
		for !n.c.out.idle() {
			sc.waitPasses(n, 1)
		}
	}
	sc.waitPasses(n1, 5)
	before := n1.c.steps.Load()
	sc.waitPasses(n1, 10)
	if idle := n1.c.steps.Load() - before; idle != 0 {
		t.Errorf("%d worker steps over 10 idle keepalives", idle)
	}
	before = n1.c.steps.Load()
	if err := n2.c.Apply(context.Background(), fsm.TypeReport, fsm.Report{Node: "n2", Group: "g0042", State: lrm.Stopped, Op: "probe"}); err != nil {
		t.Fatal(err)
	}
	sc.waitPasses(n1, 5)
	if steps := n1.c.steps.Load() - before; steps != 1 {
		t.Errorf("an entry about one group: %d worker steps, want 1", steps)
	}
}

// The lease reaches the LRM (and through it the resource plugins, which
// release what they hold when it runs out unrenewed) on every pass: a
// renewal and a loss alike.
func TestLeaseReachesLRM(t *testing.T) {
	sc := newSimCluster(t, 10)
	n1 := sc.nodes["n1"]
	for _, until := range []time.Time{time.Now().Add(time.Hour), {}} {
		n1.lease.setUntil(func(time.Time) time.Time { return until })
		sc.waitPasses(n1, 2)
		if got := n1.lrm.holding(); !got.Equal(until) {
			t.Errorf("LRM holds until %v, want the lease's %v", got, until)
		}
	}
}

// A lease renewal reaches the LRM on the renewing goroutine itself, with
// no runLocal pass in between; one that gives back a lapsed lease wakes
// runLocal, which starts what waited for it.
func TestRenewalHandedOnAtOnce(t *testing.T) {
	sc := newSimCluster(t, 1)
	sc.waitAll("start on n1", runsOn("n1"))
	n1 := sc.nodes["n1"]
	testutil.Eventually(t, 100*simLease, "runLocal set the renewal hook", func() (bool, bool) {
		ok := n1.lease.renewed()
		return ok, ok
	})
	for i := range 3 {
		until := time.Now().Add(time.Hour + time.Duration(i)*time.Minute)
		n1.lease.setUntil(func(time.Time) time.Time { return until })
		n1.lease.renewed()
		if got := n1.lrm.holding(); !got.Equal(until) {
			t.Fatalf("renewal %d: the LRM holds until %v, want %v at once", i, got, until)
		}
	}
	// The lease lapses: runLocal sees it at its next pass and stops g0000.
	n1.lease.setUntil(func(now time.Time) time.Time { return time.Time{} })
	sc.waitAll("g0000 stopped on n1 without a lease", func(g *fsm.Group) bool {
		return g.Reports["n1"].State == lrm.Stopped
	})
	// A renewal gives it back: runLocal wakes and the group starts again.
	n1.lease.setUntil(func(now time.Time) time.Time { return now.Add(time.Hour) })
	n1.lease.renewed()
	sc.waitAll("g0000 started again on n1", runsOn("n1"))
}

// Each node records the digest of its group files in the log, and again
// after a reload changed them, without polling for it.
func TestFilesDigestRecordedAfterReload(t *testing.T) {
	sc := newSimCluster(t, 1)
	sc.waitAll("start on n1", runsOn("n1"))
	n2 := sc.nodes["n2"]
	recorded := func(want string) {
		t.Helper()
		testutil.Eventually(t, 100*simLease, "n2's files digest recorded as "+want, func() (string, bool) {
			var got string
			sc.nodes["w"].fsm.Read(func(s *fsm.State) {
				if n := s.Nodes["n2"]; n != nil {
					got = n.Files
				}
			})
			return got, got == want
		})
	}
	recorded(n2.c.FilesVersion())
	groups, _ := n2.c.configured()
	more := append(slices.Clone(groups), fsm.GroupSpec{Name: "extra", Preferred: "n2",
		Resources: []fsm.Resource{{ID: "vipextra", Type: "IPaddr", Params: map[string]string{"ip": "10.9.9.9"}}}})
	if _, err := n2.c.Reload(context.Background(), more, nodes3); err != nil {
		t.Fatal(err)
	}
	recorded(GroupsVersion(more, nodes3))
}

// With a lease that calls the hook every beat (the heartbeat engine's),
// runLocal does not look at the lease on a timer of its own: beats and
// renewals pass without a pass of runLocal; a lease that lapses without
// another beat stops the group at its end (the hook moved runLocal's
// timer there), and one the hook sees gone or back wakes runLocal.
func TestLeaseLookedAtOnTheBeat(t *testing.T) {
	sc := newSimCluster(t, 1, func(n *simNode) { n.lease.everyBeat = n.name == "n1" })
	sc.waitAll("start on n1", runsOn("n1"))
	n1 := sc.nodes["n1"]
	testutil.Eventually(t, 100*simLease, "runLocal set the renewal hook", func() (bool, bool) {
		ok := n1.lease.renewed()
		return ok, ok
	})
	for !n1.c.out.idle() {
		sc.waitPasses(n1, 1)
	}
	before := n1.c.localPasses.Load()
	for range 50 {
		n1.lease.renewed() // 50 beats: the lease holds for an hour
	}
	if passes := n1.c.localPasses.Load() - before; passes > 5 {
		t.Errorf("%d runLocal passes over 50 beats of a held lease; want them left to the hook", passes)
	}
	// The lease ends 3 keepalives from now and no beat comes: the timer
	// the hook set stops the group.
	end := time.Now().Add(3 * simKeepalive)
	n1.lease.setUntil(func(time.Time) time.Time { return end })
	n1.lease.renewed()
	sc.waitAll("g0000 stopped on n1 at the end of its lease", func(g *fsm.Group) bool {
		return g.Reports["n1"].State == lrm.Stopped
	})
	if time.Now().Before(end) {
		t.Fatal("stopped before the lease ended")
	}
	// A beat finds the lease back: runLocal starts the group again.
	n1.lease.setUntil(func(now time.Time) time.Time { return now.Add(time.Hour) })
	n1.lease.renewed()
	sc.waitAll("g0000 started again on n1", runsOn("n1"))
}

// A peer that comes back (seen restarted and up at once) has the groups
// running here announce their addresses again: each group once, and no
// more than announceParallel at a time — a thousand reloads at once
// starved a loaded director's heartbeat of CPU until its lease ran out.
func TestReannounceOnPeerReturn(t *testing.T) {
	const groups = 50
	sc := newSimCluster(t, groups)
	sc.waitAll("start on n1", runsOn("n1"))
	n1 := sc.nodes["n1"]
	gate := make(chan struct{})
	n1.lrm.mu.Lock()
	n1.lrm.reloadGate = gate
	n1.lrm.mu.Unlock()
	n1.mem.emit(membership.Event{Kind: membership.NodeRestarted, Node: "n2"})
	n1.mem.emit(membership.Event{Kind: membership.NodeUp, Node: "n2"})
	testutil.Eventually(t, 100*simLease, fmt.Sprintf("%d reloading, the others waiting", announceParallel), func() (string, bool) {
		n1.lrm.mu.Lock()
		reloading := n1.lrm.reloading
		n1.lrm.mu.Unlock()
		waiting := n1.c.announceWaiting.Load()
		return fmt.Sprintf("%d reloading, %d waiting", reloading, waiting), reloading == announceParallel && waiting == groups-announceParallel
	})
	close(gate)
	reloads := func() (n int, groups map[string]bool) {
		n1.lrm.mu.Lock()
		defer n1.lrm.mu.Unlock()
		groups = map[string]bool{}
		for _, op := range n1.lrm.ops {
			if g, ok := strings.CutPrefix(op, "reload "); ok {
				n++
				groups[g] = true
			}
		}
		return n, groups
	}
	testutil.Eventually(t, 100*simLease, "every group announced", func() (int, bool) {
		n, seen := reloads()
		return n, len(seen) == groups
	})
	// Those reloading when the second event came may announce twice;
	// the others took both events as one.
	if n, _ := reloads(); n > groups+announceParallel {
		t.Errorf("%d reloads for %d groups and two events at once", n, groups)
	}
}
