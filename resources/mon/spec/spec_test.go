package spec

import (
	"reflect"
	"testing"
	"time"
)

func TestPeriod(t *testing.T) {
	// Sunday 22 November 2026; Time::Period: wd 1 = Sunday, values are
	// discrete and inclusive, ranges wrap.
	at := func(day, hour, min int) time.Time { return time.Date(2026, 11, day, hour, min, 0, 0, time.Local) }
	for _, tc := range []struct {
		spec string
		t    time.Time
		want bool
	}{
		{"", at(22, 3, 0), true},
		{"none", at(22, 3, 0), false},
		{"wd {Mon-Fri} hr {9am-4pm}", at(23, 16, 59), true},
		{"wd {Mon-Fri} hr {9am-4pm}", at(23, 17, 0), false},
		{"wd {Mon-Fri} hr {9am-4pm}", at(22, 10, 0), false},
		{"wd {Sun-Sat}", at(22, 10, 0), true},
		{"wd {1 7}", at(22, 10, 0), true},
		{"hr {10pm-2am}", at(22, 1, 30), true},
		{"hr {10pm-2am}", at(22, 3, 0), false},
		{"hr {12am}", at(22, 0, 10), true},
		{"hr {12noon}", at(22, 12, 10), true},
		{"mo {Nov-Feb}", at(22, 0, 0), true},
		{"mo {Mar-Oct}, wd {su}", at(22, 0, 0), true},
		{"min {0-29} md {22}", at(22, 5, 30), false},
	} {
		w, err := ParsePeriod(tc.spec)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		if got := w.Contains(tc.t); got != tc.want {
			t.Errorf("%q at %s: %v, want %v", tc.spec, tc.t.Format("Mon 15:04"), got, tc.want)
		}
	}
	for _, bad := range []string{"wd {Xy}", "hr {13pm}", "wk {1}", "wd Mon", "hr {25}", "wd {Mon},"} {
		if _, err := ParsePeriod(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "1.5m": 90 * time.Second, "2H": 2 * time.Hour, "1d": 24 * time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"30", "", "5 m", "1w", "-1s"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	b, _ := Duration{90 * time.Second}.MarshalText()
	var d Duration
	if err := d.UnmarshalText(b); err != nil || d.Duration != 90*time.Second {
		t.Errorf("round trip %s: %v %v", b, d, err)
	}
}

func TestParseMonitor(t *testing.T) {
	for in, want := range map[string]Monitor{
		`tcp.monitor -p 80`: {Name: "tcp.monitor", Args: []string{"-p", "80"}},
		`nohosts ;;`:        {Name: "nohosts", Args: []string{}, NoHosts: true},
		`x.monitor 'a b';;`: {Name: "x.monitor", Args: []string{"a b"}, NoHosts: true},
	} {
		got, err := ParseMonitor(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseMonitor(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}
