package consensus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// A two_node pair whose nodes each recovered alone in turn (RecoverAlone:
// the peer silent each time, a crash between) has two histories past the
// index where they parted. When they meet, the leader with the later term
// replaces the other's log with its own, and hashicorp/raft cannot: it
// installs the leader's snapshot but keeps the follower's log past it, and
// RecoverCluster left that log without the entry at its own recovery
// point. The follower then fails every AppendEntries at the snapshot's
// index ("failed to get previous log"), the leader sends the snapshot
// again, and so on every few milliseconds, forever: the pair never commits
// again (chaos seed 912003461).
//
// The Raft paper's rule for an installed snapshot is to discard the log
// unless it holds the snapshot's last entry. hashicorp/raft does not, so
// the node does it: an installed snapshot that the log contradicts — the
// log goes past the snapshot's index but has no entry there of its term —
// leaves that snapshot as the node's only one, and Raft restarts on the
// same stores with the log emptied. A leader only ever sends a snapshot
// to a follower whose log it found to match at no index it still holds,
// so nothing of the leader's history is lost, and the follower takes the
// rest of the log from the leader like a node whose disk was replaced.

// Raft finds where two logs part by the term of an entry at the same
// index (Log Matching), which two histories made alone can break: both
// nodes of a pair, parted in term T, recover alone in term T+1, and each
// writes its own entries at the same indexes in that same term. Merged,
// the follower would keep its own entries where the leader's term
// matches and take the leader's after them, applying a mix of both
// histories that neither node has, silently. So a node that recovers
// alone first moves its term to the wall clock's milliseconds, when that
// is later: the two histories' terms are then far apart (two recoveries
// in a pair are a deadtime apart at least, a lone voter's own elections
// add one per restart), no entry of one can match an entry of the other,
// and the history of the later takeover, the higher term, is the one that
// stands. Clocks of the two nodes that differ by about the time between
// the takeovers could still bring the terms together; only that.

// keyCurrentTerm is where hashicorp/raft keeps its current term in the
// stable store (raft.go; TestRecoverAloneTerm fails if that changes).
var keyCurrentTerm = []byte("CurrentTerm")

// aloneTerm moves the stored term to now's milliseconds if that is later,
// before a RecoverAlone restart.
func aloneTerm(stable raft.StableStore, now time.Time) error {
	cur, err := stable.GetUint64(keyCurrentTerm)
	if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return fmt.Errorf("current term: %w", err)
	}
	if t := uint64(now.UnixMilli()); t > cur {
		return stable.SetUint64(keyCurrentTerm, t)
	}
	return nil
}

// checkedSnapshots is the node's snapshot store: a snapshot that the log
// contradicts is reported to diverged when its sink closes.
type checkedSnapshots struct {
	raft.SnapshotStore
	dir      string // the file store's base directory
	logs     raft.LogStore
	diverged func(snapshotAt)
}

// snapshotAt names a snapshot by its last entry: a leader that sends it
// again and again (as hashicorp/raft does to a follower that fails its
// appends) makes a new one each time, under a new ID.
type snapshotAt struct{ index, term uint64 }

func (s *checkedSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &checkedSink{SnapshotSink: sink, store: s, index: index, term: term}, nil
}

type checkedSink struct {
	raft.SnapshotSink
	store       *checkedSnapshots
	index, term uint64
}

// Close completes the snapshot. A snapshot taken here, or written by
// RecoverCluster, always agrees with the log (it is made from it); an
// installed one may not.
func (k *checkedSink) Close() error {
	if err := k.SnapshotSink.Close(); err != nil {
		return err
	}
	s := k.store
	bad, err := contradicts(s.logs, k.index, k.term)
	if err != nil || !bad {
		return err
	}
	// Every other snapshot goes now, while Raft runs: a restart restores
	// the newest by term and index, which may be one of this node's own
	// history.
	if err := s.keepOnly(k.ID()); err != nil {
		return fmt.Errorf("raft: snapshot %s contradicts the log: %w", k.ID(), err)
	}
	s.diverged(snapshotAt{k.index, k.term})
	return nil
}

// contradicts reports whether logs go past index without holding the
// entry of term there.
func contradicts(logs raft.LogStore, index, term uint64) (bool, error) {
	last, err := logs.LastIndex()
	if err != nil || last <= index {
		return false, err
	}
	var e raft.Log
	switch err := logs.GetLog(index, &e); {
	case errors.Is(err, raft.ErrLogNotFound):
		return true, nil
	case err != nil:
		return false, err
	}
	return e.Term != term, nil
}

// keepOnly removes every completed snapshot but id.
func (s *checkedSnapshots) keepOnly(id string) error {
	metas, err := s.List()
	if err != nil {
		return err
	}
	for _, m := range metas {
		if m.ID == id {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, "snapshots", m.ID)); err != nil {
			return err
		}
	}
	return nil
}

// dropLog restarts Raft with an empty log after an installed snapshot
// contradicted it (the snapshot, the only one left, is restored). The
// report may be stale by the time it is read here — a RecoverAlone
// since, say, made a snapshot of its own and a history on it that must
// stay — so the newest snapshot must still be that one and still be
// contradicted, checked before Raft stops and again once it has.
func (n *Node) dropLog(at snapshotAt) {
	n.recovering.Lock()
	defer n.recovering.Unlock()
	if n.closed {
		return
	}
	if ok, err := n.contradicted(at); err != nil || !ok {
		return
	}
	var dropped uint64
	_, err := n.restart(func(*raft.Config) error {
		if ok, err := n.contradicted(at); err != nil || !ok {
			return err
		}
		first, err := n.store.FirstIndex()
		if err != nil {
			return err
		}
		if dropped, err = n.store.LastIndex(); err != nil {
			return err
		}
		return n.store.DeleteRange(first, dropped)
	})
	switch {
	case err != nil:
		n.log.Error("raft: the leader's snapshot contradicts this node's log, and dropping the log failed", "snapshot_index", at.index, "err", err)
		return
	case dropped == 0:
		return // no longer contradicted once Raft had stopped
	}
	n.log.Warn("raft: the leader's snapshot contradicts this node's log (its own history since the two nodes parted): log dropped, taking the leader's", "snapshot_index", at.index, "dropped_through", dropped)
}

// contradicted reports whether the newest snapshot is at and the log
// contradicts it.
func (n *Node) contradicted(at snapshotAt) (bool, error) {
	metas, err := n.snaps.List()
	if err != nil || len(metas) == 0 || metas[0].Index != at.index || metas[0].Term != at.term {
		return false, err
	}
	return contradicts(n.store, metas[0].Index, metas[0].Term)
}
