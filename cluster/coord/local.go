package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
)

// handoverPeriod is how often the owner of a group asks its resources for
// their hand-over state (and replicates what changed): a failover loses
// at most what changed in the last period.
const handoverPeriod = time.Second

// Leave hands this node's groups over before a graceful shutdown, as a
// planned move: the node is marked as leaving, the leader moves its groups
// (stopped here, then started elsewhere), and Leave returns once none runs
// here and the replicated state says so — the new owner waits for that
// report, and a daemon that exited with it still queued left the group
// down until its death was declared — or when ctx ends (the caller then
// stops what is left itself).
func (c *Coordinator) Leave(ctx context.Context) error {
	if c.opt.LRM == nil {
		return nil
	}
	if !c.holding() && !c.reportedHolding() {
		return nil
	}
	yes := true
	if err := c.Apply(ctx, fsm.TypeNodeState, fsm.NodeState{Node: c.opt.Self, Leaving: &yes, Incarnation: c.opt.Incarnation, Reason: "shutting down"}); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	for c.holding() || c.reportedHolding() {
		changed := c.opt.FSM.Changed()
		select {
		case <-ctx.Done():
			return fmt.Errorf("leave: groups still running here: %w", ctx.Err())
		case <-changed:
		case <-time.After(c.opt.Timing.Recheck()):
		}
	}
	return nil
}

// runLocal keeps one worker per replicated group and wakes each when
// something it depends on changed: its own group's record, the nodes (this
// node's flags, a node going offline or online), the definitions, or this
// node's lease starting or ending. Nothing else wakes it, so a committed
// entry costs work for the groups it names, not for every group.
func (c *Coordinator) runLocal(ctx context.Context) {
	workers := map[string]*worker{}
	done := make(chan string)
	defer func() {
		for range workers {
			<-done
		}
	}()
	// Probe first, so that the first reports say what already runs here.
	groups, _ := c.configured()
	for _, g := range groups {
		c.opt.LRM.Probe(ctx, toConfig(g))
	}
	leaseTimer := time.NewTimer(c.opt.Timing.Recheck())
	defer leaseTimer.Stop()
	c.holdMu.Lock() // the hook may run at once: it waits for both
	c.leaseTimer = leaseTimer
	c.everyBeat = c.opt.Lease.OnRenew(c.renewed)
	c.holdMu.Unlock()
	defer c.opt.Lease.OnRenew(nil)
	var events <-chan membership.Event
	if c.opt.Members != nil {
		ch, cancel := c.opt.Members.Subscribe(16)
		defer cancel()
		events = ch
	}
	var seen uint64
	rescan := true // the first pass starts a worker per group and wakes them all
	holding := false
	for {
		c.localPasses.Add(1)
		changed := c.opt.FSM.Changed()
		t := c.opt.FSM.Since(seen)
		seen = t.To
		all := t.All || t.Defs || t.Nodes
		if rescan || t.All || t.Defs {
			for _, name := range c.groupNames() {
				if workers[name] != nil {
					continue
				}
				w := &worker{c: c, name: name, kick: make(chan struct{}, 1), announce: make(chan struct{}, 1)}
				workers[name] = w
				all = true
				go func() {
					w.run(ctx)
					done <- name
				}()
			}
		}
		rescan = false
		// The lease is renewed by heartbeats, not by the log: look every
		// keepalive (the renewal hook does, on the beat's wake-up, when
		// the lease calls it every beat), and at the instant it would
		// run out, whether this node gained or lost it.
		now, holdUntil := c.hold()
		if holds := now.Before(holdUntil); holds != holding {
			holding, all = holds, true
			// One line per change, where a failover that stalls looks
			// first (the workers each say only what they do).
			c.log.Info("lease", "held", holds, "until", holdUntil.Format(time.RFC3339Nano))
		}
		if holding {
			c.leaseCame()
		}
		if all {
			for _, w := range workers {
				w.poke()
			}
		} else {
			for name := range t.Groups {
				if w := workers[name]; w != nil {
					w.poke()
				}
			}
		}
		next := c.opt.Timing.Recheck()
		if c.everyBeat {
			next = time.Hour // the hook looks every beat, and says when it moved
		}
		if holding {
			next = min(next, holdUntil.Sub(now))
		}
		c.holdMu.Lock()
		leaseTimer.Reset(max(time.Millisecond, next))
		c.holdMu.Unlock()
		var reported <-chan struct{} // only while a worker waits for one
		if c.awaitingReports() {
			reported = c.opt.Lease.Reported()
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			// A node that was dead or restarted may have held, or still
			// have caches pointing at, addresses this node now holds:
			// ownership just resolved, so announce them again.
			if ev.Kind == membership.NodeUp || ev.Kind == membership.NodeRestarted {
				for _, w := range workers {
					w.signal(w.announce)
				}
			}
		case <-changed:
		case <-c.reloaded:
			rescan = true
		case <-leaseTimer.C:
		case <-c.flipped:
			// The lease came back (the workers start what waited for
			// it) or went.
		case <-c.reportWait:
			// A worker began waiting for reports: select on them.
		case <-reported:
			c.reportCame()
		}
	}
}

