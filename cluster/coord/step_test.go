package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/placement"
	"github.com/vigil-ha/vigil/cluster/timing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

const keepalive = 100 * time.Millisecond

// harness is node n1 of n1, n2 (members) and w (witness), all online,
// with group web (one IPaddr resource, monitored every 2s) assigned to n1;
// the log is in memory and the clock stands still unless moved.
type harness struct {
	t     *testing.T
	c     *Coordinator
	log   *simLog
	lrm   *fakeLRM
	lease *fakeLease
	mem   *fakeMembers
	clock *fakeClock
	w     *worker
}

var web = fsm.GroupSpec{Name: "web", Preferred: "n1", Resources: []fsm.Resource{{ID: "vip", Type: "IPaddr", Params: map[string]string{"ip": "10.0.0.3"}, Interval: timing.Duration(2 * time.Second)}}}

var nodes3 = []fsm.NodeSpec{{Name: "n1", Role: "member"}, {Name: "n2", Role: "member"}, {Name: "w", Role: "witness"}}

func newHarness(t *testing.T, self string) *harness {
	clock := &fakeClock{now: t0}
	h := &harness{t: t, clock: clock, lrm: newFakeLRM(self, nil), lease: newFakeLease(), mem: newFakeMembers("n1", "n2", "w")}
	h.log = newSimLog(self, clock.Now)
	h.log.fsms[self] = fsm.New(quiet)
	h.c = New(Options{Self: self, Role: "member", Timing: timing.Timing{Keepalive: keepalive, Deadtime: 5 * keepalive},
		Placement: placement.Options{MigrationThreshold: 3},
		Groups:    []fsm.GroupSpec{web}, Nodes: nodes3, FSM: h.log.fsms[self], Raft: &simRaft{log: h.log, self: self},
		Lease: h.lease, Members: h.mem, LRM: h.lrm, Clock: clock, Log: quiet})
	h.must(fsm.TypeSetGroups, fsm.SetGroups{Version: GroupsVersion([]fsm.GroupSpec{web}, nodes3), Groups: []fsm.GroupSpec{web}, Nodes: nodes3})
	for _, n := range []string{"n1", "n2", "w"} {
		h.must(fsm.TypeNodeState, fsm.NodeState{Node: n, Online: ptr(true)})
	}
	h.must(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "web", To: "n1", Reason: "preferred"}}})
	h.w = &worker{c: h.c, name: "web", kick: make(chan struct{}, 1), announce: make(chan struct{}, 1)}
	return h
}

func ptr[T any](v T) *T { return &v }

func (h *harness) must(typ string, cmd any) {
	h.t.Helper()
	if err := h.c.Apply(context.Background(), typ, cmd); err != nil {
		h.t.Fatalf("%s: %v", typ, err)
	}
}

func (h *harness) group() fsm.Group {
	var g fsm.Group
	h.c.opt.FSM.Read(func(s *fsm.State) { g = *s.Groups["web"] })
	return g
}

// step runs one step and returns when it wants to look again (relative
// to the clock), the LRM operations and what it queued.
func (h *harness) step() (time.Duration, []string, []fsm.Report, []fsm.Claim) {
	h.t.Helper()
	next := h.w.step(context.Background())
	reports, claims := h.c.out.take()
	return next.Sub(h.clock.Now()), h.lrm.takeOps(), reports, claims
}

// send commits what the worker queued, as the committer would.
func (h *harness) send(reports []fsm.Report, claims []fsm.Claim) {
	h.t.Helper()
	if len(reports) > 0 {
		h.must(fsm.TypeReports, fsm.Reports{Reports: reports})
	}
	if len(claims) > 0 {
		h.must(fsm.TypeClaims, fsm.Claims{Claims: claims})
	}
	h.c.out.sent()
}

