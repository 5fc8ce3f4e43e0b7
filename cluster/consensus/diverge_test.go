package consensus

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestContradicts(t *testing.T) {
	logs := func(terms ...uint64) raft.LogStore {
		s := raft.NewInmemStore()
		for i, term := range terms {
			if term == 0 {
				continue // a hole
			}
			if err := s.StoreLog(&raft.Log{Index: uint64(i + 1), Term: term}); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	for _, c := range []struct {
		name        string
		log         raft.LogStore
		index, term uint64
		want        bool
	}{
		{"empty log", logs(), 3, 2, false},
		{"log behind the snapshot", logs(1, 1), 3, 2, false},
		{"log ends at the snapshot", logs(1, 1, 1), 3, 2, false},
		{"log holds the snapshot's entry", logs(1, 2, 2, 3), 3, 2, false},
		{"entry of another term there", logs(1, 2, 4, 4), 3, 2, true},
		{"no entry there, more past it", logs(0, 0, 0, 4, 4), 3, 2, true},
	} {
		got, err := contradicts(c.log, c.index, c.term)
		if err != nil || got != c.want {
			t.Errorf("%s: contradicts = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// TestPairHistoriesMerge: both nodes of a pair recover alone in turn (a
// crash between), each commits alone, then they meet. The history of the
// later takeover replaces the other whole, whether the two recovered at
// the same index (chaos seed 912003461), the later at an earlier index
// or at a later one. Before diverge.go the follower failed every
// AppendEntries at the leader's snapshot index forever, or, both in the
// same term, kept its own entries under the leader's.
func TestPairHistoriesMerge(t *testing.T) {
	for _, c := range []struct {
		name string
		only int // the node with an entry the other lacks, or -1
	}{
		{"same point", -1},
		{"later one recovered earlier", 0},
		{"later one recovered later", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPair(t)
			waitLeader(t, p.ms)
			p.set(0, "both")
			waitVersion(t, p.ctx, p.ms[1], "both")
			if c.only >= 0 {
				// A command only one node appends: it recovers past it.
				if !p.ms[c.only].node.IsLeader() {
					if err := p.ms[1-c.only].node.StepDown(); err != nil {
						t.Fatal(err)
					}
					waitLeader(t, p.ms[c.only:c.only+1])
				}
				p.stop(1 - c.only)
				short, cancel := context.WithTimeout(p.ctx, 100*time.Millisecond)
				_ = p.setCtx(short, c.only, "uncommitted")
				cancel()
				p.start(1 - c.only)
			}
			p.stop(1)
			p.recoverAlone(0)
			p.set(0, "n1 alone")
			p.stop(0)
			p.start(1)
			p.recoverAlone(1)
			p.set(1, "n2 alone")
			p.start(0)
			waitLeader(t, p.ms[:1]) // alone in its configuration
			p.merge(1)
		})
	}
}

// TestRecoverAloneTerm: a node that recovers alone leads in a term of the
// wall clock's milliseconds (diverge.go), read from where hashicorp/raft
// keeps it.
func TestRecoverAloneTerm(t *testing.T) {
	p := newPair(t)
	waitLeader(t, p.ms)
	p.stop(1)
	before := uint64(time.Now().UnixMilli())
	p.recoverAlone(0)
	term, err := strconv.ParseUint(p.ms[0].node.Stats()["term"], 10, 64)
	if err != nil || term <= before {
		t.Fatalf("term %d (%v) after recovering alone; want past %d", term, err, before)
	}
}

// TestDropLogStale: a report of a contradicted snapshot read after the
// node made a newer one (RecoverAlone, here) drops nothing: the history
// the node leads since stays, and it keeps leading.
func TestDropLogStale(t *testing.T) {
	p := newPair(t)
	waitLeader(t, p.ms)
	p.set(0, "both")
	p.stop(1)
	metas, err := p.ms[0].node.snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	p.recoverAlone(0)
	p.set(0, "alone")
	last := p.ms[0].node.raft().LastIndex()
	var old snapshotAt // none yet, or the one before the recovery
	if len(metas) > 0 {
		old = snapshotAt{metas[0].Index, metas[0].Term}
	}
	p.ms[0].node.dropLog(old)
	if got := p.ms[0].node.raft().LastIndex(); got != last || !p.ms[0].node.IsLeader() {
		t.Fatalf("after a stale report: last index %d (was %d), leader %v", got, last, p.ms[0].node.IsLeader())
	}
	p.set(0, "still")
}
