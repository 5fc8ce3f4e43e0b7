package lrm

import (
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/host"
)

// The plugins release as late as their measure lets them finish by the
// lease's end, never before the daemon begins stopping; what does not
// fit in the stop budget is the node's overrun.
func TestLeaseReleaseInstant(t *testing.T) {
	m := New(nil, slog.New(slog.DiscardHandler), time.Second)
	const budget = 100 * time.Millisecond
	m.SetStopBudget(budget)
	if m.pbLease() != nil {
		t.Fatal("a lease before any was set")
	}
	until := time.Now().Add(time.Hour)
	m.Hold(until)
	m.Hold(until) // unchanged: no new sequence number
	for _, tc := range []struct {
		release, lead, overrun time.Duration
	}{
		{0, 0, 0}, // holds nothing: at the lease's end
		{10 * time.Millisecond, 20 * time.Millisecond, 0}, // twice its measure before the end
		{80 * time.Millisecond, budget, 60 * time.Millisecond},
	} {
		m.lease.release["ipaddr"] = tc.release
		// The release instant in boot time lies between what the clocks
		// read around the call allow, however long the scheduler paused
		// it: never later than the true instant (BootTime).
		at := until.Add(budget - tc.lead)
		b1 := plugins.BootNow()
		le := m.pbLease()
		w2 := time.Now()
		b2 := plugins.BootNow()
		lo, hi := b1+at.Sub(w2), b2+at.Sub(w2)
		if got := time.Duration(le.GetReleaseAtNs()); le.GetSeq() != 1 || got < lo || got > hi {
			t.Errorf("release %s: lease %+v, want seq 1 releasing in [%d, %d]", tc.release, le, lo, hi)
		}
		if got := m.Overrun(); got != tc.overrun {
			t.Errorf("release %s: overrun %s, want %s", tc.release, got, tc.overrun)
		}
	}
	if le := m.pbLease(); le.GetLifetimeNs() != 0 {
		t.Errorf("a lifetime before any was set: %+v", le)
	}
	m.SetAddressLifetime(2 * time.Second)
	if le := m.pbLease(); time.Duration(le.GetLifetimeNs()) != 2*time.Second {
		t.Errorf("lifetime set to 2s: %+v", le)
	}
	// Losing the lease hands over an instant already past, once.
	m.Hold(time.Time{})
	m.Hold(time.Time{})
	if le := m.pbLease(); le.GetSeq() != 2 || time.Duration(le.GetReleaseAtNs()) > plugins.BootNow() {
		t.Errorf("after the loss: %+v", le)
	}
}

// Renewals go to the host's lease page; once every plugin reads it they
// no longer wake the Hold caller, and a lease that moves earlier (lost)
// always does.
func TestLeaseRenewalsByPage(t *testing.T) {
	h, err := host.New(host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	m := New(h, slog.New(slog.DiscardHandler), time.Second)
	woken := func() bool {
		select {
		case <-m.lease.changed:
			return true
		default:
			return false
		}
	}
	now := time.Now()
	m.Hold(now.Add(time.Second))
	if !woken() {
		t.Fatal("the first lease did not wake the caller of Hold")
	}
	if got, want := h.SharedLease(), m.pbLease(); got.GetSeq() != want.GetSeq() || (got.GetReleaseAtNs()-want.GetReleaseAtNs())/int64(time.Millisecond) != 0 {
		t.Fatalf("page holds %v, want %v", got, want)
	}
	m.lease.mu.Lock()
	m.lease.allRead = true // as RunLease finds after Holds answered reads_page
	m.lease.mu.Unlock()
	for i := 2; i < 10; i++ {
		m.Hold(now.Add(time.Duration(i) * time.Second))
		if woken() {
			t.Fatalf("renewal %d woke the caller of Hold although every plugin reads the page", i)
		}
		if got := h.SharedLease().GetSeq(); got != uint64(i) {
			t.Fatalf("renewal %d: page at seq %d", i, got)
		}
	}
	m.Hold(time.Time{})
	if !woken() {
		t.Fatal("a lost lease did not wake the caller of Hold")
	}
	if le := h.SharedLease(); time.Duration(le.GetReleaseAtNs()) > plugins.BootNow() {
		t.Fatalf("after the loss the page still holds %v", le)
	}
	m.ranOp("ipaddr")
	if !woken() || !m.lease.due["ipaddr"] {
		t.Fatal("an operation did not make its plugin due for a Hold")
	}
}

// A group a plugin released is started again only if the lease had no
// gap since its start: a renewal late for the plugin but before the
// lease's end is no gap; one after the end is (the node may have been
// taken offline and the group started elsewhere meanwhile), and so is a
// lease lost outright.
func TestLeaseKeptSince(t *testing.T) {
	m := New(nil, slog.New(slog.DiscardHandler), time.Second)
	const budget = 100 * time.Millisecond
	m.SetStopBudget(budget)
	l := &m.lease
	started := time.Now()
	m.Hold(started.Add(time.Hour))
	if !l.keptSince(started, time.Now()) {
		t.Fatal("a held lease with no gap")
	}
	// Past until but within the budget: renewed before the lease's end.
	l.until = time.Now().Add(-budget / 2)
	m.Hold(time.Now().Add(time.Hour))
	if !l.keptSince(started, time.Now()) {
		t.Fatal("a renewal before the lease's end counted as a gap")
	}
	// Past the lease's end: a gap, for what started before it only.
	l.until = time.Now().Add(-2 * budget)
	m.Hold(time.Now().Add(time.Hour))
	if l.keptSince(started, time.Now()) {
		t.Fatal("a renewal after the lease's end did not count as a gap")
	}
	later := time.Now()
	if !l.keptSince(later, later) {
		t.Fatal("a start after the gap is kept")
	}
	// Lost outright, then back: a gap too.
	m.Hold(time.Time{})
	if l.keptSince(later, time.Now()) {
		t.Fatal("kept without a lease")
	}
	m.Hold(time.Now().Add(time.Hour))
	if l.keptSince(later, time.Now()) {
		t.Fatal("a lease lost and regained counted as kept")
	}
}

// Only the built-in IPaddr is started without a monitor before: its start
// finds an address already present and succeeds. Every other resource
// keeps heartbeat's monitor-then-start, as scripts and agents may not be
// idempotent (an operator's plugin named ipaddr included).
func TestStartsIdempotently(t *testing.T) {
	for _, c := range []struct {
		typ  string
		want bool
	}{
		{"IPaddr", true},
		{"Dummy", false},
		{"ldirectord", false},
		{"ocf:heartbeat:IPaddr2", false},
		{"plugin:ipaddr", false},
		{"script", false},
	} {
		r := config.Resource{ID: "r", Type: c.typ, Params: map[string]string{"ip": "10.0.0.1", "script": "x"}}
		b, err := r.Bind()
		if err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		if got := startsIdempotently(b); got != c.want {
			t.Errorf("%s (plugin %q, agent %q): %v, want %v", c.typ, b.Plugin, b.Agent, got, c.want)
		}
	}
}
