package mon

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// ServiceStatus is one watch/service for `vigil status`.
type ServiceStatus struct {
	Service  string       `json:"service"` // group:service
	Monitor  string       `json:"monitor"`
	Interval string       `json:"interval"`
	Runs     int          `json:"runs"`
	LastRun  time.Time    `json:"last_run,omitzero"`
	Took     string       `json:"took,omitempty"`
	OK       bool         `json:"ok"`
	Summary  string       `json:"summary,omitempty"`
	Since    time.Time    `json:"failing_since,omitzero"`
	Alerts   int          `json:"alerts"`
	Last     *AlertRecord `json:"last_alert,omitempty"`
	Hosts    []string     `json:"hosts"`
}

// Status is the instance's state.
func (e *Engine) Status() []ServiceStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ServiceStatus
	for _, s := range e.svcs {
		st := ServiceStatus{Service: s.key, Monitor: s.cfg.Monitor, Interval: s.cfg.Interval.String(), Runs: s.ran,
			LastRun: s.lastRun, OK: s.ran == 0 || !s.hist.failing, Summary: s.last.Summary, Alerts: s.alerts, Hosts: s.hosts}
		if s.ran > 0 {
			st.Took = s.took.Round(time.Millisecond).String()
		}
		if s.hist.failing {
			st.Since = s.hist.firstFailure
		}
		if !s.lastAlert.Time.IsZero() {
			a := s.lastAlert
			st.Last = &a
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// Text renders the status like mon's `monshow`: one line per service.
func Text(sts []ServiceStatus, now time.Time) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "GROUP:SERVICE\tSTATE\tLAST CHECK\tSUMMARY\tLAST ALERT")
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	}
	for _, s := range sts {
		state := "ok"
		switch {
		case s.Runs == 0:
			state = "untested"
		case !s.OK:
			state = "FAIL since " + s.Since.Format("15:04:05")
		}
		alert := "-"
		if s.Last != nil {
			alert = fmt.Sprintf("%s via %s %s", s.Last.Type, s.Last.Via, ago(s.Last.Time))
			if s.Last.Err != "" {
				alert += " (failed: " + s.Last.Err + ")"
			}
		}
		sum := s.Summary
		if sum == "" {
			sum = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Service, state, ago(s.LastRun), sum, alert)
	}
	w.Flush()
	return b.String()
}