// running brings web to running on n1 through a claim.
func (h *harness) running() {
	h.t.Helper()
	h.lrm.set("web", lrm.Stopped)
	_, _, reps, claims := h.step()
	h.send(reps, claims)
	_, ops, reps, _ := h.step()
	if len(ops) != 1 || ops[0] != "start web" {
		h.t.Fatalf("not started: %v", ops)
	}
	h.send(reps, nil)
}

func states(rs []fsm.Report) string {
	var s []string
	for _, r := range rs {
		x := r.State
		if r.Fail {
			x += "!"
		}
		s = append(s, x)
	}
	return strings.Join(s, ",")
}

const hour = time.Hour

func TestStep(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
		// What the step does: its wait, LRM operations, the reports
		// (states, "!" for a counted failure) and claims it queues.
		wait    time.Duration
		ops     string
		reports string
		claims  int
		// then, a second step with nothing changed must queue nothing
		// (it may try an operation again, as a failed reconfigure does)
		quiet bool
	}{
		{name: "blocked reports once", setup: func(h *harness) { h.lrm.set("web", lrm.Blocked) },
			wait: hour, reports: "blocked", quiet: true},
		{name: "lost lease stops", setup: func(h *harness) {
			h.running()
			h.lease.setUntil(func(now time.Time) time.Time { return now.Add(-time.Millisecond) })
		}, wait: 0, ops: "stop web", reports: "stopped"}, // "stopping" collapsed into "stopped"
		{name: "reassigned stops", setup: func(h *harness) {
			h.running()
			h.must(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "web", From: "n1", To: "n2"}}})
		}, wait: 0, ops: "stop web", reports: "stopped"}, // "stopping" collapsed into "stopped"
		{name: "waits for a lease, reporting once", setup: func(h *harness) {
			h.lease.setUntil(func(time.Time) time.Time { return time.Time{} })
		}, wait: hour, reports: "stopped", quiet: true},
		{name: "stopped and waiting for a lease says nothing", setup: func(h *harness) {
			h.lrm.set("web", lrm.Stopped)
			h.lease.setUntil(func(time.Time) time.Time { return time.Time{} })
		}, wait: hour, quiet: true},
		{name: "claims", setup: func(h *harness) { h.lrm.set("web", lrm.Stopped) },
			wait: keepalive, claims: 1, quiet: true},
		{name: "migration threshold reached: no claim", setup: func(h *harness) {
			h.lrm.set("web", lrm.Stopped)
			for range 3 {
				h.must(fsm.TypeReport, fsm.Report{Node: "n1", Group: "web", State: lrm.Failed, Resource: "vip", Fail: true})
			}
		}, wait: hour, quiet: true},
		{name: "another online node still runs it", setup: func(h *harness) {
			h.lrm.set("web", lrm.Stopped)
			h.must(fsm.TypeReport, fsm.Report{Node: "n2", Group: "web", State: lrm.Running})
		}, wait: hour, quiet: true},
		{name: "waits for the old owner's lease", setup: func(h *harness) {
			h.lrm.set("web", lrm.Stopped)
			h.must(fsm.TypeReport, fsm.Report{Node: "n2", Group: "web", State: lrm.Running})
			h.must(fsm.TypeNodeState, fsm.NodeState{Node: "n2", Online: ptr(false)})
			h.lease.released["n2"] = t0.Add(700 * time.Millisecond)
		}, wait: 700 * time.Millisecond, quiet: true},
		{name: "old owner's release not known yet", setup: func(h *harness) {
			h.lrm.set("web", lrm.Stopped)
			h.must(fsm.TypeReport, fsm.Report{Node: "n2", Group: "web", State: lrm.Running})
			h.must(fsm.TypeNodeState, fsm.NodeState{Node: "n2", Online: ptr(false)})
			h.lease.unknown["n2"] = true
		}, wait: keepalive, quiet: true},
		{name: "old owner released: claims", setup: func(h *harness) {
			h.lrm.set("web", lrm.Stopped)
			h.must(fsm.TypeReport, fsm.Report{Node: "n2", Group: "web", State: lrm.Running})
			h.must(fsm.TypeNodeState, fsm.NodeState{Node: "n2", Online: ptr(false)})
			h.lease.released["n2"] = t0.Add(-time.Millisecond)
		}, wait: keepalive, claims: 1},
		{name: "running: first report, then monitor at the interval", setup: func(h *harness) {
			h.lrm.set("web", lrm.Running)
		}, wait: 2 * time.Second, reports: "running", quiet: true},
		{name: "monitor failure recovers in place", setup: func(h *harness) {
			h.running()
			h.clock.add(2 * time.Second)
			h.lrm.failMon = boom
		}, wait: 0, ops: "monitor web,stop web", reports: "failed!,stopped"},
		{name: "monitor failure and a failed stop block", setup: func(h *harness) {
			h.running()
			h.clock.add(2 * time.Second)
			h.lrm.failMon, h.lrm.failStop = boom, boom
		}, wait: hour, ops: "monitor web,stop web", reports: "failed!,blocked!", quiet: true},
		{name: "new definitions reconfigure a running group", setup: func(h *harness) {
			h.running()
			h.lrm.reconfChg = true
			h.w.applied = "older"
		}, wait: 2 * time.Second, ops: "reconfigure web", reports: "running", quiet: true},
		{name: "a failing reconfigure reports once", setup: func(h *harness) {
			h.lrm.set("web", lrm.Stopped)
			h.lrm.failRecon = boom
			h.w.applied = "older"
		}, wait: keepalive, ops: "reconfigure web", reports: "stopped!", quiet: true},
		{name: "not ours and stopped: reported once", setup: func(h *harness) {
			h.lrm.set("web", lrm.Stopped)
			h.must(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "web", From: "n1", To: "n2"}}})
		}, wait: hour, reports: "stopped", quiet: true},
		{name: "maintenance leaves it alone", setup: func(h *harness) {
			h.lrm.set("web", lrm.Running)
			h.must(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Maintenance: ptr(true)})
		}, wait: hour, quiet: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "n1")
			h.step() // the definitions are applied first
			h.lrm.takeOps()
			h.w.reported, h.w.claiming = "", false
			tc.setup(h)
			h.lrm.takeOps()
			h.c.out.take()
			wait, ops, reps, claims := h.step()
			if wait != tc.wait || strings.Join(ops, ",") != tc.ops || states(reps) != tc.reports || len(claims) != tc.claims {
				t.Errorf("step: wait %v ops %q reports %q claims %d; want %v %q %q %d", wait, ops, states(reps), len(claims), tc.wait, tc.ops, tc.reports, tc.claims)
			}
			if tc.quiet {
				if _, _, reps, claims := h.step(); len(reps) != 0 || len(claims) != 0 {
					t.Errorf("second step: reports %q claims %+v", states(reps), claims)
				}
			}
		})
	}
}

