package sdk

import (
	"context"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Releaser is a resource plugin whose resources only the holder of the
// node's lease may have (a VIP). Serve then keeps the lease in the
// plugin (pb.Lease, renewed by the daemon every keepalive and carried by
// every operation) and calls Release when it runs out unrenewed — the
// daemon died, hangs, is paused or lost its quorum — or when the daemon
// is gone; starts and reloads without a lease are refused.
type Releaser interface {
	// Release gives up every instance the plugin holds, as fast as it
	// can, and returns their ids.
	Release(ctx context.Context) []string
	// ReleaseTime says how long Release would take now: the node's
	// peers wait for it (beyond the daemon's stop budget) before they
	// take its groups, so it must not be an underestimate.
	ReleaseTime() time.Duration
}

// Keeper is a Releaser that gives what it holds a kernel lifetime
// (pb.Lease.lifetime_ns: a VIP's address lifetime) and keeps extending
// it, so that the kernel removes it when every Vigil process of the
// node is gone. Serve calls Keep, in a goroutine of its own, when the
// lifetime changes and every quarter of the lifetime.
type Keeper interface {
	Releaser
	// Keep extends what is due to lifetime from now, each extension
	// through under, which runs it only while the lease holds and never
	// during a release (under reports false once the lease is out: stop
	// then). A lifetime of 0 makes what it holds permanent again.
	Keep(ctx context.Context, lifetime time.Duration, under func(extend func()) bool)
}

// leased wraps a Releaser's resource server with the lease.
type leased struct {
	pb.ResourceServer
	r Releaser
	// page is the lease page the daemon passed (nil: none), where
	// renewals arrive without a Hold call.
	page *plugins.LeasePage

	// ops is held shared by operations that acquire (start, reload) and
	// exclusively by a release, so that nothing is acquired while, or
	// after, the lease runs out.
	ops sync.RWMutex

	mu       sync.Mutex
	seq      uint64        // of the newest lease seen; 0: none yet
	at       time.Duration // release instant (CLOCK_BOOTTIME); valid when seq > 0
	lifetime time.Duration // pb.Lease.lifetime_ns of the newest lease
	timer    *time.Timer
	released []string // since the last Hold answered
	closed   bool
	gone     bool // the daemon is: nothing renews any more

	// keep wakes the keeper goroutine (a Keeper only) after a renewal.
	keep     chan struct{}
	stopKeep context.CancelFunc
	kept     chan struct{} // closed when the keeper goroutine returned
}

func newLeased(s pb.ResourceServer, r Releaser, page *plugins.LeasePage) *leased {
	l := &leased{ResourceServer: s, r: r, page: page}
	if k, ok := r.(Keeper); ok {
		ctx, cancel := context.WithCancel(context.Background())
		l.keep, l.stopKeep, l.kept = make(chan struct{}, 1), cancel, make(chan struct{})
		go l.keeper(ctx, k)
	}
	return l
}

// keeper runs Keep when the lifetime changes and every quarter of it
// (Keep extends what is due; renewals come far more often). Keep's
// extensions go through under, so none runs once the lease is out or
// while a release runs.
func (l *leased) keeper(ctx context.Context, k Keeper) {
	defer close(l.kept)
	tick := time.NewTimer(time.Hour)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.keep:
		case <-tick.C:
		}
		l.mu.Lock()
		life := l.lifetime
		l.mu.Unlock()
		k.Keep(ctx, life, l.under)
		if life > 0 {
			tick.Reset(life / 4)
		}
	}
}

// under runs f while holding off any release, if the lease holds.
func (l *leased) under(f func()) bool {
	l.ops.RLock()
	defer l.ops.RUnlock()
	if ok, _ := l.valid(); !ok {
		return false
	}
	f()
	return true
}

