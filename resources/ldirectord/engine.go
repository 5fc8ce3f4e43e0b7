// Package ldirectord is the IPVS manager: the built-in `ldirectord`
// resource plugin. It health-checks real servers (on every director, also
// the standby ones, so a takeover starts warm), computes the table the
// configuration and the health state call for, and reconciles a director
// backend towards it by difference only.
package ldirectord

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
	"github.com/vigil-ha/vigil/resources/ldirectord/spec"
)

// Event is one change worth an alert: a real server's health transition
// or a change made to the director table.
type Event struct {
	Time    time.Time
	Kind    string // "realserver" or "table"
	Subject string // "192.168.6.2:80" or "TCP  10.0.0.3:80"
	Host    string // realserver: the real server's address
	Active  bool   // the instance was directing traffic (not a warm standby)
	Up      bool
	Summary string
}

// Options configure an Engine.
type Options struct {
	Log *slog.Logger
	// Open opens the director backend when the engine first activates
	// (default director.Open).
	Open func(name string, log *slog.Logger) (director.Backend, error)
	// OnEvent receives every event (the alert path); it must not block.
	OnEvent func(Event)
	// OpenSync opens the kernel's sync-daemon control when the instance
	// has a [sync] table (default director.OpenSync); SetSysctl writes a
	// /proc/sys file (default: the real one).
	OpenSync  func() (SyncControl, error)
	SetSysctl func(path, value string) error
	// GetSysctl reads one (default: the real one); stateless mode keeps
	// the values it found, to put them back.
	GetSysctl func(path string) (string, error)
	// SetStrayReplies writes stateless mode's rules for un-NATed replies
	// (default director.SetStrayReplies, in the calling thread's network
	// namespace).
	SetStrayReplies func([]director.StrayReply) error
	// SysctlScope names the network namespace those reach ("" for the
	// process's own): the instances of one scope share stateless mode's
	// sysctls and stray reply rules, put back when the last of them is done.
	SysctlScope string
}

// Engine runs one ldirectord instance.
type Engine struct {
	opts  Options
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	kick  chan struct{} // coalesced reconcile requests
	sched *schedule

	mu       sync.Mutex
	inst     spec.Instance
	checkers map[string]*checker // by probe signature
	// byReal is each configured real's checker ([virtual][real]; nil for
	// checktype off), resolved once per Configure so that a reconcile
	// does not rebuild checks.
	byReal  [][]*checker
	backend director.Backend
	why     string // why this backend
	active  bool
	owned   map[director.Key]bool // services this instance has programmed
	events  []Event
	// disabled are reals taken out by a command (mon's ipvs alert); they
	// count as down until put back.
	disabled map[realKey]bool
	lastErr  error
	applied  int // ops applied in total
	// The kernel's connection-sync daemons ([sync]): the control, what
	// it last listed, the last pass's failure; closed once Close ran.
	sync     SyncControl
	syncHave []director.SyncDaemon
	syncErr  error
	syncVer  string // the sync_version last written (a pass writes it only when it changes)
	closed   bool
	// Stateless mode: this instance uses the sloppy sysctls (sloppyShares
	// holds the values found before), and the last failure.
	sloppyOn  bool
	sloppyErr error

	checks atomic.Uint64 // health checks run, for benchmarks and status
}

// NewEngine returns an idle engine; Configure starts its health checks.
func NewEngine(o Options) *Engine {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Open == nil {
		o.Open = director.Open
	}
	if o.OpenSync == nil {
		o.OpenSync = openSync
	}
	if o.SetSysctl == nil {
		o.SetSysctl = writeSysctl
	}
	if o.GetSysctl == nil {
		o.GetSysctl = readSysctl
	}
	if o.SetStrayReplies == nil {
		o.SetStrayReplies = director.SetStrayReplies
	}
	ctx, stop := context.WithCancel(context.Background())
	e := &Engine{opts: o, ctx: ctx, stop: stop, kick: make(chan struct{}, 1),
		checkers: map[string]*checker{}, owned: map[director.Key]bool{}, disabled: map[realKey]bool{}}
	e.sched = newSchedule(ctx, &e.wg, e.checkOnce)
	e.wg.Add(1)
	go e.reconcileLoop()
	return e
}

// checker health-checks one distinct real server on its own schedule.
type checker struct {
	probe
	ctx  context.Context // ends when the checker is stopped
	stop context.CancelFunc

	// next and index place the checker in the schedule (under the
	// schedule's mu): index is -1 while the checker is not queued.
	next  time.Time
	index int

	mu    sync.Mutex
	known bool // has a first result
	up    bool
	fails int
	last  monitors.Result
	at    time.Time
	runs  uint64 // checks run, and of them failed
	bad   uint64
	first chan struct{} // closed at the first result
}