// A claim is sent once per keepalive until accepted; the group starts
// only after the log accepted it, and a refused claim starts nothing.
// A worker that cannot yet know whether the old owner's lease ran out
// waits for the voters' reports: the next report wakes it (not a
// keepalive later).
func TestStepAwaitsReports(t *testing.T) {
	h := newHarness(t, "n1")
	h.lrm.set("web", lrm.Stopped)
	h.must(fsm.TypeReport, fsm.Report{Node: "n2", Group: "web", State: lrm.Running})
	h.must(fsm.TypeNodeState, fsm.NodeState{Node: "n2", Online: ptr(false)})
	h.lease.unknown["n2"] = true
	if _, _, _, claims := h.step(); len(claims) != 0 {
		t.Fatalf("claimed before the old owner's release was known: %v", claims)
	}
	if !h.c.awaitingReports() {
		t.Fatal("not waiting for reports")
	}
	<-h.c.reportWait // what wakes runLocal to select on reports
	h.lease.report("n2")
	<-h.lease.Reported()
	h.c.reportCame()
	select {
	case <-h.w.kick:
	default:
		t.Fatal("a report came and the waiting worker was not woken")
	}
	if h.c.awaitingReports() {
		t.Error("still waiting after the report")
	}
	if _, _, _, claims := h.step(); len(claims) != 1 {
		t.Fatalf("released now, want a claim: %v", claims)
	}
}

