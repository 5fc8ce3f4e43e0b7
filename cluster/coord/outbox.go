package coord

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/cluster/fsm"
)

// outbox holds what this node's workers have to tell the cluster: reports
// and claims. One committer sends everything queued as one "reports" and
// one "claims" entry per commit round, so a pass over many groups costs a
// few Raft entries, not one per group.
//
// It never fills: per group, a report that only says a state replaces the
// state reports queued before it (the last one wins in the FSM anyway);
// reports that count a failure are all kept, in order.
type outbox struct {
	mu      sync.Mutex
	wake    chan struct{}
	reports map[string][]fsm.Report // per group, in the order queued
	order   []string                // groups with queued reports, first queued first
	claims  map[string]fsm.Claim
	corder  []string
	sending map[string]bool // claims in the round being committed
	busy    bool            // a round is being committed
}

func newOutbox() *outbox {
	return &outbox{wake: make(chan struct{}, 1), reports: map[string][]fsm.Report{}, claims: map[string]fsm.Claim{}, sending: map[string]bool{}}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// report queues r after the reports already queued for its group.
func (o *outbox) report(r fsm.Report) {
	o.mu.Lock()
	o.addLocked(r)
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) addLocked(r fsm.Report) {
	q, ok := o.reports[r.Group]
	if !ok {
		o.order = append(o.order, r.Group)
	}
	// Whatever r says supersedes a queued report that only said a state.
	q = slices.DeleteFunc(q, func(p fsm.Report) bool { return !p.Fail })
	o.reports[r.Group] = append(q, r)
}

// claim queues c, replacing a claim of the same group not yet sent.
func (o *outbox) claim(c fsm.Claim) {
	o.mu.Lock()
	if _, ok := o.claims[c.Group]; !ok {
		o.corder = append(o.corder, c.Group)
	}
	o.claims[c.Group] = c
	o.mu.Unlock()
	o.signal()
}

// take empties the outbox.
func (o *outbox) take() (reports []fsm.Report, claims []fsm.Claim) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, g := range o.order {
		reports = append(reports, o.reports[g]...)
	}
	clear(o.sending)
	for _, g := range o.corder {
		claims = append(claims, o.claims[g])
		o.sending[g] = true
	}
	o.busy = len(reports) > 0 || len(claims) > 0
	clear(o.reports)
	clear(o.claims)
	o.order, o.corder = o.order[:0], o.corder[:0]
	return reports, claims
}

// claiming reports whether a claim of group is queued or being committed.
func (o *outbox) claiming(group string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, queued := o.claims[group]
	return queued || o.sending[group]
}

// idle reports whether nothing is queued or being committed.
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.order) == 0 && len(o.corder) == 0 && !o.busy
}

// sent marks the round taken last as committed (or failed).
func (o *outbox) sent() {
	o.mu.Lock()
	clear(o.sending)
	o.busy = false
	o.mu.Unlock()
}

// putBack requeues reports that were not committed ahead of those queued
// since, coalescing as report does.
func (o *outbox) putBack(reports []fsm.Report) {
	o.mu.Lock()
	defer o.mu.Unlock()
	later, order := o.reports, o.order
	o.reports, o.order = map[string][]fsm.Report{}, nil
	for _, r := range reports {
		o.addLocked(r)
	}
	for _, g := range order {
		for _, r := range later[g] {
			o.addLocked(r)
		}
	}
}

// pending counts the queued reports and claims.
func (o *outbox) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(o.claims)
	for _, q := range o.reports {
		n += len(q)
	}
	return n
}

// gather waits while the outbox keeps filling: the workers of a pass over
// many groups (a failover: every timer set to the old owner's release)
// queue their items within moments of each other, and a short wait puts
// them into one entry instead of one each. It waits Timing.GatherQuiet
// after the last item came, never longer than Timing.GatherMax in all,
// and reports false when ctx ended.
func (c *Coordinator) gather(ctx context.Context) bool {
	quiet := c.opt.Timing.GatherQuiet()
	deadline := time.Now().Add(c.opt.Timing.GatherMax())
	t := time.NewTimer(quiet)
	defer t.Stop()
	for n := c.out.pending(); ; {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		m := c.out.pending()
		if m == n || time.Now().After(deadline) {
			return true
		}
		n = m
		t.Reset(quiet)
	}
}

// commit sends what is queued, a round at a time, until ctx ends. While
// nothing can be committed (no quorum) it retries with a backoff; claims
// are not retried (each worker claims again when it still needs to).
func (c *Coordinator) commit(ctx context.Context) {
	backoff := c.opt.Timing.CommitBackoff()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.out.wake:
		}
		if !c.gather(ctx) {
			return
		}
		reports, claims := c.out.take()
		failed := false
		if len(reports) > 0 {
			err := c.Apply(ctx, fsm.TypeReports, fsm.Reports{Reports: reports})
			if err != nil && !errors.Is(err, fsm.ErrRefused) {
				failed = true
				c.out.putBack(reports)
				c.log.Warn("cannot commit reports; retrying", "reports", len(reports), "err", err)
			}
		}
		if len(claims) > 0 && !failed {
			// Each claim's outcome is in the replicated state: the
			// worker looks there (fsm.Group.Claimed, ClaimIndex).
			if err := c.Apply(ctx, fsm.TypeClaims, fsm.Claims{Claims: claims}); err != nil && !errors.Is(err, fsm.ErrRefused) {
				c.log.Warn("cannot commit claims", "claims", len(claims), "err", err)
			}
		}
		c.out.sent()
		if !failed {
			backoff = c.opt.Timing.CommitBackoff()
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		c.out.signal()
	}
}
