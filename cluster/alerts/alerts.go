// Package alerts routes the cluster's events — nodes, failovers, failed
// operations, heartbeat links, ldirectord's real servers, mon alerts
// handed over with the "vigil" alert — to the alert senders that ha.toml's
// [[alert]] routes name: the same senders (mon alert scripts, mail,
// webhook, log, alert plugins) that mon's own alert lines use.
package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/monitors"
)

// Record is one delivery (or failed one), for status. It is the control
// API's wire type, defined in package api.
type Record = api.AlertRecord

// Counts are the deliveries so far. It is the control
// API's wire type, defined in package api.
type Counts = api.AlertCounts

// keepRecords is how many deliveries status remembers.
const keepRecords = 20

// queueLen bounds each sender's backlog: events beyond it are dropped
// and counted, never blocking whoever emits them.
const queueLen = 256

// Router delivers events through the routes. Each alert line of each route
// has its own queue and goroutine: a line sees events in order, and a slow
// mail relay does not hold up a log file.
type Router struct {
	log     *slog.Logger
	timeout time.Duration
	wg      sync.WaitGroup

	mu     sync.Mutex
	ctx    context.Context // Run's, once it runs
	lines  []*line
	recent []Record
	counts Counts
}

type line struct {
	key     string // what makes two lines the same across a reload
	events  map[string]bool
	upalert bool
	name    string
	args    []string
	senders monitors.Senders
	q       chan monitors.Alert
	stop    context.CancelFunc
}

// New returns a router for ha's routes; senders say how to reach the
// senders (plugins included). timeout bounds one delivery.
func New(ha *config.HA, senders monitors.Senders, timeout time.Duration, log *slog.Logger) *Router {
	return &Router{log: log, timeout: timeout, lines: lines(ha, senders)}
}

func lines(ha *config.HA, senders monitors.Senders) []*line {
	var out []*line
	for _, route := range ha.Alerts {
		kinds := map[string]bool{}
		for _, k := range route.Events {
			kinds[k] = true
		}
		for _, text := range route.Send {
			words, _ := monitors.Words(text) // validated by config
			if len(words) == 0 {
				continue
			}
			up := route.Upalert == nil || *route.Upalert
			key := fmt.Sprintf("%q %v %q %q %q %q", slices.Sorted(maps.Keys(kinds)), up, words,
				senders.AlertDir, senders.SMTPRelay, senders.MailFrom)
			out = append(out, &line{key: key, events: kinds, upalert: up, name: words[0], args: words[1:],
				senders: senders, q: make(chan monitors.Alert, queueLen)})
		}
	}
	return out
}

// Set replaces the routes (vigil reload): a line that is in both keeps its
// queue, so what it has queued is still delivered in order; removed lines
// stop.
func (r *Router) Set(ha *config.HA, senders monitors.Senders) {
	next := lines(ha, senders)
	r.mu.Lock()
	defer r.mu.Unlock()
	old := map[string][]*line{}
	for _, l := range r.lines {
		old[l.key] = append(old[l.key], l)
	}
	for i, l := range next {
		if same := old[l.key]; len(same) > 0 {
			next[i], old[l.key] = same[0], same[1:]
		} else if r.ctx != nil {
			r.startLocked(l)
		}
	}
	for _, ls := range old {
		for _, l := range ls {
			if l.stop != nil {
				l.stop()
			}
		}
	}
	r.lines = next
}

// Emit hands a to every line whose route takes its kind. It never blocks.
func (r *Router) Emit(a monitors.Alert) {
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if !l.events[a.Kind] || (a.Up() && !l.upalert) {
			continue
		}
		select {
		case l.q <- a:
		default:
			r.counts.Dropped++
			r.log.Warn("alert dropped: its sender does not keep up", "via", l.name, "summary", a.Summary)
		}
	}
}

// Run delivers until ctx ends; what is queued then is dropped.
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	for _, l := range r.lines {
		r.startLocked(l)
	}
	r.mu.Unlock()
	<-ctx.Done()
	r.wg.Wait()
	return nil
}

// startLocked starts l's delivery goroutine. Called with r.mu held.
func (r *Router) startLocked(l *line) {
	ctx, cancel := context.WithCancel(r.ctx)
	l.stop = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case a := <-l.q:
				r.deliver(ctx, l, a)
			}
		}
	}()
}

func (r *Router) deliver(ctx context.Context, l *line, a monitors.Alert) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := l.senders.Send(ctx, l.name, l.args, a)
	rec := Record{Time: a.Time, Kind: a.Kind, Type: a.Type, Summary: a.Summary, Via: l.name}
	if err != nil {
		rec.Err = err.Error()
		r.log.Warn("alert failed", "via", l.name, "kind", a.Kind, "summary", a.Summary, "err", err)
	} else {
		r.log.Info("alert sent", "via", l.name, "kind", a.Kind, "type", a.Type, "summary", a.Summary, "hosts", strings.Join(a.Hosts, " "))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.counts.Failed++
	} else {
		r.counts.Sent++
	}
	r.recent = append(r.recent, rec)
	if len(r.recent) > keepRecords {
		r.recent = slices.Delete(r.recent, 0, len(r.recent)-keepRecords)
	}
}

// Status returns the counts and the latest deliveries, newest last.
func (r *Router) Status() (Counts, []Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts, slices.Clone(r.recent)
}
