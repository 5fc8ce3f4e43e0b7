package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

type applier struct {
	t     *testing.T
	s     *State
	index uint64
}

func (a *applier) do(typ string, cmd any) error {
	a.t.Helper()
	b, err := Encode(typ, cmd)
	if err != nil {
		a.t.Fatal(err)
	}
	a.index++
	return a.s.Apply(a.index, t0.Add(time.Duration(a.index)*time.Second), b)
}

func (a *applier) must(typ string, cmd any) {
	a.t.Helper()
	if err := a.do(typ, cmd); err != nil {
		a.t.Fatalf("%s: %v", typ, err)
	}
}

func ptr[T any](v T) *T { return &v }

// A cluster of n1, n2 (members) and w (witness) with group web on n1.
func fixture(t *testing.T) *applier {
	a := &applier{t: t, s: NewState()}
	a.must(TypeSetGroups, SetGroups{Version: "v1",
		Nodes:  []NodeSpec{{"n1", "member"}, {"n2", "member"}, {"w", "witness"}},
		Groups: []GroupSpec{{Name: "web", Preferred: "n1", Resources: []Resource{{ID: "vip", Type: "IPaddr"}}}}})
	for _, n := range []string{"n1", "n2", "w"} {
		a.must(TypeNodeState, NodeState{Node: n, Online: ptr(true)})
	}
	a.must(TypeAssign, Assign{Changes: []Change{{Group: "web", To: "n1", Reason: "preferred"}}})
	return a
}

