package daemon

import (
	"context"
	"log/slog"
	"testing"

	"github.com/vigil-ha/vigil/cluster/fsm"
)

// A beat goes out once for each entry that takes a node offline, and for
// nothing else.
func TestBeatOnDown(t *testing.T) {
	f := fsm.New(slog.New(slog.DiscardHandler))
	apply := applier(t, f)
	on, off := true, false
	apply(fsm.TypeSetGroups, fsm.SetGroups{Version: "v", Nodes: []fsm.NodeSpec{{Name: "n1", Role: "member"}, {Name: "n2", Role: "member"}}, Groups: []fsm.GroupSpec{{Name: "a"}}})
	apply(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Online: &on})
	apply(fsm.TypeNodeState, fsm.NodeState{Node: "n2", Online: &on})
	beats := make(chan uint64, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- beatOnDown(ctx, f, func() { beats <- f.Applied() }) }()
	defer func() { cancel(); <-done }()

	apply(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Online: &off, Reason: "dead"})
	down := f.Applied()
	if got := <-beats; got < down {
		t.Fatalf("beat at applied index %d, before the offline entry %d", got, down)
	}
	// Nothing about a node going offline: no beat. Then n1 back and
	// offline again: one more.
	apply(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "a", To: "n2"}}})
	apply(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Online: &on})
	apply(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Online: &off, Reason: "dead"})
	down = f.Applied()
	if got := <-beats; got < down {
		t.Fatalf("beat at applied index %d, before the second offline entry %d", got, down)
	}
	select {
	case got := <-beats:
		t.Fatalf("a beat more, at applied index %d", got)
	default:
	}
}
