package ldirectord

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
	"github.com/vigil-ha/vigil/resources/ldirectord/spec"
)

// ParamSpec is the parameter holding the instance's normalised
// configuration as JSON; the core's loader fills it from NAME.toml.
const ParamSpec = spec.ParamName

// Resource is the ldirectord resource plugin: one Engine per instance.
type Resource struct {
	sdk.BaseResource
	log     *slog.Logger
	mu      sync.Mutex
	engines map[string]*Engine
	applied map[string]string // each engine's spec parameter as last configured
	forward *forwarder        // nil outside a daemon
}

// New returns the plugin.
func New(log *slog.Logger) *Resource {
	r := &Resource{log: log, engines: map[string]*Engine{}, applied: map[string]string{}}
	if d := plugins.DaemonFromEnv(); d != nil {
		r.forward = newForwarder(d, log)
	}
	return r
}

func decode(in *pb.Instance) (spec.Instance, error) {
	var s spec.Instance
	raw := in.GetParams()[ParamSpec]
	if raw == "" {
		return s, fmt.Errorf("ldirectord %s: no %q parameter (the configuration loader fills it from the instance's .toml file)", in.GetId(), ParamSpec)
	}
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return s, fmt.Errorf("ldirectord %s: %w", in.GetId(), err)
	}
	var errs []string
	s.Normalize(func(key, msg string) { errs = append(errs, key+": "+msg) })
	if len(errs) > 0 {
		return s, fmt.Errorf("ldirectord %s: %v", in.GetId(), errs)
	}
	return s, nil
}

// engine returns the instance's engine, configured with in's settings;
// the first call starts its health checks. The recurring monitor calls
// this too, so an unchanged spec is not decoded and applied again.
func (r *Resource) engine(in *pb.Instance) (*Engine, error) {
	raw := in.GetParams()[ParamSpec]
	r.mu.Lock()
	e := r.engines[in.GetId()]
	same := e != nil && r.applied[in.GetId()] == raw
	r.mu.Unlock()
	if same {
		return e, nil
	}
	s, err := decode(in)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if e = r.engines[in.GetId()]; e == nil {
		o := Options{Log: r.log.With("ldirectord", in.GetId())}
		if r.forward != nil {
			o.OnEvent = r.forward.hook(in.GetId(), os.Getenv(plugins.EnvNode))
		}
		e = NewEngine(o)
		r.engines[in.GetId()] = e
	}
	r.applied[in.GetId()] = raw
	r.mu.Unlock()
	e.Configure(s)
	return e, nil
}

func (r *Resource) MetaData(context.Context, *pb.MetaDataRequest) (*pb.Meta, error) {
	return &pb.Meta{Name: "ldirectord", Version: "1.0",
		Description: "IPVS manager: virtual services, real-server health checks, kernel IPVS or userspace director",
		// A changed configuration is applied by difference: a reload.
		Parameters: []*pb.Parameter{{Name: ParamSpec, Description: "the instance's configuration (from NAME.toml)", Type: "string", Required: true, Reloadable: true}},
		Actions: []*pb.Action{{Name: "start", TimeoutMs: 60000}, {Name: "stop", TimeoutMs: 20000}, {Name: "monitor", TimeoutMs: 20000, IntervalMs: 10000},
			{Name: "reload", TimeoutMs: 20000}}}, nil
}

func (r *Resource) Validate(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if _, err := decode(in); err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	return sdk.OK(), nil
}

// Start programs the director once every real has had its first check,
// then takes over the persistence templates the previous owner handed over.
func (r *Resource) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	e, err := r.engine(in)
	if err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	if err := e.Activate(ctx); err != nil {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%v", err), nil
	}
	res := sdk.OK()
	res.Reason = r.seed(e, in)
	return res, nil
}

// Stop removes the instance's services (cleanstop); checks go on so this
// node stays ready to take over.
func (r *Resource) Stop(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	r.mu.Lock()
	e := r.engines[in.GetId()]
	r.mu.Unlock()
	if e == nil {
		return sdk.OK(), nil
	}
	if err := e.Deactivate(); err != nil {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%v", err), nil
	}
	return sdk.OK(), nil
}

// Monitor reports whether this node directs the services; when it does,
// it also puts back anything removed from the table behind its back.
func (r *Resource) Monitor(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	e, err := r.engine(in)
	if err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	if !e.Active() {
		return sdk.NotRunning("not directing (health checks running)"), nil
	}
	if err := e.Reconcile(); err != nil {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%v", err), nil
	}
	return sdk.OK(), nil
}

// Reload applies a changed configuration by difference.
func (r *Resource) Reload(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if _, err := r.engine(in); err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	return sdk.OK(), nil
}

func (r *Resource) Inspect(_ context.Context, in *pb.Instance) (*pb.Inspection, error) {
	r.mu.Lock()
	e := r.engines[in.GetId()]
	r.mu.Unlock()
	if e == nil {
		var err error
		if e, err = r.engine(in); err != nil {
			return nil, err
		}
	}
	st := e.Status()
	js, _ := json.Marshal(st)
	return &pb.Inspection{Title: "IPVS table (ldirectord " + in.GetId() + ")",
		Text: st.Text(in.GetId(), false), Stats: st.Text(in.GetId(), true), Json: js, Metrics: st.Metrics()}, nil
}

// Drain runs when the plugin exits after the host closed it (the daemon
// stopping, or gone): every instance's sync daemons are stopped, as
// keepalived stops them on shutdown.
func (r *Resource) Drain() {
	r.mu.Lock()
	engines := make([]*Engine, 0, len(r.engines))
	for _, e := range r.engines {
		engines = append(engines, e)
	}
	r.mu.Unlock()
	for _, e := range engines {
		e.StopSync()
	}
}

// Command "real" [PROTO, VIP:PORT, REAL, down|up] takes a real server out
// of a virtual service or puts it back (mon's ipvs alert).
func (r *Resource) Command(_ context.Context, req *pb.CommandRequest) (*pb.Result, error) {
	in := req.GetInstance()
	a := req.GetArgs()
	if req.GetName() != "real" || len(a) != 4 || (a[3] != "down" && a[3] != "up") {
		return sdk.Fail(pb.Code_ERR_ARGS, "ldirectord %s: want command real PROTO VIP:PORT REAL down|up", in.GetId()), nil
	}
	e, err := r.engine(in)
	if err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	if err := e.SetReal(a[0], a[1], a[2], a[3] == "up"); err != nil {
		return sdk.Fail(pb.Code_ERR_ARGS, "ldirectord %s: %v", in.GetId(), err), nil
	}
	return sdk.OK(), nil
}
