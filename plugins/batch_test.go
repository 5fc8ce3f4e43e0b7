package plugins

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/plugins/pb"
)

// batchMonitors answers by instance id: "ok", "nil" (no result), "slow" (waits
// for its deadline and says so as a plain error), else a status error.
type batchMonitors struct{ pb.UnimplementedResourceServer }

func (batchMonitors) Monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	switch in.GetId() {
	case "ok":
		return &pb.Result{Code: pb.Code_SUCCESS}, nil
	case "nil":
		return nil, nil
	case "slow":
		<-ctx.Done()
		return nil, errors.New("gave up: " + ctx.Err().Error())
	}
	return nil, status.Error(codes.FailedPrecondition, "lease ran out")
}

func TestBatch(t *testing.T) {
	b := batched{batchMonitors{}}
	ctx := context.Background()
	ins := []*pb.Instance{{Id: "ok"}, {Id: "nil"}, {Id: "slow", TimeoutMs: 20}, {Id: "refused"}}
	reps, err := b.Batch(ctx, &pb.Operations{Op: "monitor", Instances: ins})
	if err != nil || len(reps.GetReplies()) != len(ins) {
		t.Fatalf("%v %v", reps, err)
	}
	want := []codes.Code{codes.OK, codes.Internal, codes.DeadlineExceeded, codes.FailedPrecondition}
	for i, rep := range reps.GetReplies() {
		if got := codes.Code(rep.GetStatusCode()); got != want[i] {
			t.Errorf("%s: status %s (%q), want %s", ins[i].GetId(), got, rep.GetStatusMessage(), want[i])
		}
	}
	if reps.GetReplies()[0].GetResult().GetCode() != pb.Code_SUCCESS {
		t.Errorf("ok: %v", reps.GetReplies()[0])
	}
	// Refused whole: an operation other than monitor, too many instances.
	if _, err := b.Batch(ctx, &pb.Operations{Op: "stop", Instances: ins}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("stop: %v", err)
	}
	many := make([]*pb.Instance, MaxBatch+1)
	if _, err := b.Batch(ctx, &pb.Operations{Op: "monitor", Instances: many}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("%d instances: %v", len(many), err)
	}
}
