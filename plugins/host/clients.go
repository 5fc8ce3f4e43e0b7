package host

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
)

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// Resource is a handle on a resource plugin; its process starts on first use.
type Resource struct {
	h    *Host
	name string
}

// Resource returns the handle for resource plugin name.
func (h *Host) Resource(name string) Resource { return Resource{h, name} }

// MetaData describes agent typ of the plugin.
func (r Resource) MetaData(ctx context.Context, typ string) (*pb.Meta, error) {
	return invoke(ctx, r.h, plugins.KindResource, r.name, "meta-data", 0,
		func(ctx context.Context, c pb.ResourceClient) (*pb.Meta, error) {
			return c.MetaData(ctx, &pb.MetaDataRequest{Type: typ})
		})
}

func (r Resource) op(ctx context.Context, op string, in *pb.Instance,
	call func(pb.ResourceClient, context.Context, *pb.Instance, ...grpc.CallOption) (*pb.Result, error)) (*pb.Result, error) {
	res, err := invoke(ctx, r.h, plugins.KindResource, r.name, op, ms(in.GetTimeoutMs()),
		func(ctx context.Context, c pb.ResourceClient) (*pb.Result, error) {
			res, err := call(c, ctx, in)
			if err == nil {
				err = checkResult(res)
			}
			return res, err
		})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.GetId(), err)
	}
	return res, nil
}

// Validate checks an instance's parameters.
func (r Resource) Validate(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return r.op(ctx, "validate", in, pb.ResourceClient.Validate)
}

// Start starts an instance.
func (r Resource) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return r.op(ctx, "start", in, pb.ResourceClient.Start)
}

// Stop stops an instance; stopping a stopped instance succeeds.
func (r Resource) Stop(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return r.op(ctx, "stop", in, pb.ResourceClient.Stop)
}

// Monitor checks the resource. Recurring monitors (interval_ms > 0) of
// one plugin go out together (see batcher); a probe goes out at once.
func (r Resource) Monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	if in.GetIntervalMs() <= 0 || r.h.opts.BatchWindow < 0 {
		return r.single(ctx, in)
	}
	return r.h.batcher(r).monitor(ctx, in)
}

// single is one Monitor call of its own.
func (r Resource) single(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return r.op(ctx, "monitor", in, pb.ResourceClient.Monitor)
}

// checkResult refuses a result whose code is not an OCF code.
func checkResult(res *pb.Result) error {
	if res.GetCode() < pb.Code_SUCCESS || res.GetCode() > pb.Code_FAILED_PROMOTED {
		return fmt.Errorf("%w: result code %d is not an OCF code", ErrBadOutput, res.GetCode())
	}
	return nil
}

// Reload applies changed parameters without a restart.
func (r Resource) Reload(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return r.op(ctx, "reload", in, pb.ResourceClient.Reload)
}

// Inspect asks for the instance's live state; plugins without one answer
// codes.Unimplemented.
func (r Resource) Inspect(ctx context.Context, in *pb.Instance) (*pb.Inspection, error) {
	return invoke(ctx, r.h, plugins.KindResource, r.name, "inspect", ms(in.GetTimeoutMs()),
		func(ctx context.Context, c pb.ResourceClient) (*pb.Inspection, error) {
			return c.Inspect(ctx, in)
		})
}

// Command sends an instance a named command (see the proto); plugins
// without commands answer codes.Unimplemented.
func (r Resource) Command(ctx context.Context, in *pb.Instance, name string, args []string) (*pb.Result, error) {
	return invoke(ctx, r.h, plugins.KindResource, r.name, "command "+name, ms(in.GetTimeoutMs()),
		func(ctx context.Context, c pb.ResourceClient) (*pb.Result, error) {
			return c.Command(ctx, &pb.CommandRequest{Instance: in, Name: name, Args: args})
		})
}

// Handover asks for the instance's hand-over state unless it is still
// the generation have; plugins without one answer ErrUnimplemented.
func (r Resource) Handover(ctx context.Context, in *pb.Instance, have uint64) (*pb.HandoverState, error) {
	return invoke(ctx, r.h, plugins.KindResource, r.name, "handover", ms(in.GetTimeoutMs()),
		func(ctx context.Context, c pb.ResourceClient) (*pb.HandoverState, error) {
			return c.Handover(ctx, &pb.HandoverRequest{Instance: in, Have: have})
		})
}

