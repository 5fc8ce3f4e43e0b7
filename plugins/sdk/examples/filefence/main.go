// Command filefence is an example fence plugin for labs: a node's "power"
// is a file params.dir/NODE holding on or off. A real one would talk to a
// PDU or a BMC; only an answer of OFF lets the cluster act on a node.
package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

type fence struct{ pb.UnimplementedFenceServer }

func set(in *pb.FenceRequest, p pb.Power) (*pb.FenceResult, error) {
	file := filepath.Join(in.GetParams()["dir"], filepath.Base(in.GetNode()))
	if err := os.WriteFile(file, []byte(strings.ToLower(p.String())), 0o644); err != nil {
		return nil, err
	}
	return &pb.FenceResult{Power: p, Detail: file}, nil
}

func (fence) Off(_ context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	return set(in, pb.Power_OFF)
}
func (fence) On(_ context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	return set(in, pb.Power_ON)
}
func (fence) Status(_ context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	b, err := os.ReadFile(filepath.Join(in.GetParams()["dir"], filepath.Base(in.GetNode())))
	if err != nil {
		return &pb.FenceResult{Power: pb.Power_UNKNOWN, Detail: err.Error()}, nil
	}
	return &pb.FenceResult{Power: pb.Power(pb.Power_value[strings.ToUpper(string(b))])}, nil
}

func main() { sdk.Serve(sdk.Plugin{Fence: fence{}}) }
