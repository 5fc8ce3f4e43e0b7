package lrm

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// holdTimeout bounds one Hold call: a plugin that does not answer in time
// keeps the release instant it had, which only makes it release sooner.
const holdTimeout = 2 * time.Second

// lease is the node's lease as the LRM hands it to resource plugins
// (pb.Lease): every operation carries it, and a renewer sends it to the
// plugins that run something whenever it changes, so that a plugin whose
// resources only the lease holder may have releases them by itself when
// the daemon stops renewing — it died, hangs, or lost its quorum.
type lease struct {
	mu      sync.Mutex
	seq     uint64        // 0: never set (operations outside the cluster's control)
	until   time.Time     // when the daemon must have begun stopping
	budget  time.Duration // the stop budget: until is the lease's end less this
	life    time.Duration // the kernel address lifetime (pb.Lease.lifetime_ns)
	changed chan struct{}
	none    map[string]bool // plugins that keep no lease (answered Unimplemented)
	// release is what the plugins last said releasing everything they
	// hold would take, by plugin.
	release map[string]time.Duration
}

// ReleaseTime is how long the resource plugins, by their own last
// measure, take to release all they hold here, one after another.
func (m *Manager) ReleaseTime() time.Duration {
	m.lease.mu.Lock()
	defer m.lease.mu.Unlock()
	var sum time.Duration
	for _, d := range m.lease.release {
		sum += d
	}
	return sum
}

// Hold sets the instant at which this node must begin stopping its
// resources unless renewed (lease.Tracker.HoldUntil; zero: no lease). The
// coordinator calls it whenever its lease moves; RunLease carries it to
// the plugins (pbLease says when they release).
func (m *Manager) Hold(until time.Time) {
	l := &m.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.IsZero() {
		now := time.Now()
		if l.seq > 0 && !l.until.After(now) {
			return // already out
		}
		// No lease: whatever the stop budget, the plugins release now.
		until = now.Add(-l.budget)
	}
	if l.seq > 0 && until.Equal(l.until) {
		return
	}
	l.seq++
	l.until = until
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// releaseLead is how many times their own measure of the release the
// plugins begin it before the lease ends: an underestimate is unsafe.
const releaseLead = 2

// Overrun is how long past the end of its lease this node may still hold
// resources: the part of the plugins' release (releaseLead times their
// measure) that does not fit in the stop budget (lease.Options.Overrun).
func (m *Manager) Overrun() time.Duration {
	rt := m.ReleaseTime()
	m.lease.mu.Lock()
	defer m.lease.mu.Unlock()
	return max(0, releaseLead*rt-m.lease.budget)
}

// SetStopBudget says how long before the end of the lease Hold's instant
// is (lease.Options.StopBudget).
func (m *Manager) SetStopBudget(d time.Duration) {
	m.lease.mu.Lock()
	m.lease.budget = d
	m.lease.mu.Unlock()
}

// SetAddressLifetime sets the kernel lifetime the plugins give what they
// hold and keep extending under the lease (ha.toml address_lifetime).
func (m *Manager) SetAddressLifetime(d time.Duration) {
	m.lease.mu.Lock()
	m.lease.life = d
	m.lease.mu.Unlock()
}

// pbLease is the current lease in the plugins' terms; nil before any.
// The plugins release as late as their own measure of the release lets
// them finish by the lease's end (twice it before), and never before
// the daemon begins stopping: a renewal that reaches them a little late
// then costs nothing. A release longer than the stop budget is covered
// by the overrun the node announces (lease.Options.Overrun).
func (m *Manager) pbLease() *pb.Lease {
	rt := m.ReleaseTime()
	l := &m.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seq == 0 {
		return nil
	}
	at := l.until.Add(l.budget - min(releaseLead*rt, l.budget))
	return &pb.Lease{Seq: l.seq, ReleaseAtNs: int64(plugins.BootTime(at, time.Now())), LifetimeNs: int64(l.life)}
}

// RunLease sends every change of the lease to the resource plugins that
// run something here, until ctx ends, and starts again the groups a
// plugin released while this node still holds them (a renewal that came
// too late).
func (m *Manager) RunLease(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.lease.changed:
		}
		le := m.pbLease()
		names := m.leasedPlugins()
		m.lease.mu.Lock()
		for name := range m.lease.release {
			if !slices.Contains(names, name) {
				delete(m.lease.release, name) // runs nothing here any more
			}
		}
		m.lease.mu.Unlock()
		for _, name := range names {
			res, err := m.host.Resource(name).Hold(ctx, le, holdTimeout)
			if err == nil {
				m.lease.mu.Lock()
				m.lease.release[name] = time.Duration(res.GetReleaseNs())
				m.lease.mu.Unlock()
			}
			switch {
			case errors.Is(err, host.ErrUnimplemented):
				m.lease.mu.Lock()
				m.lease.none[name] = true
				m.lease.mu.Unlock()
			case err != nil:
				if ctx.Err() == nil {
					m.log.Warn("cannot renew the lease in a plugin", "plugin", name, "err", err)
				}
			case len(res.GetReleased()) > 0:
				m.released(ctx, name, res.GetReleased())
			}
		}
	}
}

// leasedPlugins lists the resource plugins of groups that may run here
// and that keep a lease.
func (m *Manager) leasedPlugins() []string {
	m.lease.mu.Lock()
	none := m.lease.none
	m.lease.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, g := range m.groups {
		g.mu.Lock()
		active := g.wanted || Active(g.state)
		g.mu.Unlock()
		if !active {
			continue
		}
		for _, b := range g.bindings {
			if !none[b.Plugin] && !slices.Contains(out, b.Plugin) {
				out = append(out, b.Plugin)
			}
		}
	}
	return out
}

// released handles instances a plugin gave up when its lease ran out.
// The groups are still wanted here if the renewal was only late: they are
// started again (a monitor first, as after a plugin restart). Without
// the lease the coordinator is stopping them anyway.
func (m *Manager) released(ctx context.Context, plugin string, ids []string) {
	m.lease.mu.Lock()
	holds := time.Now().Before(m.lease.until)
	m.lease.mu.Unlock()
	// (until, not the plugins' later instant: a group started now
	// must have its lease for a while.)
	m.mu.Lock()
	var todo []*group
	for _, g := range m.groups {
		for i, b := range g.bindings {
			if b.Plugin == plugin && slices.Contains(ids, g.res[i].ID) && !slices.Contains(todo, g) {
				todo = append(todo, g)
			}
		}
	}
	m.mu.Unlock()
	m.log.Warn("a plugin released resources: the lease was not renewed in time", "plugin", plugin, "instances", len(ids), "groups", len(todo), "lease_held", holds)
	if !holds {
		return
	}
	for _, g := range todo {
		g.mu.Lock()
		wanted, cfg := g.wanted, g.cfg
		g.mu.Unlock()
		if !wanted {
			continue
		}
		go func() {
			if err := m.Start(ctx, cfg); err != nil {
				m.log.Error("starting again after a release failed", "group", cfg.Name, "err", err)
			}
		}()
	}
}
