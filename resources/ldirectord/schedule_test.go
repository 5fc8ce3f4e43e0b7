package ldirectord

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testSchedule is a schedule whose run is f, with its bounds set before
// any work, stopped at the end of the test (goleak then sees its
// goroutines gone).
func testSchedule(t *testing.T, workers int, idle time.Duration, f func(*schedule, *checker)) *schedule {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var s *schedule
	ready := make(chan struct{})
	s = newSchedule(ctx, &wg, func(c *checker) { <-ready; f(s, c) })
	s.mu.Lock()
	s.maxWorkers, s.idleAfter = workers, idle
	s.mu.Unlock()
	close(ready)
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s
}

func (s *schedule) poolSize() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers
}

// A real that hangs holds one worker: the others keep their interval,
// and no checker's checks ever overlap.
func TestScheduleSlowCheckDelaysNoOther(t *testing.T) {
	const fast, rounds = 20, 5
	release := make(chan struct{})
	slow := &checker{index: -1}
	var running sync.Map // *checker → *atomic.Int32
	var mu sync.Mutex
	runs := map[*checker]int{}
	done := make(chan struct{})
	s := testSchedule(t, maxWorkers, time.Minute, func(s *schedule, c *checker) {
		n, _ := running.LoadOrStore(c, new(atomic.Int32))
		if n.(*atomic.Int32).Add(1) != 1 {
			t.Error("two checks of one checker at once")
		}
		if c == slow {
			<-release
			n.(*atomic.Int32).Add(-1)
			return
		}
		n.(*atomic.Int32).Add(-1) // this check is over: the next may start once queued
		mu.Lock()
		runs[c]++
		all := len(runs) == fast
		for _, r := range runs {
			all = all && r >= rounds
		}
		mu.Unlock()
		if all {
			select {
			case <-done:
			default:
				close(done)
			}
		}
		s.at(c, time.Now().Add(time.Millisecond))
	})
	s.at(slow, time.Now())
	for range fast {
		s.at(&checker{index: -1}, time.Now())
	}
	<-done // every fast checker ran rounds times while slow hung
	close(release)
}

// Past maxWorkers due checks wait, none is lost, and the pool stays
// within its bound.
func TestSchedulePoolBound(t *testing.T) {
	const workers, n = 2, 7
	var inFlight, peak atomic.Int32
	gate := make(chan struct{})
	var ran sync.WaitGroup
	ran.Add(n)
	s := testSchedule(t, workers, time.Minute, func(_ *schedule, c *checker) {
		if v := inFlight.Add(1); v > peak.Load() {
			peak.Store(v)
		}
		<-gate
		inFlight.Add(-1)
		ran.Done()
	})
	for range n {
		s.at(&checker{index: -1}, time.Now())
	}
	for range n {
		gate <- struct{}{}
	}
	ran.Wait()
	if p := peak.Load(); p > workers {
		t.Errorf("%d checks in flight, bound %d", p, workers)
	}
	if got := s.poolSize(); got > workers {
		t.Errorf("%d workers, bound %d", got, workers)
	}
}

// Checks that wait for a worker run in the order they fell due.
func TestScheduleQueueOrder(t *testing.T) {
	const n = 7
	var mu sync.Mutex
	var order []int
	all := make(chan struct{})
	gate := make(chan struct{})
	s := testSchedule(t, 1, time.Minute, func(_ *schedule, c *checker) {
		<-gate
		mu.Lock()
		defer mu.Unlock()
		order = append(order, c.failures) // the checker's number
		if len(order) == n {
			close(all)
		}
	})
	base := time.Now()
	for i := range n {
		c := &checker{index: -1}
		c.failures = i
		s.at(c, base.Add(time.Duration(i)*time.Microsecond))
	}
	for range n {
		gate <- struct{}{}
	}
	<-all
	for i := range n {
		if order[i] != i {
			t.Fatalf("order %v: the queued checks ran out of due order", order)
		}
	}
}

// After a burst the pool shrinks back to what the steady load needs: idle
// workers wait last in, first out, so the cold ones time out.
func TestSchedulePoolShrinks(t *testing.T) {
	const burst, idle = 50, 50 * time.Millisecond
	hold := make(chan struct{})
	var first sync.WaitGroup
	first.Add(burst)
	steady := &checker{index: -1}
	s := testSchedule(t, maxWorkers, idle, func(s *schedule, c *checker) {
		if c != steady {
			first.Done()
			<-hold // all of the burst in flight together
			return
		}
		s.at(c, time.Now().Add(idle/100)) // a steady check: shared round-robin, it would keep every worker busy
	})
	for range burst {
		s.at(&checker{index: -1}, time.Now())
	}
	first.Wait()
	if got := s.poolSize(); got != burst {
		t.Fatalf("%d workers for a burst of %d", got, burst)
	}
	close(hold)
	s.at(steady, time.Now())
	deadline := time.Now().Add(20 * idle)
	for s.poolSize() > 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still after %v with one steady checker", s.poolSize(), 20*idle)
		}
		time.Sleep(idle / 10) // polling the pool's size, bounded by deadline
	}
}

// A dropped checker leaves the heap and is not checked again.
func TestScheduleDrop(t *testing.T) {
	var dropped atomic.Bool
	gone := &checker{index: -1}
	other := &checker{index: -1}
	var after atomic.Int32
	done := make(chan struct{})
	s := testSchedule(t, maxWorkers, time.Minute, func(s *schedule, c *checker) {
		if c == gone {
			if dropped.Load() {
				t.Error("dropped checker checked")
			}
			return
		}
		if dropped.Load() && after.Add(1) == 5 {
			close(done)
			return
		}
		s.at(c, time.Now().Add(time.Millisecond))
	})
	s.at(gone, time.Now().Add(2*time.Millisecond+s.lead))
	s.drop(gone)
	dropped.Store(true)
	if gone.index != -1 {
		t.Fatalf("index %d after drop", gone.index)
	}
	s.at(other, time.Now())
	<-done // five checks of the other past gone's due time
}
