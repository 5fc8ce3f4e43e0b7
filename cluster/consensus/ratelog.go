package consensus

import (
	"log/slog"
	"sync"
	"time"
)

// Refused connections are logged one by one up to rejectBurst per
// rejectEvery, then as one summary line per interval: a scanner or a
// misconfigured node knocking many times a second must not flood the log
// (they are all counted in Node.Rejected).
const (
	rejectBurst = 5
	rejectEvery = time.Minute
)

// rateLog logs a warning up to burst times per interval; the ones over
// that are counted and reported in one line when the interval ends.
type rateLog struct {
	log   *slog.Logger
	burst int
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	start      time.Time // of the interval
	n          int       // warnings in it
	suppressed int
	msg        string // of the last suppressed warning
	timer      *time.Timer
	closed     bool
}

func newRateLog(log *slog.Logger, burst int, every time.Duration) *rateLog {
	return &rateLog{log: log, burst: burst, every: every, now: time.Now}
}

// Warn logs msg with args unless the interval's burst is spent.
func (r *rateLog) Warn(msg string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.start) >= r.every {
		r.flushLocked()
		r.start, r.n = now, 0
	}
	r.n++
	if r.n <= r.burst {
		r.log.Warn(msg, args...)
		return
	}
	r.suppressed++
	r.msg = msg
	if r.timer == nil && !r.closed {
		r.timer = time.AfterFunc(r.start.Add(r.every).Sub(now), r.flush)
	}
}

func (r *rateLog) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

func (r *rateLog) flushLocked() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if r.suppressed > 0 {
		r.log.Warn(r.msg+" (more, not logged one by one)", "suppressed", r.suppressed, "interval", r.every)
		r.suppressed = 0
	}
}

// Close logs what is pending and stops the timer.
func (r *rateLog) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.flushLocked()
}
