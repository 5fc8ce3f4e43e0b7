package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// A hand-over state is taken from the node whose start of the current
// assignment was accepted, only for a resource of the group and within
// the size cap; an empty one forgets it; it wakes no worker.
func TestHandover(t *testing.T) {
	a := fixture(t)
	blob := []byte{1, 2, 3}
	put := func(node, res string, state []byte) error {
		return a.do(TypeHandover, Handover{Node: node, Group: "web", Resource: res, Generation: 7, State: state})
	}
	// Assigned to n1 but not yet claimed: not taken.
	if err := put("n1", "vip", blob); !errors.Is(err, ErrRefused) {
		t.Fatalf("before the claim: %v", err)
	}
	a.must(TypeClaim, Claim{Node: "n1", Group: "web", AssignIndex: 5})
	for what, err := range map[string]error{
		"another node":     put("n2", "vip", blob),
		"unknown resource": put("n1", "nope", blob),
		"over the cap":     put("n1", "vip", make([]byte, MaxHandover+1)),
		"unknown group":    a.do(TypeHandover, Handover{Node: "n1", Group: "x", Resource: "vip", State: blob}),
	} {
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want refused", what, err)
		}
	}
	if len(a.s.Groups["web"].Handover) != 0 {
		t.Fatalf("refused states recorded: %+v", a.s.Groups["web"].Handover)
	}
	if err := put("n1", "vip", make([]byte, MaxHandover)); err != nil {
		t.Fatalf("at the cap: %v", err)
	}
	if err := put("n1", "vip", blob); err != nil {
		t.Fatal(err)
	}
	if h := a.s.Groups["web"].Handover["vip"]; !bytes.Equal(h.State, blob) || h.Node != "n1" || h.Generation != 7 || h.Index != a.index {
		t.Fatalf("recorded %+v", h)
	}
	// A copy of the state keeps it; the old owner may not overwrite its
	// successor's once the group moved.
	if c := a.s.Clone(); !bytes.Equal(c.Groups["web"].Handover["vip"].State, blob) {
		t.Fatal("clone lost the hand-over state")
	}
	a.must(TypeAssign, Assign{Changes: []Change{{Group: "web", From: "n1", To: "n2", Reason: "test"}}})
	if err := put("n1", "vip", []byte{9}); !errors.Is(err, ErrRefused) {
		t.Fatalf("old owner after the move: %v", err)
	}
	if h := a.s.Groups["web"].Handover["vip"]; !bytes.Equal(h.State, blob) {
		t.Fatalf("the state the new owner starts with changed: %+v", h)
	}
	a.must(TypeReport, Report{Node: "n1", Group: "web", State: "stopped", Op: "stop"})
	a.must(TypeClaim, Claim{Node: "n2", Group: "web", AssignIndex: a.s.Groups["web"].AssignIndex})
	if err := put("n2", "vip", nil); err != nil || len(a.s.Groups["web"].Handover) != 0 {
		t.Fatalf("an empty state forgets: %v %+v", err, a.s.Groups["web"].Handover)
	}

	// Through the FSM: no group touched, so no worker wakes.
	f := New(slog.New(slog.DiscardHandler))
	f.state = a.s
	b, _ := Encode(TypeHandover, Handover{Node: "n2", Group: "web", Resource: "vip", State: blob})
	if err, _ := f.Apply(&raft.Log{Index: a.index + 1, Type: raft.LogCommand, Data: b}).(error); err != nil {
		t.Fatal(err)
	}
	if tc := f.Since(a.index); !tc.Empty() {
		t.Errorf("a hand-over state touched %+v", tc)
	}
}