// update takes a newer lease and sets the release timer by it.
func (l *leased) update(le *pb.Lease) {
	if le == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if le.GetSeq() <= l.seq || l.closed || l.gone {
		return
	}
	first, life := l.seq == 0, l.lifetime
	l.seq, l.at, l.lifetime = le.GetSeq(), time.Duration(le.GetReleaseAtNs()), time.Duration(le.GetLifetimeNs())
	d := l.at - plugins.BootNow()
	if l.timer == nil {
		l.timer = time.AfterFunc(d, l.expire)
	} else {
		l.timer.Reset(d)
	}
	if l.keep != nil && (first || life != l.lifetime) {
		select {
		case l.keep <- struct{}{}:
		default:
		}
	}
}

// refresh takes the newest lease from the page, if any.
func (l *leased) refresh() {
	if l.page != nil {
		l.update(l.page.Load())
	}
}

// valid reports whether the plugin may acquire: no lease ever given
// (an operation outside the cluster's control, or an older daemon), or
// one that has not run out.
func (l *leased) valid() (bool, time.Duration) {
	l.refresh()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq == 0 || plugins.BootNow() < l.at, l.at
}

// expire releases everything once the lease has run out.
func (l *leased) expire() {
	l.ops.Lock()
	defer l.ops.Unlock()
	l.refresh() // renewed there since the timer was set?
	l.mu.Lock()
	late := plugins.BootNow() - l.at
	renewed := late < 0 || l.closed
	l.mu.Unlock()
	if renewed {
		return // renewed after the timer fired; Reset set it again
	}
	t0 := time.Now()
	ids := l.r.Release(context.Background())
	if len(ids) == 0 {
		return
	}
	logger.Warn("the node's lease ran out unrenewed: released what this plugin held",
		"instances", len(ids), "late", late.Round(time.Microsecond).String(), "took", time.Since(t0).Round(time.Microsecond).String())
	l.mu.Lock()
	l.released = append(l.released, ids...)
	l.mu.Unlock()
}

// releaseNow gives everything up at once: the daemon is gone.
func (l *leased) releaseNow() {
	l.mu.Lock()
	if l.seq == 0 {
		l.mu.Unlock()
		return // never under a lease
	}
	l.at = min(l.at, plugins.BootNow())
	l.gone = true // not even by what the page still says
	l.mu.Unlock()
	l.expire()
}

func (l *leased) Hold(_ context.Context, le *pb.Lease) (*pb.HoldResult, error) {
	l.update(le)
	l.mu.Lock()
	defer l.mu.Unlock()
	out := &pb.HoldResult{Released: slices.Clone(l.released), ReleaseNs: int64(l.r.ReleaseTime()), ReadsPage: l.page != nil}
	l.released = l.released[:0]
	return out, nil
}

// acquire runs op under the lease the instance carries.
func (l *leased) acquire(in *pb.Instance, what string, op func() (*pb.Result, error)) (*pb.Result, error) {
	l.update(in.GetLease())
	l.ops.RLock()
	defer l.ops.RUnlock()
	if ok, at := l.valid(); !ok {
		// Not an OCF failure of the resource: the host tells it apart.
		return nil, status.Errorf(codes.FailedPrecondition, "not %s %s: the node's lease ran out %s ago", what, in.GetId(),
			(plugins.BootNow() - at).Round(time.Millisecond))
	}
	return op()
}

func (l *leased) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return l.acquire(in, "starting", func() (*pb.Result, error) { return l.ResourceServer.Start(ctx, in) })
}

func (l *leased) Reload(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return l.acquire(in, "reloading", func() (*pb.Result, error) { return l.ResourceServer.Reload(ctx, in) })
}

func (l *leased) Stop(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	l.update(in.GetLease())
	return l.ResourceServer.Stop(ctx, in)
}

func (l *leased) Monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	l.update(in.GetLease())
	return l.ResourceServer.Monitor(ctx, in)
}

// close stops the timer and the keeper (tests).
func (l *leased) close() {
	l.mu.Lock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	if l.stopKeep != nil {
		l.stopKeep()
		<-l.kept
	}
}
