package plugins

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/plugins/pb"
)

// MaxMonitorMany bounds the instances of one MonitorMany call: the host
// sends no more, a plugin refuses more.
const MaxMonitorMany = 1024

// monitorMany serves MonitorMany for a resource plugin by running its
// Monitor for every instance at once, each under the instance's own
// timeout, as that many single calls would have.
type monitorMany struct{ pb.ResourceServer }

func (m monitorMany) MonitorMany(ctx context.Context, in *pb.Instances) (*pb.Replies, error) {
	ins := in.GetInstances()
	if len(ins) > MaxMonitorMany {
		return nil, status.Errorf(codes.InvalidArgument, "%d instances in one call, at most %d", len(ins), MaxMonitorMany)
	}
	out := make([]*pb.Reply, len(ins))
	var wg sync.WaitGroup
	for i, inst := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := ctx, context.CancelFunc(func() {})
			if ms := inst.GetTimeoutMs(); ms > 0 {
				ictx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
			}
			defer cancel()
			res, err := m.Monitor(ictx, inst)
			switch {
			case err != nil:
				st := status.Convert(err)
				out[i] = &pb.Reply{StatusCode: int32(st.Code()), StatusMessage: st.Message()}
			case res == nil:
				out[i] = &pb.Reply{StatusCode: int32(codes.Internal), StatusMessage: "monitor returned no result"}
			default:
				out[i] = &pb.Reply{Result: res}
			}
		}()
	}
	wg.Wait()
	return &pb.Replies{Replies: out}, nil
}
