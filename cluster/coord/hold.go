package coord

import (
	"sync"
	"time"
)

// holdTrack remembers since when this node has held its lease without a
// gap, from every look at it (runLocal's and each worker's). A claim
// accepted before a gap must not be acted on after it: while the lease
// was out the node could be taken offline, its group reassigned and
// started elsewhere once its lease ran out (SAFETY.md rule 3), and its
// lease regained before its own view of the log shows the reassignment.
// A node starved of CPU for longer than its lease (the 10 ms / 50 ms
// scale lab) did exactly that: it started on the old acceptance while
// the new owner held the VIP.
//
// A gap is assumed whenever a look comes at or after the lease's end
// (the hold instant plus the stop budget) the previous look saw: a
// renewal that came in time but was read late counts as a gap too,
// which costs a claim, never safety. (Past the hold instant alone is no
// gap: a renewal late for it but before the end kept the lease, and at
// 10 ms beats on a busy machine that is common.)
type holdTrack struct {
	mu    sync.Mutex
	until time.Time // the hold instant the last look saw
	since time.Time // start of the current unbroken holding; zero: not holding
}

// look records holdUntil seen at now and returns since when the lease has
// been held without a gap (zero when it is not held at now). Looks are
// serialised, with now read under the lock, so they are in clock order.
func (h *holdTrack) look(clock func() time.Time, holdUntil func(time.Time) time.Time, budget time.Duration) (now, until, since time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now = clock()
	until = holdUntil(now)
	switch {
	case !now.Before(until):
		h.since = time.Time{}
	case h.since.IsZero() || !now.Before(h.until.Add(budget)):
		h.since = now
	}
	h.until = until
	return now, until, h.since
}

// look looks at this node's lease now (every look counts: runLocal's,
// the renewal hook's on every beat, each worker's).
func (c *Coordinator) look() (now, until, since time.Time) {
	return c.held.look(c.now, c.opt.Lease.HoldUntil, c.opt.Timing.StopBudget())
}
