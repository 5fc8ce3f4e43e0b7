// Package mon is the mon-like monitor resource: services run on a schedule
// over host groups — built-in checks, monitor plugins or mon's own monitor
// scripts, unchanged — and their failures and recoveries go to alerts
// (mon alert scripts, mail, webhook, log, the ipvs alert that drives an
// ldirectord instance, alert plugins) under mon 1.3.6's rules.
package mon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/resources/mon/spec"
)

// Options are the engine's collaborators; zero values take the real ones.
type Options struct {
	Log *slog.Logger
	// Plugins runs monitor and alert plugins (plugin:NAME); nil refuses them.
	Plugins Plugins
	// Control carries the ipvs alert to the daemon; nil refuses it.
	Control func(ctx context.Context, resource, command string, args []string) error
	// Event carries the vigil alert to the daemon's alert routes; nil
	// refuses it.
	Event func(ctx context.Context, a monitors.Alert) error
	// AlertTimeout bounds one alert delivery (default 60s).
	AlertTimeout time.Duration
}

// Plugins is what the engine needs of the plugin host.
type Plugins interface {
	Check(ctx context.Context, name string, hosts, args []string, params map[string]string, timeout time.Duration) (monitors.Result, []string, error)
	Alert(ctx context.Context, name string, args []string, a monitors.Alert) error
}

// Engine runs one mon instance.
type Engine struct {
	opts    Options
	in      *spec.Instance
	senders monitors.Senders
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	runs    atomic.Int64

	mu   sync.Mutex
	svcs map[string]*service
}

// service is one watch/service and what happened to it.
type service struct {
	key   string // group:service
	group string
	cfg   spec.Service
	cmd   spec.Monitor
	hosts []string
	// alertHosts are an alert's -h: mon leaves out the disabled hosts but
	// not exclude_hosts, which only the monitor goes without.
	alertHosts []string
	whens      []spec.When
	vars       []string // the service's VAR=value, sorted

	// guarded by Engine.mu
	hist      history
	last      outcome
	prev      *outcome // the run before last (nil: none), what mon's alerts call MON_LAST_OUTPUT
	lastRun   time.Time
	took      time.Duration
	ran       int
	lastAlert AlertRecord
	alerts    int
}

// AlertRecord is one alert as status shows it.
type AlertRecord struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Via     string    `json:"via"`
	Summary string    `json:"summary"`
	Err     string    `json:"error,omitempty"`
}

// NewEngine starts an engine for in (normalised). Close stops it.
func NewEngine(in *spec.Instance, opts Options) *Engine {
	e := newEngine(in, opts)
	now := time.Now()
	for _, svc := range e.svcs {
		for i, p := range svc.cfg.Periods {
			if len(p.StartupAlert) > 0 && svc.whens[i].Contains(now) {
				e.send(svc, p.StartupAlert, monitors.Alert{Type: monitors.AlertStartup}, outcome{OK: true})
			}
		}
		e.wg.Add(1)
		go e.loop(svc)
	}
	return e
}

// newEngine builds the engine's services without starting anything.
func newEngine(in *spec.Instance, opts Options) *Engine {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.AlertTimeout <= 0 {
		opts.AlertTimeout = 60 * time.Second
	}
	e := &Engine{opts: opts, in: in, svcs: map[string]*service{}}
	e.senders = e.newSenders()
	e.ctx, e.cancel = context.WithCancel(context.Background())
	for _, w := range in.Watches {
		for _, s := range w.Services {
			svc := &service{key: w.Group + ":" + s.Name, group: w.Group, cfg: s, hosts: in.Hosts(w.Group, s.ExcludeHosts),
				alertHosts: in.Hosts(w.Group, nil)}
			svc.cmd, _ = spec.ParseMonitor(s.Monitor) // validated by Normalize
			for k, v := range s.Env {
				svc.vars = append(svc.vars, k+"="+v)
			}
			sort.Strings(svc.vars)
			for _, p := range s.Periods {
				wh, _ := spec.ParsePeriod(p.When) // validated by Normalize
				svc.whens = append(svc.whens, wh)
			}
			e.svcs[svc.key] = svc
		}
	}
	return e
}

