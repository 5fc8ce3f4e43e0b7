package daemon

import (
	"context"

	"github.com/vigil-ha/vigil/cluster/alerts"
	"github.com/vigil-ha/vigil/monitors"
)

// watchEvents feeds the alert routes: this node's heartbeat links, and,
// while this node leads, the changes of the replicated state (so each is
// told once for the cluster).
func (d *Daemon) watchEvents(ctx context.Context) error {
	if len(d.cfg.HA.Alerts) == 0 {
		return nil
	}
	evs, unsubscribe := d.tracker.Subscribe(64)
	defer unsubscribe()
	links := alerts.NewLinks(d.cfg.HA.Cluster, d.cfg.Self.Name)
	changed := d.fsm.Changed()
	prev := d.fsm.View()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-evs:
			if !ok {
				return nil
			}
			if a, ok := links.Event(ev); ok {
				d.alerts.Emit(a)
			}
		case <-changed:
			changed = d.fsm.Changed()
			cur := d.fsm.View()
			if d.raft.IsLeader() {
				for _, a := range alerts.Cluster(d.cfg.HA.Cluster, prev, cur) {
					d.alerts.Emit(a)
				}
			}
			prev = cur
		}
	}
}

// alertPlugin delivers a plugin:NAME alert through this node's plugin
// host, or, on a witness, one started for alerts on first use.
func (d *Daemon) alertPlugin(ctx context.Context, name string, args []string, a monitors.Alert) error {
	h := d.plugins
	if h == nil {
		var err error
		if h, err = d.alertHost.Get(); err != nil {
			return err
		}
	}
	return h.Alert(name).Send(ctx, args, a)
}
