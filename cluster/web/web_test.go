package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/alerts"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/resources/ldirectord"
	"github.com/vigil-ha/vigil/resources/mon"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// cluster is a pair with a witness; g runs on owner (n1 offline when the
// owner is n2: a failover).
func cluster(owner string) api.Status {
	// The inspections are the resources' own JSON, so that these tests
	// also check the web view reads what they write.
	lvs, _ := json.Marshal(ldirectord.Status{Backend: "userspace", Active: owner == "n2", Services: []ldirectord.ServiceState{{
		Key: "TCP  10.0.0.3:80", Scheduler: "wlc",
		Reals: []ldirectord.RealState{
			{Addr: "10.0.0.21:80", Forward: "gate", Weight: 5, Health: "up", Active: 2, CheckedAt: time.Now()},
			{Addr: "10.0.0.22:80", Forward: "gate", Weight: -1, Health: "down", Result: "connection refused"},
		}}},
		Events: []ldirectord.Event{{Time: t0.Add(500 * time.Millisecond), Kind: "realserver", Subject: "10.0.0.22:80", Up: false, Summary: "connection refused"}}})
	watches, _ := json.Marshal([]mon.ServiceStatus{{Service: "rs1:http", Monitor: "http -p 80", Interval: "5s", OK: true, Runs: 3, Hosts: []string{"10.0.0.21"}}})
	st := &fsm.State{
		NodeOrder: []string{"n1", "n2", "n3"},
		Nodes: map[string]*fsm.Node{"n1": {Name: "n1", Online: true}, "n2": {Name: "n2", Online: true},
			"n3": {Name: "n3", Role: "witness", Online: true}},
		GroupOrder: []string{"g"},
		Groups: map[string]*fsm.Group{"g": {GroupSpec: fsm.GroupSpec{Name: "g", Preferred: "n1"}, Owner: owner,
			Reports: map[string]fsm.NodeReport{owner: {State: "running", Op: "start", Result: "OK"}}}},
		Decisions: []fsm.Decision{{Time: t0, Index: 5, Group: "g", To: "n1", Reason: "preferred"}},
	}
	if owner == "n2" {
		st.Nodes["n1"].Online, st.Nodes["n1"].Since = false, t0.Add(time.Second)
		st.Decisions = append(st.Decisions, fsm.Decision{Time: t0.Add(time.Second), Index: 9, Group: "g", From: "n1", To: "n2", Reason: "n1 offline"})
	}
	s := api.Status{Cluster: "lab", Node: "n2", Version: "v1", Now: time.Now(),
		Nodes: []api.NodeStatus{
			{Name: "n1", Address: "10.0.0.1", PeerStatus: membership.PeerStatus{State: "up", LastHeard: time.Now(), Links: []membership.LinkStatus{{Link: "ucast:eth0", State: "up", Received: 7}}}},
			{Name: "n2", Address: "10.0.0.2", Self: true, PeerStatus: membership.PeerStatus{State: "up"}},
			{Name: "n3", Address: "10.0.0.3", Role: "witness", PeerStatus: membership.PeerStatus{State: "up"}},
		},
		Core: &api.ClusterStatus{Leader: "n3", RaftState: "Follower", Term: "2", HoldsLease: true, State: st},
		Groups: []lrm.GroupStatus{{Name: "g", Resources: []lrm.ResourceStatus{
			{ID: "ldirectord_www", Plugin: "ldirectord"}, {ID: "mon_lvs", Plugin: "mon"}}}},
		Inspections: []lrm.Inspection{{Group: "g", Resource: "ldirectord_www", JSON: lvs}, {Group: "g", Resource: "mon_lvs", JSON: watches}},
		Alerts:      &api.AlertStatus{},
	}
	if owner == "n2" {
		s.Alerts.Recent = []alerts.Record{{Time: t0.Add(2 * time.Second), Kind: "failover", Type: "failure", Summary: "g to n2", Via: "log"}}
	}
	s.Placement = api.Placement(&s)
	return s
}

// fake is the daemon: its status is set by the test, each set is an
// applied change.
type fake struct {
	mu      sync.Mutex
	st      api.Status
	changed chan struct{}
	reads   int
	subs    []chan membership.Event
}

