// Package lrm is the local resource manager: it carries out groups of
// resources on this node through their plugins — start left to right, stop
// right to left, every operation with a deadline — and re-converges a group
// whenever a plugin it depends on came back from a crash. Which groups run
// here is decided by the cluster core; the LRM only executes.
package lrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Resource and group states: fsm's words, named here for the LRM's callers.
const (
	Starting = fsm.Starting
	Running  = fsm.Running
	Stopping = fsm.Stopping
	Stopped  = fsm.Stopped
	Failed   = fsm.Failed
	Unknown  = fsm.Unknown
	Blocked  = fsm.Blocked
	Partial  = fsm.Partial
)

// ResourceStatus is one resource as this node last saw it. It is the control
// API's wire type, defined in package api.
type ResourceStatus = api.ResourceStatus

// GroupStatus is one group on this node. It is the control
// API's wire type, defined in package api.
type GroupStatus = api.GroupStatus

// Manager runs groups on this node.
type Manager struct {
	host    *host.Host
	log     *slog.Logger
	timeout time.Duration

	mu     sync.Mutex
	groups map[string]*group

	lease lease

	seed       func(group, resource string) []byte // see SetHandover
	noHandover map[string]bool                     // plugins that answered Handover Unimplemented (under mu)
}

type group struct {
	ops      sync.Mutex // one operation sequence at a time per group
	cfg      config.Group
	bindings []config.Binding

	mu      sync.Mutex // guards the fields below
	wanted  bool
	state   string
	started time.Time // when the last successful start began
	res     []ResourceStatus
}

// New returns a manager whose operations take at most timeout each.
func New(h *host.Host, log *slog.Logger, timeout time.Duration) *Manager {
	return &Manager{host: h, log: log, timeout: timeout, groups: map[string]*group{}, noHandover: map[string]bool{},
		lease: lease{changed: make(chan struct{}, 1), none: map[string]bool{}, release: map[string]time.Duration{},
			reads: map[string]bool{}, due: map[string]bool{}}}
}

// group returns the state of g, creating it on first sight.
func (m *Manager) group(g config.Group) (*group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.groups[g.Name]; ok {
		return st, nil
	}
	bindings, err := bind(g)
	if err != nil {
		return nil, err
	}
	st := &group{cfg: g, bindings: bindings, state: Unknown}
	for i, r := range g.Resources {
		st.res = append(st.res, ResourceStatus{ID: r.ID, Type: r.Type, Plugin: bindings[i].Plugin, State: Unknown})
	}
	m.groups[g.Name] = st
	return st, nil
}

