// Package dummy is the built-in Dummy resource: it runs nothing and
// records every operation, for tests and demos across the project (like
// ocf:heartbeat:Dummy, with a journal).
//
// Parameters:
//
//	state  file whose existence means "running"
//	       (default /run/vigil/dummy/ID.state)
//	log    journal, one line per operation: "RFC3339Nano OP RESULT"
//	       (default: the state file + ".log")
//	delay  how long start and stop take ("2s"); honours the deadline
//	fail   operations that fail with a generic error ("start,monitor")
//
// "{node}" in state and log becomes the name of the node running the
// plugin ($VIGIL_NODE), so that one group definition, shared by every node,
// gives each node its own files (the lab's nodes share one file system).
package dummy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Dummy implements the resource kind.
type Dummy struct{ sdk.BaseResource }

type params struct {
	state, log string
	delay      time.Duration
	fail       map[string]bool
}

func parse(in *pb.Instance) (params, error) {
	node := strings.NewReplacer("{node}", os.Getenv(plugins.EnvNode))
	p := params{state: node.Replace(in.GetParams()["state"]), log: node.Replace(in.GetParams()["log"]), fail: map[string]bool{}}
	for k := range in.GetParams() {
		switch k {
		case "state", "log", "delay", "fail":
		default:
			return p, fmt.Errorf("unknown parameter %q", k)
		}
	}
	if p.state == "" {
		if in.GetId() == "" || strings.ContainsAny(in.GetId(), "/\x00") {
			return p, fmt.Errorf("no state file and no usable instance id")
		}
		p.state = filepath.Join("/run/vigil/dummy", in.GetId()+".state")
	}
	if p.log == "" {
		p.log = p.state + ".log"
	}
	if d := in.GetParams()["delay"]; d != "" {
		v, err := time.ParseDuration(d)
		if err != nil || v < 0 {
			return p, fmt.Errorf("delay %q: want a duration like 2s", d)
		}
		p.delay = v
	}
	for _, op := range strings.Split(in.GetParams()["fail"], ",") {
		if op = strings.TrimSpace(op); op != "" {
			p.fail[op] = true
		}
	}
	return p, nil
}

// record appends one journal line; a journal that cannot be written fails
// the operation, since tests rely on it.
func (p params) record(op, outcome string) error {
	if err := os.MkdirAll(filepath.Dir(p.log), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %s %s\n", time.Now().Format(time.RFC3339Nano), op, outcome)
	return errors.Join(err, f.Close())
}

func (p params) running() bool {
	_, err := os.Stat(p.state)
	return err == nil
}

// op runs the common part of every operation and journals its outcome.
func op(ctx context.Context, in *pb.Instance, name string, body func(params) *pb.Result) (*pb.Result, error) {
	p, err := parse(in)
	if err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	if name == "start" || name == "stop" {
		sdk.Log().Info(name, "id", in.GetId(), "delay", p.delay)
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
			_ = p.record(name, "cancelled")
			return nil, ctx.Err()
		}
	}
	var res *pb.Result
	if p.fail[name] {
		res = sdk.Fail(pb.Code_ERR_GENERIC, "%s fails on purpose (fail=%s)", name, in.GetParams()["fail"])
	} else {
		res = body(p)
	}
	if err := p.record(name, strings.ToLower(res.Code.String())); err != nil {
		return sdk.Fail(pb.Code_ERR_PERM, "journal: %v", err), nil
	}
	return res, nil
}

func (Dummy) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return op(ctx, in, "start", func(p params) *pb.Result {
		if err := os.MkdirAll(filepath.Dir(p.state), 0o755); err != nil {
			return sdk.Fail(pb.Code_ERR_PERM, "%v", err)
		}
		if err := os.WriteFile(p.state, []byte(in.GetId()+"\n"), 0o644); err != nil {
			return sdk.Fail(pb.Code_ERR_PERM, "%v", err)
		}
		return sdk.OK()
	})
}

func (Dummy) Stop(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return op(ctx, in, "stop", func(p params) *pb.Result {
		if err := os.Remove(p.state); err != nil && !os.IsNotExist(err) {
			return sdk.Fail(pb.Code_ERR_PERM, "%v", err)
		}
		return sdk.OK()
	})
}

func (Dummy) Monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return op(ctx, in, "monitor", func(p params) *pb.Result {
		if p.running() {
			return sdk.OK()
		}
		return sdk.NotRunning("no state file " + p.state)
	})
}

func (Dummy) Validate(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if _, err := parse(in); err != nil {
		return sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err), nil
	}
	return sdk.OK(), nil
}

func (Dummy) MetaData(context.Context, *pb.MetaDataRequest) (*pb.Meta, error) {
	return &pb.Meta{Name: "Dummy", Version: "1.0", Description: "Records operations; runs nothing",
		Parameters: []*pb.Parameter{
			{Name: "state", Type: "string", Description: "file whose existence means running", Default: "/run/vigil/dummy/ID.state"},
			{Name: "log", Type: "string", Description: "operation journal", Default: "STATE.log"},
			{Name: "delay", Type: "time", Description: "how long start and stop take", Default: "0s", Reloadable: true},
			{Name: "fail", Type: "string", Description: "operations that fail (start,stop,monitor,reload)", Reloadable: true},
		},
		Actions: []*pb.Action{{Name: "start", TimeoutMs: 20000}, {Name: "stop", TimeoutMs: 20000},
			{Name: "monitor", TimeoutMs: 20000, IntervalMs: 10000}, {Name: "reload", TimeoutMs: 20000}}}, nil
}

// Reload journals a change of delay or fail applied in place.
func (Dummy) Reload(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return op(ctx, in, "reload", func(p params) *pb.Result {
		if p.running() {
			return sdk.OK()
		}
		return sdk.NotRunning("no state file " + p.state)
	})
}
