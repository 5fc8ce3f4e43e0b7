package mon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/resources/mon/spec"
)

// period builds one period from mon.cf-style rule strings.
func period(t *testing.T, rules map[string]string) spec.Period {
	t.Helper()
	p := spec.Period{Alert: []string{"a"}, UpAlert: []string{"u"}, AlertEvery: rules["alertevery"],
		AlertAfter: spec.Count(rules["alertafter"])}
	if v := rules["numalerts"]; v != "" {
		fmt.Sscan(v, &p.NumAlerts)
	}
	if v := rules["upalertafter"]; v != "" {
		d, err := spec.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		p.UpAlertAfter.Duration = d
	}
	if rules["upalert"] == "none" {
		p.UpAlert = nil
	}
	p.NoCompAlerts = rules["no_comp_alerts"] == "yes"
	var errs []string
	in := spec.Instance{Watches: []spec.Watch{{Group: "g", Services: []spec.Service{{Name: "s", Monitor: "tcp -p 1",
		Interval: spec.Duration{Duration: time.Second}, Periods: []spec.Period{p}}}}}}
	in.Normalize(func(k, m string) { errs = append(errs, k+": "+m) })
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return in.Watches[0].Services[0].Periods[0]
}

// TestAlertDecisions plays monitor results over a fake clock, one run a
// second, and checks which runs alert: "F" failure (summary "a"), "G"
// failure with another summary, "." success, "-" a gap of a minute with
// no run. Want lists, per run, "A" alert, "U" upalert or "" nothing.
func TestAlertDecisions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules map[string]string
		runs  string
		want  string
	}{
		{"every failure alerts without alertevery", nil, "FFF.", "AAAU"},
		{"no upalert without a down alert", map[string]string{"alertafter": "5"}, "FF.", "___"},
		{"alertafter N: from the Nth consecutive failure on", map[string]string{"alertafter": "3"}, "FFFF.FF", "__AAU__"},
		{"alertafter N T: N failures within T", map[string]string{"alertafter": "2 10s"}, "FF", "_A"},
		{"alertafter N T: a window older than T starts over", map[string]string{"alertafter": "2 10s"}, "F-F-FF", "_ _ _A"},
		{"alertafter T: failing longer than T", map[string]string{"alertafter": "3s"}, "FFFFF", "___AA"},
		{"alertevery suppresses repeats", map[string]string{"alertevery": "10s"}, "FFFF", "A___"},
		{"alertevery: a changed summary is not a repeat", map[string]string{"alertevery": "10s"}, "FFGG", "A_A_"},
		{"alertevery strict ignores summaries", map[string]string{"alertevery": "10s strict"}, "FFGG", "A___"},
		{"alertevery expires", map[string]string{"alertevery": "30s"}, "F-F", "A A"},
		{"success resets alertevery", map[string]string{"alertevery": "1h"}, "FF.FF", "A_UA_"},
		{"strict is not reset by success", map[string]string{"alertevery": "1h strict", "upalert": "none"}, "FF.FF", "A____"},
		// mon 1.3.6 clears the timer after every upalert it sends (found by test/mondiff).
		{"strict is reset by an upalert", map[string]string{"alertevery": "1h strict"}, "FF.FF", "A_UA_"},
		{"numalerts per episode", map[string]string{"numalerts": "2"}, "FFFF.FFF", "AA__UAA_"},
		{"upalertafter skips short outages", map[string]string{"upalertafter": "10s"}, "FF.F-F.", "AA_A AU"},
		{"no upalert configured", map[string]string{"upalert": "none"}, "FF.", "AA_"},
		{"no_comp_alerts: upalert without a down alert", map[string]string{"alertafter": "5", "no_comp_alerts": "yes"}, "FF.", "__U"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := period(t, tc.rules)
			var h history
			now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
			var got strings.Builder
			for _, r := range tc.runs {
				if r == '-' {
					now = now.Add(time.Minute)
					got.WriteByte(' ')
					continue
				}
				now = now.Add(time.Second)
				o := outcome{OK: r == '.', Summary: map[rune]string{'F': "a", 'G': "b"}[r]}
				d := h.observe(now, o, []spec.Period{p}, func(int) bool { return true }, false)
				switch {
				case len(d) == 0:
					got.WriteByte('_')
				case d[0].Type == "up":
					got.WriteByte('U')
				default:
					got.WriteByte('A')
				}
			}
			if got.String() != tc.want {
				t.Errorf("runs %q: alerts %q, want %q", tc.runs, got.String(), tc.want)
			}
		})
	}
}

// Alerts stay quiet outside their period and while a dependency fails;
// the failure still counts (a later in-period run alerts at once).
func TestAlertPeriodAndDepend(t *testing.T) {
	p := period(t, nil)
	var h history
	now := time.Now()
	if d := h.observe(now, outcome{Summary: "x"}, []spec.Period{p}, func(int) bool { return false }, false); len(d) != 0 {
		t.Fatalf("alert outside the period: %v", d)
	}
	if d := h.observe(now.Add(time.Second), outcome{Summary: "x"}, []spec.Period{p}, func(int) bool { return true }, true); len(d) != 0 {
		t.Fatalf("alert while a dependency is down: %v", d)
	}
	if d := h.observe(now.Add(2*time.Second), outcome{Summary: "x"}, []spec.Period{p}, func(int) bool { return true }, false); len(d) != 1 || h.consec != 3 {
		t.Fatalf("third failure: %v (consecutive %d)", d, h.consec)
	}
}