// hold hands the lease as of now on to the LRM (and so to the plugins)
// and returns it (lease.Tracker.HoldUntil).
func (c *Coordinator) hold() (now, until time.Time) {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	now, until, _ = c.look()
	c.opt.LRM.Hold(until)
	c.leased = now.Before(until)
	return now, until
}

// renewed is the lease's renewal hook, on the heartbeat's goroutine: it
// hands a renewal on to the plugins at once (their copy must not lag a
// keepalive behind), a few memory stores (the LRM's lease page), and
// moves runLocal's timer to the lease's new end. Only a change of
// whether this node holds the lease wakes runLocal, whose workers start
// or stop groups: runLocal woken for every echo, and every keepalive,
// was a third of an idle director's wake-ups at a 10 ms beat.
func (c *Coordinator) renewed() {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	now, until, _ := c.look()
	holds := now.Before(until)
	if holds != c.leased {
		select {
		case c.flipped <- struct{}{}:
		default:
		}
		return // runLocal hands it on with the workers' wake-up
	}
	c.opt.LRM.Hold(until)
	if holds && c.everyBeat && c.leaseTimer != nil {
		c.leaseTimer.Reset(max(time.Millisecond, until.Sub(now)))
	}
	if holds {
		// A worker that saw the lease out at an instant of its own,
		// which neither this hook nor runLocal saw as a change, is
		// woken here: runLocal, no longer woken every beat, may not
		// pass for a long time.
		c.leaseCame()
	}
}

// awaitReports has w woken when a voter reports it applied more of the
// log.
func (c *Coordinator) awaitReports(w *worker) {
	c.reportMu.Lock()
	c.reportWaiters[w] = struct{}{}
	c.reportMu.Unlock()
	select {
	case c.reportWait <- struct{}{}:
	default:
	}
}

func (c *Coordinator) awaitingReports() bool {
	c.reportMu.Lock()
	defer c.reportMu.Unlock()
	return len(c.reportWaiters) > 0
}

// reportCame wakes the workers waiting for a report; each waits again
// if it was not the one it needed.
func (c *Coordinator) reportCame() {
	c.reportMu.Lock()
	ws := c.reportWaiters
	c.reportWaiters = map[*worker]struct{}{}
	c.reportMu.Unlock()
	for w := range ws {
		w.poke()
	}
}

// awaitLease has w woken at runLocal's next pass that finds the lease
// held.
func (c *Coordinator) awaitLease(w *worker) {
	c.reportMu.Lock()
	c.leaseWaiters[w] = struct{}{}
	c.reportMu.Unlock()
}

// leaseCame wakes the workers waiting for the lease.
func (c *Coordinator) leaseCame() {
	c.reportMu.Lock()
	ws := c.leaseWaiters
	if len(ws) > 0 {
		c.leaseWaiters = map[*worker]struct{}{}
	}
	c.reportMu.Unlock()
	for w := range ws {
		w.poke()
	}
}

// groupNames lists the replicated groups, then those configured here but
// not (yet) replicated.
func (c *Coordinator) groupNames() []string {
	var names []string
	replicated := map[string]bool{}
	c.opt.FSM.Read(func(s *fsm.State) {
		names = slices.Clone(s.GroupOrder)
		for name := range s.Groups {
			replicated[name] = true
		}
	})
	groups, _ := c.configured()
	for _, g := range groups {
		if !replicated[g.Name] {
			names = append(names, g.Name)
		}
	}
	return names
}

