package mon

import (
	"time"

	"github.com/vigil-ha/vigil/resources/mon/spec"
)

// outcome is one monitor run as the alert logic sees it.
type outcome struct {
	OK      bool
	Summary string
	Output  string
	Retval  int
	Err     error // the monitor could not run or judge its hosts
}

// decision is one alert to send: the period whose alert (or upalert)
// lines apply, and the alert type.
type decision struct {
	Period int
	Type   string // monitors.AlertFailure or AlertUp
}

// history is what mon remembers of one service between runs; observe is
// mon 1.3.6's do_alert (LEGACY §4.4) as a pure function of it, so the
// rules are tested over a fake clock.
type history struct {
	failing                                bool
	consec                                 int
	firstFailure, lastFailure, lastSuccess time.Time
	prevSuccess                            time.Time // lastSuccess before the latest run (an upalert's MON_LAST_SUCCESS)
	lastFail                               outcome   // the last failing run (what upalerts carry)
	periods                                []periodHistory
}

type periodHistory struct {
	lastAlert   time.Time
	lastSummary string
	lastOutput  string
	alerts      int  // sent in this failure episode
	downSent    bool // a failure alert went out in this episode
	window      time.Time
	windowCount int
}

// observe records o at now and returns the alerts it calls for. active
// reports whether period i is in force now; depsDown suppresses failure
// alerts (mon's alertdepend: what this depends on is failing).
func (h *history) observe(now time.Time, o outcome, periods []spec.Period, active func(int) bool, depsDown bool) []decision {
	if len(h.periods) != len(periods) {
		h.periods = make([]periodHistory, len(periods))
	}
	var out []decision
	if o.OK {
		if h.failing {
			for i, p := range periods {
				ph := &h.periods[i]
				r := p.Rules
				strictLast := ph.lastAlert
				if active(i) && len(p.UpAlert) > 0 && (ph.downSent || r.NoCompAlerts) &&
					(r.UpAfter == 0 || now.Sub(h.firstFailure) >= r.UpAfter) {
					out = append(out, decision{i, "up"})
					// mon 1.3.6 clears the period's alert timer after every
					// upalert it sends (do_alert tests $FL_TRAP | $flags, always
					// true), so even alertevery strict starts over.
					strictLast = time.Time{}
				}
				*ph = periodHistory{}
				if r.EveryMode == "strict" {
					ph.lastAlert = strictLast
				}
			}
		}
		h.prevSuccess = h.lastSuccess
		h.failing, h.consec, h.lastSuccess = false, 0, now
		return out
	}
	if !h.failing {
		h.failing, h.firstFailure = true, now
	}
	h.consec++
	h.lastFailure, h.lastFail = now, o
	for i, p := range periods {
		ph := &h.periods[i]
		r := p.Rules
		// alertafter N T counts failures in a window opened by the first
		// one; a window older than T starts over.
		if r.AfterN > 0 && r.AfterT > 0 {
			if ph.window.IsZero() || now.Sub(ph.window) > r.AfterT {
				ph.window, ph.windowCount = now, 0
			}
			ph.windowCount++
		}
		switch {
		case !active(i), depsDown:
			continue
		case r.AfterN > 0 && r.AfterT > 0 && ph.windowCount < r.AfterN:
			continue
		case r.AfterN > 0 && r.AfterT == 0 && h.consec < r.AfterN:
			continue
		case r.AfterN == 0 && r.AfterT > 0 && now.Sub(h.firstFailure) < r.AfterT:
			continue
		case r.NumAlerts > 0 && ph.alerts >= r.NumAlerts:
			continue
		case r.Every > 0 && !ph.lastAlert.IsZero() && now.Sub(ph.lastAlert) < r.Every && h.repeat(ph, o, r.EveryMode):
			continue
		}
		ph.lastAlert, ph.lastSummary, ph.lastOutput = now, o.Summary, o.Output
		ph.alerts++
		ph.downSent = true
		out = append(out, decision{i, "failure"})
	}
	return out
}

// repeat reports whether o says nothing new since the period's last
// alert: same summary (observe_detail: same output); ignore_summary and
// strict never look.
func (h *history) repeat(ph *periodHistory, o outcome, mode string) bool {
	switch mode {
	case "observe_detail":
		return o.Output == ph.lastOutput
	case "ignore_summary", "strict":
		return true
	}
	return o.Summary == ph.lastSummary
}