// Close stops every schedule and waits for runs and alerts in flight
// (their processes are killed).
func (e *Engine) Close() {
	e.cancel()
	e.wg.Wait()
}

// Runs is how many monitor runs finished.
func (e *Engine) Runs() int64 { return e.runs.Load() }

func (e *Engine) loop(svc *service) {
	defer e.wg.Done()
	// mon runs a service first one interval after start; randstart
	// spreads first runs instead.
	wait := svc.cfg.Interval.Duration
	if e.in.Randstart.Duration > 0 {
		wait = rand.N(e.in.Randstart.Duration)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		failing := e.runOnce(svc)
		next := svc.cfg.Interval.Duration
		if failing && svc.cfg.FailureInterval.Duration > 0 {
			next = svc.cfg.FailureInterval.Duration
		}
		if skew := svc.cfg.Randskew.Duration; skew > 0 {
			next += rand.N(2*skew) - skew
		}
		t.Reset(max(next, time.Millisecond))
	}
}

// runOnce runs the monitor under its deadline, then the alert rules; it
// reports whether the service is failing.
func (e *Engine) runOnce(svc *service) bool {
	ctx, cancel := context.WithTimeout(e.ctx, svc.cfg.Timeout.Duration)
	start := time.Now()
	o := e.monitor(ctx, svc)
	cancel()
	if e.ctx.Err() != nil {
		return false // stopped mid-run: not a result
	}
	now := time.Now()
	e.runs.Add(1)

	e.mu.Lock()
	depsDown := e.dependsFailing(svc)
	wasFailing := svc.hist.failing
	lastFail := svc.hist.lastFail
	if svc.ran > 0 {
		p := svc.last
		svc.prev = &p
	}
	decisions := svc.hist.observe(now, o, svc.cfg.Periods, func(i int) bool { return svc.whens[i].Contains(now) }, depsDown)
	svc.last, svc.lastRun, svc.took = o, now, now.Sub(start)
	svc.ran++
	e.mu.Unlock()

	if o.OK != !wasFailing {
		if o.OK {
			e.opts.Log.Info("mon: service recovered", "service", svc.key)
		} else {
			e.opts.Log.Warn("mon: service failing", "service", svc.key, "summary", o.Summary)
		}
	}
	for _, d := range decisions {
		p := svc.cfg.Periods[d.Period]
		if d.Type == monitors.AlertUp {
			// mon: an upalert carries the last failing run's output.
			e.send(svc, p.UpAlert, monitors.Alert{Type: monitors.AlertUp, Time: now}, lastFail)
			continue
		}
		e.send(svc, p.Alert, monitors.Alert{Type: monitors.AlertFailure, Time: now}, o)
	}
	return !o.OK
}

// dependsFailing reports whether a service svc depends on is failing.
// Called with e.mu held.
func (e *Engine) dependsFailing(svc *service) bool {
	for _, d := range svc.cfg.Depend {
		if dep := e.svcs[d]; dep != nil && dep.hist.failing {
			return true
		}
	}
	return false
}

// env is what mon puts in both a monitor's and an alert's environment.
// up: for an upalert, which mon sends before it forgets the failure.
func (e *Engine) env(svc *service, up bool) []string {
	e.mu.Lock()
	h, ran := svc.hist, svc.ran
	depend := "1"
	if e.dependsFailing(svc) {
		depend = "0"
	}
	e.mu.Unlock()
	unix := func(t time.Time) string {
		if t.IsZero() {
			return "0"
		}
		return strconv.FormatInt(t.Unix(), 10)
	}
	// mon zeroes the failure times on success (after the upalert).
	first, last, success := unix(h.firstFailure), unix(h.lastFailure), unix(h.lastSuccess)
	if !h.failing && !up {
		first, last = "0", "0"
	}
	if up { // mon records the success after its upalert
		success = unix(h.prevSuccess)
	}
	env := []string{
		"MON_GROUP=" + svc.group, "MON_SERVICE=" + svc.cfg.Name,
		"MON_STATEDIR=" + e.in.StateDir, "MON_LOGDIR=" + e.in.LogDir, "MON_CFBASEDIR=" + e.in.CfBaseDir,
		"MON_LAST_FAILURE=" + last, "MON_LAST_SUCCESS=" + success,
	}
	// mon sets these once the service has a result: its first failure
	// time, and the dependency status it evaluates after each run of a
	// service that has a depend line.
	if ran > 0 {
		env = append(env, "MON_FIRST_FAILURE="+first)
		if len(svc.cfg.Depend) > 0 {
			env = append(env, "MON_DEPEND_STATUS="+depend)
		}
	}
	if svc.cfg.Description != "" {
		env = append(env, "MON_DESCRIPTION="+svc.cfg.Description)
	}
	return append(env, svc.vars...)
}

