package daemon

import (
	"context"
	"slices"

	"github.com/vigil-ha/vigil/cluster/alerts"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/tiebreak"
	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
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
	prev := alertView(d.fsm)
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
			cur := alertView(d.fsm)
			if d.raft.IsLeader() {
				for _, a := range alerts.Cluster(d.cfg.HA.Cluster, prev, cur) {
					d.alerts.Emit(a)
				}
			}
			prev = cur
		}
	}
}

// alertView copies what alerts.Cluster compares: the nodes, the recent
// decisions and failures, and when each group was last placed (whether it
// was placed before tells a placement from its first, even when it lost
// its owner and got one again between two looks). Not the whole state:
// that would be a deep copy of every group for every committed entry.
func alertView(f *fsm.FSM) *fsm.State {
	v := fsm.NewState()
	f.Read(func(s *fsm.State) {
		v.Index = s.Index
		v.NodeOrder = slices.Clone(s.NodeOrder)
		for name, n := range s.Nodes {
			c := *n
			v.Nodes[name] = &c
		}
		v.Decisions, v.Failures = slices.Clone(s.Decisions), slices.Clone(s.Failures)
		groups := make([]fsm.Group, 0, len(s.Groups)) // one allocation for all
		for name, g := range s.Groups {
			groups = append(groups, fsm.Group{GroupSpec: fsm.GroupSpec{Name: name}, Since: g.Since})
			v.Groups[name] = &groups[len(groups)-1]
		}
	})
	return v
}

// pluginHost is this node's plugin host, or, on a witness (which runs no
// resources), one started on first use for its alert and fence plugins.
func (d *Daemon) pluginHost() (*host.Host, error) {
	if d.plugins != nil {
		return d.plugins, nil
	}
	return d.alertHost.Get()
}

// alertPlugin delivers a plugin:NAME alert.
func (d *Daemon) alertPlugin(ctx context.Context, name string, args []string, a monitors.Alert) error {
	h, err := d.pluginHost()
	if err != nil {
		return err
	}
	return h.Alert(name).Send(ctx, args, a)
}

// fencePlugin is the [fence] plugin, through pluginHost.
func (d *Daemon) fencePlugin(name string) tiebreak.Fencer { return fencePlugin{d, name} }

type fencePlugin struct {
	d    *Daemon
	name string
}

func (f fencePlugin) Off(ctx context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	return f.call(ctx, in, host.Fence.Off)
}

func (f fencePlugin) Status(ctx context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	return f.call(ctx, in, host.Fence.Status)
}

func (f fencePlugin) call(ctx context.Context, in *pb.FenceRequest,
	op func(host.Fence, context.Context, *pb.FenceRequest) (*pb.FenceResult, error)) (*pb.FenceResult, error) {
	h, err := f.d.pluginHost()
	if err != nil {
		return nil, err
	}
	return op(h.Fence(f.name), ctx, in)
}
