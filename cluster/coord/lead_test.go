package coord

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
)

// leader is the harness seen from the witness w, which leads.
func leader(t *testing.T) *harness {
	h := newHarness(t, "w")
	h.c.opt.Role, h.c.opt.LRM = "witness", nil
	return h
}

func (h *harness) node(name string) fsm.Node {
	var n fsm.Node
	h.c.opt.FSM.Read(func(s *fsm.State) { n = *s.Nodes[name] })
	return n
}

// lead runs one full pass and returns the entries it committed, by type.
func (h *harness) lead() map[string]int {
	h.t.Helper()
	_, before := h.log.entries()
	if !h.c.lead(context.Background(), true, nil) {
		h.t.Fatal("lead did not get through")
	}
	_, after := h.log.entries()
	out := map[string]int{}
	for k, v := range after {
		if v != before[k] {
			out[k] = v - before[k]
		}
	}
	return out
}

func TestLeadNodeStates(t *testing.T) {
	h := leader(t)
	if got := h.lead(); len(got) != 0 {
		t.Fatalf("steady: committed %v", got)
	}
	// n1 dies: offline, and its group moves to n2.
	h.mem.set(membership.PeerStatus{Node: "n1", State: "dead", Incarnation: 1})
	if got := h.lead(); got[fsm.TypeNodeState] != 1 || got[fsm.TypeAssign] != 1 {
		t.Fatalf("n1 dead: committed %v", got)
	}
	if n := h.node("n1"); n.Online || n.DownIndex == 0 {
		t.Errorf("n1: %+v", n)
	}
	if g := h.group(); g.Owner != "n2" {
		t.Errorf("owner %q", g.Owner)
	}
	// Heard again, but Raft has not reached it: it stays offline.
	h.mem.set(membership.PeerStatus{Node: "n1", State: "up", Incarnation: 1})
	h.lease.applied["n1"] = h.node("n1").DownIndex - 1
	if got := h.lead(); len(got) != 0 || h.node("n1").Online {
		t.Fatalf("n1 heard, log behind: committed %v", got)
	}
	h.lease.applied["n1"] = h.node("n1").DownIndex
	if got := h.lead(); got[fsm.TypeNodeState] != 1 || !h.node("n1").Online {
		t.Fatalf("n1 back: committed %v", got)
	}
	if g := h.group(); g.Owner != "n2" {
		t.Errorf("no failback without auto_failback: owner %q", g.Owner)
	}
}

func TestLeadLeavingAndRestart(t *testing.T) {
	h := leader(t)
	h.must(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Leaving: ptr(true), Incarnation: 1})
	if got := h.lead(); got[fsm.TypeAssign] != 1 || h.group().Owner != "n2" {
		t.Fatalf("n1 leaving: committed %v, owner %q", got, h.group().Owner)
	}
	// The same daemon still heard: still leaving.
	if got := h.lead(); len(got) != 0 {
		t.Fatalf("same incarnation: committed %v", got)
	}
	h.mem.set(membership.PeerStatus{Node: "n1", State: "up", Incarnation: 2})
	if got := h.lead(); got[fsm.TypeNodeState] != 1 || h.node("n1").Leaving {
		t.Fatalf("restarted: committed %v, %+v", got, h.node("n1"))
	}
}

func TestLeadFencedStillHeard(t *testing.T) {
	h := leader(t)
	h.must(fsm.TypeFenced, fsm.Fenced{Node: "n1", Incarnation: 1, Reason: "test"})
	// The fenced daemon (incarnation 1) is still heard: it stays offline.
	for range 2 {
		if got := h.lead(); got[fsm.TypeNodeState] != 0 || h.node("n1").Online {
			t.Fatalf("fenced, heard: committed %v", got)
		}
	}
	h.mem.set(membership.PeerStatus{Node: "n1", State: "up", Incarnation: 2})
	h.lease.applied["n1"] = h.node("n1").DownIndex
	if got := h.lead(); got[fsm.TypeNodeState] != 1 || !h.node("n1").Online {
		t.Fatalf("new daemon: committed %v", got)
	}
}

