// Command nsfence is the lab's fence plugin: a node's power is its network
// namespace. Off kills every process in it (its daemon and that daemon's
// plugins, as a power cut would); Status says OFF once none is left.
// Its params name each node's namespace: { n1 = "vg0123-n1", ... }. The
// namespaces are the lab's own, so it ends only processes the lab started.
package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

type fence struct{ pb.UnimplementedFenceServer }

// pids lists the processes in node's namespace.
func pids(ctx context.Context, in *pb.FenceRequest) ([]int, error) {
	ns := in.GetParams()[in.GetNode()]
	if ns == "" {
		return nil, fmt.Errorf("no namespace for node %q in params", in.GetNode())
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns pids %s: %w", ns, err)
	}
	var ps []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

func (fence) Off(ctx context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	for {
		ps, err := pids(ctx, in)
		if err != nil {
			return nil, err
		}
		if len(ps) == 0 {
			return &pb.FenceResult{Power: pb.Power_OFF}, nil
		}
		for _, p := range ps {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond): // the kernel tears them down
		}
	}
}

func (fence) On(context.Context, *pb.FenceRequest) (*pb.FenceResult, error) {
	return nil, fmt.Errorf("nsfence cannot power a node on: the lab restarts its daemon")
}

func (fence) Status(ctx context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	ps, err := pids(ctx, in)
	if err != nil {
		return &pb.FenceResult{Power: pb.Power_UNKNOWN, Detail: err.Error()}, nil
	}
	if len(ps) > 0 {
		return &pb.FenceResult{Power: pb.Power_ON, Detail: fmt.Sprintf("%d processes", len(ps))}, nil
	}
	return &pb.FenceResult{Power: pb.Power_OFF, Detail: "no process left"}, nil
}

func main() { sdk.Serve(sdk.Plugin{Fence: fence{}}) }
