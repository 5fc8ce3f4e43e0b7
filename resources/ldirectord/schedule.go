package ldirectord

import (
	"container/heap"
	"context"
	"slices"
	"sync"
	"time"
)

// schedule runs the checks of all of an engine's checkers. One goroutine
// keeps the checkers in a heap by due time and hands each due one to a
// worker. Workers go from check to check, so that a check costs no
// goroutine, timer or channel of its own and runs on a stack already
// grown. Idle workers wait on a stack, last in first out: the few that
// the steady load needs stay hot and the rest of a burst time out and
// exit. The pool grows to the checks in flight, so a real that times out
// holds one worker and delays no other check, up to maxWorkers; past
// that, due checks queue in order until a worker is free. A checker is
// queued or with one worker, never both: its checks never overlap.
type schedule struct {
	ctx context.Context
	wg  *sync.WaitGroup
	run func(*checker) // one check, its bookkeeping and its next due time

	wake chan struct{} // cap 1: the heap's head moved earlier
	tick *time.Timer   // the loop's: fires at the head's due time
	batc []*checker    // the loop's scratch: due now

	mu      sync.Mutex
	due     dueHeap    // checkers waiting for their next check (with every checker's next/index)
	ready   []*checker // due, waiting for a worker (the pool is full)
	idle    []*worker  // workers waiting for a check, the hottest last
	workers int

	maxWorkers int
	idleAfter  time.Duration // a worker idle this long exits
	lead       time.Duration // checks due this soon run in the same pass
}

type worker struct{ job chan *checker } // cap 1: a worker off the idle stack gets exactly one

const (
	// maxWorkers bounds the checks in flight (a real has at most one,
	// so it only binds past that many reals). In flight = rate ×
	// latency: at 10,000 reals a second, a bound of 4,096 held the rate
	// to 50-60 % once checks took 0.4 s on a starved core, where
	// letting all 10,000 run kept 70-80 %.
	maxWorkers = 16384
	workerIdle = 5 * time.Second
	// dueSlack folds checks due within it into one pass of the loop: at
	// 10,000 checks a second that is one wake-up per 20 checks instead
	// of one per check; ±10% jitter on the interval dwarfs it.
	dueSlack = 2 * time.Millisecond
)

func newSchedule(ctx context.Context, wg *sync.WaitGroup, run func(*checker)) *schedule {
	s := &schedule{ctx: ctx, wg: wg, run: run, wake: make(chan struct{}, 1), tick: time.NewTimer(time.Hour),
		maxWorkers: maxWorkers, idleAfter: workerIdle, lead: dueSlack}
	s.tick.Stop()
	wg.Add(1)
	go s.loop()
	return s
}

// at queues c for a check at t (c must be neither queued nor running).
func (s *schedule) at(c *checker, t time.Time) {
	s.mu.Lock()
	c.next = t
	heap.Push(&s.due, c)
	head := c.index == 0
	s.mu.Unlock()
	if head {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// drop takes c out of the heap; a check running or already due ends or
// is skipped once the caller has cancelled c's context, and c is not
// queued again.
func (s *schedule) drop(c *checker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.index >= 0 {
		heap.Remove(&s.due, c.index)
	}
}

func (s *schedule) loop() {
	defer s.wg.Done()
	defer s.tick.Stop()
	for {
		now := time.Now()
		s.mu.Lock()
		for len(s.due) > 0 && s.due[0].next.Sub(now) <= s.lead {
			s.dispatch(heap.Pop(&s.due).(*checker))
		}
		wait := time.Duration(-1)
		if len(s.due) > 0 {
			wait = s.due[0].next.Sub(now)
		}
		s.mu.Unlock()
		if wait >= 0 {
			s.tick.Reset(wait)
		} else {
			s.tick.Stop()
		}
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-s.tick.C:
		}
	}
}

// dispatch gives c to the hottest idle worker, a new one, or the ready
// queue. Called with s.mu held.
func (s *schedule) dispatch(c *checker) {
	switch {
	case len(s.idle) > 0:
		w := s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		w.job <- c // never blocks: an idle worker's slot is empty
	case s.workers < s.maxWorkers:
		s.workers++
		s.wg.Add(1)
		go s.work(c)
	default:
		s.ready = append(s.ready, c)
	}
}

func (s *schedule) work(c *checker) {
	defer s.wg.Done()
	w := &worker{job: make(chan *checker, 1)}
	idle := time.NewTimer(s.idleAfter)
	defer idle.Stop()
	for {
		s.run(c)
		s.mu.Lock()
		if len(s.ready) > 0 {
			c = s.ready[0]
			s.ready[0] = nil
			s.ready = s.ready[1:]
			s.mu.Unlock()
			continue
		}
		s.idle = append(s.idle, w)
		s.mu.Unlock()
		idle.Reset(s.idleAfter)
		select {
		case c = <-w.job:
			continue
		case <-s.ctx.Done():
			return
		case <-idle.C:
		}
		s.mu.Lock()
		if i := slices.Index(s.idle, w); i >= 0 {
			s.idle = slices.Delete(s.idle, i, i+1)
			s.workers--
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		c = <-w.job // taken off the stack as the timer fired: the job is in the slot
	}
}

// dueHeap orders checkers by due time (container/heap).
type dueHeap []*checker

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	c := x.(*checker)
	c.index = len(*h)
	*h = append(*h, c)
}
func (h *dueHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.index = -1
	return c
}
