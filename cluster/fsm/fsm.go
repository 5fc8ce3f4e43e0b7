package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// FSM is the raft.FSM over State. Readers get copies (View) or wait for
// the next change (Changed).
type FSM struct {
	log *slog.Logger

	mu      sync.RWMutex
	state   *State
	changed chan struct{}
	applied atomic.Uint64
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
	err := f.state.Apply(l.Index, l.AppendedAt, l.Data)
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
