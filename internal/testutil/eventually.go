package testutil

import (
	"testing"
	"time"
)

// Eventually polls poll until it reports done, and returns the value it
// saw then. After within it fails the test, saying what was awaited and
// the last value poll returned, so a timeout tells what the system was
// doing instead. within should be derived from the timing the test
// configured (a multiple of its keepalive, interval or lease), with room
// for a busy machine; the poll interval is a small fraction of it, so the
// wait ends soon after the condition holds.
//
// Call it from the test's goroutine: it calls t.Fatalf.
func Eventually[T any](t testing.TB, within time.Duration, what string, poll func() (v T, done bool)) T {
	t.Helper()
	v, ok := EventuallyOK(within, poll)
	if !ok {
		t.Fatalf("after %s still waiting for %s; last seen: %+v", within, what, v)
	}
	return v
}

// EventuallyOK is Eventually for a caller that decides itself what a
// timeout means (a goroutine, or a test that reports more): it returns the
// last value and whether poll reported done within the bound.
func EventuallyOK[T any](within time.Duration, poll func() (v T, done bool)) (T, bool) {
	deadline := time.Now().Add(within)
	for {
		v, done := poll()
		if done {
			return v, true
		}
		if !time.Now().Before(deadline) {
			return v, false
		}
		time.Sleep(PollInterval(within))
	}
}

// PollInterval is how often Eventually polls within a bound: a
// hundredth of it, from 1 ms to 50 ms.
func PollInterval(within time.Duration) time.Duration {
	return min(max(within/100, time.Millisecond), 50*time.Millisecond)
}
