package lrm

import (
	"context"
	"errors"
	"maps"
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

	// The host's lease page carries every renewal to the plugins that
	// read it (pb.HoldResult.reads_page); Hold calls go to them only
	// for what the page cannot do (see RunLease).
	shared  int64           // release_at_ns last written to the page; 0: none
	reads   map[string]bool // plugins that read the page, by their last Hold
	allRead bool            // every plugin that keeps a lease here reads it
	earlier bool            // the lease moved earlier than the page had it
	due     map[string]bool // plugins an operation ran on since their last Hold

	// lapsed is when a renewal last came after the lease had ended (not
	// merely after until): a gap in which the node may have been taken
	// offline and its groups started elsewhere (SAFETY.md rule 3).
	lapsed time.Time
}

// keptSince reports whether the lease holds at now and has had no gap
// since t: what was started at t may be started again after a release.
func (l *lease) keptSince(t, now time.Time) bool {
	return l.seq > 0 && now.Before(l.until) && !l.lapsed.After(t)
}

// holdEvery is how often a plugin that reads the lease page is still
// called: Hold's answer carries what it released by itself (a daemon
// that stalled past its lease) for the LRM to start again.
const holdEvery = time.Second

// ReleaseTime is how long the resource plugins, by their own last
// measure, take to release all they hold here, one after another.
func (m *Manager) ReleaseTime() time.Duration {
	m.lease.mu.Lock()
	defer m.lease.mu.Unlock()
	return m.lease.releaseTime()
}

func (l *lease) releaseTime() time.Duration {
	var sum time.Duration
	for _, d := range l.release {
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
	now := time.Now()
	if l.seq > 0 && !now.Before(l.until.Add(l.budget)) && now.Before(until) {
		// Renewed after the lease's end, or seen only then (the caller
		// stalled): a gap either way.
		l.lapsed = now
	}
	if until.IsZero() {
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
	if m.host != nil {
		le := l.pb()
		if m.host.ShareLease(le) {
			l.earlier = l.earlier || l.shared != 0 && le.ReleaseAtNs < l.shared
			l.shared = le.ReleaseAtNs
			if l.allRead && !l.earlier {
				return // a renewal, and the page is how it reaches every plugin
			}
		}
	}
	l.wake()
}

func (l *lease) wake() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// ranOp notes that an operation ran on plugin: its next Hold answer
// carries its new release time, which the node's overrun must not
// underestimate, so RunLease calls it at once.
func (m *Manager) ranOp(plugin string) {
	l := &m.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seq == 0 {
		return // no lease: nothing to hold
	}
	l.due[plugin] = true
	l.wake()
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
	l := &m.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pb()
}

func (l *lease) pb() *pb.Lease {
	if l.seq == 0 {
		return nil
	}
	at := l.until.Add(l.budget - min(releaseLead*l.releaseTime(), l.budget))
	return &pb.Lease{Seq: l.seq, ReleaseAtNs: int64(plugins.BootTime(at)), LifetimeNs: int64(l.life)}
}

// RunLease carries the lease to the resource plugins that run something
// here, until ctx ends, and starts again the groups a plugin released
// while this node still holds them (a renewal that came too late).
// Plugins that read the host's lease page get renewals there; they are
// called only when the lease moved earlier (lost: they release at once),
// after an operation (their release time changed) and every holdEvery.
// Others are called on every change, as they have no other way to learn
// of it.
func (m *Manager) RunLease(ctx context.Context) {
	tick := time.NewTicker(holdEvery)
	defer tick.Stop()
	for {
		every := false
		select {
		case <-ctx.Done():
			return
		case <-m.lease.changed:
		case <-tick.C:
			every = true
		}
		le := m.pbLease()
		names := m.leasedPlugins()
		m.lease.mu.Lock()
		for name := range m.lease.release {
			if !slices.Contains(names, name) {
				delete(m.lease.release, name) // runs nothing here any more
			}
		}
		earlier, due, reads := m.lease.earlier, m.lease.due, maps.Clone(m.lease.reads)
		m.lease.earlier, m.lease.due = false, map[string]bool{}
		m.lease.mu.Unlock()
		for _, name := range names {
			if reads[name] && !every && !earlier && !due[name] {
				continue
			}
			res, err := m.host.Resource(name).Hold(ctx, le, holdTimeout)
			switch {
			case errors.Is(err, host.ErrUnimplemented):
				m.lease.mu.Lock()
				m.lease.none[name] = true
				m.lease.mu.Unlock()
			case err != nil:
				if ctx.Err() == nil {
					m.log.Warn("cannot renew the lease in a plugin", "plugin", name, "err", err)
				}
			default:
				m.lease.mu.Lock()
				m.lease.release[name] = time.Duration(res.GetReleaseNs())
				m.lease.reads[name] = res.GetReadsPage()
				m.lease.mu.Unlock()
				if len(res.GetReleased()) > 0 {
					m.released(ctx, name, res.GetReleased())
				}
			}
		}
		m.lease.mu.Lock()
		all := true
		for _, name := range names {
			all = all && m.lease.reads[name]
		}
		m.lease.allRead = all
		m.lease.mu.Unlock()
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
	now := time.Now()
	holds := now.Before(m.lease.until)
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
		wanted, cfg, started := g.wanted, g.cfg, g.started
		g.mu.Unlock()
		if !wanted {
			continue
		}
		m.lease.mu.Lock()
		kept := m.lease.keptSince(started, now)
		m.lease.mu.Unlock()
		if !kept {
			// The lease ended before it was renewed: the group may have
			// been given to another node meanwhile, so starting it
			// here again is the coordinator's to decide, through a
			// claim. It sees the group stopped.
			m.log.Warn("not starting a released group again: the lease had a gap since it started", "group", cfg.Name)
			g.set(true, Stopped)
			continue
		}
		go func() {
			if err := m.Start(ctx, cfg); err != nil {
				m.log.Error("starting again after a release failed", "group", cfg.Name, "err", err)
			}
		}()
	}
}