func TestStepClaim(t *testing.T) {
	h := newHarness(t, "n1")
	h.step()
	h.lrm.set("web", lrm.Stopped)
	h.w.reported, h.w.claiming = lrm.Stopped, false
	_, _, _, claims := h.step()
	if len(claims) != 1 || claims[0].AssignIndex != h.group().AssignIndex || claims[0].Node != "n1" {
		t.Fatalf("claims %+v", claims)
	}
	// Refused: the group was reassigned and back meanwhile.
	h.must(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "web", From: "n1", To: ""}}})
	h.must(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "web", To: "n1"}}})
	h.send(nil, claims)
	if g := h.group(); g.Claimed != "" {
		t.Fatalf("stale claim accepted: %+v", g)
	}
	wait, ops, _, again := h.step()
	if len(ops) != 0 || len(again) != 0 || wait != keepalive {
		t.Fatalf("after a refusal: wait %v ops %v claims %v", wait, ops, again)
	}
	h.clock.add(keepalive)
	_, _, _, again = h.step()
	if len(again) != 1 || again[0].AssignIndex != h.group().AssignIndex {
		t.Fatalf("claim again: %+v", again)
	}
	h.send(nil, again)
	_, ops, reps, _ := h.step()
	if strings.Join(ops, ",") != "start web" || states(reps) != "running" {
		t.Fatalf("accepted claim: ops %v reports %q", ops, states(reps))
	}
	// A start that fails counts a fatal failure.
	h.lrm.failMon = errors.New("gone")
	h.clock.add(2 * time.Second)
	h.lrm.failStart = errors.New("no")
	_, _, reps, _ = h.step() // monitor fails, stopped
	h.send(reps, nil)
	_, _, _, claims = h.step()
	h.send(nil, claims)
	_, ops, reps, _ = h.step()
	if strings.Join(ops, ",") != "start web" || len(reps) != 1 || !reps[0].Fatal || reps[0].State != lrm.Failed {
		t.Fatalf("failed start: ops %v reports %+v", ops, reps)
	}
}

// A claim accepted after the group was reassigned — the worker sees the
// acceptance and the reassignment at once, so it never starts — leaves
// "starting" for this node in the replicated state. The worker says once
// that nothing runs here; before, the new owner waited for a stop report
// that never came (the 10 ms / 50 ms scale lab: 951 of 1,000 groups ran
// nowhere for two minutes).
func TestStepCorrectsUnusedClaim(t *testing.T) {
	h := newHarness(t, "n1")
	h.lrm.set("web", lrm.Stopped)
	h.w.reported = lrm.Stopped // as after an earlier stop here
	_, _, reps, claims := h.step()
	if len(claims) != 1 {
		t.Fatalf("no claim: %+v", claims)
	}
	h.send(reps, claims)
	h.must(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "web", From: "n1", To: "n2", Reason: "n1 is offline"}}})
	busy := func() (s string) {
		h.c.opt.FSM.Read(func(st *fsm.State) { s = st.RunningElsewhere("web", "n2") })
		return s
	}
	if busy() != "n1" {
		t.Fatalf("the accepted claim should count as n1 possibly running web: %q", busy())
	}
	_, ops, reps, claims := h.step()
	if len(ops) != 0 || len(claims) != 0 || states(reps) != lrm.Stopped {
		t.Fatalf("unused claim: ops %v claims %v reports %q, want one stopped report", ops, claims, states(reps))
	}
	h.send(reps, nil)
	if b := busy(); b != "" {
		t.Fatalf("after the correction %q still counts as running web", b)
	}
	// Once per change: nothing more to say.
	if _, ops, reps, claims := h.step(); len(ops)+len(reps)+len(claims) != 0 {
		t.Fatalf("said again: ops %v reports %v claims %v", ops, reps, claims)
	}
}