func bind(g config.Group) ([]config.Binding, error) {
	var out []config.Binding
	for _, r := range g.Resources {
		b, err := r.Bind()
		if err != nil {
			return nil, fmt.Errorf("group %s: %s: %w", g.Name, r.ID, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func (m *Manager) instance(g *group, i int, interval time.Duration) *pb.Instance {
	return newInstance(g.cfg.Resources[i], g.bindings[i], m.timeout, interval, m.pbLease())
}

// newInstance is what a resource's plugin is told for one operation: the
// resource's own timeout, else def. `vigil resource run` builds it here
// too, so a one-shot operation is the daemon's.
func newInstance(r config.Resource, b config.Binding, def, interval time.Duration, le *pb.Lease) *pb.Instance {
	timeout := def
	if r.Timeout > 0 {
		timeout = r.Timeout.D()
	}
	return &pb.Instance{Id: r.ID, Type: b.Agent, Params: b.Params, Args: b.Args,
		TimeoutMs: timeout.Milliseconds(), IntervalMs: interval.Milliseconds(), Lease: le}
}

// OpError is a failed operation on one resource of a group.
type OpError struct {
	Group, Resource, Op string
	Result, Reason      string
	Err                 error // the host's, if the call itself failed
}

func (e *OpError) Unwrap() error { return e.Err }

// ErrNoLease: a plugin refused to acquire because the node's lease it
// holds ran out; the group may start again once the lease is renewed.
var ErrNoLease = host.ErrNoLease

func (e *OpError) Error() string {
	return fmt.Sprintf("group %s: %s %s: %s: %s", e.Group, e.Op, e.Resource, e.Result, e.Reason)
}

// FailedOp returns the first failed operation in err, if any.
func FailedOp(err error) *OpError {
	var oe *OpError
	if errors.As(err, &oe) {
		return oe
	}
	return nil
}

// op runs one operation on resource i of g and records it.
func (m *Manager) op(ctx context.Context, g *group, i int, name string) (pb.Code, error) {
	return m.opEvery(ctx, g, i, name, 0)
}

// opEvery is op with the interval of a recurring operation.
func (m *Manager) opEvery(ctx context.Context, g *group, i int, name string, interval time.Duration) (pb.Code, error) {
	r := m.host.Resource(g.bindings[i].Plugin)
	call := map[string]func(context.Context, *pb.Instance) (*pb.Result, error){
		"start": r.Start, "stop": r.Stop, "monitor": r.Monitor, "reload": r.Reload}[name]
	in := m.instance(g, i, interval)
	if name == "start" && m.seed != nil {
		in.Handover = m.seed(g.cfg.Name, in.GetId())
	}
	res, err := call(ctx, in)
	if name != "monitor" {
		m.ranOp(g.bindings[i].Plugin)
	}
	st := ResourceStatus{LastOp: name, At: time.Now()}
	code := pb.Code_ERR_GENERIC
	switch {
	case err != nil:
		st.Result, st.Reason = "error", err.Error()
	default:
		code = res.Code
		st.Result, st.Reason = res.Code.String(), res.Reason
	}
	switch {
	case errors.Is(err, host.ErrUnknownPlugin):
		st.State = Unknown // nothing here can run it, so nothing here runs it
	case code == pb.Code_SUCCESS && name == "stop":
		st.State = Stopped
	case code == pb.Code_SUCCESS:
		st.State = Running
	case code == pb.Code_NOT_RUNNING && name == "monitor":
		st.State = Stopped
	default:
		st.State = Failed
	}
	g.mu.Lock()
	old := g.res[i]
	st.ID, st.Type, st.Plugin, st.Ops = old.ID, old.Type, old.Plugin, old.Ops
	if st.Ops == nil {
		st.Ops = map[string]uint64{}
	}
	st.Ops[name+" "+st.Result]++
	g.res[i] = st
	g.mu.Unlock()
	level := slog.LevelInfo
	switch {
	case st.State == Failed || st.State == Unknown:
		level = slog.LevelError
	case name == "monitor" && old.LastOp == "monitor" && old.Result == st.Result:
		level = slog.LevelDebug // a recurring check that found nothing new
	}
	m.log.Log(ctx, level, "resource "+name, "group", g.cfg.Name, "resource", st.ID, "result", st.Result, "reason", st.Reason)
	if err != nil || (code != pb.Code_SUCCESS && !(name == "monitor" && code == pb.Code_NOT_RUNNING)) {
		return code, &OpError{Group: g.cfg.Name, Resource: st.ID, Op: name, Result: st.Result, Reason: st.Reason, Err: err}
	}
	return code, nil
}

func (g *group) set(wanted bool, state string) {
	g.mu.Lock()
	g.wanted, g.state = wanted, state
	g.mu.Unlock()
}

// Start runs g's resources left to right, skipping any a monitor finds
// already running. When one fails, the whole group is stopped right to
// left (as heartbeat does) and the error returned.
func (m *Manager) Start(ctx context.Context, cfg config.Group) error {
	g, err := m.group(cfg)
	if err != nil {
		return err
	}
	g.ops.Lock()
	defer g.ops.Unlock()
	began := time.Now() // a gap in the lease from here on voids a restart after a release
	g.set(true, Starting)
	for i := range g.bindings {
		if !startsIdempotently(g.bindings[i]) {
			// As heartbeat does: what runs already is not started again.
			if code, _ := m.op(ctx, g, i, "monitor"); code == pb.Code_SUCCESS {
				continue
			}
		}
		if _, err := m.op(ctx, g, i, "start"); err != nil {
			return m.startFailed(ctx, g, err)
		}
	}
	g.mu.Lock()
	g.wanted, g.state, g.started = true, Running, began
	g.mu.Unlock()
	m.log.Info("group started", "group", cfg.Name)
	return nil
}

// startsIdempotently says whether b's start finds by itself what already
// runs and succeeds, so the monitor before it is only one round trip
// more: the built-in IPaddr ("already present"; it then also takes the
// address under its lease and announces it). A failover of 1,000 groups
// spent about 80 ms on those monitors.
func startsIdempotently(b config.Binding) bool {
	return b.Plugin == "ipaddr" && b.Agent == config.TypeIPaddr
}

// startFailed stops the whole group right to left after a failed start,
// as heartbeat does: Failed, or Blocked when a stop fails too.
func (m *Manager) startFailed(ctx context.Context, g *group, err error) error {
	serr := m.stopAll(ctx, g)
	state := Failed
	if serr != nil {
		state = Blocked
	}
	g.set(true, state)
	return errors.Join(err, serr)
}

// Stop runs g's resources' stop right to left. A failed stop leaves the
// group blocked: it may still run here.
func (m *Manager) Stop(ctx context.Context, cfg config.Group) error {
	g, err := m.group(cfg)
	if err != nil {
		return err
	}
	g.ops.Lock()
	defer g.ops.Unlock()
	g.set(false, Stopping)
	if err := m.stopAll(ctx, g); err != nil {
		g.set(false, Blocked)
		return err
	}
	g.set(false, Stopped)
	return nil
}

func (m *Manager) stopAll(ctx context.Context, g *group) error { return m.stopFrom(ctx, g, 0) }

// DefaultInterval is the recurring monitor period of a resource that sets
// none.
const DefaultInterval = 10 * time.Second

// MonitorInterval is the period of a group's recurring monitor: the
// shortest of its resources' (DefaultInterval for one that sets none).
func MonitorInterval(cfg config.Group) time.Duration {
	var d time.Duration
	for _, r := range cfg.Resources {
		i := DefaultInterval
		if r.Interval > 0 {
			i = r.Interval.D()
		}
		if d == 0 || i < d {
			d = i
		}
	}
	if d == 0 {
		return DefaultInterval
	}
	return d
}

// Monitor is the recurring monitor of a running group: it checks every
// resource, left to right, and returns the first failure (a resource
// found stopped counts: it should run). The caller decides the recovery.
// The plugins are told the interval (a probe is a monitor with none).
func (m *Manager) Monitor(ctx context.Context, cfg config.Group) error {
	g, err := m.group(cfg)
	if err != nil {
		return err
	}
	g.ops.Lock()
	defer g.ops.Unlock()
	interval := MonitorInterval(cfg)
	for i := range g.bindings {
		code, err := m.opEvery(ctx, g, i, "monitor", interval)
		if err == nil && code == pb.Code_NOT_RUNNING {
			r := g.res[i]
			err = &OpError{Group: cfg.Name, Resource: r.ID, Op: "monitor", Result: code.String(), Reason: "not running"}
			g.mu.Lock()
			g.res[i].State = Failed
			g.mu.Unlock()
		}
		if err != nil {
			return err // the group stays "running" until the caller stops it
		}
	}
	return nil
}

// Reload runs the reload operation on the resources of a running group
// that match, left to right (IPaddr re-announces its address), and
// returns the first failure.
func (m *Manager) Reload(ctx context.Context, cfg config.Group, match func(config.Binding) bool) error {
	g, err := m.group(cfg)
	if err != nil {
		return err
	}
	g.ops.Lock()
	defer g.ops.Unlock()
	var errs []error
	for i, b := range g.bindings {
		if match(b) {
			_, err := m.op(ctx, g, i, "reload")
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Active reports whether a group in local state s may have resources
// running.
func Active(s string) bool {
	switch s {
	case Running, Partial, Blocked, Starting, Stopping:
		return true
	}
	return false
}

// Command hands a command to a running resource of this node (resource
// empty: to every running instance that implements commands; at least
// one must take it). It is local: what it changes is the instance's
// live state, not the cluster's configuration.
func (m *Manager) Command(ctx context.Context, resource, name string, args []string) error {
	type target struct {
		plugin string
		in     *pb.Instance
	}
	var todo []target
	m.mu.Lock()
	for _, g := range m.groups {
		g.mu.Lock()
		for i, b := range g.bindings {
			if (resource == "" || g.res[i].ID == resource) && g.res[i].State == Running {
				todo = append(todo, target{b.Plugin, m.instance(g, i, 0)})
			}
		}
		g.mu.Unlock()
	}
	m.mu.Unlock()
	if len(todo) == 0 {
		if resource != "" {
			return fmt.Errorf("%w: resource %s is not running on this node", fsm.ErrRefused, resource)
		}
		return fmt.Errorf("%w: no resource running on this node", fsm.ErrRefused)
	}
	var errs []error
	for _, t := range todo {
		res, err := m.host.Resource(t.plugin).Command(ctx, t.in, name, args)
		switch {
		case errors.Is(err, host.ErrUnimplemented) && resource == "":
			continue
		case err != nil:
			errs = append(errs, err)
		case res.GetCode() != pb.Code_SUCCESS:
			errs = append(errs, fmt.Errorf("%s: %s", t.in.GetId(), res.GetReason()))
		default:
			m.log.Info("resource command", "resource", t.in.GetId(), "command", name, "args", args)
			return nil
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: no running resource takes command %q", fsm.ErrRefused, name)
	}
	return fmt.Errorf("%w: %w", fsm.ErrRefused, errors.Join(errs...))
}

// State returns the group's state on this node (Unknown before any
// operation).
func (m *Manager) State(name string) string {
	m.mu.Lock()
	g := m.groups[name]
	m.mu.Unlock()
	if g == nil {
		return Unknown
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state
}

// Probe monitors every resource of cfg once, without changing anything,
// so that status shows what already runs here.
func (m *Manager) Probe(ctx context.Context, cfg config.Group) {
	g, err := m.group(cfg)
	if err != nil {
		m.log.Error("probe", "err", err)
		return
	}
	g.ops.Lock()
	defer g.ops.Unlock()
	running := 0
	for i := range g.bindings {
		if code, _ := m.op(ctx, g, i, "monitor"); code == pb.Code_SUCCESS {
			running++
		}
	}
	g.mu.Lock()
	switch {
	case running == len(g.bindings) && g.wanted:
		g.state = Running
	case running == 0:
		g.state = Stopped
	default:
		g.state = Partial
	}
	g.mu.Unlock()
}

// PluginRestarted re-converges every wanted group that uses plugin: what
// the plugin was doing when it died is unknown, so each resource is
// monitored and whatever is not running is started again, in order.
func (m *Manager) PluginRestarted(ctx context.Context, plugin string) {
	m.mu.Lock()
	var todo []*group
	for _, g := range m.groups {
		if slices.ContainsFunc(g.bindings, func(b config.Binding) bool { return b.Plugin == plugin }) {
			todo = append(todo, g)
		}
	}
	m.mu.Unlock()
	for _, g := range todo {
		g.mu.Lock()
		wanted, cfg := g.wanted, g.cfg
		g.mu.Unlock()
		if !wanted {
			continue
		}
		m.log.Info("plugin restarted; reconciling group", "plugin", plugin, "group", cfg.Name)
		if err := m.Start(ctx, cfg); err != nil {
			m.log.Error("reconcile after plugin restart failed", "group", cfg.Name, "err", err)
		}
	}
}

// Status lists the groups this node has seen, by name.
func (m *Manager) Status() []GroupStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]GroupStatus, 0, len(m.groups))
	for _, g := range m.groups {
		g.mu.Lock()
		res := slices.Clone(g.res)
		for i := range res {
			res[i].Ops = maps.Clone(res[i].Ops)
		}
		out = append(out, GroupStatus{Name: g.cfg.Name, Wanted: g.wanted, State: g.state, Resources: res})
		g.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Inspection is a resource's own view of its live state (the IPVS table
// of an ldirectord instance, say), for status. It is the control
// API's wire type, defined in package api.
type Inspection = api.Inspection

// MetricsOf is a plugin's series as the metrics listener takes them.
func MetricsOf(ms []*pb.Metric) []api.Metric {
	out := make([]api.Metric, 0, len(ms))
	for _, m := range ms {
		am := api.Metric{Name: m.GetName(), Help: m.GetHelp(), Counter: m.GetCounter(), Labels: m.GetLabels()}
		for _, s := range m.GetSamples() {
			am.Samples = append(am.Samples, api.Sample{Values: s.GetValues(), Value: s.GetValue()})
		}
		out = append(out, am)
	}
	return out
}

// inspectable are the plugins known to answer Inspect; asking only them
// keeps status from starting plugins that have nothing to show.
var inspectable = map[string]bool{"ldirectord": true, "mon": true}

// Inspect asks every inspectable resource of every known group for its
// live state, each within timeout.
func (m *Manager) Inspect(ctx context.Context, timeout time.Duration) []Inspection {
	m.mu.Lock()
	var todo []*pb.Instance
	var owners []*group
	var plugins []string
	for _, g := range m.groups {
		for i, b := range g.bindings {
			if inspectable[b.Plugin] {
				todo = append(todo, m.instance(g, i, 0))
				owners = append(owners, g)
				plugins = append(plugins, b.Plugin)
			}
		}
	}
	m.mu.Unlock()
	var out []Inspection
	for i, in := range todo {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		in.TimeoutMs = timeout.Milliseconds()
		res, err := m.host.Resource(plugins[i]).Inspect(cctx, in)
		cancel()
		ins := Inspection{Group: owners[i].cfg.Name, Resource: in.GetId()}
		if err != nil {
			ins.Title, ins.Text = in.GetId(), "not available: "+err.Error()
		} else {
			ins.Title, ins.Text, ins.Stats = res.GetTitle(), res.GetText(), res.GetStats()
			if json.Valid(res.GetJson()) {
				ins.JSON = res.GetJson()
			}
			ins.Metrics = MetricsOf(res.GetMetrics())
		}
		out = append(out, ins)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}
