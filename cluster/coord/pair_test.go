package coord

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/placement"
	"github.com/vigil-ha/vigil/cluster/tiebreak"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// pairRaft is a two_node member's Raft: RecoverAlone leaves it the only
// voter, Rejoin adds the peer back.
type pairRaft struct {
	*simRaft
	mu                sync.Mutex
	recovers, rejoins int
}

func (r *pairRaft) RecoverAlone(time.Duration) error {
	r.mu.Lock()
	r.recovers++
	r.mu.Unlock()
	r.log.mu.Lock()
	r.log.voters = []consensus.Peer{{Name: r.self}}
	r.log.mu.Unlock()
	return nil
}

func (r *pairRaft) Rejoin(name string, _ time.Duration) error {
	r.mu.Lock()
	r.rejoins++
	r.mu.Unlock()
	r.log.mu.Lock()
	r.log.voters = append(r.log.voters, consensus.Peer{Name: name})
	r.log.mu.Unlock()
	return nil
}

func (r *pairRaft) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recovers, r.rejoins
}

// fakeFence confirms every node off; during runs inside Off.
type fakeFence struct {
	mu     sync.Mutex
	offs   int
	during func()
}

func (f *fakeFence) Off(context.Context, *pb.FenceRequest) (*pb.FenceResult, error) {
	f.mu.Lock()
	f.offs++
	during := f.during
	f.mu.Unlock()
	if during != nil {
		during()
	}
	return &pb.FenceResult{}, nil
}

func (f *fakeFence) Status(context.Context, *pb.FenceRequest) (*pb.FenceResult, error) {
	return &pb.FenceResult{Power: pb.Power_OFF}, nil
}

var nodesPair = []fsm.NodeSpec{{Name: "n1", Role: "member"}, {Name: "n2", Role: "member"}}

// pairHarness is n2 of a two_node pair (n1, n2; fence as tie-breaker),
// the leader of the log, with web on n1.
func pairHarness(t *testing.T) (*harness, *pairRaft, *fakeFence) {
	clock := &fakeClock{now: t0}
	h := &harness{t: t, clock: clock, lrm: newFakeLRM("n2", nil), lease: newFakeLease(), mem: newFakeMembers("n1", "n2")}
	h.log = newSimLog("n2", clock.Now)
	h.log.fsms["n2"] = fsm.New(quiet)
	h.log.voters = []consensus.Peer{{Name: "n1"}, {Name: "n2"}}
	r := &pairRaft{simRaft: &simRaft{log: h.log, self: "n2"}}
	f := &fakeFence{}
	h.c = New(Options{Self: "n2", Role: "member", Timing: timing.Timing{Keepalive: keepalive, Deadtime: 5 * keepalive},
		Placement: placement.Options{MigrationThreshold: 3},
		Groups:    []fsm.GroupSpec{web}, Nodes: nodesPair, FSM: h.log.fsms["n2"], Raft: r,
		Lease: h.lease, Members: h.mem, LRM: h.lrm, Clock: clock, Log: quiet,
		TieBreak: tiebreak.New(tiebreak.Options{Fence: f, FenceName: "fake", Log: quiet})})
	h.must(fsm.TypeSetGroups, fsm.SetGroups{Version: GroupsVersion([]fsm.GroupSpec{web}, nodesPair), Groups: []fsm.GroupSpec{web}, Nodes: nodesPair})
	for _, n := range []string{"n1", "n2"} {
		h.must(fsm.TypeNodeState, fsm.NodeState{Node: n, Online: ptr(true)})
	}
	h.must(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "web", To: "n1", Reason: "preferred"}}})
	return h, r, f
}

func (h *harness) setDeaf(node string, since, released time.Time) {
	h.lease.mu.Lock()
	h.lease.deaf[node] = [2]time.Time{since, released}
	h.lease.mu.Unlock()
}

func (h *harness) hears(node string) {
	h.lease.mu.Lock()
	delete(h.lease.deaf, node)
	h.lease.mu.Unlock()
}

func (h *harness) withheld(node string) bool {
	h.lease.mu.Lock()
	defer h.lease.mu.Unlock()
	return h.lease.withheld[node]
}