// Hold renews the node's lease in the plugin and returns the instances
// it released because an earlier one ran out; plugins that keep no lease
// answer ErrUnimplemented.
func (r Resource) Hold(ctx context.Context, le *pb.Lease, timeout time.Duration) (*pb.HoldResult, error) {
	return invoke(ctx, r.h, plugins.KindResource, r.name, "hold", timeout,
		func(ctx context.Context, c pb.ResourceClient) (*pb.HoldResult, error) {
			return c.Hold(ctx, le)
		})
}

// Monitor is a handle on a monitor plugin.
type Monitor struct {
	h    *Host
	name string
}

// Monitor returns the handle for monitor plugin name.
func (h *Host) Monitor(name string) Monitor { return Monitor{h, name} }

// Check runs one check.
func (m Monitor) Check(ctx context.Context, in *pb.CheckRequest) (*pb.CheckResult, error) {
	return invoke(ctx, m.h, plugins.KindMonitor, m.name, "check", ms(in.GetTimeoutMs()),
		func(ctx context.Context, c pb.MonitorClient) (*pb.CheckResult, error) {
			res, err := c.Check(ctx, in)
			if err == nil && res.GetLatencyUs() < 0 {
				return nil, fmt.Errorf("%w: negative latency", ErrBadOutput)
			}
			return res, err
		})
}

// Alert is a handle on an alert plugin.
type Alert struct {
	h    *Host
	name string
}

// Alert returns the handle for alert plugin name.
func (h *Host) Alert(name string) Alert { return Alert{h, name} }

// Deliver sends one event.
func (a Alert) Deliver(ctx context.Context, in *pb.AlertRequest) (*pb.AlertResult, error) {
	return invoke(ctx, a.h, plugins.KindAlert, a.name, "alert", ms(in.GetTimeoutMs()),
		func(ctx context.Context, c pb.AlertClient) (*pb.AlertResult, error) {
			return c.Deliver(ctx, in)
		})
}

// Send delivers a Vigil alert (a mon alert or a cluster event) with the
// words of its alert line: name=value words are also handed over as
// parameters. ctx's deadline is the plugin's.
func (a Alert) Send(ctx context.Context, args []string, al monitors.Alert) error {
	sev := pb.Severity_CRITICAL
	if al.Up() || al.Type == monitors.AlertStartup {
		sev = pb.Severity_INFO
	}
	ev := &pb.Event{Kind: al.Kind, Subject: al.Group + "/" + al.Service, Node: al.Node, TimeUnixNs: al.Time.UnixNano(),
		Severity: sev, Up: al.Up(), Summary: al.Summary, Detail: al.Output, Group: al.Group, Service: al.Service,
		Hosts: al.Hosts, Labels: map[string]string{"type": al.Type}}
	var timeout int64
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d).Milliseconds()
	}
	params := map[string]string{}
	for _, w := range args {
		if k, v, ok := strings.Cut(w, "="); ok && k != "" {
			params[k] = v
		}
	}
	_, err := a.Deliver(ctx, &pb.AlertRequest{Type: a.name, Event: ev, Params: params, Args: args, TimeoutMs: timeout})
	return err
}

// Fence is a handle on a fence plugin.
type Fence struct {
	h    *Host
	name string
}

// Fence returns the handle for fence plugin name.
func (h *Host) Fence(name string) Fence { return Fence{h, name} }

func (f Fence) op(ctx context.Context, op string, in *pb.FenceRequest,
	call func(pb.FenceClient, context.Context, *pb.FenceRequest, ...grpc.CallOption) (*pb.FenceResult, error)) (*pb.FenceResult, error) {
	return invoke(ctx, f.h, plugins.KindFence, f.name, op, ms(in.GetTimeoutMs()),
		func(ctx context.Context, c pb.FenceClient) (*pb.FenceResult, error) {
			res, err := call(c, ctx, in)
			if err == nil && (res.GetPower() < pb.Power_UNKNOWN || res.GetPower() > pb.Power_OFF) {
				return nil, fmt.Errorf("%w: power state %d", ErrBadOutput, res.GetPower())
			}
			return res, err
		})
}

// Off powers a node off; only a result of OFF confirms it.
func (f Fence) Off(ctx context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	return f.op(ctx, "fence off", in, pb.FenceClient.Off)
}

// On powers a node on.
func (f Fence) On(ctx context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	return f.op(ctx, "fence on", in, pb.FenceClient.On)
}

// Status asks for a node's power state.
func (f Fence) Status(ctx context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	return f.op(ctx, "fence status", in, pb.FenceClient.Status)
}
