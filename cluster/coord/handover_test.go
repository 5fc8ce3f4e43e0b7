package coord

import (
	"bytes"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lrm"
)

// The owner replicates a resource's hand-over state at its start and then
// only when the generation changed, at most once per period; a group
// whose resources have none is asked once.
func TestHandoverReplicated(t *testing.T) {
	h := newHarness(t, "n1")
	h.lrm.handover = map[string][]lrm.Handed{"web": {{Resource: "vip", Generation: 1, State: []byte("one")}}}
	h.running()
	state := func() fsm.HandoverState { return h.group().Handover["vip"] }
	if s := state(); !bytes.Equal(s.State, []byte("one")) || s.Node != "n1" || s.Generation != 1 {
		t.Fatalf("not replicated at the start: %+v", s)
	}
	index := h.c.opt.FSM.Applied()

	// Within the period: not asked. Past it, unchanged: asked, nothing
	// committed; the step wants to look again a period later.
	asks := h.lrm.handoverAsks
	h.clock.add(handoverPeriod / 2)
	if wait, _, _, _ := h.step(); wait != handoverPeriod/2 || h.lrm.handoverAsks != asks {
		t.Fatalf("within the period: wait %v, asked %d times more", wait, h.lrm.handoverAsks-asks)
	}
	h.clock.add(handoverPeriod / 2)
	if wait, _, _, _ := h.step(); wait != handoverPeriod || h.lrm.handoverAsks != asks+1 || h.c.opt.FSM.Applied() != index {
		t.Fatalf("unchanged: wait %v, asked %d times more, %d entries", wait, h.lrm.handoverAsks-asks, h.c.opt.FSM.Applied()-index)
	}

	// A new generation is committed at the next period.
	h.lrm.mu.Lock()
	h.lrm.handover["web"] = []lrm.Handed{{Resource: "vip", Generation: 2, State: []byte("two")}}
	h.lrm.mu.Unlock()
	h.step()
	if s := state(); string(s.State) != "one" {
		t.Fatalf("committed before the period: %+v", s)
	}
	h.clock.add(handoverPeriod)
	h.step()
	if s := state(); string(s.State) != "two" || s.Generation != 2 {
		t.Fatalf("new generation not committed: %+v", s)
	}

	// Moved away: the group stops here and this node replicates no more
	// (nor could it: the FSM takes states from the claimant only).
	h.must(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "web", From: "n1", To: "n2"}}})
	h.lrm.mu.Lock()
	h.lrm.handover["web"] = []lrm.Handed{{Resource: "vip", Generation: 3, State: []byte("three")}}
	h.lrm.mu.Unlock()
	h.clock.add(handoverPeriod)
	h.step()
	h.clock.add(handoverPeriod)
	h.step()
	if s := state(); string(s.State) != "two" {
		t.Fatalf("replicated after the move: %+v", s)
	}
	err := h.c.Apply(t.Context(), fsm.TypeHandover, fsm.Handover{Node: "n1", Group: "web", Resource: "vip", Generation: 3, State: []byte("three")})
	if err == nil {
		t.Fatal("the FSM took a state from the old owner")
	}
}

func TestHandoverNone(t *testing.T) {
	h := newHarness(t, "n1")
	h.running()
	for range 5 {
		h.clock.add(2 * time.Second)
		if wait, _, _, _ := h.step(); wait != 2*time.Second {
			t.Fatalf("a group without hand-over state looks again in %v, want the monitor interval", wait)
		}
	}
	if h.lrm.handoverAsks != 1 {
		t.Fatalf("asked %d times for states it does not have", h.lrm.handoverAsks)
	}
}
