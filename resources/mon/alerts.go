package mon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/monitors"
)

// send delivers tmpl (type and time set) for o to each alert line, each
// in its own goroutine as mon forks them; Close waits for them.
func (e *Engine) send(svc *service, lines []string, tmpl monitors.Alert, o outcome) {
	a := e.alert(svc, tmpl, o)
	for _, line := range lines {
		words := lineWords(line, a)
		if len(words) == 0 {
			continue
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			ctx, cancel := context.WithTimeout(e.ctx, e.opts.AlertTimeout)
			defer cancel()
			err := e.senders.Send(ctx, words[0], words[1:], a)
			rec := AlertRecord{Time: a.Time, Type: a.Type, Via: words[0], Summary: a.Summary}
			if err != nil {
				rec.Err = err.Error()
				e.opts.Log.Warn("mon: alert failed", "service", svc.key, "alert", words[0], "type", a.Type, "err", err)
			} else {
				e.opts.Log.Info("mon: alert sent", "service", svc.key, "alert", words[0], "type", a.Type, "summary", a.Summary)
			}
			e.mu.Lock()
			svc.lastAlert = rec
			svc.alerts++
			e.mu.Unlock()
		}()
	}
}

// alert is tmpl (type and time set) filled in for svc and run o, as mon
// hands it to every alert line.
func (e *Engine) alert(svc *service, tmpl monitors.Alert, o outcome) monitors.Alert {
	a := tmpl
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	a.Kind, a.Group, a.Service, a.Description = "service", svc.group, svc.cfg.Name, svc.cfg.Description
	a.Hosts, a.Summary, a.Output, a.Retval = svc.alertHosts, o.Summary, o.Output, o.Retval
	if a.Up() {
		a.Retval = 0
	}
	a.Env = e.env(svc, a.Up())
	// mon gives an alert the output of the run before this one as
	// MON_LAST_OUTPUT (an upalert's is the failure it carries); none
	// before a service's second run.
	e.mu.Lock()
	prev := svc.prev
	e.mu.Unlock()
	if a.Description == "" { // mon sets it only for a service that has one
		a.Env = append(a.Env, "MON_DESCRIPTION")
	}
	switch {
	case a.Up():
	case prev != nil:
		a.Env = append(a.Env, "MON_LAST_OUTPUT="+prev.Output)
	default:
		a.Env = append(a.Env, "MON_LAST_OUTPUT")
	}
	return a
}

// lineWords splits an alert line into the sender and its arguments; nil
// when there is nothing to send, or when its "exit=N[-M]" selector
// (mon's "alert exit=2-5 page.alert") does not match a failure's exit
// value.
func lineWords(line string, a monitors.Alert) []string {
	words, _ := monitors.Words(line)
	return selectWords(words, a)
}

// selectWords is lineWords on a line already split.
func selectWords(words []string, a monitors.Alert) []string {
	if len(words) > 0 && strings.HasPrefix(words[0], "exit=") {
		if a.Type == monitors.AlertFailure && !exitMatches(words[0], a.Retval) {
			return nil
		}
		words = words[1:]
	}
	return words
}

func exitMatches(sel string, v int) bool {
	lo, hi, ok := strings.Cut(strings.TrimPrefix(sel, "exit="), "-")
	a, err := strconv.Atoi(lo)
	if err != nil {
		return false
	}
	b := a
	if ok {
		if b, err = strconv.Atoi(hi); err != nil {
			return false
		}
	}
	return v >= a && v <= b
}

// newSenders returns the alert senders of this instance: the shared
// ones, and ipvs.
func (e *Engine) newSenders() monitors.Senders {
	s := monitors.Senders{AlertDir: e.in.AlertDir, SMTPRelay: e.in.SMTPRelay, MailFrom: e.in.MailFrom, Log: e.opts.Log,
		Builtin: map[string]monitors.SendFunc{"ipvs": e.ipvs, "vigil": e.vigil}}
	if e.opts.Plugins != nil {
		s.Plugin = e.opts.Plugins.Alert
	}
	return s
}

// vigil hands the alert to the daemon, whose [[alert]] routes deliver it
// with the cluster's own events (kind "service").
func (e *Engine) vigil(ctx context.Context, _ []string, a monitors.Alert) error {
	if e.opts.Event == nil {
		return fmt.Errorf("vigil: no daemon to reach")
	}
	return e.opts.Event(ctx, a)
}

// ipvs is the seed's lvs.alert as a built-in: it takes the failed real
// servers out of an ldirectord virtual service (back in for an upalert)
// through the daemon, so the instance's own reconcile agrees with it.
// Flags are lvs.alert's: -P tcp|udp -V VIP:PORT [-R REAL] (-W and -F are
// accepted and ignored: weight and forwarding come from the ldirectord
// instance), and -I INSTANCE to name the ldirectord resource when more
// than one serves the virtual. Without -R the alert's failed hosts (its
// summary) are the reals.
func (e *Engine) ipvs(ctx context.Context, args []string, a monitors.Alert) error {
	fs := flag.NewFlagSet("ipvs", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	proto := fs.String("P", "tcp", "")
	virtual := fs.String("V", "", "")
	real := fs.String("R", "", "")
	instance := fs.String("I", "", "")
	fs.String("W", "", "")
	fs.String("F", "", "")
	fs.Bool("u", false, "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("ipvs: %v", err)
	}
	if *virtual == "" {
		return fmt.Errorf("ipvs: -V VIP:PORT is required")
	}
	if e.opts.Control == nil {
		return fmt.Errorf("ipvs: no daemon to reach")
	}
	reals := strings.Fields(a.Summary)
	if *real != "" {
		reals = []string{*real}
	}
	state := "down"
	if a.Up() {
		state = "up"
	}
	for _, r := range reals {
		if err := e.opts.Control(ctx, *instance, "real", []string{*proto, *virtual, r, state}); err != nil {
			return fmt.Errorf("ipvs %s %s %s: %w", *virtual, r, state, err)
		}
	}
	return nil
}