func TestCommands(t *testing.T) {
	a := fixture(t)
	s := a.s
	g := s.Groups["web"]
	if g.Owner != "n1" || g.AssignIndex != 5 || len(s.Decisions) != 1 || s.Decisions[0].To != "n1" {
		t.Fatalf("assign: %+v, decisions %+v", g, s.Decisions)
	}
	if s.Quorum() != 2 {
		t.Errorf("quorum of 3 = %d", s.Quorum())
	}

	// A claim for the current assignment is accepted; a stale one not.
	if err := a.do(TypeClaim, Claim{Node: "n1", Group: "web", AssignIndex: 4}); !errors.Is(err, ErrRefused) {
		t.Errorf("stale claim: %v", err)
	}
	a.must(TypeClaim, Claim{Node: "n1", Group: "web", AssignIndex: 5})
	if g.Claimed != "n1" || g.Reports["n1"].State != "starting" {
		t.Errorf("claim: %+v", g)
	}
	a.must(TypeReport, Report{Node: "n1", Group: "web", State: "running", Op: "start"})

	// n2 may not claim while n1 (online) may still run it.
	a.must(TypeAssign, Assign{Changes: []Change{{Group: "web", From: "n1", To: "n2", Reason: "test"}}})
	if err := a.do(TypeClaim, Claim{Node: "n2", Group: "web", AssignIndex: g.AssignIndex}); !errors.Is(err, ErrRefused) {
		t.Errorf("claim while n1 runs it: %v", err)
	}
	// Once n1 is offline the claim is the claimant's (lease) business.
	a.must(TypeNodeState, NodeState{Node: "n1", Online: ptr(false), Reason: "dead"})
	if n := s.Nodes["n1"]; n.Online || n.DownIndex != a.index || n.Reason != "dead" {
		t.Errorf("node down: %+v", n)
	}
	a.must(TypeClaim, Claim{Node: "n2", Group: "web", AssignIndex: g.AssignIndex})

	// Failures: counted per resource, fatal ones are infinite.
	a.must(TypeReport, Report{Node: "n2", Group: "web", State: "failed", Op: "monitor", Resource: "vip", Fail: true})
	a.must(TypeReport, Report{Node: "n2", Group: "web", State: "failed", Op: "monitor", Resource: "vip", Fail: true})
	if fc := s.Failcount("web", "n2"); fc != 2 {
		t.Errorf("failcount %d, want 2", fc)
	}
	a.must(TypeReport, Report{Node: "n1", Group: "web", State: "failed", Op: "start", Resource: "vip", Fail: true, Fatal: true})
	if fc := s.Failcount("web", "n1"); fc != Infinity || len(s.Failures) != 3 {
		t.Errorf("fatal failcount %d, failures %d", fc, len(s.Failures))
	}
	a.must(TypeCleanup, Cleanup{Group: "web", Node: "n2"})
	if s.Failcount("web", "n2") != 0 || s.Failcount("web", "n1") != Infinity || len(s.Failures) != 1 || g.CleanupIndex != a.index {
		t.Errorf("cleanup n2: %+v failures %+v", g.Failcounts, s.Failures)
	}
	a.must(TypeCleanup, Cleanup{Group: "web"})
	if len(g.Failcounts) != 0 || len(s.Failures) != 0 {
		t.Errorf("cleanup all: %+v", g.Failcounts)
	}

	// Moves: to a member, not to a witness or nowhere known.
	a.must(TypeMove, Move{Group: "web", Node: "n1"})
	if g.Pinned != "n1" {
		t.Errorf("pin: %q", g.Pinned)
	}
	for _, bad := range []Move{{Group: "web", Node: "w"}, {Group: "web", Node: "zz"}, {Group: "nope", Node: "n1"}} {
		if err := a.do(TypeMove, bad); !errors.Is(err, ErrRefused) {
			t.Errorf("move %+v: %v", bad, err)
		}
	}
	a.must(TypeMove, Move{Group: "web"})
	a.must(TypeNodeState, NodeState{Node: "n2", Standby: ptr(true), Maintenance: ptr(true)})
	if n := s.Nodes["n2"]; !n.Standby || !n.Maintenance {
		t.Errorf("flags: %+v", n)
	}

	// Node add/remove; an owner cannot be removed.
	a.must(TypeNodeAdd, NodeAdd{Node: "n3", Role: "member"})
	if s.Quorum() != 3 || s.Nodes["n3"].Online {
		t.Errorf("after add: quorum %d, %+v", s.Quorum(), s.Nodes["n3"])
	}
	if err := a.do(TypeNodeRemove, NodeRemove{Node: g.Owner}); !errors.Is(err, ErrRefused) {
		t.Errorf("removing the owner: %v", err)
	}
	a.must(TypeNodeRemove, NodeRemove{Node: "n3"})
	if _, ok := s.Nodes["n3"]; ok || len(s.NodeOrder) != 3 {
		t.Errorf("after remove: %v", s.NodeOrder)
	}

	// New definitions keep the placement of groups that remain.
	a.must(TypeSetGroups, SetGroups{Version: "v2", Nodes: []NodeSpec{{"n1", "member"}, {"n2", "member"}, {"w", "witness"}},
		Groups: []GroupSpec{{Name: "web", Preferred: "n2"}, {Name: "db", Preferred: "n1"}}})
	if s.Groups["web"].Owner != "n2" || s.Groups["web"].Preferred != "n2" || s.Groups["db"] == nil || s.GroupsVersion != "v2" {
		t.Errorf("set groups: %+v", s.Groups)
	}

	// A reload sets the next generation; after it, a daemon's own files
	// (generation 0) and a reload that raced another are refused.
	nodes := []NodeSpec{{"n1", "member"}, {"n2", "member"}, {"w", "witness"}}
	a.must(TypeSetGroups, SetGroups{Version: "v3", Generation: 1, Nodes: nodes, Groups: []GroupSpec{{Name: "web", Preferred: "n1"}}})
	for _, stale := range []SetGroups{{Version: "v2", Nodes: nodes}, {Version: "v4", Generation: 1, Nodes: nodes}, {Version: "v4", Generation: 3, Nodes: nodes}} {
		if err := a.do(TypeSetGroups, stale); !errors.Is(err, ErrRefused) {
			t.Errorf("generation %d after generation 1: %v", stale.Generation, err)
		}
	}
	if s.GroupsVersion != "v3" || s.GroupsGeneration != 1 || s.Groups["db"] != nil {
		t.Errorf("after reload: %s %d %v", s.GroupsVersion, s.GroupsGeneration, s.GroupOrder)
	}
	a.must(TypeSetGroups, SetGroups{Version: "v4", Generation: 2, Nodes: nodes, Groups: []GroupSpec{{Name: "web", Preferred: "n1"}}})
}