func TestLeadDefinitions(t *testing.T) {
	h := leader(t)
	// The leader's own files differ: they replace definitions no reload set.
	db := fsm.GroupSpec{Name: "db", Preferred: "n2"}
	h.c.groups, h.c.version = []fsm.GroupSpec{web, db}, GroupsVersion([]fsm.GroupSpec{web, db}, nodes3)
	if h.c.lead(context.Background(), true, nil) {
		t.Fatal("a pass that replaced the definitions says it got through")
	}
	if got := h.lead(); got[fsm.TypeAssign] != 1 {
		t.Fatalf("new group not placed: %v", got)
	}
	var owner string
	h.c.opt.FSM.Read(func(s *fsm.State) { owner = s.Groups["db"].Owner })
	if owner != "n2" {
		t.Errorf("db on %q", owner)
	}
	// After a reload (generation 1), a leader's older files do not undo it.
	if _, err := h.c.Reload(context.Background(), []fsm.GroupSpec{web}, nodes3); err != nil {
		t.Fatal(err)
	}
	h.c.groups, h.c.version = []fsm.GroupSpec{web, db}, GroupsVersion([]fsm.GroupSpec{web, db}, nodes3)
	if got := h.lead(); got[fsm.TypeSetGroups] != 0 {
		t.Fatalf("generation 1 replaced by a leader's files: %v", got)
	}
}

// An incremental pass places only the groups the entries touched; a full
// pass places all.
func TestLeadIncremental(t *testing.T) {
	h := leader(t)
	// n1 in standby: web should move, but only a pass that looks at web
	// moves it.
	h.must(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Standby: ptr(true)})
	h.c.lead(context.Background(), false, map[string]bool{"other": true})
	if h.group().Owner != "n1" {
		t.Fatalf("untouched group placed: %q", h.group().Owner)
	}
	h.c.lead(context.Background(), false, map[string]bool{"web": true})
	if h.group().Owner != "n2" {
		t.Fatalf("touched group not placed: %q", h.group().Owner)
	}
	h.must(fsm.TypeReport, fsm.Report{Node: "n2", Group: "web", State: lrm.Blocked})
	h.must(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Standby: ptr(false)})
	if got := h.lead(); len(got) != 0 {
		t.Fatalf("blocked group moved: %v", got)
	}
}

// A pass woken by an entry about one group that finds a node gone places
// every group at once, not only the one the entry named.
func TestLeadNodeChangeInIncrementalPass(t *testing.T) {
	h := leader(t)
	db := fsm.GroupSpec{Name: "db", Preferred: "n1"}
	h.c.groups, h.c.version = []fsm.GroupSpec{web, db}, GroupsVersion([]fsm.GroupSpec{web, db}, nodes3)
	h.c.lead(context.Background(), true, nil)
	h.lead()
	h.mem.set(membership.PeerStatus{Node: "n1", State: "dead", Incarnation: 1})
	h.c.lead(context.Background(), false, map[string]bool{"web": true})
	h.c.opt.FSM.Read(func(s *fsm.State) {
		for _, g := range []string{"web", "db"} {
			if o := s.Groups[g].Owner; o != "n2" {
				t.Errorf("%s on %q", g, o)
			}
		}
	})
}

// A node whose files differ from the cluster's definitions says so once
// per pair of versions, leader or not (issue 25: the witness's files won
// at start and nobody said so); the leader says it replaces them.
func TestDefinitionsDifferLogged(t *testing.T) {
	h := newHarness(t, "n1")
	var logs bytes.Buffer
	h.c.log = slog.New(slog.NewTextHandler(&logs, nil))
	db := fsm.GroupSpec{Name: "db", Preferred: "n2"}
	h.c.groups, h.c.version = []fsm.GroupSpec{web, db}, GroupsVersion([]fsm.GroupSpec{web, db}, nodes3)
	count := func() int { return strings.Count(logs.String(), "differs from the cluster's group definitions") }

	// Leading with definitions no reload set: lead replaces them and
	// logs it; noteDefinitions stays silent.
	h.c.noteDefinitions()
	if h.c.lead(context.Background(), true, nil) || count() != 1 || !strings.Contains(logs.String(), "the leader's files replace them") {
		t.Fatalf("leader replacing the definitions:\n%s", logs.String())
	}
	// Now another node's reload (generation 1) is in force: a follower
	// with other files logs it once, however often it looks.
	h.log.leader = "w"
	if _, err := h.c.Reload(context.Background(), []fsm.GroupSpec{web}, nodes3); err != nil {
		t.Fatal(err)
	}
	h.c.groups, h.c.version = []fsm.GroupSpec{web, db}, GroupsVersion([]fsm.GroupSpec{web, db}, nodes3)
	for range 3 {
		h.c.noteDefinitions()
	}
	if count() != 2 || !strings.Contains(logs.String(), "which vigil reload set (generation 1)") {
		t.Fatalf("follower with other files:\n%s", logs.String())
	}
	if h.c.FilesVersion() == "" {
		t.Error("no files version")
	}
	// Equal again, then different again: logged again.
	h.c.groups, h.c.version = []fsm.GroupSpec{web}, GroupsVersion([]fsm.GroupSpec{web}, nodes3)
	h.c.noteDefinitions()
	h.c.groups, h.c.version = []fsm.GroupSpec{web, db}, GroupsVersion([]fsm.GroupSpec{web, db}, nodes3)
	h.c.noteDefinitions()
	if count() != 3 {
		t.Fatalf("difference after equality not logged:\n%s", logs.String())
	}
}