// worker drives one group on this node.
type worker struct {
	c        *Coordinator
	name     string
	kick     chan struct{}
	announce chan struct{} // re-announce held addresses

	spec        fsm.GroupSpec
	haveSpec    bool
	applied     string // the replicated definitions' version the LRM has
	nextMonitor time.Time
	cleanup     uint64
	reported    string // last state reported
	failed      string // the last failure reported for a retried operation
	// The index of this node's replicated report last corrected: the FSM
	// writes "starting" for an accepted claim, which the worker may
	// never act on (reassigned first); it says once what really runs.
	corrected uint64
	// A claim sent and not yet used: one accepted after claimBase (the
	// index the worker had seen when it sent it) lets it start.
	claiming  bool
	claimBase uint64
	claimAt   time.Time
	// Hand-over states: the generation of each resource's the cluster
	// has from this node since it started the group, when to ask next,
	// and whether the group has none at all.
	handed       map[string]uint64
	nextHandover time.Time
	noHandover   bool
}

func (w *worker) poke() { w.signal(w.kick) }

func (w *worker) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func isIPaddr(b config.Binding) bool { return b.Agent == config.TypeIPaddr }

func (w *worker) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// Each step runs on a goroutine of its own: the operations it calls
	// (gRPC to a plugin) grow a stack to tens of KB that a parked worker
	// would keep, 18 MB for 1,000 groups; a finished goroutine gives its
	// stack back.
	stepped := make(chan time.Time, 1)
	for {
		go func() { stepped <- w.step(ctx) }()
		next := <-stepped
		timer.Reset(max(time.Millisecond, next.Sub(w.c.now())))
		select {
		case <-ctx.Done():
			// The daemon is stopping: a graceful stop releases what runs
			// here, as heartbeat's shutdown does, so the peer takes over.
			if w.haveSpec && lrm.Active(w.c.opt.LRM.State(w.name)) {
				sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := w.c.opt.LRM.Stop(sctx, toConfig(w.spec))
				scancel()
				w.c.log.Info("stopped group on shutdown", "group", w.name, "err", err)
			}
			return
		case <-w.kick:
		case <-w.announce:
			w.reannounce(ctx)
		case <-timer.C:
		}
	}
}

// announceParallel is how many groups re-announce their addresses at
// once when a peer comes back. All of a thousand at once kept a loaded
// director's heartbeat goroutine from running for 300 ms, which cost it
// its lease and every group it had just taken over.
const announceParallel = 4

// reannounce announces the group's addresses again, if it runs here: a
// node that came back may have held them, or its caches may point at
// the old holder. A change to act on first (a kick) goes ahead of it:
// the announcement follows, on the next turn of run.
func (w *worker) reannounce(ctx context.Context) {
	running := func() bool { return w.haveSpec && w.c.opt.LRM.State(w.name) == lrm.Running }
	if !running() {
		return
	}
	w.c.announceWaiting.Add(1)
	slot := false
	select {
	case w.c.announcing <- struct{}{}:
		slot = true
	case <-w.kick:
		w.signal(w.announce)
	case <-ctx.Done():
	}
	w.c.announceWaiting.Add(-1)
	if !slot {
		return
	}
	defer func() { <-w.c.announcing }()
	// A peer that restarted is seen up and restarted at once: one
	// announcement covers both.
	select {
	case <-w.announce:
	default:
	}
	if !running() {
		return
	}
	if err := w.c.opt.LRM.Reload(ctx, toConfig(w.spec), isIPaddr); err != nil {
		w.c.log.Warn("re-announce failed", "group", w.name, "err", err)
	}
}

// view is what one step needs from the replicated state.
type view struct {
	exists       bool
	index        uint64 // of the state read
	version      string // of the replicated definitions
	spec         fsm.GroupSpec
	owner        string
	assignIndex  uint64
	claimed      string
	claimIndex   uint64
	cleanupIndex uint64
	maintenance  bool
	failcount    int
	busyOnline   string            // an online node that may run the group
	offline      map[string]uint64 // offline nodes that may run it → DownIndex
	mine         fsm.NodeReport    // this node's replicated report
	haveMine     bool
}

