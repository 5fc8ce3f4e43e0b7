// Package web is the live web view: a read-only page on the metrics
// listener (ha.toml web_view) with the nodes and links, the groups and
// where they run, the IPVS table with real-server health, mon's watches
// and a timeline of failovers, moves and alerts.
//
// The page (plain HTML, CSS and JavaScript, embedded) gets a snapshot on
// connect, then only what changed, as server-sent events: one hub turns
// each membership event or applied Raft entry (and, while a page is open,
// a poll of the resources' inspections, which have no event stream) into
// the rows whose content changed, encoded once for every open page.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/membership"
)

// Source is what the view reads from the daemon.
type Source interface {
	// Status is the snapshot `vigil status` shows.
	Status() api.Status
	// Subscribe streams membership events (control.Backend's).
	Subscribe(buf int) (<-chan membership.Event, func())
	// Changed is closed at the next applied change of the replicated
	// state (fsm.FSM.Changed).
	Changed() <-chan struct{}
}

// Options tune a Server.
type Options struct {
	// Poll is how often the resources' inspections (IPVS table, real
	// server health, mon) are read while a page is open; default 1s.
	Poll time.Duration
	// Queue is how many messages an open page may lag behind before it is
	// dropped (it reconnects and gets a fresh snapshot); default 64.
	Queue int
	Log   *slog.Logger
}

// Keep this many timeline lines.
const keepEvents = 200

// Server serves the page and its event stream.
type Server struct {
	src   Source
	poll  time.Duration
	queue int
	log   *slog.Logger
	join  chan struct{} // a page joined: refresh now

	mu      sync.Mutex
	clients map[*client]bool
	closed  bool
	items   map[string]json.RawMessage // as last sent
	order   []Item
	events  []Event // the timeline, oldest first
	seen    map[string]bool
	members []Event // membership events heard (Status has none)
	seq     uint64
}

type client struct {
	ch    chan []byte
	fresh bool // wants a snapshot
}

// New returns the view of src. Run must run for the event stream to move.
func New(src Source, o Options) *Server {
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Queue <= 0 {
		o.Queue = 64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{src: src, poll: o.Poll, queue: o.Queue, log: o.Log, join: make(chan struct{}, 1),
		clients: map[*client]bool{}, items: map[string]json.RawMessage{}, seen: map[string]bool{}}
}

//go:embed static
var static embed.FS

// Handler serves the page under /web/: GET and HEAD only (the view is
// read-only), with a content security policy that allows nothing but the
// page's own files.
func (s *Server) Handler() http.Handler {
	files, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("/web/", http.StripPrefix("/web/", http.FileServerFS(files)))
	mux.HandleFunc("/web/snapshot", s.snapshot)
	mux.HandleFunc("/web/events", s.stream)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the web view is read-only", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/web" {
			http.Redirect(w, r, "/web/", http.StatusMovedPermanently)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// Snapshot is the whole view: GET /web/snapshot, and the first message
// of the event stream.
type Snapshot struct {
	Items  []Item  `json:"items"`
	Events []Event `json:"events"`
}

// Delta is what changed since the last message.
type Delta struct {
	Upsert []Item   `json:"upsert,omitempty"`
	Remove []string `json:"remove,omitempty"` // keys
	Events []Event  `json:"events,omitempty"`
}

func (s *Server) snapshot(w http.ResponseWriter, _ *http.Request) {
	st := s.src.Status()
	items, evs := Build(&st)
	s.mu.Lock()
	evs = mergeEvents(append(members(&st, s.members), evs...))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(Snapshot{Items: items, Events: evs})
}

func mergeEvents(evs []Event) []Event {
	sortEvents(evs)
	seen := map[string]bool{}
	out := evs[:0]
	for _, e := range evs {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	if len(out) > keepEvents {
		out = out[len(out)-keepEvents:]
	}
	return out
}

// stream is GET /web/events: a snapshot event, then delta events.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		return
	}
	c := &client{ch: make(chan []byte, s.queue), fresh: true}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	s.clients[c] = true
	s.mu.Unlock()
	defer s.leave(c)
	select {
	case s.join <- struct{}{}:
	default: // a refresh is already due
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	// retry: how soon the browser reconnects after a lost stream.
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-c.ch:
			if !ok {
				return // dropped (too slow) or shutting down
			}
			if _, err := w.Write(msg); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

func (s *Server) leave(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[c] {
		delete(s.clients, c)
		close(c.ch)
	}
}

// Run feeds the open pages until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	evs, unsubscribe := s.src.Subscribe(256)
	defer unsubscribe()
	defer s.shutdown()
	changed := s.src.Changed()
	var tick *time.Ticker
	var tc <-chan time.Time
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		due := false
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-evs:
			if !ok {
				evs = nil
				continue
			}
			s.member(ev)
			due = true
		case <-changed:
			changed = s.src.Changed()
			due = true
		case <-tc:
			due = true
		case <-s.join:
			due = true
		}
		// Take every membership event already queued with this one: one
		// refresh for a burst.
		for drained := false; !drained && evs != nil; {
			select {
			case ev, ok := <-evs:
				if !ok {
					evs = nil
				} else {
					s.member(ev)
				}
			default:
				drained = true
			}
		}
		open := s.open()
		if due && open {
			s.refresh()
		}
		// The inspections are polled only while a page is open.
		switch {
		case open && tick == nil:
			tick = time.NewTicker(s.poll)
			tc = tick.C
		case !open && tick != nil:
			tick.Stop()
			tick, tc = nil, nil
		}
	}
}

func (s *Server) open() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients) > 0
}