func (c *checker) state() (known, up bool, last monitors.Result, at time.Time, fails int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.known, c.up, c.last, c.at, c.fails
}

func (c *checker) counts() (runs, failed uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs, c.bad
}

// Configure (re)applies the instance's configuration: checks of reals
// that stay keep their state, new ones start, gone ones stop; an active
// director is reconciled to the result. It is also how a standby director
// warms up: the probe the core sends on every node carries the config.
func (e *Engine) Configure(in spec.Instance) {
	e.mu.Lock()
	e.inst = in
	want := map[string]probe{}
	res := map[string]*regexp.Regexp{}
	sigs := make([][]string, len(in.Virtual))
	for vi := range in.Virtual {
		v := &in.Virtual[vi]
		sigs[vi] = make([]string, len(v.Real))
		for ri := range v.Real {
			if p := probeFor(v, &v.Real[ri], res); p.check != nil {
				want[p.sig] = p
				sigs[vi][ri] = p.sig
			}
		}
	}
	for sig, c := range e.checkers {
		if _, keep := want[sig]; !keep {
			c.stop()
			e.sched.drop(c)
			delete(e.checkers, sig)
		}
	}
	for sig, p := range want {
		if _, ok := e.checkers[sig]; !ok {
			e.checkers[sig] = e.startChecker(p)
		}
	}
	e.byReal = make([][]*checker, len(sigs))
	for vi, vs := range sigs {
		e.byReal[vi] = make([]*checker, len(vs))
		for ri, sig := range vs {
			e.byReal[vi][ri] = e.checkers[sig] // nil for checktype off
		}
	}
	// A configured standby runs the backup sync daemon, and carries
	// mid-flow packets in stateless mode.
	e.syncPass()
	e.sloppyPass()
	e.mu.Unlock()
	e.request()
}

// startChecker queues p's first check at once, so a start or takeover
// need not wait a whole interval.
func (e *Engine) startChecker(p probe) *checker {
	ctx, stop := context.WithCancel(e.ctx)
	c := &checker{probe: p, ctx: ctx, stop: stop, index: -1, first: make(chan struct{})}
	e.sched.at(c, time.Now())
	return c
}

// checkOnce runs one check of c (on a schedule worker) and queues the
// next one an interval ±10% after this one started (after the first:
// anywhere within the interval), or at once when the check took longer.
// The state flips to down only after FailureCount consecutive failures,
// back up at the first success, and only flips are reported.
func (e *Engine) checkOnce(c *checker) {
	if c.ctx.Err() != nil {
		return // stopped while due
	}
	start := time.Now()
	var res monitors.Result
	maint := c.inMaintenance()
	if maint != "" {
		// ldirectord takes it out at once and does not check it.
		res = monitors.Result{Summary: "in maintenance (" + maint + " exists)"}
	} else {
		cctx, cancel := context.WithTimeout(c.ctx, c.timeout)
		res = c.check.Check(cctx)
		cancel()
	}
	e.checks.Add(1)
	if c.ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	first := !c.known
	was := c.up
	c.last, c.at = res, time.Now()
	c.runs++
	if !res.OK {
		c.bad++
	}
	if res.OK {
		c.fails = 0
		c.up = true
	} else {
		c.fails++
		// A first failure counts at once: a real is not put into
		// service until it has passed a check.
		if c.fails >= c.failures || first || maint != "" {
			c.up = false
		}
	}
	c.known = true
	now, at := c.up, c.at
	c.mu.Unlock()
	if first {
		close(c.first)
	}
	if first || now != was {
		e.healthChanged(c, now, res, first)
	}
	spread := 0.9 + 0.2*rand.Float64()
	if first {
		// The first checks of all reals run together (at start, at a
		// takeover); the second falls anywhere in the first interval, so
		// that from then on the reals' checks spread over the interval
		// instead of coming in one burst each time.
		spread = 1 - rand.Float64()
	}
	next := start.Add(time.Duration(float64(c.interval) * spread))
	if next.Before(at) {
		next = at
	}
	e.sched.at(c, next)
}