// A peer heard but deaf whose hold lapsed is taken over from — once the
// lapse has lasted DeafAfter and what it held is surely gone, with the
// tie-breakers' consent — and withheld every renewal from then on; it
// goes offline, its group moves, and it rejoins only once it hears the
// survivor again.
func TestPairDeafPeer(t *testing.T) {
	h, r, f := pairHarness(t)
	ctx := context.Background()
	window := h.c.opt.Timing.DeafAfter()
	// Heard, and not saying it is deaf and lapsed (as an older build
	// never does): nothing, however long.
	h.clock.add(10 * window)
	h.c.pair(ctx)
	if rec, _ := r.counts(); rec != 0 || h.withheld("n1") {
		t.Fatal("took over from a peer that did not say it lapsed")
	}
	since := h.clock.Now()
	h.setDeaf("n1", since, since.Add(window+200*time.Millisecond)) // a long overrun
	for _, d := range []time.Duration{0, window / 2, window} {
		h.clock.now = since.Add(d)
		h.c.pair(ctx)
		if rec, _ := r.counts(); rec != 0 {
			t.Fatalf("+%s: took over before the lapse lasted DeafAfter and what the peer held is gone", d)
		}
	}
	if !strings.Contains(h.c.pairNoteNow(), "waiting") {
		t.Errorf("note %q", h.c.pairNoteNow())
	}
	h.clock.now = since.Add(window + 200*time.Millisecond)
	// The peer applied more of the log than this node: recovering alone
	// would drop it.
	h.lease.applied["n1"] = h.c.opt.FSM.Applied() + 1
	h.c.pair(ctx)
	if rec, _ := r.counts(); rec != 0 || h.withheld("n1") || !strings.Contains(h.c.pairNoteNow(), "applied the log up to") {
		t.Fatalf("took over (%d) on a log shorter than the peer's: %s", rec, h.c.pairNoteNow())
	}
	h.lease.applied["n1"] = h.c.opt.FSM.Applied()
	h.c.pair(ctx)
	if rec, _ := r.counts(); rec != 1 || !h.withheld("n1") || f.offs != 1 {
		t.Fatalf("did not take over (recovers %d, withheld %v, fenced %d): %s", rec, h.withheld("n1"), f.offs, h.c.pairNoteNow())
	}
	// Running alone: the deaf peer goes offline, its group moves here.
	h.takenOffline("n1", "hold lapsed")
	// Still deaf: no rejoin (a quorum of two with a deaf member), still
	// withheld, still offline.
	h.c.pair(ctx)
	if _, rej := r.counts(); rej != 0 || !h.withheld("n1") {
		t.Fatalf("rejoined a deaf peer (%d) or renews it", rej)
	}
	if got := h.lead(); len(got) != 0 {
		t.Fatalf("deaf and offline: committed %v", got)
	}
	// It hears this node again: renewed as any peer, rejoins.
	h.hears("n1")
	h.c.pair(ctx)
	if _, rej := r.counts(); rej != 1 || h.withheld("n1") {
		t.Fatalf("heard again: rejoins %d, withheld %v", rej, h.withheld("n1"))
	}
	if voters, _ := h.c.opt.Raft.Voters(); !slices.ContainsFunc(voters, func(p consensus.Peer) bool { return p.Name == "n1" }) {
		t.Fatal("not a voter again")
	}
}

// The lapse must be one and the same from the wait to the takeover: one
// that ended while the tie-breakers were asked (the peer heard this node
// again) stops the takeover, and the peer is renewed again.
func TestPairDeafPeerHearsAgain(t *testing.T) {
	h, r, f := pairHarness(t)
	window := h.c.opt.Timing.DeafAfter()
	h.setDeaf("n1", t0, t0)
	h.clock.add(window)
	f.during = func() {
		if !h.withheld("n1") {
			t.Error("tie-breakers asked while the peer is still renewed")
		}
		h.setDeaf("n1", t0.Add(window), t0.Add(window)) // a new run: it heard us in between
	}
	h.c.pair(context.Background())
	if rec, _ := r.counts(); rec != 0 || h.withheld("n1") {
		t.Fatalf("took over (%d) on a lapse that ended, or still withheld (%v)", rec, h.withheld("n1"))
	}
	if !strings.Contains(h.c.pairNoteNow(), "hears this node again") {
		t.Errorf("note %q", h.c.pairNoteNow())
	}
	// Without any tie-breaker nothing moves either.
	h2, r2, _ := pairHarness(t)
	h2.c.opt.TieBreak = tiebreak.New(tiebreak.Options{Log: quiet})
	h2.setDeaf("n1", t0, t0)
	h2.clock.add(window)
	h2.c.pair(context.Background())
	if rec, _ := r2.counts(); rec != 0 || h2.withheld("n1") {
		t.Fatal("took over from a deaf peer with no tie-breaker")
	}
	// Deaf, but still a voter (no takeover): the leader leaves it be.
	if h2.c.deafAlone("n1") {
		t.Error("deafAlone with n1 a voter")
	}
}
