package membership

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/heartbeat"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func newTracker() (*Tracker, <-chan Event) {
	tr := New(Options{Peers: []string{"b", "c"}, Links: []string{"udp", "serial"},
		Warntime: 25 * time.Millisecond, Deadtime: 50 * time.Millisecond, Initdead: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, t0)
	ch, _ := tr.Subscribe(100)
	return tr, ch
}

func beat(node string, inc, seq uint64) *heartbeat.Message {
	return &heartbeat.Message{Cluster: "x", Node: node, Incarnation: inc, Seq: seq}
}

func drain(ch <-chan Event) []string {
	var out []string
	for {
		select {
		case ev := <-ch:
			s := string(ev.Kind) + " " + ev.Node
			if ev.Link != "" {
				s += " " + ev.Link
			}
			out = append(out, s)
		default:
			return out
		}
	}
}

func expect(t *testing.T, ch <-chan Event, want ...string) {
	t.Helper()
	got := drain(ch)
	if len(got) != len(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %q, want %q", got, want)
		}
	}
}

func state(tr *Tracker, node string) (string, map[string]string) {
	for _, p := range tr.Peers() {
		if p.Node == node {
			links := map[string]string{}
			for _, l := range p.Links {
				links[l.Link] = l.State
			}
			return p.State, links
		}
	}
	return "", nil
}

func TestLifecycle(t *testing.T) {
	tr, ch := newTracker()
	if r := tr.Heard("udp", beat("b", 1, 1), ms(5)); r != heartbeat.Accepted {
		t.Fatal(r)
	}
	expect(t, ch, "link-up b udp", "node-up b")
	tr.Heard("serial", beat("b", 1, 1), ms(6)) // same beat on the other medium is fresh there
	expect(t, ch, "link-up b serial")

	// Next deadline: b's links at 55/56 ms, c's initdead at 100 ms.
	if next := tr.Check(ms(10)); !next.Equal(ms(55)) {
		t.Errorf("next deadline %v, want 55ms", next.Sub(t0))
	}
	// UDP goes quiet; serial carries on: link dead, node alive.
	for i := 2; i <= 10; i++ {
		tr.Heard("serial", beat("b", 1, uint64(i)), ms(6+10*(i-1)))
	}
	tr.Check(ms(60))
	expect(t, ch, "link-dead b udp")
	if s, l := state(tr, "b"); s != "up" || l["udp"] != "dead" || l["serial"] != "up" {
		t.Errorf("b %s %v", s, l)
	}
	// c never shows up: dead at initdead, not before.
	tr.Check(ms(99))
	expect(t, ch)
	tr.Check(ms(100))
	expect(t, ch, "link-dead c udp", "link-dead c serial", "node-dead c")
	// b silent everywhere from 96 ms: dead at 146 ms.
	tr.Check(ms(145))
	expect(t, ch)
	tr.Check(ms(146))
	expect(t, ch, "link-dead b serial", "node-dead b")
	// b restarts: new incarnation, sequence starts again.
	if r := tr.Heard("udp", beat("b", 2, 1), ms(200)); r != heartbeat.Accepted {
		t.Fatal(r)
	}
	expect(t, ch, "node-restarted b", "link-up b udp", "node-up b")
}

func TestRejects(t *testing.T) {
	tr, ch := newTracker()
	tr.Heard("udp", beat("b", 5, 10), ms(1))
	drain(ch)
	cases := []struct {
		name string
		link string
		m    *heartbeat.Message
		want heartbeat.DropReason
	}{
		{"replayed", "udp", beat("b", 5, 10), heartbeat.DropReplay},
		{"older seq", "udp", beat("b", 5, 3), heartbeat.DropReplay},
		{"older incarnation", "udp", beat("b", 4, 99), heartbeat.DropStale},
		{"unknown node", "udp", beat("z", 1, 1), heartbeat.DropUnknownNode},
		{"unknown link", "bcast", beat("b", 5, 11), heartbeat.DropUnknownNode},
	}
	for _, tc := range cases {
		if r := tr.Heard(tc.link, tc.m, ms(2)); r != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, r, tc.want)
		}
	}
	expect(t, ch)
}

func TestLateHeartbeats(t *testing.T) {
	tr, _ := newTracker()
	tr.Heard("udp", beat("b", 1, 1), ms(0))
	tr.Heard("udp", beat("b", 1, 2), ms(10))
	tr.Heard("udp", beat("b", 1, 3), ms(40)) // 30 ms gap > warntime 25 ms
	tr.Heard("udp", beat("b", 1, 4), ms(50))
	for _, p := range tr.Peers() {
		if p.Node == "b" && (p.Links[0].Late != 1 || p.Links[0].Received != 4) {
			t.Errorf("late %d received %d, want 1 and 4", p.Links[0].Late, p.Links[0].Received)
		}
	}
}

func TestViewAndSubscribeCancel(t *testing.T) {
	tr, _ := newTracker()
	tr.Heard("udp", beat("b", 1, 1), ms(1))
	v := tr.View()
	if len(v) != 2 || v[0] != (heartbeat.ViewEntry{Node: "b", State: heartbeat.StateUp}) || v[1].State != heartbeat.StateInit {
		t.Errorf("view %+v", v)
	}
	ch, cancel := tr.Subscribe(1)
	cancel()
	cancel() // idempotent
	if _, ok := <-ch; ok {
		t.Error("channel not closed")
	}
}

// A link that joins only some peers (a serial cable's other end) is
// listed for them alone, and a beat from another peer on it is refused.
func TestReach(t *testing.T) {
	tr := New(Options{Peers: []string{"b", "w"}, Links: []string{"udp", "serial:/dev/ttyS0"},
		Reach: map[string][]string{"serial:/dev/ttyS0": {"b"}}, Warntime: 20 * time.Millisecond,
		Deadtime: 50 * time.Millisecond, Initdead: 100 * time.Millisecond}, time.Unix(0, 0))
	links := map[string][]string{}
	for _, p := range tr.Peers() {
		for _, l := range p.Links {
			links[p.Node] = append(links[p.Node], l.Link)
		}
	}
	if !slices.Equal(links["b"], []string{"udp", "serial:/dev/ttyS0"}) || !slices.Equal(links["w"], []string{"udp"}) {
		t.Errorf("links %v: want the cable towards b only", links)
	}
	if r := tr.Heard("serial:/dev/ttyS0", beat("w", 1, 1), ms(1)); r == heartbeat.Accepted {
		t.Error("a beat from w on b's cable was accepted")
	}
	if r := tr.Heard("serial:/dev/ttyS0", beat("b", 1, 1), ms(1)); r != heartbeat.Accepted {
		t.Errorf("b on its cable: %v", r)
	}
}