func (e *Engine) healthChanged(c *checker, up bool, res monitors.Result, first bool) {
	state := "down"
	if up {
		state = "up"
	}
	if !first || !up {
		e.opts.Log.Info("real server "+state, "check", c.check.String(), "result", res.Summary)
		e.event(Event{Kind: "realserver", Subject: c.check.String(), Host: c.host, Up: up, Summary: "real server " + state + ": " + res.Summary})
	}
	e.request()
}

func (e *Engine) event(ev Event) {
	e.mu.Lock()
	e.record(ev)
	e.mu.Unlock()
}

// record keeps ev among the last 50 for status and hands it to OnEvent.
// Called with e.mu held.
func (e *Engine) record(ev Event) {
	ev.Time, ev.Active = time.Now(), e.active
	e.events = append(e.events, ev)
	if len(e.events) > 50 {
		e.events = e.events[len(e.events)-50:]
	}
	if e.opts.OnEvent != nil {
		e.opts.OnEvent(ev)
	}
}

// request asks the reconcile loop for a pass; requests made while one is
// pending fold into it, so a burst of transitions costs one pass.
func (e *Engine) request() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *Engine) reconcileLoop() {
	defer e.wg.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.kick:
		}
		if err := e.Reconcile(); err != nil {
			e.opts.Log.Warn("reconcile", "err", err)
		}
	}
}

// Activate opens the backend, waits (within ctx) until every real server
// has had its first check, and programs the table: a director that takes
// over starts with the health state its checks already know.
func (e *Engine) Activate(ctx context.Context) error {
	e.mu.Lock()
	if e.backend == nil {
		name, why := director.Pick(e.inst.Backend)
		e.opts.Log.Info("director backend", "backend", name, "why", why)
		b, err := e.opts.Open(name, e.opts.Log)
		if err != nil {
			e.mu.Unlock()
			return fmt.Errorf("director backend %s: %w", name, err)
		}
		e.backend, e.why = b, why
	}
	var firsts []chan struct{}
	for _, c := range e.checkers {
		firsts = append(firsts, c.first)
	}
	e.mu.Unlock()
	for _, f := range firsts {
		select {
		case <-f:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the first health checks: %w", ctx.Err())
		}
	}
	e.mu.Lock()
	e.active = true
	e.syncPass() // master now, backup stopped
	e.mu.Unlock()
	return e.Reconcile()
}

// Deactivate removes this instance's services from the director (as
// ldirectord's cleanstop does; a virtual with cleanstop = false stays
// programmed) and closes a userspace director; checks go on, so the node
// stays warm for the next takeover.
func (e *Engine) Deactivate() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.active = false
	e.syncPass() // back to the backup daemon (none once closed)
	e.sloppyPass()
	if e.backend == nil {
		return nil
	}
	scope := map[director.Key]bool{}
	for k := range e.owned {
		scope[k] = true
	}
	for vi := range e.inst.Virtual {
		if v := &e.inst.Virtual[vi]; v.CleanStop != nil && !*v.CleanStop {
			delete(scope, v.DirectorService().Key)
		}
	}
	have, err := e.backend.Read()
	if err == nil {
		ops := director.Diff(have, director.Table{}, scope)
		err = e.backend.Apply(ops)
		e.logOps(ops, "stop")
	}
	e.owned = map[director.Key]bool{}
	cerr := e.backend.Close()
	e.backend = nil
	if err != nil {
		return err
	}
	return cerr
}

// Active reports whether the engine programs its director.
func (e *Engine) Active() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active
}

// Reconcile brings the director to the desired table, changing only what
// differs. It is a no-op while inactive.
func (e *Engine) Reconcile() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.syncPass() // puts back a daemon stopped behind our back
	e.sloppyPass()
	if !e.active || e.backend == nil {
		return nil
	}
	want := e.desired()
	scope := map[director.Key]bool{}
	for k := range e.owned {
		scope[k] = true
	}
	for k := range want {
		scope[k] = true
	}
	have, err := e.backend.Read()
	if err != nil {
		e.lastErr = err
		return fmt.Errorf("read %s table: %w", e.backend.Name(), err)
	}
	ops := director.Diff(have, want, scope)
	err = e.backend.Apply(ops)
	e.logOps(ops, "reconcile")
	e.applied += len(ops)
	e.owned = map[director.Key]bool{}
	for k := range want {
		e.owned[k] = true
	}
	e.lastErr = err
	return err
}

func (e *Engine) logOps(ops []director.Op, why string) {
	for _, op := range ops {
		e.opts.Log.Info("director: "+op.String(), "why", why, "backend", e.backend.Name())
		e.record(Event{Kind: "table", Subject: op.Service.Key.String(), Summary: op.String()})
	}
}

