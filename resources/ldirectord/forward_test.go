package ldirectord

import (
	"log/slog"
	"testing"

	"github.com/vigil-ha/vigil/monitors"
)

// Only an active director's real-server transitions reach the alert
// routes, and a recovery only after its failure was told.
func TestForwardedEvents(t *testing.T) {
	f := &forwarder{log: slog.New(slog.DiscardHandler), q: make(chan monitors.Alert, 8)}
	hook := f.hook("ldirectord_www", "lvs1")
	rs := func(up, active bool) Event {
		return Event{Kind: "realserver", Subject: "http 10.0.0.21:80/", Host: "10.0.0.21", Up: up, Active: active, Summary: "real server …"}
	}
	for _, ev := range []Event{
		rs(true, true),   // up while the director starts: not news
		rs(false, false), // a standby's view
		{Kind: "table", Subject: "TCP 10.0.0.3:80", Active: true},
		rs(false, true), // told
		rs(true, true),  // told
		rs(true, true),  // no second recovery
	} {
		hook(ev)
	}
	close(f.q)
	var got []string
	for a := range f.q {
		got = append(got, a.Type+" "+a.Kind+" "+a.Group+" "+a.Service+" "+a.Hosts[0]+" "+a.Node)
	}
	want := []string{
		"failure realserver ldirectord_www http 10.0.0.21:80/ 10.0.0.21 lvs1",
		"up realserver ldirectord_www http 10.0.0.21:80/ 10.0.0.21 lvs1",
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("forwarded %q, want %q", got, want)
	}
}
