package ipaddr

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// recWire records when each VIP's announcements were sent.
type recWire struct {
	mu     sync.Mutex
	sent   map[netip.Addr][]time.Time
	more   chan struct{}
	closed chan struct{}
}

func newRecWire() *recWire {
	return &recWire{sent: map[netip.Addr][]time.Time{}, more: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (w *recWire) frames(vip netip.Addr) ([][]byte, error) { return [][]byte{vip.AsSlice()}, nil }

func (w *recWire) send(frames [][]byte) error {
	vip, _ := netip.AddrFromSlice(frames[0])
	w.mu.Lock()
	w.sent[vip] = append(w.sent[vip], time.Now())
	w.mu.Unlock()
	select {
	case w.more <- struct{}{}:
	default:
	}
	return nil
}

func (w *recWire) claim() (netip.Addr, net.HardwareAddr, error) {
	<-w.closed
	return netip.Addr{}, nil, net.ErrClosed
}

func (w *recWire) close() error { close(w.closed); return nil }

// waitFor waits until every VIP has n announcements, or fails after d.
func (w *recWire) waitFor(t *testing.T, vips []netip.Addr, n int, d time.Duration) map[netip.Addr][]time.Time {
	t.Helper()
	deadline := time.After(d)
	for {
		w.mu.Lock()
		done := true
		for _, v := range vips {
			if len(w.sent[v]) < n {
				done = false
				break
			}
		}
		out := map[netip.Addr][]time.Time{}
		for k, v := range w.sent {
			out[k] = append([]time.Time(nil), v...)
		}
		w.mu.Unlock()
		if done {
			return out
		}
		select {
		case <-w.more:
		case <-deadline:
			t.Fatalf("not every VIP got %d announcements in %s", n, d)
		}
	}
}

// A thousand VIPs queued at once: the first announcement of every one
// goes out within its first interval (the pacer aims at half), before any
// VIP's second one, and each VIP's announcements stay an interval apart.
// The base pace is slowed down here to one per 10ms, at which a thousand
// would take ten intervals: the pacer must speed up to fit them. (The
// interval is long enough for a loaded machine running -race.)
func TestPacerFitsFirstFramesInOneInterval(t *testing.T) {
	defer goleak.VerifyNone(t)
	defer func(g time.Duration) { baseGap = g }(baseGap)
	baseGap = 10 * time.Millisecond
	w := newRecWire()
	a := newAnnouncer(slog.New(slog.NewTextHandler(io.Discard, nil)), func(*net.Interface, bool) (wire, error) { return w, nil })
	defer a.close()
	cfg := Announce{Count: 2, Interval: time.Second}
	ifi := &net.Interface{Index: 2, Name: "eth0", HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	var vips []netip.Addr
	queued := map[netip.Addr]time.Time{}
	for i := range 1000 {
		vip := netip.AddrFrom4([4]byte{10, 90, byte(i / 250), byte(1 + i%250)})
		vips = append(vips, vip)
		queued[vip] = time.Now()
		if err := a.start(fmt.Sprint("vip", i), vip, nsID{}, ifi, cfg); err != nil {
			t.Fatal(err)
		}
	}
	sent := w.waitFor(t, vips, 2, 20*cfg.Interval)
	var lastFirst, firstSecond time.Time
	for _, vip := range vips {
		ts := sent[vip]
		if d := ts[0].Sub(queued[vip]); d > cfg.Interval {
			t.Errorf("%s: first announcement %s after start, want within the interval %s", vip, d, cfg.Interval)
		}
		if d := ts[1].Sub(ts[0]); d < cfg.Interval {
			t.Errorf("%s: announcements %s apart, want at least %s", vip, d, cfg.Interval)
		}
		if ts[0].After(lastFirst) {
			lastFirst = ts[0]
		}
		if firstSecond.IsZero() || ts[1].Before(firstSecond) {
			firstSecond = ts[1]
		}
	}
	if !lastFirst.Before(firstSecond) {
		t.Errorf("a second announcement (%s) went before the last first one (%s)", firstSecond.Format(time.StampMicro), lastFirst.Format(time.StampMicro))
	}
	t.Logf("first announcements of 1,000 VIPs spread over %s", lastFirst.Sub(queued[vips[0]]).Round(time.Millisecond))
	for i := range 1000 {
		a.stop(fmt.Sprint("vip", i))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.wires) != 0 || len(a.timers) != 0 {
		t.Errorf("after every stop: %d wires, %d timers left", len(a.wires), len(a.timers))
	}
}

// One VIP is announced at once, its bursts and refresh on time, and a
// stop silences it.
func TestPacerSchedule(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := newRecWire()
	a := newAnnouncer(slog.New(slog.NewTextHandler(io.Discard, nil)), func(*net.Interface, bool) (wire, error) { return w, nil })
	defer a.close()
	cfg := Announce{Count: 2, Interval: 100 * time.Millisecond, Repeat: 300 * time.Millisecond, Refresh: 1500 * time.Millisecond}
	vip := netip.MustParseAddr("10.90.0.1")
	t0 := time.Now()
	if err := a.start("v", vip, nsID{}, &net.Interface{Index: 2, Name: "eth0"}, cfg); err != nil {
		t.Fatal(err)
	}
	ts := w.waitFor(t, []netip.Addr{vip}, 5, 10*cfg.Refresh)[vip]
	a.stop("v")
	// burst 1 at 0 and 100ms; burst 2 300ms after burst 1 ended, at 400
	// and 500ms; the refresh at 1.5s. Never early; late by a loaded
	// machine's scheduling only (each frame is timed from the one before,
	// so lateness adds up).
	want := []time.Duration{0, 100, 400, 500, 1500}
	for i, w := range want {
		lo := w * time.Millisecond
		if at := ts[i].Sub(t0); at < lo || at > lo+time.Duration(i+1)*cfg.Interval {
			t.Errorf("announcement %d at %s, want from %s to %s", i, at, lo, lo+time.Duration(i+1)*cfg.Interval)
		}
		if i > 0 && ts[i].Sub(ts[i-1]) < cfg.Interval {
			t.Errorf("announcements %d and %d %s apart, want at least %s", i-1, i, ts[i].Sub(ts[i-1]), cfg.Interval)
		}
	}
	w.mu.Lock()
	n := len(w.sent[vip])
	w.mu.Unlock()
	// Nothing is sent after stop returned: the next would be the refresh
	// 400ms on; stop removed it from the schedule.
	a.mu.Lock()
	left := len(a.timers) + len(a.urgent) + len(a.readyQ)
	a.mu.Unlock()
	if left != 0 {
		t.Errorf("%d scheduled entries left after stop", left)
	}
	if n != 5 {
		t.Errorf("%d announcements, want 5", n)
	}
}