// A claim accepted before the lease had a gap is not acted on after it:
// meanwhile the node may have been taken offline and the group started
// elsewhere once its lease ran out, before this node's view shows it (a
// node stalled longer than its lease in the 10 ms / 50 ms scale lab held
// VIPs the new owner held too). The worker claims again instead; a
// lapse during the start itself gives the group up at once.
func TestStepClaimAcrossLeaseGap(t *testing.T) {
	h := newHarness(t, "n1")
	h.lrm.set("web", lrm.Stopped)
	h.w.reported = lrm.Stopped
	_, _, reps, claims := h.step()
	h.send(reps, claims)
	if g := h.group(); g.Claimed != "n1" {
		t.Fatalf("claim not accepted: %+v", g)
	}
	// The lease runs out (a stall) and comes back before the worker acts.
	out := h.clock.Now().Add(keepalive)
	h.lease.setUntil(func(time.Time) time.Time { return out })
	h.clock.add(2 * keepalive)
	if _, ops, reps, claims := h.step(); len(ops)+len(claims) != 0 {
		t.Fatalf("without a lease: ops %v claims %v reports %v", ops, claims, reps)
	}
	h.lease.setUntil(func(now time.Time) time.Time { return now.Add(time.Hour) })
	_, ops, _, claims := h.step()
	if len(ops) != 0 || len(claims) != 1 {
		t.Fatalf("after the gap: ops %v claims %v, want no start and a new claim", ops, claims)
	}
	h.send(nil, claims)
	if _, ops, reps, _ := h.step(); strings.Join(ops, ",") != "start web" || states(reps) != lrm.Running {
		t.Fatalf("claimed again: ops %v reports %q", ops, states(reps))
	}

	// A gap while the start runs: the group is stopped again at once.
	h.lrm.set("web", lrm.Stopped)
	h.w.reported = lrm.Stopped
	h.must(fsm.TypeReports, fsm.Reports{Reports: []fsm.Report{{Node: "n1", Group: "web", State: lrm.Stopped}}})
	_, _, _, claims = h.step()
	h.send(nil, claims)
	h.lrm.onStart = func() {
		h.lease.setUntil(func(time.Time) time.Time { return h.clock.Now() })
		h.c.look() // the node sees its lease out…
		h.lease.setUntil(func(now time.Time) time.Time { return now.Add(time.Hour) })
		h.clock.add(time.Millisecond) // …and back
	}
	_, ops, reps, _ = h.step()
	if strings.Join(ops, ",") != "start web,stop web" || states(reps) != lrm.Stopped {
		t.Fatalf("lapse during the start: ops %v reports %q, want start, stop and a stopped report", ops, states(reps))
	}
}

// A worker that saw the lease out is woken once the lease is held again,
// even if runLocal never saw it out (they look at different instants).
func TestStepAwaitsLease(t *testing.T) {
	h := newHarness(t, "n1")
	h.lrm.set("web", lrm.Stopped)
	h.w.reported = lrm.Stopped
	h.lease.setUntil(func(time.Time) time.Time { return time.Time{} })
	if wait, _, reps, claims := h.step(); wait != hour || len(reps)+len(claims) != 0 {
		t.Fatalf("without a lease: wait %v reports %v claims %v", wait, reps, claims)
	}
	h.c.leaseCame()
	select {
	case <-h.w.kick:
	default:
		t.Fatal("not woken when the lease came")
	}
	h.c.leaseCame() // once
	select {
	case <-h.w.kick:
		t.Fatal("woken twice")
	default:
	}

	// A worker that saw the lease out at an instant runLocal never saw
	// as a change is woken by the next beat's renewal hook that finds it
	// held: runLocal is not woken every beat.
	h.step()
	h.c.leased = true // what runLocal last handed on
	h.lease.setUntil(func(now time.Time) time.Time { return now.Add(time.Hour) })
	h.c.renewed()
	select {
	case <-h.w.kick:
	default:
		t.Fatal("not woken by the renewal hook when the lease was held")
	}
}

