package lrm

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Reconfigure brings a group this node has seen in line with a changed
// definition (`vigil reload`) and reports whether it differed. On a
// running group the resources are compared left to right: those that
// are unchanged stay; one whose changed parameters its plugin declares
// reloadable is reloaded in place (an ldirectord table is updated by
// difference, mon restarts its schedules); from the first resource that
// is new, removed, reordered or changed otherwise, the old resources are
// stopped right to left and the new ones started left to right, as a
// group's order demands. A group that does not run here takes the new
// definition and probes what changed (so a standby's ldirectord checks
// the new real servers). A failed start stops the group, as Start does.
func (m *Manager) Reconfigure(ctx context.Context, cfg config.Group) (bool, error) {
	m.mu.Lock()
	g := m.groups[cfg.Name]
	m.mu.Unlock()
	if g == nil {
		return false, nil // first sight: bound as it is
	}
	g.ops.Lock()
	defer g.ops.Unlock()
	if reflect.DeepEqual(g.cfg, cfg) {
		return false, nil
	}
	bindings, err := bind(cfg)
	if err != nil {
		return true, err
	}
	g.mu.Lock()
	state := g.state
	g.mu.Unlock()
	keep, reload := m.plan(ctx, g, cfg, bindings)
	if state != Running {
		// Nothing to keep in order; stop only removed resources that
		// a probe found running.
		var errs []error
		for i := len(g.bindings) - 1; i >= 0; i-- {
			if g.res[i].State == Running && !slices.ContainsFunc(cfg.Resources, func(r config.Resource) bool { return r.ID == g.res[i].ID }) {
				_, err := m.op(ctx, g, i, "stop")
				errs = append(errs, err)
			}
		}
		m.swap(g, cfg, bindings, keep)
		for i := range bindings {
			if i >= keep || slices.Contains(reload, i) {
				m.op(ctx, g, i, "monitor")
			}
		}
		if err := errors.Join(errs...); err != nil {
			g.set(false, Blocked)
			return true, fmt.Errorf("group %s: stop of a removed resource failed, group blocked: %w", cfg.Name, err)
		}
		return true, nil
	}
	m.log.Info("applying a changed group definition", "group", cfg.Name, "unchanged", keep-len(reload), "reload", len(reload), "restart", len(g.bindings)-keep, "start", len(bindings)-keep)
	if err := m.stopFrom(ctx, g, keep); err != nil {
		g.set(true, Blocked)
		return true, err
	}
	m.swap(g, cfg, bindings, keep)
	from := keep
	for _, i := range reload {
		if _, err := m.op(ctx, g, i, "reload"); err != nil {
			// Not applied in place: restart from here.
			m.log.Warn("reload failed; restarting the resource and those after it", "group", cfg.Name, "resource", cfg.Resources[i].ID, "err", err)
			if err := m.stopFrom(ctx, g, i); err != nil {
				g.set(true, Blocked)
				return true, err
			}
			from = i
			break
		}
	}
	for i := from; i < len(bindings); i++ {
		if _, err := m.op(ctx, g, i, "start"); err != nil {
			return true, m.startFailed(ctx, g, err)
		}
	}
	g.set(true, Running)
	return true, nil
}

// plan returns how many leading resources of g stay (unchanged, or
// reloaded in place: the indexes in reload).
func (m *Manager) plan(ctx context.Context, g *group, cfg config.Group, bindings []config.Binding) (keep int, reload []int) {
	for ; keep < len(g.bindings) && keep < len(bindings); keep++ {
		ob, nb := g.bindings[keep], bindings[keep]
		or, nr := g.cfg.Resources[keep], cfg.Resources[keep]
		if or.ID != nr.ID || ob.Plugin != nb.Plugin || ob.Agent != nb.Agent || !slices.Equal(ob.Args, nb.Args) {
			return keep, reload
		}
		changed := changedParams(ob.Params, nb.Params)
		if len(changed) == 0 {
			continue // a new timeout or interval needs no operation
		}
		if !m.reloadable(ctx, nb, changed) {
			return keep, reload
		}
		reload = append(reload, keep)
	}
	return keep, reload
}

func changedParams(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// reloadable reports whether b's plugin applies a change of these
// parameters with its reload operation (its meta-data lists a reload
// action and marks each of them reloadable).
func (m *Manager) reloadable(ctx context.Context, b config.Binding, changed []string) bool {
	meta, err := m.host.Resource(b.Plugin).MetaData(ctx, b.Agent)
	if err != nil {
		return false
	}
	if !slices.ContainsFunc(meta.GetActions(), func(a *pb.Action) bool { return a.GetName() == "reload" }) {
		return false
	}
	for _, name := range changed {
		if !slices.ContainsFunc(meta.GetParameters(), func(p *pb.Parameter) bool { return p.GetName() == name && p.GetReloadable() }) {
			return false
		}
	}
	return true
}

// stopFrom stops g's resources from index i on, right to left.
func (m *Manager) stopFrom(ctx context.Context, g *group, i int) error {
	var errs []error
	for j := len(g.bindings) - 1; j >= i; j-- {
		if _, err := m.op(ctx, g, j, "stop"); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("group %s: stop failed, group blocked: %w", g.cfg.Name, errors.Join(errs...))
	}
	return nil
}

// swap installs the new definition; the first keep resources keep their
// status.
func (m *Manager) swap(g *group, cfg config.Group, bindings []config.Binding, keep int) {
	res := make([]ResourceStatus, len(bindings))
	for i, r := range cfg.Resources {
		if i < keep {
			res[i] = g.res[i]
		} else {
			res[i] = ResourceStatus{ID: r.ID, Type: r.Type, Plugin: bindings[i].Plugin, State: Unknown}
		}
	}
	m.mu.Lock()
	g.mu.Lock()
	g.cfg, g.bindings, g.res = cfg, bindings, res
	g.mu.Unlock()
	m.mu.Unlock()
}