// A node heard but deaf (a one-way link) goes offline, its group moves,
// and it stays offline while deaf even when the log reaches it; a
// two_node pair leaves this to its own rules.
func TestLeadDeafNode(t *testing.T) {
	h := leader(t)
	window := h.c.opt.Timing.DeafAfter()
	view := func(n2, w heartbeat.PeerState) []heartbeat.ViewEntry {
		return []heartbeat.ViewEntry{{Node: "n2", State: n2}, {Node: "w", State: w}}
	}
	n1 := membership.PeerStatus{Node: "n1", State: "up", Incarnation: 1, Since: t0.Add(-window)}
	n1.View = view(heartbeat.StateDead, heartbeat.StateDead)
	h.mem.set(n1)
	h.takenOffline("n1", "one-way")
	h.lease.applied["n1"] = h.node("n1").DownIndex
	if got := h.lead(); len(got) != 0 || h.node("n1").Online {
		t.Fatalf("n1 still deaf, log caught up: committed %v", got)
	}
	// It hears the witness again: with it, a quorum.
	n1.View = view(heartbeat.StateDead, heartbeat.StateUp)
	h.mem.set(n1)
	if got := h.lead(); got[fsm.TypeNodeState] != 1 || !h.node("n1").Online {
		t.Fatalf("n1 hears again: committed %v", got)
	}
}

// takenOffline runs one full pass, which must take node offline with a
// reason that says why and move web to n2.
func (h *harness) takenOffline(node, why string) {
	h.t.Helper()
	if got := h.lead(); got[fsm.TypeNodeState] != 1 || got[fsm.TypeAssign] != 1 {
		h.t.Fatalf("%s deaf: committed %v", node, got)
	}
	if n := h.node(node); n.Online || !strings.Contains(n.Reason, why) {
		h.t.Errorf("%s: %+v", node, n)
	}
	if g := h.group(); g.Owner != "n2" {
		h.t.Errorf("owner %q", g.Owner)
	}
}

// deaf counts what the node's own view says of the other voters: dead
// ones only (one it has not heard yet is no evidence), once it has been
// up for the window.
func TestDeafFromView(t *testing.T) {
	voters := []string{"n1", "n2", "w"}
	const window = 100 * time.Millisecond
	for _, tc := range []struct {
		name  string
		since time.Duration // before now
		state string
		view  []heartbeat.PeerState // of n2, w
		want  bool
	}{
		{"hears both", window, "up", []heartbeat.PeerState{heartbeat.StateUp, heartbeat.StateUp}, false},
		{"hears one: a quorum", window, "up", []heartbeat.PeerState{heartbeat.StateDead, heartbeat.StateUp}, false},
		{"hears none", window, "up", []heartbeat.PeerState{heartbeat.StateDead, heartbeat.StateDead}, true},
		{"just started", window, "up", []heartbeat.PeerState{heartbeat.StateInit, heartbeat.StateInit}, false},
		{"up for less than the window", window / 2, "up", []heartbeat.PeerState{heartbeat.StateDead, heartbeat.StateDead}, false},
		{"silent itself", window, "dead", []heartbeat.PeerState{heartbeat.StateDead, heartbeat.StateDead}, false},
	} {
		p := membership.PeerStatus{Node: "n1", State: tc.state, Since: t0.Add(-tc.since),
			View: []heartbeat.ViewEntry{{Node: "n2", State: tc.view[0]}, {Node: "w", State: tc.view[1]}}}
		if got := deaf(p, voters, t0, window); got != tc.want {
			t.Errorf("%s: deaf %v, want %v", tc.name, got, tc.want)
		}
	}
	if deaf(membership.PeerStatus{Node: "zz", State: "up", Since: t0.Add(-window), View: []heartbeat.ViewEntry{{Node: "n1", State: heartbeat.StateDead}}}, voters, t0, window) {
		t.Error("a non-voter is deaf")
	}
}
