package ldirectord

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// schedule runs the checks of all of an engine's checkers. One goroutine
// keeps the checkers in a heap by due time and hands each due one to a
// worker. Workers go from check to check, so that a check costs no
// goroutine, timer or channel of its own and runs on a stack already
// grown; the pool grows to what the checks in flight need (a slow or
// timing-out real holds a worker, never delays the others) and shrinks
// when workers stay idle. A checker is in the heap or with one worker,
// never both: its checks never overlap.
type schedule struct {
	ctx context.Context
	wg  *sync.WaitGroup
	run func(*checker) // one check, its bookkeeping and its next due time

	wake chan struct{} // cap 1: the heap's head moved earlier
	work chan *checker // unbuffered: reaches a worker waiting for work
	mu   sync.Mutex    // guards due and every checker's next/index
	due  dueHeap       // checkers waiting for their next check
	batc []*checker    // the loop's scratch: due now
	tick *time.Timer   // the loop's: fires at the head's due time
	idle time.Duration // a worker idle this long exits
	lead time.Duration // checks due this soon run in the same pass
}

const (
	workerIdle = 10 * time.Second
	// dueSlack folds checks due within it into one pass of the loop: at
	// 10,000 checks a second that is one wake-up per 20 checks instead
	// of one per check; ±10% jitter on the interval dwarfs it.
	dueSlack = 2 * time.Millisecond
)

func newSchedule(ctx context.Context, wg *sync.WaitGroup, run func(*checker)) *schedule {
	s := &schedule{ctx: ctx, wg: wg, run: run, wake: make(chan struct{}, 1), work: make(chan *checker),
		tick: time.NewTimer(time.Hour), idle: workerIdle, lead: dueSlack}
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

// drop takes c out of the queue (a check running keeps running until its
// context, cancelled by the caller, ends it, and is not queued again).
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
		s.batc = s.batc[:0]
		for len(s.due) > 0 && s.due[0].next.Sub(now) <= s.lead {
			s.batc = append(s.batc, heap.Pop(&s.due).(*checker))
		}
		wait := time.Duration(-1)
		if len(s.due) > 0 {
			wait = s.due[0].next.Sub(now)
		}
		s.mu.Unlock()
		for i, c := range s.batc {
			s.dispatch(c)
			s.batc[i] = nil
		}
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

// dispatch gives c to an idle worker, or to a new one when none waits.
func (s *schedule) dispatch(c *checker) {
	select {
	case s.work <- c:
	default:
		s.wg.Add(1)
		go s.worker(c)
	}
}

func (s *schedule) worker(c *checker) {
	defer s.wg.Done()
	idle := time.NewTimer(s.idle)
	defer idle.Stop()
	for {
		s.run(c)
		idle.Reset(s.idle)
		select {
		case c = <-s.work:
		case <-idle.C:
			return
		case <-s.ctx.Done():
			return
		}
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
