package timing

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/testutil"
)

func TestDurationText(t *testing.T) {
	for in, want := range map[string]time.Duration{"50ms": 50 * time.Millisecond, "1m30s": 90 * time.Second, "0s": 0, "1.5s": 1500 * time.Millisecond} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); err != nil || d.D() != want {
			t.Errorf("%q: %v %v, want %v", in, d, err, want)
		}
	}
	for in, want := range map[string]string{"100": "has no unit", "0": "has no unit", "-1s": "negative", "soon": "invalid duration", "": "invalid duration"} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", in, err, want)
		}
	}
	// In JSON (the replicated state) a Duration is the text as a string.
	b, err := json.Marshal(struct {
		T Duration `json:"t"`
	}{Duration(2 * time.Second)})
	if err != nil || string(b) != `{"t":"2s"}` {
		t.Errorf("JSON %s %v", b, err)
	}
}

// FuzzDuration: no input panics the parser, whatever it accepts writes
// back to the same value, and every non-negative value it writes (all
// the replicated state ever held) it reads back.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"20s", "1.5s", "0s", "100", "-1s", "1h2m3.5s", "", "1e3s", "9223372036854775807ns"} {
		f.Add(s, int64(len(s))*int64(time.Second))
	}
	f.Fuzz(func(t *testing.T, s string, n int64) {
		testutil.Quick("duration", []byte(s), func() {
			var d Duration
			if err := d.UnmarshalText([]byte(s)); err == nil {
				if d < 0 {
					t.Fatalf("%q: accepted as %v", s, d)
				}
				roundTrip(t, d)
			}
			if n >= 0 {
				roundTrip(t, Duration(n))
			}
		})
	})
}

func roundTrip(t *testing.T, d Duration) {
	t.Helper()
	b, err := d.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var back Duration
	if err := back.UnmarshalText(b); err != nil || back != d {
		t.Fatalf("%v wrote %q, read back %v %v", d, b, back, err)
	}
}
