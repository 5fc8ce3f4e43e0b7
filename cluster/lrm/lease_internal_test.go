package lrm

import (
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/plugins"
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
		le := m.pbLease()
		want := plugins.BootTime(until.Add(budget-tc.lead), time.Now())
		if le.GetSeq() != 1 || time.Duration(le.GetReleaseAtNs())-want > time.Millisecond || want-time.Duration(le.GetReleaseAtNs()) > time.Millisecond {
			t.Errorf("release %s: lease %+v, want seq 1 releasing at %d", tc.release, le, want)
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
