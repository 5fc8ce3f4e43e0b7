package testutil

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fatalTB records what Fatalf said and ends the goroutine as the real one
// does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// Eventually returns the value that satisfied the poll, as soon as it
// does.
func TestEventuallyReturns(t *testing.T) {
	var n atomic.Int32
	got := Eventually(t, 10*time.Second, "the third poll", func() (int32, bool) {
		v := n.Add(1)
		return v, v == 3
	})
	if got != 3 {
		t.Fatalf("returned %d, want 3", got)
	}
}

// A timeout fails the test with what was awaited and the last value seen,
// after the bound and not long after.
func TestEventuallyTimeout(t *testing.T) {
	f := &fatalTB{TB: t}
	const within = 50 * time.Millisecond
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var n int
		Eventually(f, within, "the counter to reach -1", func() (int, bool) {
			n++
			return n, false
		})
	}()
	<-done
	took := time.Since(start)
	if took < within {
		t.Errorf("gave up after %s, before %s", took, within)
	}
	if !strings.Contains(f.msg, "the counter to reach -1") || !strings.Contains(f.msg, "last seen: ") || !strings.Contains(f.msg, within.String()) {
		t.Errorf("failure message %q: want what was awaited, the bound and the last value", f.msg)
	}
}

func TestEventuallyOK(t *testing.T) {
	if v, ok := EventuallyOK(time.Millisecond, func() (string, bool) { return "never", false }); ok || v != "never" {
		t.Errorf("a poll that never holds: %q %v", v, ok)
	}
	if v, ok := EventuallyOK(time.Hour, func() (string, bool) { return "now", true }); !ok || v != "now" {
		t.Errorf("a poll that holds at once: %q %v", v, ok)
	}
}

func TestPollInterval(t *testing.T) {
	for _, c := range []struct{ within, want time.Duration }{
		{10 * time.Millisecond, time.Millisecond},
		{time.Second, 10 * time.Millisecond},
		{time.Minute, 50 * time.Millisecond},
	} {
		if got := PollInterval(c.within); got != c.want {
			t.Errorf("PollInterval(%s) = %s, want %s", c.within, got, c.want)
		}
	}
}