// The snapshot carries the states; a snapshot written before they
// existed restores without them; a resource or group removed from the
// definitions drops its state.
func TestHandoverSnapshotAndDefinitions(t *testing.T) {
	a := fixture(t)
	a.must(TypeSetGroups, SetGroups{Version: "v2", Nodes: []NodeSpec{{"n1", "member"}, {"n2", "member"}, {"w", "witness"}},
		Groups: []GroupSpec{{Name: "web", Preferred: "n1", Resources: []Resource{{ID: "vip", Type: "IPaddr"}, {ID: "lvs", Type: "ldirectord"}}},
			{Name: "db", Resources: []Resource{{ID: "dbip", Type: "IPaddr"}}}}})
	a.must(TypeAssign, Assign{Changes: []Change{{Group: "db", To: "n2", Reason: "test"}}})
	a.must(TypeClaim, Claim{Node: "n2", Group: "db", AssignIndex: a.index})
	a.must(TypeClaim, Claim{Node: "n1", Group: "web", AssignIndex: 5})
	for _, h := range []Handover{{Node: "n1", Group: "web", Resource: "vip", State: []byte("a")},
		{Node: "n1", Group: "web", Resource: "lvs", State: []byte("b")}, {Node: "n2", Group: "db", Resource: "dbip", State: []byte("c")}} {
		a.must(TypeHandover, h)
	}

	f := New(slog.New(slog.DiscardHandler))
	f.state = a.s
	out := persist(t, f)
	g := New(slog.New(slog.DiscardHandler))
	if err := g.Restore(io.NopCloser(bytes.NewReader(out))); err != nil {
		t.Fatal(err)
	}
	if h := g.View().Groups["web"].Handover; string(h["lvs"].State) != "b" || string(h["vip"].State) != "a" {
		t.Fatalf("restored %+v", h)
	}
	want, _ := json.Marshal(a.s)
	if got, _ := json.Marshal(g.View()); !bytes.Equal(want, got) {
		t.Errorf("round trip differs:\n%s\n%s", want, got)
	}

	// vigil reload: lvs leaves web, db leaves the cluster.
	a.must(TypeSetGroups, SetGroups{Version: "v3", Generation: 1, Nodes: []NodeSpec{{"n1", "member"}, {"n2", "member"}, {"w", "witness"}},
		Groups: []GroupSpec{{Name: "web", Preferred: "n1", Resources: []Resource{{ID: "vip", Type: "IPaddr"}}}}})
	if h := a.s.Groups["web"].Handover; len(h) != 1 || string(h["vip"].State) != "a" || a.s.Groups["db"] != nil {
		t.Fatalf("after the reload: %+v, db %v", h, a.s.Groups["db"])
	}

	// A snapshot of a build without hand-over states.
	old := `{"index":3,"groups_version":"v1","nodes":{"n1":{"name":"n1","role":"member","online":true,"standby":false,"maintenance":false,"since":"0001-01-01T00:00:00Z"}},"node_order":["n1"],"groups":{"web":{"name":"web","resources":[{"id":"vip","type":"IPaddr"}],"owner":"n1","assign_index":2,"since":"0001-01-01T00:00:00Z","claimed":"n1","claim_index":3,"reports":{}}},"group_order":["web"],"failures":null,"decisions":null,"skipped":0}`
	o := New(slog.New(slog.DiscardHandler))
	if err := o.Restore(io.NopCloser(strings.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(persist(t, o))); got != old {
		t.Errorf("old snapshot persisted differently:\n%s\n%s", got, old)
	}
	// and its log goes on with the new command.
	b, _ := Encode(TypeHandover, Handover{Node: "n1", Group: "web", Resource: "vip", State: []byte("x")})
	if err, _ := o.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: b}).(error); err != nil {
		t.Fatal(err)
	}
	if string(o.View().Groups["web"].Handover["vip"].State) != "x" {
		t.Error("state not recorded after an old snapshot")
	}
	// A newer version of the command is skipped, not applied.
	if err := o.View().Apply(5, t0, []byte(`{"type":"handover","v":2,"data":{}}`)); !errors.Is(err, ErrSkipped) {
		t.Errorf("handover v2: %v", err)
	}
}
