package mon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
	"github.com/vigil-ha/vigil/resources/mon/spec"
)

// Resource is the mon resource plugin: one Engine per running instance.
// mon runs only where its group runs (alerts go out once), so a standby
// has no engine and reports the instance stopped.
type Resource struct {
	sdk.BaseResource
	log *slog.Logger

	mu      sync.Mutex
	running map[string]runningMon
	plugins *pluginRunner
}

// runningMon is a running mon and the spec parameter it runs.
type runningMon struct {
	e    *Engine
	spec string
}

// New returns the plugin.
func New(log *slog.Logger) *Resource {
	return &Resource{log: log, running: map[string]runningMon{},
		plugins: &pluginRunner{host.Lazy{Dir: os.Getenv(plugins.EnvPluginDir), Log: log}}}
}

// Decode reads and checks an instance's spec parameter.
func Decode(in *pb.Instance) (*spec.Instance, error) {
	raw := in.GetParams()[spec.ParamName]
	if raw == "" {
		return nil, fmt.Errorf("mon %s: no %q parameter (the configuration loader fills it from the instance's .toml file)", in.GetId(), spec.ParamName)
	}
	var s spec.Instance
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, fmt.Errorf("mon %s: %w", in.GetId(), err)
	}
	var errs []string
	s.Normalize(func(key, msg string) { errs = append(errs, key+": "+msg) })
	if len(errs) > 0 {
		return nil, fmt.Errorf("mon %s: %s", in.GetId(), strings.Join(errs, "; "))
	}
	return &s, nil
}

func (r *Resource) MetaData(context.Context, *pb.MetaDataRequest) (*pb.Meta, error) {
	return &pb.Meta{Name: "mon", Version: "1.0",
		Description: "mon-like service monitor: watches over host groups, monitor scripts and plugins, alerts",
		Parameters:  []*pb.Parameter{{Name: spec.ParamName, Description: "the instance's configuration (from NAME.toml)", Type: "string", Required: true, Reloadable: true}},
		Actions: []*pb.Action{{Name: "start", TimeoutMs: 20000}, {Name: "stop", TimeoutMs: 70000}, {Name: "monitor", TimeoutMs: 20000, IntervalMs: 10000},
			{Name: "reload", TimeoutMs: 20000}}}, nil
}

func (r *Resource) Validate(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if _, err := Decode(in); err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	return sdk.OK(), nil
}

// start runs s as instance in. Called with r.mu held.
func (r *Resource) start(in *pb.Instance, s *spec.Instance) {
	opts := Options{Log: r.log.With("mon", in.GetId()), Plugins: r.plugins}
	if d := plugins.DaemonFromEnv(); d != nil {
		opts.Control, opts.Event = d.ResourceCommand, d.Event
	}
	r.running[in.GetId()] = runningMon{NewEngine(s, opts), in.GetParams()[spec.ParamName]}
}

// Start begins the schedules (startup alerts go out now).
func (r *Resource) Start(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	s, err := Decode(in)
	if err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.running[in.GetId()]; !ok {
		r.start(in, s)
	}
	return sdk.OK(), nil
}

// Stop ends the schedules, killing monitors and alerts in flight.
func (r *Resource) Stop(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	r.mu.Lock()
	run, ok := r.running[in.GetId()]
	delete(r.running, in.GetId())
	r.mu.Unlock()
	if ok {
		run.e.Close()
	}
	return sdk.OK(), nil
}

func (r *Resource) Monitor(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.running[in.GetId()]; !ok {
		return sdk.NotRunning("not watching"), nil
	}
	return sdk.OK(), nil
}

// Reload restarts the schedules with the new configuration when it changed.
func (r *Resource) Reload(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	s, err := Decode(in)
	if err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	r.mu.Lock()
	if run, ok := r.running[in.GetId()]; ok && run.spec != in.GetParams()[spec.ParamName] {
		run.e.Close()
		r.start(in, s)
	}
	r.mu.Unlock()
	return sdk.OK(), nil
}

func (r *Resource) Inspect(_ context.Context, in *pb.Instance) (*pb.Inspection, error) {
	r.mu.Lock()
	run, ok := r.running[in.GetId()]
	r.mu.Unlock()
	title := "mon " + in.GetId()
	if !ok {
		return &pb.Inspection{Title: title, Text: "not watching on this node\n"}, nil
	}
	st := run.e.Status()
	js, _ := json.Marshal(st)
	return &pb.Inspection{Title: title, Text: Text(st, time.Now()), Json: js, Metrics: Metrics(st)}, nil
}

// pluginRunner runs the operator's monitor and alert plugins from
// plugin_dir, in processes of their own, started on first use.
type pluginRunner struct{ host.Lazy }

func (p *pluginRunner) Check(ctx context.Context, name string, hosts, args []string, params map[string]string, timeout time.Duration) (monitors.Result, []string, error) {
	h, err := p.Get()
	if err != nil {
		return monitors.Result{}, nil, err
	}
	res, err := h.Monitor(name).Check(ctx, &pb.CheckRequest{Type: name, Hosts: hosts, Params: params, Args: args, TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		return monitors.Result{}, nil, err
	}
	return monitors.Result{OK: res.GetOk(), Summary: res.GetSummary(), Detail: res.GetDetail(),
		Latency: time.Duration(res.GetLatencyUs()) * time.Microsecond}, res.GetFailedHosts(), nil
}

func (p *pluginRunner) Alert(ctx context.Context, name string, args []string, a monitors.Alert) error {
	h, err := p.Get()
	if err != nil {
		return err
	}
	return h.Alert(name).Send(ctx, args, a)
}
