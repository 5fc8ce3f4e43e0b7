package sdk

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// holding is a resource that holds what it started until released.
type holding struct {
	BaseResource
	mu       sync.Mutex
	held     []string
	releases chan []string
}

func (h *holding) Start(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	h.mu.Lock()
	h.held = append(h.held, in.GetId())
	h.mu.Unlock()
	return OK(), nil
}

func (h *holding) Stop(context.Context, *pb.Instance) (*pb.Result, error)    { return OK(), nil }
func (h *holding) Monitor(context.Context, *pb.Instance) (*pb.Result, error) { return OK(), nil }

func (h *holding) ReleaseTime() time.Duration { return time.Millisecond }

func (h *holding) Release(context.Context) []string {
	h.mu.Lock()
	ids := h.held
	h.held = nil
	h.mu.Unlock()
	h.releases <- ids
	return ids
}

func newHolding(t *testing.T) (*holding, *leased) {
	h := &holding{releases: make(chan []string, 8)}
	l := newLeased(h, h, nil)
	t.Cleanup(l.close)
	return h, l
}

func leaseIn(seq uint64, d time.Duration) *pb.Lease {
	return &pb.Lease{Seq: seq, ReleaseAtNs: int64(plugins.BootNow() + d)}
}

func start(t *testing.T, l *leased, id string, le *pb.Lease) *pb.Result {
	t.Helper()
	res, err := l.Start(context.Background(), &pb.Instance{Id: id, Lease: le})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// refused checks that a start is refused for the lease, as the host
// recognises it (FailedPrecondition), not as a failure of the resource.
func refused(t *testing.T, l *leased, id string, le *pb.Lease) {
	t.Helper()
	res, err := l.Start(context.Background(), &pb.Instance{Id: id, Lease: le})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("start of %s after the lease ran out: %v %v", id, res, err)
	}
}

// released waits for the plugin to release, at most a generous bound
// past the instant it should have.
func released(t *testing.T, h *holding, within time.Duration) []string {
	t.Helper()
	select {
	case ids := <-h.releases:
		return ids
	case <-time.After(within + 10*time.Second):
		t.Fatal("the lease ran out and nothing was released")
		return nil
	}
}

// A lease that is not renewed releases what the plugin holds, by itself;
// afterwards nothing starts under that lease, Hold reports what went,
// and a newer lease lets the plugin start again.
func TestLeaseRunsOut(t *testing.T) {
	h, l := newHolding(t)
	const life = 50 * time.Millisecond
	if res := start(t, l, "a", leaseIn(1, life)); res.GetCode() != pb.Code_SUCCESS {
		t.Fatalf("start under a lease: %v", res)
	}
	start(t, l, "b", nil) // carries none: the plugin's stands
	if ids := released(t, h, life); !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("released %v, want a and b", ids)
	}
	refused(t, l, "c", nil)
	// An operation sent under the old lease arrives late: it cannot
	// bring the lease back.
	refused(t, l, "c", &pb.Lease{Seq: 1, ReleaseAtNs: int64(plugins.BootNow() + time.Hour)})
	got, err := l.Hold(context.Background(), leaseIn(2, time.Hour))
	if err != nil || !slices.Equal(got.GetReleased(), []string{"a", "b"}) {
		t.Fatalf("hold after the release: %v %v", got, err)
	}
	if got, _ := l.Hold(context.Background(), leaseIn(3, time.Hour)); len(got.GetReleased()) != 0 {
		t.Fatalf("released reported twice: %v", got)
	}
	if res := start(t, l, "c", nil); res.GetCode() != pb.Code_SUCCESS {
		t.Fatalf("start under a renewed lease: %v", res)
	}
}