func (w *worker) view() view {
	var v view
	self := w.c.opt.Self
	w.c.opt.FSM.Read(func(s *fsm.State) {
		v.index = s.Index
		g := s.Groups[w.name]
		if g == nil {
			return
		}
		v.exists, v.spec, v.owner, v.assignIndex, v.cleanupIndex = true, g.GroupSpec, g.Owner, g.AssignIndex, g.CleanupIndex
		v.claimed, v.claimIndex = g.Claimed, g.ClaimIndex
		v.version = s.GroupsVersion
		if n := s.Nodes[self]; n != nil {
			v.maintenance = n.Maintenance
		}
		v.failcount = s.Failcount(w.name, self)
		v.busyOnline = s.RunningElsewhere(w.name, self)
		v.mine, v.haveMine = g.Reports[self]
		for name, r := range g.Reports {
			if n := s.Nodes[name]; name != self && fsm.Active(r.State) && n != nil && !n.Online {
				if v.offline == nil {
					v.offline = map[string]uint64{}
				}
				v.offline[name] = n.DownIndex
			}
		}
	})
	return v
}

// step does at most one transition and returns when to look again (a
// change of what it depends on wakes it earlier). Reports go out once per
// change of what they say, never once per step.
func (w *worker) step(ctx context.Context) time.Time {
	w.c.steps.Add(1)
	now, holdUntil, heldSince := w.c.look()
	later := now.Add(time.Hour)
	v := w.view()
	if !v.exists {
		if !w.haveSpec {
			groups, _ := w.c.configured()
			for _, g := range groups {
				if g.Name == w.name {
					w.spec, w.haveSpec = g, true
				}
			}
		}
	} else {
		w.spec, w.haveSpec = v.spec, true
	}
	if !w.haveSpec || v.maintenance {
		return later
	}
	cfg := toConfig(w.spec)
	lr := w.c.opt.LRM
	local := lr.State(w.name)
	holds := now.Before(holdUntil)
	want := v.exists && v.owner == w.c.opt.Self
	// A changed definition (vigil reload) is applied to a group that runs
	// here only while this node may run it: starting anything without
	// the lease is what the stop below is for.
	if v.version != w.applied && (!lrm.Active(local) || (want && holds && local != lrm.Blocked)) {
		changed, err := lr.Reconfigure(ctx, cfg)
		switch {
		case err != nil: // tried again a keepalive later, reported once
			if err.Error() != w.failed {
				w.failed = err.Error()
				w.reportOp(lr.State(w.name), err, lrm.Active(local))
			}
			return now.Add(w.c.opt.Timing.Recheck())
		case changed && local == lrm.Running:
			w.report(fsm.Report{State: lrm.Running, Op: "reload", Result: "OK", Reason: "group definition changed"})
		}
		w.applied, w.failed = v.version, ""
		local = lr.State(w.name)
	}
	if v.cleanupIndex > w.cleanup {
		// `vigil cleanup`: forget what we knew and look again.
		w.cleanup = v.cleanupIndex
		lr.Probe(ctx, cfg)
		w.reported = ""
		local = lr.State(w.name)
	}
	switch {
	case local == lrm.Blocked:
		if w.reported != lrm.Blocked {
			w.report(fsm.Report{State: lrm.Blocked, Op: "stop", Reason: "a stop failed: the group may still run here"})
		}
		return later

	case lrm.Active(local) && (!want || !holds):
		reason := fmt.Sprintf("assigned to %q", v.owner)
		if want {
			reason = "lease lost: no quorum confirms this node"
		}
		w.c.log.Info("stopping group", "group", w.name, "reason", reason)
		w.report(fsm.Report{State: lrm.Stopping, Op: "stop", Reason: reason})
		if err := lr.Stop(ctx, cfg); err != nil {
			w.reportOp(lrm.Blocked, err, false)
			return later
		}
		w.report(fsm.Report{State: lrm.Stopped, Op: "stop", Result: "OK", Reason: reason})
		return now

	case want && !holds:
		// The lease coming back wakes the worker.
		if local != lrm.Stopped && local != lrm.Failed && w.reported != lrm.Stopped {
			w.report(fsm.Report{State: lrm.Stopped, Reason: "waiting for a lease"})
		}
		w.c.awaitLease(w)
		return later

	case want && !lrm.Active(local):
		if th := w.c.opt.Placement.MigrationThreshold; th > 0 && v.failcount >= th {
			return later // placement moves it
		}
		if w.claiming && v.claimed == w.c.opt.Self && v.claimIndex > w.claimBase {
			if heldSince.After(w.claimAt) {
				// The lease had a gap since the claim was sent: the
				// acceptance may predate this node's going offline, so
				// claim again (refused if the group was reassigned).
				w.c.log.Info("claim dropped: the lease lapsed since it was sent", "group", w.name)
				w.claiming = false
			} else {
				return w.start(ctx, cfg, now)
			}
		}
		if v.busyOnline != "" {
			return later // wait for its stop report
		}
		for node, down := range v.offline {
			at, ok := w.c.opt.Lease.ReleasedAt(node, down)
			if !ok {
				// The voters' reports come in heartbeats: woken by
				// the next, or a keepalive later at the latest.
				w.c.awaitReports(w)
				return now.Add(w.c.opt.Timing.Recheck())
			}
			if at.After(now) {
				w.c.logLeaseWait(w.name, node, at, now)
				return at
			}
		}
		if w.claiming && (w.c.out.claiming(w.name) || now.Before(w.claimAt.Add(w.c.opt.Timing.Recheck()))) {
			// Queued or being committed: its acceptance changes the
			// group and wakes us; a refusal changes nothing, so claim
			// again once the round is over and a keepalive has passed.
			return now.Add(w.c.opt.Timing.Recheck())
		}
		w.claiming, w.claimBase, w.claimAt = true, v.index, now
		w.c.out.claim(fsm.Claim{Node: w.c.opt.Self, Group: w.name, AssignIndex: v.assignIndex})
		return now.Add(w.c.opt.Timing.Recheck())

	case want && local == lrm.Running:
		if w.reported != lrm.Running {
			w.report(fsm.Report{State: lrm.Running, Op: "probe", Result: "OK"})
			w.nextMonitor = now.Add(lrm.MonitorInterval(cfg))
		}
		if !now.Before(w.nextMonitor) {
			if err := lr.Monitor(ctx, cfg); err != nil {
				// Recover in place: count the failure, stop the group;
				// the next step starts it again here, or placement moves
				// it once the threshold is reached.
				w.reportOp(lrm.Failed, err, false)
				if serr := lr.Stop(ctx, cfg); serr != nil {
					w.reportOp(lrm.Blocked, serr, false)
					return later
				}
				w.report(fsm.Report{State: lrm.Stopped, Op: "stop", Result: "OK", Reason: "recovering from a monitor failure"})
				return now
			}
			w.nextMonitor = now.Add(lrm.MonitorInterval(cfg))
		}
		// The lease running out wakes the worker (runLocal watches it).
		return minTime(w.nextMonitor, w.handover(ctx, cfg, now))

	case !want && !lrm.Active(local) && v.haveMine && fsm.Active(v.mine.State) && v.mine.Index != w.corrected:
		// The replicated state says this node may run the group — an
		// accepted claim it never acted on, as the group was reassigned
		// before its worker saw the acceptance — while nothing runs
		// here. The new owner waits for this node's stop report (rule
		// 4), which the worker would never send, as the last report it
		// sent itself said stopped: say it, once per such entry.
		w.corrected = v.mine.Index
		w.c.log.Info("reporting an unused claim: the group does not run here", "group", w.name, "owner", v.owner)
		w.report(fsm.Report{State: local, Op: "probe", Reason: "claim not acted on: the group was reassigned first"})
		return later

	case !want && local == lrm.Unknown:
		return later

	case !want && w.reported == "":
		w.report(fsm.Report{State: local, Op: "probe"})
	}
	return later
}

