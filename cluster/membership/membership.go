// Package membership turns heartbeats into a view of the cluster: which
// peers are alive, over which links, and when that changes.
//
// A link (one medium towards one peer) is dead when nothing fresh came over
// it for deadtime; a peer is dead only when every link is. Before a peer has
// ever been heard, it gets initdead from our start. Changes are published as
// events that other parts (Raft, alerts) subscribe to.
package membership

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
)

// Options configures a Tracker.
type Options struct {
	Peers []string
	Links []string // medium names, as the heartbeat engine reports them
	// Reach, by link, the only peers that link joins (a serial cable's
	// other end); a link not in it joins every peer.
	Reach    map[string][]string
	Warntime time.Duration
	Deadtime time.Duration
	Initdead time.Duration
	Log      *slog.Logger
}

// EventKind names a membership change. It is the control
// API's wire type, defined in package api.
type EventKind = api.EventKind

const (
	NodeUp        EventKind = "node-up"
	NodeDead      EventKind = "node-dead"
	NodeRestarted EventKind = "node-restarted" // a new incarnation: the peer's daemon restarted
	LinkUp        EventKind = "link-up"
	LinkDead      EventKind = "link-dead"
)

// Event is one membership change. It is the control
// API's wire type, defined in package api.
type Event = api.Event

// LinkStatus is one link to one peer. It is the control
// API's wire type, defined in package api.
type LinkStatus = api.LinkStatus

// PeerStatus is one peer as this node sees it. It is the control
// API's wire type, defined in package api.
type PeerStatus = api.PeerStatus

type link struct {
	name      string
	state     heartbeat.PeerState
	lastHeard time.Time
	lastSeq   uint64
	late      uint64
	received  uint64
}

type peer struct {
	name        string
	state       heartbeat.PeerState
	since       time.Time
	incarnation uint64
	lastHeard   time.Time
	links       []*link
	view        []heartbeat.ViewEntry
}

// Tracker holds the membership view. It is safe for concurrent use.
type Tracker struct {
	opt     Options
	log     *slog.Logger
	started time.Time

	mu        sync.Mutex
	peers     map[string]*peer
	order     []*peer
	subs      map[int]chan Event
	nextSub   int
	lostEvent uint64
}

// New returns a tracker whose clock starts at start.
func New(opt Options, start time.Time) *Tracker {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	t := &Tracker{opt: opt, log: opt.Log, started: start, peers: map[string]*peer{}, subs: map[int]chan Event{}}
	for _, name := range opt.Peers {
		p := &peer{name: name, since: start}
		for _, l := range opt.Links {
			if to, ok := opt.Reach[l]; !ok || slices.Contains(to, name) {
				p.links = append(p.links, &link{name: l})
			}
		}
		t.peers[name] = p
		t.order = append(t.order, p)
	}
	return t
}

// Heard implements heartbeat.Observer.
func (t *Tracker) Heard(linkName string, m *heartbeat.Message, at time.Time) heartbeat.DropReason {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[m.Node]
	if p == nil {
		return heartbeat.DropUnknownNode
	}
	var l *link
	for _, c := range p.links {
		if c.name == linkName {
			l = c
		}
	}
	if l == nil {
		return heartbeat.DropUnknownNode
	}
	switch {
	case m.Incarnation < p.incarnation:
		return heartbeat.DropStale
	case m.Incarnation > p.incarnation:
		if p.incarnation != 0 {
			t.emit(Event{Time: at, Kind: NodeRestarted, Node: p.name, Reason: fmt.Sprintf("incarnation %d → %d", p.incarnation, m.Incarnation)})
		}
		p.incarnation = m.Incarnation
		for _, c := range p.links {
			c.lastSeq = 0
		}
	}
	// Sequence numbers are checked per link: the same beat legitimately
	// arrives once on every medium.
	if m.Seq <= l.lastSeq {
		return heartbeat.DropReplay
	}
	if l.state == heartbeat.StateUp {
		if gap := at.Sub(l.lastHeard); gap > t.opt.Warntime {
			l.late++
			t.log.Warn("late heartbeat", "node", p.name, "link", l.name, "gap", gap.Round(time.Millisecond), "warntime", t.opt.Warntime)
		}
	}
	l.lastSeq, l.lastHeard = m.Seq, at
	l.received++
	p.lastHeard = at
	p.view = m.View
	if l.state != heartbeat.StateUp {
		l.state = heartbeat.StateUp
		t.emit(Event{Time: at, Kind: LinkUp, Node: p.name, Link: l.name, Reason: "heartbeat received"})
	}
	if p.state != heartbeat.StateUp {
		p.state, p.since = heartbeat.StateUp, at
		t.emit(Event{Time: at, Kind: NodeUp, Node: p.name, Reason: "heartbeat received on " + l.name})
	}
	return heartbeat.Accepted
}