// Renewed in time, the plugin keeps what it holds past the first
// release instant; a lease handed over as already out (the daemon lost
// its quorum) releases at once.
func TestLeaseRenewedThenLost(t *testing.T) {
	h, l := newHolding(t)
	const life = 200 * time.Millisecond
	start(t, l, "a", leaseIn(1, life))
	first := plugins.BootNow() + life
	seq := uint64(1)
	for plugins.BootNow() < first+life {
		seq++
		if _, err := l.Hold(context.Background(), leaseIn(seq, 10*life)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(life / 10) // time passing is the point
	}
	select {
	case ids := <-h.releases:
		t.Fatalf("released %v while renewed", ids)
	default:
	}
	seq++
	if _, err := l.Hold(context.Background(), leaseIn(seq, -time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if ids := released(t, h, 0); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("released %v, want a", ids)
	}
}

// Renewals written to the lease page keep what the plugin holds with no
// Hold call at all; once they stop, the plugin releases by itself when
// the last one runs out; and a daemon gone releases at once whatever the
// page still says.
func TestLeasePageRenews(t *testing.T) {
	page, err := plugins.NewLeasePage()
	if err != nil {
		t.Fatal(err)
	}
	defer page.Close()
	h := &holding{releases: make(chan []string, 8)}
	l := newLeased(h, h, page)
	t.Cleanup(l.close)
	const life = 100 * time.Millisecond
	seq := uint64(1)
	page.Store(leaseIn(seq, life))
	if res := start(t, l, "a", nil); res.GetCode() != pb.Code_SUCCESS {
		t.Fatalf("start under the page's lease: %v", res)
	}
	if got, err := l.Hold(context.Background(), nil); err != nil || !got.GetReadsPage() {
		t.Fatalf("hold: %v %v, want reads_page", got, err)
	}
	// renew renews through the page for three lifetimes and returns any
	// release, with the longest gap between two renewals: a machine busy
	// enough to deschedule this goroutine for half a lifetime makes a
	// release right, and the run is tried again, not failed.
	var stopped time.Duration // when the last renewal was written
	renew := func() (gap time.Duration, ids []string) {
		until := plugins.BootNow() + 3*life
		last := plugins.BootNow()
		for now := last; now < until; now = plugins.BootNow() {
			gap = max(gap, now-last)
			last = now
			seq++
			stopped = plugins.BootNow() // the lease written ends after stopped+life
			page.Store(leaseIn(seq, life))
			time.Sleep(life / 10) // time passing is the point
		}
		select {
		case ids = <-h.releases:
		default:
		}
		return gap, ids
	}
	for try := 1; ; try++ {
		gap, ids := renew()
		if ids == nil {
			break
		}
		if gap < life/2 || try == 5 {
			t.Fatalf("released %v while the page was renewed (longest gap between renewals %s)", ids, gap)
		}
		t.Logf("try %d: renewals paused for %s (busy machine): released %v, rightly; again", try, gap, ids)
		seq++
		page.Store(leaseIn(seq, life))
		if res := start(t, l, "a", nil); res.GetCode() != pb.Code_SUCCESS {
			t.Fatalf("start again under the page's lease: %v", res)
		}
	}
	if ids := released(t, h, life); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("released %v, want a", ids)
	}
	if late := plugins.BootNow() - stopped; late < life/2 {
		t.Fatalf("released %s after the last renewal, before its lease of %s ran out", late, life)
	}

	// A daemon gone: the page still holds an hour, the plugin releases now.
	seq++
	page.Store(leaseIn(seq, time.Hour))
	start(t, l, "b", nil)
	go l.releaseNow()
	if ids := released(t, h, 0); !slices.Equal(ids, []string{"b"}) {
		t.Fatalf("released %v, want b", ids)
	}
}

// A daemon gone releases at once, without waiting for the lease.
func TestLeaseDaemonGone(t *testing.T) {
	h, l := newHolding(t)
	start(t, l, "a", leaseIn(1, time.Hour))
	l.releaseNow()
	if ids := released(t, h, 0); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("released %v, want a", ids)
	}
	// A plugin never under a lease has nothing the lease protects.
	h2, l2 := newHolding(t)
	start(t, l2, "b", nil)
	l2.releaseNow()
	select {
	case ids := <-h2.releases:
		t.Fatalf("released %v without ever holding a lease", ids)
	default:
	}
}