// start starts the group after its claim was accepted.
func (w *worker) start(ctx context.Context, cfg config.Group, now time.Time) time.Time {
	w.claiming = false
	w.reported = lrm.Starting
	lr := w.c.opt.LRM
	if err := lr.Start(ctx, cfg); err != nil {
		if errors.Is(err, lrm.ErrNoLease) && lr.State(w.name) != lrm.Blocked {
			// The plugin's copy of the lease ran out before the
			// renewal reached it: not the resource's fault. Claim
			// again once the lease is renewed.
			w.c.log.Warn("start refused by the plugin: its lease ran out", "group", w.name, "err", err)
			w.report(fsm.Report{State: lrm.Stopped, Op: "start", Reason: "the plugin's lease ran out before the renewal reached it"})
			return now.Add(w.c.opt.Timing.Recheck())
		}
		state := lrm.Failed
		if lr.State(w.name) == lrm.Blocked {
			state = lrm.Blocked
		}
		w.reportOp(state, err, true)
		return now
	}
	if _, _, since := w.c.look(); since.After(w.claimAt) {
		// The lease had a gap while the start ran (a stalled node): the
		// claim may be stale by now, as above. Give the group up and
		// claim again.
		w.c.log.Info("stopping group", "group", w.name, "reason", "the lease lapsed while it started")
		if err := lr.Stop(ctx, cfg); err != nil {
			w.reportOp(lrm.Blocked, err, false)
			return now
		}
		w.report(fsm.Report{State: lrm.Stopped, Op: "stop", Result: "OK", Reason: "the lease lapsed while it started"})
		return now
	}
	w.report(fsm.Report{State: lrm.Running, Op: "start", Result: "OK"})
	now = w.c.now()
	w.nextMonitor = now.Add(lrm.MonitorInterval(cfg))
	// What the start took over (the previous owner's state) is this
	// node's to replicate now: at once, whatever the generations.
	w.handed, w.nextHandover, w.noHandover = nil, time.Time{}, false
	return minTime(w.nextMonitor, w.handover(ctx, cfg, now))
}

