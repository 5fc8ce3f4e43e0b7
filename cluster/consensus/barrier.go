package consensus

import (
	"context"
	"sync"
	"sync/atomic"
)

// barriers coalesces the no-op barrier each apply is followed by (so that
// followers learn of its commit at once, not at the next heartbeat): one
// barrier in flight covers every apply that completed before it was
// issued; applies completing meanwhile share the next one. At most one
// barrier runs, so a burst of N applies costs two or three barrier
// entries instead of N.
type barriers struct {
	run func() // one barrier, waited for

	mu       sync.Mutex
	started  uint64 // generations of barriers issued
	finished uint64 // the latest generation done
	wanted   uint64 // the latest generation a caller waits for
	running  bool
	closed   bool
	waiting  int           // callers waiting, for tests
	changed  chan struct{} // closed when finished advances
	wg       sync.WaitGroup

	count atomic.Uint64 // barriers run, for the benchmark
}

// after returns once a barrier issued after the call was applied, or ctx
// ended.
func (b *barriers) after(ctx context.Context) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	want := b.started + 1 // one in flight was issued before this call
	b.wanted = max(b.wanted, want)
	if !b.running {
		b.running = true
		b.wg.Add(1)
		go b.loop()
	}
	b.waiting++
	defer func() {
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
	}()
	for b.finished < want {
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
		b.mu.Lock()
	}
	b.mu.Unlock()
}

// loop runs barriers while callers wait for one not yet issued.
func (b *barriers) loop() {
	defer b.wg.Done()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.wanted > b.finished {
		b.started++
		gen := b.started
		b.mu.Unlock()
		b.run()
		b.count.Add(1)
		b.mu.Lock()
		b.finished = gen
		close(b.changed)
		b.changed = make(chan struct{})
	}
	b.running = false
}

// close waits for the barrier in flight; after it returns at once.
func (b *barriers) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}