// A fenced node is offline and runs nothing: its blocked report (a stop
// that failed) no longer keeps the group where it is, and only a newer
// daemon brings it online again.
func TestFenced(t *testing.T) {
	a := fixture(t)
	s := a.s
	g := s.Groups["web"]
	a.must(TypeClaim, Claim{Node: "n1", Group: "web", AssignIndex: g.AssignIndex})
	a.must(TypeReport, Report{Node: "n1", Group: "web", State: "blocked", Op: "stop", Resource: "vip", Result: "error", Fail: true})
	a.must(TypeReport, Report{Node: "n2", Group: "web", State: "failed", Op: "probe"})
	if other := s.RunningElsewhere("web", "n2"); other != "n1" {
		t.Fatalf("blocked on n1: running elsewhere = %q", other)
	}
	if err := a.do(TypeFenced, Fenced{Node: "zz", Incarnation: 7, Reason: "x"}); !errors.Is(err, ErrRefused) {
		t.Errorf("fencing an unknown node: %v", err)
	}
	a.must(TypeFenced, Fenced{Node: "n1", Incarnation: 7, Reason: "fenced after a failed stop of web"})
	n := s.Nodes["n1"]
	if n.Online || n.Fenced != 7 || n.DownIndex != a.index || n.Reason != "fenced after a failed stop of web" {
		t.Errorf("fenced node: %+v", n)
	}
	if r := g.Reports["n1"]; r.State != "stopped" || r.Op != "fence" {
		t.Errorf("report of the fenced node: %+v", r)
	}
	if r := g.Reports["n2"]; r.State != "failed" || r.Op != "probe" {
		t.Errorf("another node's report changed: %+v", r)
	}
	if other := s.RunningElsewhere("web", "n2"); other != "" {
		t.Errorf("after the fence: running elsewhere = %q", other)
	}
	if s.Failcount("web", "n1") != 1 {
		t.Errorf("the fence forgot the failure: %d", s.Failcount("web", "n1"))
	}
	a.must(TypeNodeState, NodeState{Node: "n1", Online: ptr(true), Incarnation: 8, Reason: "restarted"})
	if n.Fenced != 0 || !n.Online {
		t.Errorf("back online: %+v", n)
	}
}

// Commands this version does not know — a newer type or version, or
// garbage — are skipped, counted, and change nothing.
func TestUnknownCommandSkipped(t *testing.T) {
	a := fixture(t)
	before, _ := json.Marshal(a.s)
	for _, data := range [][]byte{
		[]byte(`{"type":"teleport","v":1,"data":{}}`),
		[]byte(`{"type":"assign","v":99,"data":{"changes":[{"group":"web","to":"n2"}]}}`),
		[]byte(`not json`),
	} {
		a.index++
		if err := a.s.Apply(a.index, t0, data); !errors.Is(err, ErrSkipped) {
			t.Errorf("%s: %v, want ErrSkipped", data, err)
		}
	}
	if a.s.Skipped != 3 || a.s.Groups["web"].Owner != "n1" {
		t.Errorf("skipped %d, owner %s", a.s.Skipped, a.s.Groups["web"].Owner)
	}
	a.s.Skipped, a.s.Index = 0, 5
	after, _ := json.Marshal(a.s)
	if !bytes.Equal(before, after) {
		t.Errorf("state changed:\n%s\n%s", before, after)
	}
	// Through the raft.FSM interface too: no panic, error returned.
	f := New(slog.New(slog.DiscardHandler))
	if _, ok := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte(`{"type":"x","v":1}`)}).(error); !ok {
		t.Error("FSM.Apply of unknown command returned no error")
	}
}

type sink struct {
	bytes.Buffer
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { return nil }
func (s *sink) Close() error  { return nil }

// persist returns the snapshot f persists.
func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var out sink
	if err := snap.Persist(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestSnapshotRestore(t *testing.T) {
	a := fixture(t)
	a.must(TypeReport, Report{Node: "n1", Group: "web", State: "failed", Op: "monitor", Resource: "vip", Fail: true})
	f := New(slog.New(slog.DiscardHandler))
	f.state = a.s
	out := persist(t, f)
	g := New(slog.New(slog.DiscardHandler))
	changed := g.Changed()
	if err := g.Restore(io.NopCloser(bytes.NewReader(out))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("restore did not signal a change")
	}
	if tc := g.Since(0); !tc.All {
		t.Errorf("after a restore a reader redoes nothing: %+v", tc)
	}
	want, _ := json.Marshal(a.s)
	got, _ := json.Marshal(g.View())
	if !bytes.Equal(want, got) {
		t.Errorf("round trip differs:\n%s\n%s", want, got)
	}
	if g.Applied() != a.index {
		t.Errorf("applied %d, want %d", g.Applied(), a.index)
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte("{broken")))); err == nil {
		t.Error("broken snapshot restored")
	}
}

// A node's files digest is recorded by itself and touches nothing else;
// a NodeState without it leaves it alone (issue 25: status names every
// node whose files are not the cluster's).
func TestNodeFiles(t *testing.T) {
	a := fixture(t)
	before := *a.s.Nodes["n2"]
	a.must(TypeNodeState, NodeState{Node: "n2", Files: "f00d"})
	n := a.s.Nodes["n2"]
	if n.Files != "f00d" || n.Online != before.Online || n.Since != before.Since || n.Reason != before.Reason || n.Standby {
		t.Fatalf("files report changed more than the digest: %+v → %+v", before, *n)
	}
	a.must(TypeNodeState, NodeState{Node: "n2", Standby: ptr(true)})
	if n.Files != "f00d" || a.s.Clone().Nodes["n2"].Files != "f00d" {
		t.Errorf("files digest lost: %+v", *n)
	}
}