// realKey names one real server of one virtual service.
type realKey struct {
	svc  director.Key
	real netip.AddrPort
}

// SetReal takes a real server out of a virtual service (up false) or
// puts it back, whatever its checks say: mon's ipvs alert does this, as
// the seed's lvs.alert ran ipvsadm -d / -a. virtual is VIP:PORT, real an
// address with or without the port. It is live state: a new
// configuration keeps it, a plugin restart forgets it.
func (e *Engine) SetReal(proto, virtual, real string, up bool) error {
	vip, err := netip.ParseAddrPort(virtual)
	if err != nil {
		return fmt.Errorf("virtual %q: want VIP:PORT", virtual)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for vi := range e.inst.Virtual {
		v := &e.inst.Virtual[vi]
		k := v.DirectorService().Key
		if k.Proto != strings.ToLower(proto) || k.Addr != vip {
			continue
		}
		for ri := range v.Real {
			ap, _ := netip.ParseAddrPort(v.Real[ri].Address)
			if ap.String() != real && ap.Addr().String() != real {
				continue
			}
			key := realKey{k, ap}
			if e.disabled[key] == !up {
				return nil
			}
			state := "taken out"
			if up {
				state = "put back"
				delete(e.disabled, key)
			} else {
				e.disabled[key] = true
			}
			e.opts.Log.Info("real server "+state+" by command", "service", k.String(), "real", ap.String())
			e.record(Event{Kind: "realserver", Subject: ap.String(), Host: ap.Addr().String(), Up: up, Summary: "real server " + state + " by command (" + k.String() + ")"})
			e.request()
			return nil
		}
		return fmt.Errorf("%s has no real server %s", k, real)
	}
	return fmt.Errorf("no virtual service %s %s in this instance", proto, virtual)
}

// health says whether real ri of virtual vi is up, and the checker
// behind it (nil for checktype off). Called with e.mu held.
func (e *Engine) health(vi, ri int) (bool, *checker) {
	c := e.byReal[vi][ri]
	if c == nil {
		return false, nil
	}
	_, up, _, _, _ := c.state()
	return up && !e.isDisabled(vi, ri), c
}

func (e *Engine) isDisabled(vi, ri int) bool {
	if len(e.disabled) == 0 {
		return false
	}
	v := &e.inst.Virtual[vi]
	ap, _ := netip.ParseAddrPort(v.Real[ri].Address)
	return e.disabled[realKey{v.DirectorService().Key, ap}]
}

// desired is the table the configuration and the health state call for
// (LEGACY.md §5.5–5.6): up reals at their weight; down reals removed, or
// kept at weight 0 when quiescent; the fallback server only while no real
// is up (a quiesced real counts as down, one configured at weight 0 and
// answering as up); checktype off adds nothing.
func (e *Engine) desired() director.Table {
	t := director.Table{}
	for vi := range e.inst.Virtual {
		v := &e.inst.Virtual[vi]
		s := v.DirectorService()
		s.Dests = map[netip.AddrPort]director.Dest{}
		t[s.Key] = &s
		if v.CheckType == "off" {
			continue
		}
		anyUp := false
		for ri := range v.Real {
			r := &v.Real[ri]
			ap, _ := netip.ParseAddrPort(r.Address)
			d := director.Dest{Addr: ap, Forward: r.Forward, Weight: *r.Weight, Upper: r.Upper, Lower: r.Lower}
			up, _ := e.health(vi, ri)
			switch {
			case up:
				// An answering real keeps the fallback out even at a
				// configured weight of 0, as in ldirectord (only a
				// quiesced, failed real at weight 0 counts as down).
				anyUp = true
				s.Dests[ap] = d
			case *v.Quiescent || v.Stateless:
				// Stateless: mh builds its lookup table from the
				// service's list of reals in list order, so a real that
				// fails stays in the list at weight 0 (skipped) rather
				// than leaving and coming back at its head: the table
				// stays a function of which reals are up, the same on
				// every director.
				d.Weight = 0
				s.Dests[ap] = d
			}
		}
		if !anyUp && v.Fallback != "" {
			fb, fwd, err := spec.ParseFallback(v.Fallback, v.Port())
			if _, clash := s.Dests[fb]; err == nil && !clash {
				s.Dests[fb] = director.Dest{Addr: fb, Forward: fwd, Weight: 1}
			}
		}
	}
	return t
}

// Close stops every check and the reconcile loop, and deactivates.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	err := e.Deactivate()
	e.stop()
	e.wg.Wait()
	return err
}