// Check applies the timeouts as of now and returns the next instant at
// which something can expire (zero if nothing can). The heartbeat engine
// calls it on every wake of its loop: it is a scan of peers × links, far
// cheaper than a timer of its own.
func (t *Tracker) Check(now time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var next time.Time
	soonest := func(d time.Time) {
		if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	initEnd := t.started.Add(t.opt.Initdead)
	for _, p := range t.order {
		for _, l := range p.links {
			switch l.state {
			case heartbeat.StateUp:
				if dl := l.lastHeard.Add(t.opt.Deadtime); !now.Before(dl) {
					l.state = heartbeat.StateDead
					t.emit(Event{Time: now, Kind: LinkDead, Node: p.name, Link: l.name, Reason: fmt.Sprintf("silent for %s", now.Sub(l.lastHeard).Round(time.Millisecond))})
				} else {
					soonest(dl)
				}
			case heartbeat.StateInit:
				if !now.Before(initEnd) {
					l.state = heartbeat.StateDead
					t.emit(Event{Time: now, Kind: LinkDead, Node: p.name, Link: l.name, Reason: "never heard within initdead " + t.opt.Initdead.String()})
				} else {
					soonest(initEnd)
				}
			}
		}
		switch p.state {
		case heartbeat.StateUp:
			if dl := p.lastHeard.Add(t.opt.Deadtime); !now.Before(dl) {
				p.state, p.since = heartbeat.StateDead, now
				t.emit(Event{Time: now, Kind: NodeDead, Node: p.name, Reason: fmt.Sprintf("silent on every link for %s", now.Sub(p.lastHeard).Round(time.Millisecond))})
			} else {
				soonest(dl)
			}
		case heartbeat.StateInit:
			if !now.Before(initEnd) {
				p.state, p.since = heartbeat.StateDead, now
				t.emit(Event{Time: now, Kind: NodeDead, Node: p.name, Reason: "never heard within initdead " + t.opt.Initdead.String()})
			} else {
				soonest(initEnd)
			}
		}
	}
	return next
}

// View returns this node's view of its peers, to be carried in heartbeats.
func (t *Tracker) View() []heartbeat.ViewEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := make([]heartbeat.ViewEntry, len(t.order))
	for i, p := range t.order {
		v[i] = heartbeat.ViewEntry{Node: p.name, State: p.state}
	}
	return v
}

// Peers returns a snapshot of every peer.
func (t *Tracker) Peers() []PeerStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PeerStatus, len(t.order))
	for i, p := range t.order {
		ps := PeerStatus{Node: p.name, State: p.state.String(), Since: p.since, Incarnation: p.incarnation, LastHeard: p.lastHeard,
			View: append([]heartbeat.ViewEntry(nil), p.view...)}
		for _, l := range p.links {
			ps.Links = append(ps.Links, LinkStatus{Link: l.name, State: l.state.String(), LastHeard: l.lastHeard, Late: l.late, Received: l.received})
		}
		out[i] = ps
	}
	return out
}

// Subscribe returns a channel of events and a function that ends the
// subscription. A subscriber that falls more than buf events behind loses
// events (counted and logged) rather than stalling heartbeat processing;
// Peers gives the current state to resynchronise from.
func (t *Tracker) Subscribe(buf int) (<-chan Event, func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := t.nextSub
	t.nextSub++
	ch := make(chan Event, buf)
	t.subs[id] = ch
	return ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if _, ok := t.subs[id]; ok {
			delete(t.subs, id)
			close(ch)
		}
	}
}

// emit must be called with t.mu held.
func (t *Tracker) emit(ev Event) {
	attrs := []any{"node", ev.Node, "reason", ev.Reason}
	if ev.Link != "" {
		attrs = append(attrs, "link", ev.Link)
	}
	if ev.Kind == NodeDead || ev.Kind == LinkDead {
		t.log.Warn(string(ev.Kind), attrs...)
	} else {
		t.log.Info(string(ev.Kind), attrs...)
	}
	for _, ch := range t.subs {
		select {
		case ch <- ev:
		default:
			t.lostEvent++
			t.log.Error("membership subscriber too slow, event lost", "kind", ev.Kind, "node", ev.Node, "lost", t.lostEvent)
		}
	}
}