func (s *Server) member(ev membership.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = append(s.members, MemberEvent(ev))
	if len(s.members) > keepEvents {
		s.members = slices.Delete(s.members, 0, len(s.members)-keepEvents)
	}
}

// members are the membership events status would show: not those of a
// link status no longer lists for the peer (a serial cable that joins
// two other nodes, see control.SharedLinks).
func members(st *api.Status, evs []Event) []Event {
	links := map[string]bool{}
	for _, n := range st.Nodes {
		for _, l := range n.Links {
			links[n.Name+" "+l.Link] = true
		}
	}
	out := make([]Event, 0, len(evs))
	for _, e := range evs {
		if e.link != "" && !links[e.node+" "+e.link] {
			continue
		}
		out = append(out, e)
	}
	return out
}

func (s *Server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.clients {
		delete(s.clients, c)
		close(c.ch)
	}
}

// refresh reads the status, compares it row by row with what the pages
// have, and sends them what changed; a page that just joined gets the
// whole view.
func (s *Server) refresh() {
	st := s.src.Status()
	items, evs := Build(&st)
	s.mu.Lock()
	defer s.mu.Unlock()
	var d Delta
	now := make(map[string]json.RawMessage, len(items))
	for _, it := range items {
		now[it.Key] = it.Data
		if old, ok := s.items[it.Key]; !ok || !bytes.Equal(old, it.Data) {
			d.Upsert = append(d.Upsert, it)
		}
	}
	for _, it := range s.order {
		if _, ok := now[it.Key]; !ok {
			d.Remove = append(d.Remove, it.Key)
		}
	}
	s.items, s.order = now, items
	evs = append(evs, members(&st, s.members)...)
	sortEvents(evs)
	for _, e := range evs {
		if !s.seen[e.ID] {
			s.seen[e.ID] = true
			d.Events = append(d.Events, e)
		}
	}
	if len(d.Events) > 0 {
		s.events = mergeEvents(append(s.events, d.Events...))
		if len(s.seen) > 4*keepEvents {
			// Forget what fell off the timeline; the sources keep at most
			// a few hundred lines, so nothing forgotten comes back.
			s.seen = map[string]bool{}
			for _, e := range evs {
				s.seen[e.ID] = true
			}
		}
	}
	var delta, snap []byte
	if len(d.Upsert)+len(d.Remove)+len(d.Events) > 0 {
		delta = s.frame("delta", d)
	}
	for c := range s.clients {
		msg := delta
		if c.fresh {
			if snap == nil {
				snap = s.frame("snapshot", Snapshot{Items: s.order, Events: s.events})
			}
			msg, c.fresh = snap, false
		}
		if msg == nil {
			continue
		}
		select {
		case c.ch <- msg:
		default:
			// Too slow: drop it rather than queue without bound; the
			// browser reconnects and starts from a snapshot.
			s.log.Debug("web view client dropped: too slow")
			delete(s.clients, c)
			close(c.ch)
		}
	}
}

// frame encodes one server-sent event. JSON has no raw newlines, so the
// data is one line.
func (s *Server) frame(event string, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	s.seq++
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "id: %d\nevent: %s\ndata: %s\n\n", s.seq, event, b)
	return buf.Bytes()
}
