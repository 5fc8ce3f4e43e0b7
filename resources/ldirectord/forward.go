package ldirectord

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins"
)

// forwarder hands real-server transitions to the daemon's alert routes
// (kind "realserver"), in order, without ever blocking the check engine:
// while the daemon is slow, events beyond the queue are dropped and
// counted.
type forwarder struct {
	daemon  *plugins.Daemon
	log     *slog.Logger
	q       chan monitors.Alert
	dropped atomic.Uint64
}

func newForwarder(d *plugins.Daemon, log *slog.Logger) *forwarder {
	f := &forwarder{daemon: d, log: log, q: make(chan monitors.Alert, 256)}
	// The plugin process lives as long as the daemon wants it; so does this.
	go f.run()
	return f
}

func (f *forwarder) run() {
	for a := range f.q {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := f.daemon.Event(ctx, a); err != nil {
			f.log.Warn("event not handed to the daemon", "summary", a.Summary, "err", err)
		}
		cancel()
	}
}

// hook returns the engine's OnEvent for instance id. The engine calls
// it under its own lock, one event at a time.
func (f *forwarder) hook(id, node string) func(Event) {
	failed := map[string]bool{} // checks whose failure was told
	return func(ev Event) {
		if ev.Kind != "realserver" || !ev.Active {
			// Table edits are the engine's business, not an operator's;
			// a warm standby's checks would tell the same news twice.
			return
		}
		typ := monitors.AlertFailure
		if ev.Up {
			// As mon: a recovery is news only after a failure was told
			// (not a real that comes up while the director starts).
			if !failed[ev.Subject] {
				return
			}
			delete(failed, ev.Subject)
			typ = monitors.AlertUp
		} else {
			failed[ev.Subject] = true
		}
		a := monitors.Alert{Type: typ, Kind: "realserver", Node: node, Group: id, Service: ev.Subject,
			Hosts: []string{ev.Host}, Time: ev.Time, Summary: ev.Summary, Output: ev.Summary + "\n"}
		if strings.TrimSpace(ev.Host) == "" {
			a.Hosts = nil
		}
		select {
		case f.q <- a:
		default:
			if n := f.dropped.Add(1); n == 1 || n%100 == 0 {
				f.log.Warn("events dropped: the daemon does not keep up", "dropped", n)
			}
		}
	}
}
