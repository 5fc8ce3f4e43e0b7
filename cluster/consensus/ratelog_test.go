package consensus

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// records keeps what was logged and signals each record.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
	note chan struct{}
}

func newRecords() *records { return &records{note: make(chan struct{}, 1)} }

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	select {
	case r.note <- struct{}{}:
	default:
	}
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// count returns how many records contain msg, and the "suppressed"
// attribute of the last such summary.
func (r *records) count(msg string) (n int, suppressed int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if !strings.Contains(rec.Message, msg) {
			continue
		}
		n++
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "suppressed" {
				suppressed = a.Value.Int64()
			}
			return true
		})
	}
	return n, suppressed
}

func TestRateLogBurstThenSummary(t *testing.T) {
	defer goleak.VerifyNone(t)
	recs := newRecords()
	now := time.Unix(1000, 0)
	r := newRateLog(slog.New(recs), 3, time.Hour)
	r.now = func() time.Time { return now }
	defer r.Close()
	for range 10 {
		r.Warn("refused", "k", "v")
	}
	if n, _ := recs.count("refused"); n != 3 {
		t.Fatalf("%d lines within the burst of 3", n)
	}
	r.flush() // what the timer does when the interval ends
	n, sup := recs.count("not logged one by one")
	if n != 1 || sup != 7 {
		t.Fatalf("summary: %d lines, suppressed=%d, want 1 line with 7", n, sup)
	}
	r.flush()
	if n, _ := recs.count("not logged one by one"); n != 1 {
		t.Fatal("a summary without anything suppressed")
	}
	// The next interval logs again.
	now = now.Add(time.Hour)
	r.Warn("refused")
	if n, _ := recs.count("refused"); n != 5 { // 3 + the summary + this one
		t.Fatalf("next interval: %d lines, want 5", n)
	}
}

// The summary comes when the interval ends, without a further warning.
func TestRateLogSummaryOnTimer(t *testing.T) {
	defer goleak.VerifyNone(t)
	recs := newRecords()
	r := newRateLog(slog.New(recs), 1, 20*time.Millisecond)
	defer r.Close()
	for range 4 {
		r.Warn("refused")
	}
	deadline := time.After(10 * time.Second)
	for {
		if n, sup := recs.count("not logged one by one"); n == 1 {
			if sup != 3 {
				t.Fatalf("suppressed=%d, want 3", sup)
			}
			return
		}
		select {
		case <-recs.note:
		case <-deadline:
			t.Fatal("no summary after the interval")
		}
	}
}

// Refused connections on the Raft port are all counted but logged one
// by one only up to the burst.
func TestRejectedConnectionsLogRateLimited(t *testing.T) {
	leakCheck(t)
	recs := newRecords()
	log := slog.New(recs)
	ms := startCluster(t, 1, fast, func(string) *slog.Logger { return log })
	m := waitLeader(t, ms)
	const n = 3 * rejectBurst
	before := m.node.Rejected()
	for range n {
		c, err := net.Dial("tcp", m.node.opt.Bind)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n")) // not a TLS handshake
		c.Close()
	}
	testutil.EventuallyOK(electionWait([]*member{m}), func() (uint64, bool) { return m.node.Rejected(), m.node.Rejected() >= before+n })
	if got := m.node.Rejected() - before; got != n {
		t.Fatalf("%d refusals counted, want %d", got, n)
	}
	if got, _ := recs.count("raft connection rejected"); got != rejectBurst {
		t.Fatalf("%d refusals logged one by one, want %d (the burst)", got, rejectBurst)
	}
	m.node.Close() // the summary is logged on close at the latest
	if got, sup := recs.count("not logged one by one"); got != 1 || sup != n-rejectBurst {
		t.Fatalf("summary: %d lines, suppressed=%d, want 1 with %d", got, sup, n-rejectBurst)
	}
}
