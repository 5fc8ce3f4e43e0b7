package fsm

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// FSM is the raft.FSM over State. Readers get copies (View), read in
// place (Read), wait for the next change (Changed) and ask what changed
// since they last looked (Since).
type FSM struct {
	log *slog.Logger

	mu      sync.RWMutex
	state   *State
	changed chan struct{}
	applied atomic.Uint64
	journal []entry // what the latest entries changed, oldest first
	names   int     // group names in the journal
	floor   uint64  // changes up to this index are no longer in the journal
}

// entry is what one applied log entry changed.
type entry struct {
	index uint64
	touch
}

// The journal keeps at most keepJournal entries naming at most keepNames
// groups in all (batches name many): a reader further behind redoes all.
const (
	keepJournal = 4096
	keepNames   = 16384
)

// Touched is what the entries after the index a reader passed to Since,
// up to To, changed: readers redo only the work those changes affect.
type Touched struct {
	To uint64
	// All: anything may have changed (a snapshot was restored, or the
	// reader is further behind than the journal reaches).
	All bool
	// Nodes: a node's flags or online state, or the set of nodes.
	Nodes bool
	// Defs: the group definitions; every group counts as changed.
	Defs bool
	// Groups holds the groups whose record changed.
	Groups map[string]bool
}

// Group reports whether group name may have changed.
func (t Touched) Group(name string) bool { return t.All || t.Defs || t.Groups[name] }

// Empty reports whether nothing changed.
func (t Touched) Empty() bool { return !t.All && !t.Nodes && !t.Defs && len(t.Groups) == 0 }

// Since returns what changed after index from, up to the last applied
// entry (Touched.To: pass it to the next call).
func (f *FSM) Since(from uint64) Touched {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := Touched{To: f.applied.Load()}
	if from < f.floor {
		t.All = true
		return t
	}
	// The journal is in index order: skip what the reader has seen.
	i, _ := slices.BinarySearchFunc(f.journal, from+1, func(e entry, x uint64) int { return cmp.Compare(e.index, x) })
	for _, e := range f.journal[i:] {
		t.All, t.Nodes, t.Defs = t.All || e.all, t.Nodes || e.nodes, t.Defs || e.defs
		for _, g := range e.groups {
			if t.Groups == nil {
				t.Groups = map[string]bool{}
			}
			t.Groups[g] = true
		}
	}
	return t
}

// New returns an FSM over an empty state.
func New(log *slog.Logger) *FSM {
	return &FSM{log: log, state: NewState(), changed: make(chan struct{})}
}

// Apply implements raft.FSM. The returned value is nil or the error that
// kept the command from taking effect.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	f.mu.Lock()
	e := entry{index: l.Index}
	err := f.state.apply(l.Index, l.AppendedAt, l.Data, &e.touch)
	if e.all || e.nodes || e.defs || len(e.groups) > 0 {
		f.journal = append(f.journal, e)
		f.names += len(e.groups)
		for len(f.journal) > keepJournal || f.names > keepNames {
			// Drop the older half: a reader that far behind redoes all.
			drop := max(1, len(f.journal)/2)
			for _, old := range f.journal[:drop] {
				f.names -= len(old.groups)
			}
			f.floor = f.journal[drop-1].index
			f.journal = slices.Delete(f.journal, 0, drop)
		}
	}
	f.notifyLocked(l.Index)
	f.mu.Unlock()
	if errors.Is(err, ErrSkipped) {
		f.log.Warn("raft entry skipped", "index", l.Index, "err", err)
	}
	return err
}

func (f *FSM) notifyLocked(index uint64) {
	f.applied.Store(index)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Applied is the index of the last entry applied.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// View returns a copy of the state.
func (f *FSM) View() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone()
}

// Read runs fn on the live state under the read lock; fn must not keep it.
func (f *FSM) Read(fn func(*State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Changed returns a channel closed at the next applied change.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.state)
	if err != nil {
		return nil, fmt.Errorf("fsm snapshot: %w", err)
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s := NewState()
	if err := json.NewDecoder(rc).Decode(s); err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	if s.Nodes == nil {
		s.Nodes = map[string]*Node{}
	}
	if s.Groups == nil {
		s.Groups = map[string]*Group{}
	}
	for _, g := range s.Groups {
		if g.Reports == nil {
			g.Reports = map[string]NodeReport{}
		}
	}
	f.mu.Lock()
	f.state = s
	// Readers redo everything: the journal says nothing about a restore.
	// (Restoring an older state forces it until the index passes again.)
	f.journal, f.names = nil, 0
	if old := f.applied.Load(); old >= s.Index {
		f.floor = old + 1
	} else {
		f.floor = s.Index
	}
	f.notifyLocked(s.Index)
	f.mu.Unlock()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("fsm snapshot: %w", err)
	}
	return sink.Close()
}

func (snapshot) Release() {}
