package lrm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// OnceActions are the operations Once runs: the plugin protocol's, by
// their OCF names. "status" is the monitor under the name LSB and
// heartbeat scripts give it; "validate" is validate-all.
var OnceActions = []string{"start", "stop", "monitor", "status", "reload", "validate-all", "validate", "meta-data"}

// ErrUnknownAction: Once has no such operation.
var ErrUnknownAction = errors.New("unknown action")

// OnceResult is one operation run by Once.
type OnceResult struct {
	Resource string        `json:"resource"`
	Type     string        `json:"type"`
	Plugin   string        `json:"plugin"`
	Agent    string        `json:"agent"`
	Action   string        `json:"action"`
	Params   []string      `json:"params,omitempty"` // name=value, sorted, as the plugin got them
	Args     []string      `json:"args,omitempty"`
	Code     pb.Code       `json:"-"`
	Reason   string        `json:"reason,omitempty"`
	Output   string        `json:"output,omitempty"`
	Meta     *pb.Meta      `json:"-"` // meta-data only
	Took     time.Duration `json:"-"`
}

// Once runs one operation on resource r through its plugin in h, the way
// the manager runs it within a group (the same binding and instance), but
// outside any group and under no lease: `vigil resource run`, an
// operator's test of an agent. interval is the monitor's (0: a probe);
// timeout applies when r has none. An error is the call's (no plugin, a
// crash, a missed deadline); the agent's own failures are result codes.
func Once(ctx context.Context, h *host.Host, r config.Resource, action string, timeout, interval time.Duration) (OnceResult, error) {
	if !slices.Contains(OnceActions, action) {
		return OnceResult{}, fmt.Errorf("%w %q (one of %v)", ErrUnknownAction, action, OnceActions)
	}
	b, err := r.Bind()
	if err != nil {
		return OnceResult{}, fmt.Errorf("%s: %w", r.ID, err)
	}
	out := OnceResult{Resource: r.ID, Type: r.Type, Plugin: b.Plugin, Agent: b.Agent, Action: action, Args: b.Args}
	for _, k := range slices.Sorted(maps.Keys(b.Params)) {
		out.Params = append(out.Params, k+"="+b.Params[k])
	}
	res := h.Resource(b.Plugin)
	start := time.Now()
	if action == "meta-data" {
		m, err := res.MetaData(ctx, b.Agent)
		out.Took = time.Since(start)
		if err != nil {
			return out, err
		}
		out.Code, out.Meta = pb.Code_SUCCESS, m
		return out, nil
	}
	if action != "monitor" && action != "status" {
		interval = 0 // only a monitor recurs
	}
	call := map[string]func(context.Context, *pb.Instance) (*pb.Result, error){
		"start": res.Start, "stop": res.Stop, "monitor": res.Monitor, "status": res.Monitor, "reload": res.Reload,
		"validate-all": res.Validate, "validate": res.Validate}[action]
	got, err := call(ctx, newInstance(r, b, timeout, interval, nil))
	out.Took = time.Since(start)
	if err != nil {
		return out, err
	}
	out.Code, out.Reason, out.Output = got.GetCode(), got.GetReason(), got.GetOutput()
	return out, nil
}