// handover replicates the hand-over states of the group's resources that
// changed, at most once per handoverPeriod, and returns when to look
// again. Only the owner running the group does it; the FSM takes a state
// only from the node whose start of the current assignment was accepted.
func (w *worker) handover(ctx context.Context, cfg config.Group, now time.Time) time.Time {
	if w.noHandover {
		return now.Add(time.Hour)
	}
	if now.Before(w.nextHandover) {
		return w.nextHandover
	}
	w.nextHandover = now.Add(handoverPeriod)
	hctx, cancel := context.WithTimeout(ctx, handoverPeriod)
	defer cancel()
	states, more, err := w.c.opt.LRM.Handover(hctx, cfg, w.handed)
	if err != nil {
		w.c.log.Warn("hand-over state not read", "group", w.name, "err", err)
	}
	if !more {
		w.noHandover = true
		return now.Add(time.Hour)
	}
	for _, s := range states {
		err := w.c.Apply(hctx, fsm.TypeHandover, fsm.Handover{Node: w.c.opt.Self, Group: w.name, Resource: s.Resource, Generation: s.Generation, State: s.State})
		if err != nil {
			// Asked again next period: the generation is not recorded.
			w.c.log.Warn("hand-over state not replicated", "group", w.name, "resource", s.Resource, "bytes", len(s.State), "err", err)
			continue
		}
		if w.handed == nil {
			w.handed = map[string]uint64{}
		}
		w.handed[s.Resource] = s.Generation
	}
	return w.nextHandover
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// reportOp reports a failed operation; fatal failures (a start) make this
// node ineligible for the group until cleanup.
func (w *worker) reportOp(state string, err error, fatal bool) {
	r := fsm.Report{State: state, Reason: err.Error(), Fail: true, Fatal: fatal}
	if oe := lrm.FailedOp(err); oe != nil {
		r.Op, r.Resource, r.Result, r.Reason = oe.Op, oe.Resource, oe.Result, oe.Reason
	}
	w.c.log.Error("group operation failed", "group", w.name, "state", state, "err", err)
	w.report(r)
}

// report queues a report for the node's committer.
func (w *worker) report(r fsm.Report) {
	r.Node, r.Group, r.At = w.c.opt.Self, w.name, w.c.now().UnixNano()
	w.reported = r.State
	w.c.out.report(r)
}

// logLeaseWait says that the groups of node wait until at for its lease
// to run out: once per node and instant, not once per group — a
// takeover of a thousand groups logged a thousand identical lines.
func (c *Coordinator) logLeaseWait(group, node string, at, now time.Time) {
	c.leaseWaits.mu.Lock()
	defer c.leaseWaits.mu.Unlock()
	if c.leaseWaits.at == nil {
		c.leaseWaits.at = map[string]time.Time{}
	}
	if c.leaseWaits.at[node].Equal(at) {
		return
	}
	c.leaseWaits.at[node] = at
	c.log.Info("waiting for the old owner's lease to run out", "node", node, "wait", at.Sub(now).Round(time.Millisecond), "first_group", group)
}