// A start the plugin refused because its copy of the lease ran out (the
// renewal reached it late) is no failure of the resource: nothing is
// counted, and the group is claimed again.
func TestStepStartRefusedForLease(t *testing.T) {
	h := newHarness(t, "n1")
	h.lrm.set("web", lrm.Stopped)
	_, _, reps, claims := h.step()
	h.send(reps, claims)
	h.lrm.failStart = fmt.Errorf("group web: start vip: %w", lrm.ErrNoLease)
	wait, ops, reps, _ := h.step()
	if strings.Join(ops, ",") != "start web" || states(reps) != lrm.Stopped || wait != keepalive {
		t.Fatalf("refused start: ops %v reports %q wait %v", ops, states(reps), wait)
	}
	h.send(reps, nil)
	var failcount int
	h.c.opt.FSM.Read(func(s *fsm.State) { failcount = s.Failcount("web", "n1") })
	if reps[0].Fail || reps[0].Fatal || failcount != 0 {
		t.Fatalf("a lease refusal counted as a failure: %+v", reps[0])
	}
	h.lrm.failStart = nil
	h.clock.add(keepalive)
	_, _, _, claims = h.step()
	h.send(nil, claims)
	if _, ops, reps, _ := h.step(); strings.Join(ops, ",") != "start web" || states(reps) != lrm.Running {
		t.Fatalf("claimed again and started: ops %v reports %q", ops, states(reps))
	}
}

// `vigil cleanup` probes again and says what it found.
func TestStepCleanup(t *testing.T) {
	h := newHarness(t, "n1")
	h.must(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "web", From: "n1", To: "n2"}}})
	h.lrm.set("web", lrm.Stopped)
	h.step()
	if _, _, reps, _ := h.step(); len(reps) != 0 {
		t.Fatalf("quiet step reported %q", states(reps))
	}
	h.must(fsm.TypeCleanup, fsm.Cleanup{Group: "web"})
	_, ops, reps, _ := h.step()
	if strings.Join(ops, ",") != "probe web" || states(reps) != "stopped" {
		t.Fatalf("cleanup: ops %v reports %q", ops, states(reps))
	}
}

// The outbox never drops: state reports of a group collapse to the
// latest, failures are all kept in order, groups keep their own order.
func TestOutbox(t *testing.T) {
	o := newOutbox()
	for i, r := range []fsm.Report{
		{Group: "a", State: "stopping"}, {Group: "b", State: "running"}, {Group: "a", State: "failed", Fail: true},
		{Group: "a", State: "stopped"}, {Group: "a", State: "starting"}, {Group: "b", State: "stopped"},
	} {
		r.At = int64(i)
		o.report(r)
	}
	if o.pending() != 3 {
		t.Fatalf("pending %d", o.pending())
	}
	reps, _ := o.take()
	got := ""
	for _, r := range reps {
		got += r.Group + ":" + r.State + " "
	}
	if got != "a:failed a:starting b:stopped " {
		t.Errorf("batch %q", got)
	}
	// Not committed: put back ahead of what came since.
	o.report(fsm.Report{Group: "a", State: "running"})
	o.report(fsm.Report{Group: "c", State: "running"})
	o.putBack(reps)
	reps, _ = o.take()
	got = ""
	for _, r := range reps {
		got += r.Group + ":" + r.State + " "
	}
	if got != "a:failed a:running b:stopped c:running " {
		t.Errorf("after put back %q", got)
	}
	for range 10_000 {
		o.report(fsm.Report{Group: "a", State: "running"})
	}
	if o.pending() != 1 {
		t.Errorf("10,000 state reports kept %d", o.pending())
	}
	o.claim(fsm.Claim{Group: "a", AssignIndex: 1})
	o.claim(fsm.Claim{Group: "a", AssignIndex: 2})
	if _, cl := o.take(); len(cl) != 1 || cl[0].AssignIndex != 2 {
		t.Errorf("claims %+v", cl)
	}
}