func newFake(st api.Status) *fake { return &fake{st: st, changed: make(chan struct{})} }

func (f *fake) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.st
}

func (f *fake) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fake) Subscribe(buf int) (<-chan membership.Event, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan membership.Event, buf)
	f.subs = append(f.subs, ch)
	return ch, func() {}
}

func (f *fake) set(st api.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fake) publish(ev membership.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs {
		ch <- ev
	}
}

func (f *fake) readCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// start runs a view of f behind a test server until the test ends.
func start(t *testing.T, f *fake, o Options) (*Server, string) {
	t.Helper()
	s := New(f, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	srv.Start()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	return s, srv.URL
}

// A node cut off from the leader (issue 25: never misleads): its
// replicated view still holds the peers online and its group running, but
// it hears neither peer and stopped the group when its lease ran out. The
// page shows the peers offline and the group stopped, as status does.
func TestBuildCutOff(t *testing.T) {
	s := cluster("n2")
	s.Core.Leader, s.Core.RaftState, s.Core.HoldsLease = "", "Candidate", false
	s.Core.State.Nodes["n1"].Online = true
	s.Nodes[0].State, s.Nodes[0].Since = "dead", t0.Add(3*time.Second)
	s.Nodes[2].State = "dead"
	s.Groups[0].State = "stopped"
	s.Placement = api.Placement(&s)
	items, _ := Build(&s)
	for _, it := range items {
		switch it.Key {
		case "node/n1", "node/n3":
			var n Node
			if err := json.Unmarshal(it.Data, &n); err != nil || n.Cluster != "offline" || n.Reason != "not heard here (no leader to record it)" {
				t.Errorf("%s: %+v %v", it.Key, n, err)
			}
		case "node/n2":
			var n Node
			if err := json.Unmarshal(it.Data, &n); err != nil || n.Cluster != "online" {
				t.Errorf("%s (this node): %+v %v", it.Key, n, err)
			}
		case "group/g":
			var g api.GroupView
			if err := json.Unmarshal(it.Data, &g); err != nil || g.State != "stopped" || g.Running() || len(g.Nodes) != 1 || !g.Nodes[0].Unrecorded {
				t.Errorf("group: %+v %v", g, err)
			}
		}
	}
}

func TestSnapshotJSON(t *testing.T) {
	_, url := start(t, newFake(cluster("n2")), Options{})
	resp, err := http.Get(url + "/web/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var snap Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	var keys []string
	byKey := map[string]json.RawMessage{}
	for _, it := range snap.Items {
		keys = append(keys, it.Key)
		byKey[it.Key] = it.Data
	}
	want := []string{"header/", "node/n1", "node/n2", "node/n3", "group/g", "service/ldirectord_www TCP 10.0.0.3:80", "watch/mon_lvs rs1:http"}
	if !slices.Equal(keys, want) {
		t.Fatalf("items %q, want %q", keys, want)
	}
	var g api.GroupView
	var n1 Node
	var svc Service
	var w Watch
	var h Header
	for k, v := range map[string]any{"group/g": &g, "node/n1": &n1, "service/ldirectord_www TCP 10.0.0.3:80": &svc, "watch/mon_lvs rs1:http": &w, "header/": &h} {
		if err := json.Unmarshal(byKey[k], v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	if g.Owner != "n2" || g.State != "running" || g.Preferred != "n1" {
		t.Errorf("group %+v", g)
	}
	if n1.Cluster != "offline" || n1.Heard != "up" || len(n1.Links) != 1 || n1.Links[0] != (Link{"ucast:eth0", "up"}) {
		t.Errorf("node n1 %+v", n1)
	}
	if !svc.Directing || svc.Scheduler != "wlc" || len(svc.Reals) != 2 || svc.Reals[1].Health != "down" || svc.Reals[1].Weight != -1 || svc.Reals[0].Active != 2 {
		t.Errorf("service %+v", svc)
	}
	if !w.OK || w.Monitor != "http -p 80" || w.Instance != "mon_lvs" {
		t.Errorf("watch %+v", w)
	}
	if h.Leader != "n3" || h.Cluster != "lab" || h.Node != "n2" {
		t.Errorf("header %+v", h)
	}
	// The timeline, oldest first: the placement, the real server's
	// failure, the failover, the alert.
	var kinds []string
	for _, e := range snap.Events {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Equal(kinds, []string{"placed", "realserver", "failover", "alert"}) {
		t.Errorf("timeline %q", kinds)
	}
	if e := snap.Events[2]; e.Text != "g: n1 → n2 (n1 offline)" || e.Level != "warn" {
		t.Errorf("failover line %+v", e)
	}
}

// sse is a reader of a server-sent event stream.
type sse struct {
	t    *testing.T
	body io.ReadCloser
	r    *bufio.Reader
}

type frame struct{ id, event, data string }

func openStream(t *testing.T, url string) *sse {
	t.Helper()
	resp, err := http.Get(url + "/web/events")
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %d %q", resp.StatusCode, ct)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sse{t: t, body: resp.Body, r: bufio.NewReader(resp.Body)}
}

// next reads one frame: field lines up to a blank line.
func (s *sse) next() frame {
	s.t.Helper()
	var f frame
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return f
		}
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "id":
			f.id = value
		case "event":
			f.event = value
		case "data":
			if f.data != "" {
				s.t.Fatalf("data in more than one line: %q", line)
			}
			f.data = value
		case "retry":
			f.event = "retry:" + value
		default:
			s.t.Fatalf("unexpected line %q", line)
		}
	}
}

// The stream is a snapshot, then only what changed: a failover sends the
// group, the two nodes, the service (now directing) and the new timeline
// lines; an unchanged cluster's poll sends nothing; a membership event
// sends its timeline line alone.
func TestStream(t *testing.T) {
	f := newFake(cluster("n1"))
	_, url := start(t, f, Options{Poll: 10 * time.Millisecond})
	s := openStream(t, url)
	if fr := s.next(); fr.event != "retry:1000" {
		t.Fatalf("first frame %+v, want retry", fr)
	}
	fr := s.next()
	if fr.event != "snapshot" || fr.id == "" {
		t.Fatalf("frame %+v, want a snapshot", fr)
	}
	var snap Snapshot
	if err := json.Unmarshal([]byte(fr.data), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Items) != 7 || len(snap.Events) != 2 {
		t.Fatalf("snapshot: %d items, %d events", len(snap.Items), len(snap.Events))
	}
	// The poll runs every 10ms on an unchanged cluster: nothing is sent
	// until the failover, which must be the next frame.
	reads := f.readCount()
	f.set(cluster("n2"))
	fr = s.next()
	if fr.event != "delta" {
		t.Fatalf("frame %+v, want a delta", fr)
	}
	var d Delta
	if err := json.Unmarshal([]byte(fr.data), &d); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, it := range d.Upsert {
		keys = append(keys, it.Key)
	}
	if !slices.Equal(keys, []string{"node/n1", "group/g", "service/ldirectord_www TCP 10.0.0.3:80"}) || len(d.Remove) != 0 {
		t.Errorf("failover delta upserts %q removes %q", keys, d.Remove)
	}
	var kinds []string
	for _, e := range d.Events {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Equal(kinds, []string{"failover", "alert"}) {
		t.Errorf("failover delta events %q", kinds)
	}
	if f.readCount() <= reads {
		t.Errorf("no status read for the change")
	}

	// A link status does not list for the peer (a cable between two
	// other nodes) is left out, as status leaves it out.
	f.publish(membership.Event{Time: t0.Add(3 * time.Second), Kind: membership.LinkDead, Node: "n3", Link: "serial:/dev/ttyS0", Reason: "never heard"})
	f.publish(membership.Event{Time: t0.Add(3 * time.Second), Kind: membership.LinkDead, Node: "n1", Link: "ucast:eth0", Reason: "silent"})
	fr = s.next()
	d = Delta{}
	if err := json.Unmarshal([]byte(fr.data), &d); err != nil {
		t.Fatal(err)
	}
	if fr.event != "delta" || len(d.Upsert)+len(d.Remove) != 0 || len(d.Events) != 1 || d.Events[0].Text != "link-dead n1 via ucast:eth0: silent" || d.Events[0].Level != "bad" {
		t.Errorf("membership delta %+v", d)
	}

	// A second page gets the whole view, the membership line included.
	s2 := openStream(t, url)
	s2.next()
	fr = s2.next()
	if err := json.Unmarshal([]byte(fr.data), &snap); err != nil {
		t.Fatal(err)
	}
	if fr.event != "snapshot" || len(snap.Events) != 5 || snap.Events[4].Kind != "link-dead" {
		t.Errorf("second page's snapshot: %s %+v", fr.event, snap.Events)
	}
	// A row that goes (the instance stopped here) is removed.
	st := cluster("n2")
	st.Inspections = st.Inspections[1:]
	f.set(st)
	for _, s := range []*sse{s, s2} {
		fr = s.next()
		d = Delta{}
		if err := json.Unmarshal([]byte(fr.data), &d); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(d.Remove, []string{"service/ldirectord_www TCP 10.0.0.3:80"}) || len(d.Upsert) != 0 {
			t.Errorf("removal delta %+v", d)
		}
	}
}

// With no page open nothing reads the status: the view costs nothing
// until someone looks.
func TestIdle(t *testing.T) {
	f := newFake(cluster("n1"))
	start(t, f, Options{Poll: time.Millisecond})
	// The hub subscribes when it starts (on a loaded machine, after
	// start returned): an event published before would reach nobody.
	const within = 10 * time.Second // the hub polls every millisecond: room for a busy machine
	testutil.Eventually(t, within, "the hub to subscribe to membership events", func() (int, bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.subs), len(f.subs) > 0
	})
	for range 20 {
		f.set(cluster("n2"))
	}
	f.publish(membership.Event{Time: t0, Kind: membership.NodeDead, Node: "n1"})
	// The membership event is handled by the hub after the changes: when
	// the hub took it, it had seen every change before it.
	testutil.Eventually(t, within, "the hub to take the event (events pending)", func() (int, bool) {
		if s := f.readCount(); s != 0 {
			t.Fatalf("%d status reads with no page open", s)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.subs[0]), len(f.subs[0]) == 0
	})
}

// A page that does not read is dropped once its queue is full (it
// reconnects and starts from a snapshot), and the others go on.
func TestSlowClientDropped(t *testing.T) {
	f := newFake(cluster("n1"))
	srv, url := start(t, f, Options{Queue: 2})
	fast := openStream(t, url)
	fast.next()
	fast.next()
	// A page whose stream is stuck: nothing takes its messages. (Over
	// HTTP the socket buffers would hide it for megabytes.)
	slow := &client{ch: make(chan []byte, 2)}
	srv.mu.Lock()
	srv.clients[slow] = true
	srv.mu.Unlock()
	owners := []string{"n2", "n1"}
	for i := range 6 {
		f.set(cluster(owners[i%2]))
		if fr := fast.next(); fr.event != "delta" {
			t.Fatalf("fast page: %+v", fr)
		}
	}
	srv.mu.Lock()
	fed := srv.clients[slow]
	srv.mu.Unlock()
	if fed {
		t.Fatal("the stuck page is still fed")
	}
	n := 0
	for range slow.ch {
		n++
	}
	if n != 2 {
		t.Errorf("the stuck page got %d messages before it was dropped, want its queue (2)", n)
	}
}

// The view is read-only: anything but GET and HEAD is refused; the page's
// files are served with a policy that loads nothing from elsewhere.
func TestReadOnly(t *testing.T) {
	_, url := start(t, newFake(cluster("n1")), Options{})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		for _, p := range []string{"/web/", "/web/events", "/web/snapshot"} {
			req, _ := http.NewRequest(m, url+p, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d allow %q", m, p, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
	for p, want := range map[string]string{"/web/": "<title>Vigil</title>", "/web/app.js": "new EventSource(\"events\")", "/web/style.css": ":focus-visible"} {
		resp, err := http.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, lacks %q", p, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
			t.Errorf("%s: policy %q", p, csp)
		}
	}
	// HEAD of the stream answers at once.
	resp, err := http.Head(url + "/web/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD /web/events: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, err = http.Get(url + "/web/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
}

// The event stream ends when the daemon stops, with the page open.
func TestShutdownEndsStreams(t *testing.T) {
	f := newFake(cluster("n1"))
	s := New(f, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	st := openStream(t, srv.URL)
	st.next()
	st.next()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := st.r.ReadString('\n'); err != io.EOF {
		t.Errorf("stream after shutdown: %v, want EOF", err)
	}
}
