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
// due within a short window into one Batch call. A director with a
// thousand VIPs monitored every 10 s made a hundred calls a second while
// idle, each paying gRPC's per-call cost in the daemon and in the plugin.
// Starts, stops and probes are not batched: a failover's thousand starts
// run in the plugin at once, and that burst starved the heartbeat on a
// 2-core director (bench-scale: the new owner's lease lapsed, 2 trials in
// 5), where single calls spread them.
type batcher struct {
	r Resource

	mu      sync.Mutex
	pending []*queued
	armed   bool // a flush of pending is scheduled
	single  bool // the plugin answered Unimplemented: one call each
}

type queued struct {
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

// monitor queues in for the next batch. The first monitor of a batch
// opens a window of a hundredth of its interval, at most
// Options.BatchWindow: that late, a recurring monitor changes nothing.
func (b *batcher) monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	b.mu.Lock()
	if b.single {
		b.mu.Unlock()
		return b.r.single(ctx, in)
	}
	q := &queued{in: in, done: make(chan reply, 1)}
	b.pending = append(b.pending, q)
	ok := true
	switch {
	case len(b.pending) >= plugins.MaxBatch:
		ok = b.flushLocked()
	case !b.armed:
		window := min(ms(in.GetIntervalMs())/100, b.r.h.opts.BatchWindow)
		if ok = b.r.h.spawn(func() { b.flushAfter(window) }); ok {
			b.armed = true // before flushAfter runs: it waits for b.mu
		} else {
			b.pending = nil // closed: q was the only one (nothing was armed)
		}
	}
	b.mu.Unlock()
	if !ok {
		return nil, b.r.wrap(in, ErrClosed)
	}
	select {
	case rep := <-q.done:
		return rep.res, rep.err
	case <-ctx.Done():
		return nil, b.r.wrap(in, ctx.Err())
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
	b.armed = false
	b.flushLocked()
	b.mu.Unlock()
}

// flushLocked sends what is pending as one batch; false once the host is
// closed (the callers then learn it from their replies).
func (b *batcher) flushLocked() bool {
	qs := b.pending
	if len(qs) == 0 {
		return true
	}
	b.pending = nil
	ok := b.r.h.spawn(func() { b.send(qs) })
	if !ok {
		for _, q := range qs {
			q.done <- reply{nil, b.r.wrap(q.in, ErrClosed)}
		}
	}
	return ok
}

// send makes one Batch call of qs and hands each caller its reply.
func (b *batcher) send(qs []*queued) {
	ctx := b.r.h.ctx
	ins := make([]*pb.Instance, len(qs))
	var timeout int64
	for i, q := range qs {
		ins[i] = q.in
		timeout = max(timeout, q.in.GetTimeoutMs())
	}
	reps, err := invoke(ctx, b.r.h, plugins.KindResource, b.r.name, "monitor", ms(timeout),
		func(ctx context.Context, c pb.ResourceClient) (*pb.Replies, error) {
			reps, err := c.Batch(ctx, &pb.Operations{Op: "monitor", Instances: ins})
			if err == nil && len(reps.GetReplies()) != len(ins) {
				return nil, fmt.Errorf("%w: %d replies to %d operations", ErrBadOutput, len(reps.GetReplies()), len(ins))
			}
			return reps, err
		})
	if errors.Is(err, ErrUnimplemented) {
		// A plugin built without the SDK: one call each, from now on.
		b.mu.Lock()
		b.single = true
		b.mu.Unlock()
		var wg sync.WaitGroup
		for _, q := range qs {
			wg.Go(func() {
				res, err := b.r.single(ctx, q.in)
				q.done <- reply{res, err}
			})
		}
		wg.Wait()
		return
	}
	for i, q := range qs {
		if err != nil {
			q.done <- reply{nil, fmt.Errorf("%s: %w", q.in.GetId(), err)}
		} else {
			q.done <- b.r.replyOf(q.in, reps.GetReplies()[i])
		}
	}
}

// replyOf is what a single Monitor call would have returned for in.
func (r Resource) replyOf(in *pb.Instance, rep *pb.Reply) reply {
	if c := codes.Code(rep.GetStatusCode()); c != codes.OK {
		return reply{nil, r.wrap(in, statusError(status.New(c, rep.GetStatusMessage())))}
	}
	if err := checkResult(rep.GetResult()); err != nil {
		return reply{nil, r.wrap(in, err)}
	}
	return reply{rep.GetResult(), nil}
}

// wrap words err as a failed single monitor of in would have been.
func (r Resource) wrap(in *pb.Instance, err error) error {
	return fmt.Errorf("%s: %w", in.GetId(), callError("monitor", plugins.KindResource, r.name, err))
}
