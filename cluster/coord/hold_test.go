package coord

import (
	"testing"
	"time"
)

// A gap is a look at or after the lease's end the previous look saw (its
// hold instant plus the stop budget), or a look without the lease; a look
// past the hold instant alone, renewed by then, is none.
func TestHoldTrack(t *testing.T) {
	const budget = 10 * time.Millisecond
	var h holdTrack
	now := t0
	until := t0.Add(30 * time.Millisecond)
	look := func(at time.Time, u time.Time) time.Time {
		now, until = at, u
		_, _, since := h.look(func() time.Time { return now }, func(time.Time) time.Time { return until }, budget)
		return since
	}
	if s := look(t0, t0.Add(30*time.Millisecond)); !s.Equal(t0) {
		t.Fatalf("first look: since %v", s)
	}
	// Past the hold instant, before the end, renewed: no gap.
	if s := look(t0.Add(35*time.Millisecond), t0.Add(70*time.Millisecond)); !s.Equal(t0) {
		t.Fatalf("renewed before the end: since %v, want %v", s, t0)
	}
	// At the end of the lease the last look saw: a gap.
	at := t0.Add(80 * time.Millisecond)
	if s := look(at, t0.Add(120*time.Millisecond)); !s.Equal(at) {
		t.Fatalf("renewed after the end: since %v, want %v", s, at)
	}
	// Not held at all: since is zero, and the next holding starts anew.
	if s := look(t0.Add(130*time.Millisecond), t0.Add(120*time.Millisecond)); !s.IsZero() {
		t.Fatalf("without the lease: since %v", s)
	}
	at = t0.Add(131 * time.Millisecond)
	if s := look(at, t0.Add(200*time.Millisecond)); !s.Equal(at) {
		t.Fatalf("regained: since %v, want %v", s, at)
	}
}