// hosts are the hosts the service's monitor gets: none after ";;".
func (svc *service) monHosts() []string {
	if svc.cmd.NoHosts {
		return nil
	}
	return svc.hosts
}

// script is how a monitor script runs for svc, as mon runs it: its path
// in mondir, argv (the line's arguments, then the hosts) and environment.
func (e *Engine) script(svc *service) (path string, argv, env []string, err error) {
	path, err = monitors.Find(e.in.MonDir, svc.cmd.Name)
	if err != nil {
		return "", nil, nil, err
	}
	e.mu.Lock()
	prev, ran := svc.last, svc.ran
	e.mu.Unlock()
	env = []string{monitors.BasePath}
	if ran > 0 { // mon leaves them unset before the first run
		env = append(env, "MON_LAST_SUMMARY="+lastSummary(prev), "MON_LAST_OUTPUT="+prev.Output)
	}
	env = append(env, e.env(svc, false)...)
	return path, append(append([]string{}, svc.cmd.Args...), svc.monHosts()...), env, nil
}

// monitor runs the service's monitor once over its hosts.
func (e *Engine) monitor(ctx context.Context, svc *service) outcome {
	hosts := svc.monHosts()
	name, args := svc.cmd.Name, svc.cmd.Args
	switch {
	case spec.Builtin(name):
		return builtinCheck(ctx, name, args, hosts)
	case strings.HasPrefix(name, "plugin:"):
		if e.opts.Plugins == nil {
			return fail(hosts, errors.New("monitor plugins are not available here"))
		}
		res, failed, err := e.opts.Plugins.Check(ctx, strings.TrimPrefix(name, "plugin:"), hosts, args, svc.cfg.Params, svc.cfg.Timeout.Duration)
		if err != nil {
			return fail(hosts, err)
		}
		sum := strings.Join(failed, " ")
		if sum == "" && !res.OK {
			sum = res.Summary
		}
		return outcome{OK: res.OK, Summary: sum, Output: sum + "\n" + res.Detail, Retval: boolRet(res.OK)}
	}
	path, argv, env, err := e.script(svc)
	if err != nil {
		return fail(hosts, err)
	}
	r, err := monitors.Exec(ctx, path, argv, env, "")
	if err != nil {
		return fail(hosts, fmt.Errorf("%s: %w", name, err))
	}
	// mon merges stderr into stdout; the first line is the summary.
	out := r.Stdout + r.Stderr
	sum, _, _ := strings.Cut(out, "\n")
	return outcome{OK: r.Code == 0, Summary: strings.TrimSpace(sum), Output: out, Retval: r.Code}
}

// lastSummary is a run's summary as mon keeps it: a failure's blank one
// is "(NO SUMMARY)".
func lastSummary(o outcome) string {
	if !o.OK && strings.TrimSpace(o.Summary) == "" {
		return "(NO SUMMARY)"
	}
	return o.Summary
}

func boolRet(ok bool) int {
	if ok {
		return 0
	}
	return 1
}

// fail is a run that could not judge its hosts: all of them count as failed.
func fail(hosts []string, err error) outcome {
	sum := strings.Join(hosts, " ")
	return outcome{Summary: sum, Output: sum + "\n" + err.Error() + "\n", Retval: 1, Err: err}
}