// keeping is a holding whose resources the plugin must keep alive; it
// logs its extensions and releases in order.
type keeping struct {
	*holding
	mu    sync.Mutex
	log   []string
	calls chan time.Duration // the lifetime of each Keep, once done
}

func (k *keeping) Release(ctx context.Context) []string {
	k.mu.Lock()
	k.log = append(k.log, "release")
	k.mu.Unlock()
	return k.holding.Release(ctx)
}

func (k *keeping) Keep(_ context.Context, lifetime time.Duration, under func(func()) bool) {
	under(func() {
		k.mu.Lock()
		k.log = append(k.log, "extend")
		k.mu.Unlock()
	})
	k.calls <- lifetime
}

func lifetimeIn(seq uint64, d, lifetime time.Duration) *pb.Lease {
	le := leaseIn(seq, d)
	le.LifetimeNs = int64(lifetime)
	return le
}

// A Keeper keeps its resources, with the lease's lifetime, from the
// first lease on and every quarter of the lifetime while the lease holds,
// never once it ran out nor while a release runs.
func TestLeaseKeeper(t *testing.T) {
	h := &holding{releases: make(chan []string, 8)}
	k := &keeping{holding: h, calls: make(chan time.Duration, 64)}
	l := newLeased(h, k, nil)
	t.Cleanup(l.close)
	const life = 40 * time.Millisecond
	if _, err := l.Hold(context.Background(), lifetimeIn(1, time.Hour, life)); err != nil {
		t.Fatal(err)
	}
	// The renewal, then the timer, with nothing else to wake it.
	for range 3 {
		if got := <-k.calls; got != life {
			t.Fatalf("kept with lifetime %s, want %s", got, life)
		}
	}
	start(t, l, "a", nil)
	if _, err := l.Hold(context.Background(), lifetimeIn(2, -time.Millisecond, life)); err != nil {
		t.Fatal(err)
	}
	released(t, h, 0)
	// Two whole rounds of the keeper after the release: neither extends.
	for len(k.calls) > 0 {
		<-k.calls
	}
	<-k.calls
	<-k.calls
	k.mu.Lock()
	defer k.mu.Unlock()
	last := slices.Index(k.log, "release")
	if last < 1 || slices.Contains(k.log[last:], "extend") {
		t.Fatalf("extensions and releases: %v, want extensions only before the release", k.log)
	}

	// An extension asked for once a release has begun waits for it to
	// finish, and then finds the lease out.
	h2 := &holding{releases: make(chan []string)}
	l2 := newLeased(h2, h2, nil)
	t.Cleanup(l2.close)
	start(t, l2, "b", leaseIn(1, time.Hour))
	go l2.releaseNow()
	entered := <-h2.releases // Release runs, and waits for this receive
	if !slices.Equal(entered, []string{"b"}) {
		t.Fatalf("released %v", entered)
	}
	if l2.under(func() { t.Error("extended after a release") }) {
		t.Fatal("under ran after the release")
	}
}

// A plugin watches the daemon the environment names: started by a daemon
// that died at once, its parent is already init, which it must not take
// for the daemon.
func TestParentPID(t *testing.T) {
	t.Setenv(plugins.EnvDaemonPID, "4242")
	if got := parentPID(); got != 4242 {
		t.Errorf("parent %d, want the daemon's 4242", got)
	}
	t.Setenv(plugins.EnvDaemonPID, "")
	if got := parentPID(); got != os.Getppid() {
		t.Errorf("without the variable: parent %d, want %d", got, os.Getppid())
	}
}

// A daemon already gone before the plugin looked (its parent is another
// process now, whatever the number names today) counts as gone at once.
func TestAwaitExitOfAnotherProcess(t *testing.T) {
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	done := make(chan struct{})
	go func() { awaitExit(other.Process.Pid); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("awaitExit waited for a process that is not the plugin's parent")
	}
}