// Without a quorum the committer keeps what it could not send, coalesced
// and in order, and sends it once the log takes entries again.
func TestCommitterRetries(t *testing.T) {
	h := newHarness(t, "n1")
	h.log.mu.Lock()
	h.log.cut["n1"] = true
	h.log.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.c.commit(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	index, _ := h.log.entries()
	h.c.out.report(fsm.Report{Node: "n1", Group: "web", State: lrm.Failed, Resource: "vip", Fail: true})
	for i := range 100 {
		h.c.out.report(fsm.Report{Node: "n1", Group: "web", State: lrm.Stopped, Reason: fmt.Sprint(i)})
	}
	if n := h.c.out.pending(); n > 2 {
		t.Errorf("%d reports queued, want the failure and the latest state", n)
	}
	h.log.mu.Lock()
	h.log.cut["n1"] = false
	h.log.mu.Unlock()
	f := h.c.opt.FSM
	deadline := time.After(time.Minute) // a bound: the retry backoff is at most a second
	for {
		changed := f.Changed()
		var reason string
		var fails int
		f.Read(func(s *fsm.State) {
			g := s.Groups["web"]
			reason, fails = g.Reports["n1"].Reason, g.Failcounts["n1"]["vip"]
		})
		if reason == "99" {
			if fails != 1 {
				t.Errorf("failcount %d, want 1", fails)
			}
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("reports never committed: last %q", reason)
		}
	}
	if now, byType := h.log.entries(); now-index > 2 || byType[fsm.TypeReports] == 0 {
		t.Errorf("%d entries for the queued reports %v", now-index, byType)
	}
}

// Leave returns only once the replicated state no longer says the group
// runs here: a group stopped here whose report is still queued would
// otherwise wait, elsewhere, for this node to be declared dead.
func TestLeaveWaitsForStopReport(t *testing.T) {
	h := newHarness(t, "n1")
	h.running()
	h.lrm.set("web", lrm.Stopped) // stopped here, not yet reported
	ctx, cancel := context.WithTimeout(context.Background(), 3*keepalive)
	defer cancel()
	if err := h.c.Leave(ctx); err == nil {
		t.Fatal("Leave returned while the state still had web running here")
	}
	h.must(fsm.TypeReport, fsm.Report{Node: "n1", Group: "web", State: lrm.Stopped})
	if err := h.c.Leave(context.Background()); err != nil {
		t.Fatalf("Leave after the stop report: %v", err)
	}
}

// countHandler counts the records logged with a message.
type countHandler struct {
	slog.Handler
	mu   sync.Mutex
	msgs map[string]int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs[r.Message]++
	return nil
}

func (h *countHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[msg]
}

// Every group of a dead owner waits for the same end of its lease: that
// is logged once, not once per group (or per step), and again when the
// end moves.
func TestLeaseWaitLoggedOnce(t *testing.T) {
	h := newHarness(t, "n1")
	logs := &countHandler{msgs: map[string]int{}}
	h.c.log = slog.New(logs)
	h.lrm.set("web", lrm.Stopped)
	h.must(fsm.TypeReport, fsm.Report{Node: "n2", Group: "web", State: lrm.Running})
	h.must(fsm.TypeNodeState, fsm.NodeState{Node: "n2", Online: ptr(false)})
	h.lease.released["n2"] = t0.Add(700 * time.Millisecond)
	const msg = "waiting for the old owner's lease to run out"
	for range 3 {
		if wait, _, _, _ := h.step(); wait != 700*time.Millisecond {
			t.Fatalf("waits %s, want 700ms", wait)
		}
	}
	if n := logs.count(msg); n != 1 {
		t.Errorf("%d lines for one wait", n)
	}
	h.lease.released["n2"] = t0.Add(900 * time.Millisecond)
	h.step()
	if n := logs.count(msg); n != 2 {
		t.Errorf("%d lines for two waits", n)
	}
}
