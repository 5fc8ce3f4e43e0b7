package consensus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// One barrier covers every caller that arrived before it was issued:
// callers arriving while one runs share the next one, and none returns
// before a barrier issued after its call completed.
func TestBarriersCoalesce(t *testing.T) {
	defer goleak.VerifyNone(t)
	var (
		runs    atomic.Int64
		started = make(chan struct{})
		release = make(chan struct{})
	)
	b := &barriers{run: func() {
		runs.Add(1)
		started <- struct{}{}
		<-release
	}}
	defer b.close()
	ctx := context.Background()
	first := make(chan struct{})
	go func() { b.after(ctx); close(first) }()
	<-started // barrier 1 runs
	const n = 10
	var wg sync.WaitGroup
	var early atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.after(ctx)
			if runs.Load() < 2 {
				early.Add(1)
			}
		}()
	}
	waitWaiting(t, b, n+1)
	release <- struct{}{} // barrier 1 done: it covers only the first caller
	<-first
	<-started // barrier 2, issued after the ten arrived
	release <- struct{}{}
	wg.Wait()
	if early.Load() > 0 {
		t.Fatalf("%d callers returned on a barrier issued before their call", early.Load())
	}
	if got := runs.Load(); got != 2 {
		t.Fatalf("%d barriers for %d callers, want 2", got, n+1)
	}
	// A caller whose context ends does not wait for the barrier.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { b.after(cctx); close(done) }()
	<-started
	cancel()
	<-done
	release <- struct{}{}
}

func waitWaiting(t *testing.T, b *barriers, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d callers waiting at the barrier", n), func() (int, bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.waiting, b.waiting >= n
	})
}
