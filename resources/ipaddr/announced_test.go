package ipaddr

import (
	"testing"
	"time"
)

// What a monitor prints of the announcer reads back; a start's bursts
// count and last as the parameters say.
func TestAnnouncedAndSteps(t *testing.T) {
	var s Stats
	s.Sent.Add(7)
	s.Failed.Add(2)
	if sent, failed, ok := Announced("on eth0; " + s.String()); !ok || sent != 7 || failed != 2 {
		t.Errorf("read back %d %d %v from %q", sent, failed, ok, s.String())
	}
	if _, _, ok := Announced("on eth0"); ok {
		t.Error("no stats read as some")
	}
	for _, tc := range []struct {
		a      Announce
		n      int
		within time.Duration
	}{
		{DefaultAnnounce, 10, 2*800*time.Millisecond + 2*time.Second},
		{Announce{Count: 3, Interval: 50 * time.Millisecond}, 3, 100 * time.Millisecond},
		{Announce{Count: 0, Repeat: time.Second}, 0, 0},
	} {
		if n, w := tc.a.Steps(); n != tc.n || w != tc.within {
			t.Errorf("%+v: %d within %s, want %d within %s", tc.a, n, w, tc.n, tc.within)
		}
	}
}
