package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// batcher gathers the recurring monitors of one resource plugin that fall
// due within a short window into one MonitorMany call. A director with a
// thousand VIPs monitored every 10 s made a hundred calls a second, each
// paying gRPC's per-call cost in the daemon and in the plugin.
type batcher struct {
	r Resource

	mu      sync.Mutex
	pending []*batched
	single  bool // the plugin answered Unimplemented: one call per monitor
}

type batched struct {
	in   *pb.Instance
	done chan reply // buffered: a flush never waits for a caller gone
}

type reply struct {
	res *pb.Result
	err error
}

// batcher returns resource plugin r's batcher.
func (h *Host) batcher(r Resource) *batcher {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.batchers[r.name]
	if b == nil {
		b = &batcher{r: r}
		h.batchers[r.name] = b
	}
	return b
}

// spawn runs f in a goroutine Close waits for; false once closed.
func (h *Host) spawn(f func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
	return true
}

// monitor queues in for the next MonitorMany call. The first monitor of a
// batch opens a window of a hundredth of its interval, at most
// Options.MonitorWindow: late by that much, a recurring monitor changes
// nothing an operator would see.
func (b *batcher) monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	b.mu.Lock()
	if b.single {
		b.mu.Unlock()
		return b.r.single(ctx, in)
	}
	call := &batched{in: in, done: make(chan reply, 1)}
	b.pending = append(b.pending, call)
	var full []*batched
	switch len(b.pending) {
	case 1:
		window := min(ms(in.GetIntervalMs())/100, b.r.h.opts.MonitorWindow)
		if !b.r.h.spawn(func() { b.flushAfter(window) }) {
			b.pending = nil
			b.mu.Unlock()
			return nil, b.r.wrap(in, "monitor", ErrClosed)
		}
	case plugins.MaxMonitorMany:
		full, b.pending = b.pending, nil
	}
	b.mu.Unlock()
	if full != nil && !b.r.h.spawn(func() { b.flush(full) }) {
		return nil, b.r.wrap(in, "monitor", ErrClosed)
	}
	select {
	case rep := <-call.done:
		return rep.res, rep.err
	case <-ctx.Done():
		return nil, b.r.wrap(in, "monitor", ctx.Err())
	}
}

func (b *batcher) flushAfter(window time.Duration) {
	t := time.NewTimer(window)
	defer t.Stop()
	select {
	case <-t.C:
	case <-b.r.h.ctx.Done():
	}
	b.mu.Lock()
	calls := b.pending
	b.pending = nil
	b.mu.Unlock()
	b.flush(calls)
}

// flush sends calls in one MonitorMany and hands each caller its reply.
func (b *batcher) flush(calls []*batched) {
	if len(calls) == 0 {
		return // a full batch went out before the window closed
	}
	ctx := b.r.h.ctx
	ins := make([]*pb.Instance, len(calls))
	var timeout int64
	for i, c := range calls {
		ins[i] = c.in
		timeout = max(timeout, c.in.GetTimeoutMs())
	}
	reps, err := invoke(ctx, b.r.h, plugins.KindResource, b.r.name, "monitor", ms(timeout),
		func(ctx context.Context, c pb.ResourceClient) (*pb.Replies, error) {
			reps, err := c.MonitorMany(ctx, &pb.Instances{Instances: ins})
			if err == nil && len(reps.GetReplies()) != len(ins) {
				return nil, fmt.Errorf("%w: %d replies to %d monitors", ErrBadOutput, len(reps.GetReplies()), len(ins))
			}
			return reps, err
		})
	if errors.Is(err, ErrUnimplemented) {
		// A plugin built without the SDK: one call each, from now on.
		b.mu.Lock()
		b.single = true
		b.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range calls {
			wg.Go(func() {
				res, err := b.r.single(ctx, c.in)
				c.done <- reply{res, err}
			})
		}
		wg.Wait()
		return
	}
	for i, c := range calls {
		switch {
		case err != nil:
			c.done <- reply{nil, fmt.Errorf("%s: %w", c.in.GetId(), err)}
		default:
			c.done <- b.r.replyOf(c.in, reps.GetReplies()[i])
		}
	}
}

// replyOf is what a single Monitor call would have returned for in.
func (r Resource) replyOf(in *pb.Instance, rep *pb.Reply) reply {
	if c := codes.Code(rep.GetStatusCode()); c != codes.OK {
		err := statusError(status.New(c, rep.GetStatusMessage()))
		if c == codes.DeadlineExceeded {
			err = ErrTimeout
		}
		return reply{nil, r.wrap(in, "monitor", err)}
	}
	if err := checkResult(rep.GetResult()); err != nil {
		return reply{nil, r.wrap(in, "monitor", err)}
	}
	return reply{rep.GetResult(), nil}
}

// wrap words err as a failed op on in would have been.
func (r Resource) wrap(in *pb.Instance, op string, err error) error {
	return fmt.Errorf("%s: %s %s/%s: %w", in.GetId(), op, plugins.KindResource, r.name, err)
}
