package lrm

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/plugins/host"
)

// Handed is one resource's hand-over state, as its plugin exported it.
type Handed struct {
	Resource   string
	Generation uint64
	State      []byte
}

// SetHandover gives the manager where a start finds the hand-over state
// of a resource (the replicated one its group's previous owner exported):
// every start operation hands it to the plugin (pb.Instance.Handover).
// Set it before the first operation.
func (m *Manager) SetHandover(seed func(group, resource string) []byte) { m.seed = seed }

// Handover asks the running resources of group cfg for their hand-over
// state, passing the generation the caller already has (have, by
// resource id), and returns those that changed. more is false when no
// resource of the group has any (their plugins answered Unimplemented,
// and are not asked again): the caller need not ask again.
func (m *Manager) Handover(ctx context.Context, cfg config.Group, have map[string]uint64) (states []Handed, more bool, err error) {
	g, err := m.group(cfg)
	if err != nil {
		return nil, false, err
	}
	g.ops.Lock()
	defer g.ops.Unlock()
	var errs []error
	for i, b := range g.bindings {
		m.mu.Lock()
		none := m.noHandover[b.Plugin]
		m.mu.Unlock()
		g.mu.Lock()
		running := g.res[i].State == Running
		g.mu.Unlock()
		if none || !running {
			continue
		}
		in := m.instance(g, i, 0)
		res, err := m.host.Resource(b.Plugin).Handover(ctx, in, have[in.GetId()])
		switch {
		case errors.Is(err, host.ErrUnimplemented):
			m.mu.Lock()
			m.noHandover[b.Plugin] = true
			m.mu.Unlock()
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: handover: %w", in.GetId(), err))
		case res.GetChanged():
			states = append(states, Handed{Resource: in.GetId(), Generation: res.GetGeneration(), State: res.GetState()})
		}
	}
	return states, !allNone(m, g), errors.Join(errs...)
}

// allNone reports whether every plugin of g is known to have no
// hand-over state.
func allNone(m *Manager, g *group) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range g.bindings {
		if !m.noHandover[b.Plugin] {
			return false
		}
	}
	return true
}
