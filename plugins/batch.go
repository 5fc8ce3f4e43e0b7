package plugins

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/plugins/pb"
)

// OpContext is ctx bounded by the instance's own timeout (timeout_ms),
// which a plugin enforces itself.
func OpContext(ctx context.Context, in *pb.Instance) (context.Context, context.CancelFunc) {
	if in.GetTimeoutMs() > 0 {
		return context.WithTimeout(ctx, time.Duration(in.GetTimeoutMs())*time.Millisecond)
	}
	return context.WithCancel(ctx)
}

// MaxBatch bounds the instances of one Batch call: the host sends no
// more, a plugin refuses more.
const MaxBatch = 1024

// batched serves Batch for a resource plugin by running the operation on
// every instance at once, each under the instance's own timeout, as that
// many single calls would have. Monitor is the only operation batched.
type batched struct{ pb.ResourceServer }

func (b batched) Batch(ctx context.Context, in *pb.Operations) (*pb.Replies, error) {
	ins := in.GetInstances()
	switch {
	case in.GetOp() != "monitor":
		return nil, status.Errorf(codes.InvalidArgument, "no batch of %q: monitor only", in.GetOp())
	case len(ins) > MaxBatch:
		return nil, status.Errorf(codes.InvalidArgument, "%d instances in one call, at most %d", len(ins), MaxBatch)
	}
	out := make([]*pb.Reply, len(ins))
	var wg sync.WaitGroup
	for i, inst := range ins {
		wg.Go(func() {
			ictx, cancel := OpContext(ctx, inst)
			defer cancel()
			res, err := b.Monitor(ictx, inst)
			switch {
			case err != nil:
				st := status.Convert(err)
				if errors.Is(ictx.Err(), context.DeadlineExceeded) {
					// Out of its time, as the host reads a single call
					// that missed its deadline.
					st = status.New(codes.DeadlineExceeded, err.Error())
				}
				out[i] = &pb.Reply{StatusCode: int32(st.Code()), StatusMessage: st.Message()}
			case res == nil:
				out[i] = &pb.Reply{StatusCode: int32(codes.Internal), StatusMessage: in.GetOp() + " returned no result"}
			default:
				out[i] = &pb.Reply{Result: res}
			}
		})
	}
	wg.Wait()
	return &pb.Replies{Replies: out}, nil
}
