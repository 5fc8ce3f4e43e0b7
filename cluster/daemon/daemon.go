// Package daemon wires one node together: configuration → heartbeat media
// and engine → membership → control API.
package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/control"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/builtin"
	"github.com/vigil-ha/vigil/plugins/host"
)

// Daemon is one running node.
type Daemon struct {
	cfg         *config.Config
	log         *slog.Logger
	version     string
	incarnation uint64
	started     time.Time
	engine      *heartbeat.Engine
	tracker     *membership.Tracker
	socket      string
	plugins     *host.Host
	lrm         *lrm.Manager
}

// opTimeout bounds each resource operation until per-resource timeouts
// arrive with the Raft core.
const opTimeout = 20 * time.Second

// New prepares a daemon: it opens every medium, so a missing device or a
// port in use is reported before anything runs.
func New(cfg *config.Config, version string, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: log, version: version, started: time.Now(), socket: cfg.HA.ControlSocket}
	inc, err := nextIncarnation(cfg.HA.StateDir, d.started)
	if err != nil {
		return nil, err
	}
	d.incarnation = inc
	codec, err := heartbeat.NewCodec(cfg.HA.Cluster, cfg.Auth.Secret.Bytes())
	if err != nil {
		return nil, err
	}
	media, err := openMedia(cfg)
	if err != nil {
		return nil, err
	}
	var peers, links []string
	for _, n := range cfg.HA.Nodes {
		if n.Name != cfg.Self.Name {
			peers = append(peers, n.Name)
		}
	}
	for _, m := range media {
		links = append(links, m.Name())
	}
	ha := &cfg.HA
	d.tracker = membership.New(membership.Options{
		Peers: peers, Links: links,
		Warntime: ha.Warntime.D(), Deadtime: ha.Deadtime.D(), Initdead: ha.Initdead.D(),
		Log: log.With("component", "membership"),
	}, d.started)
	d.engine = heartbeat.NewEngine(heartbeat.EngineConfig{
		Codec: codec, Node: cfg.Self.Name, Incarnation: inc, Keepalive: ha.Keepalive.D(),
		Media: media, Observer: d.tracker, View: d.tracker.View, Log: log.With("component", "heartbeat"),
	})
	d.plugins, err = host.New(host.Options{
		Builtin: builtin.Has, Dir: ha.PluginDir, Log: log.With("component", "plugin"),
		OnRestart: func(_ plugins.Kind, name string) { d.lrm.PluginRestarted(context.Background(), name) },
	})
	if err != nil {
		return nil, err
	}
	d.lrm = lrm.New(d.plugins, log.With("component", "lrm"), opTimeout)
	return d, nil
}

// Run runs the node until ctx ends. If any part fails, the others are
// stopped and the error returned.
func (d *Daemon) Run(ctx context.Context) error {
	// Listen before announcing the start, so that whoever waits for
	// "started" can talk to the daemon at once.
	l, err := control.Listen(d.socket)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	run("heartbeat", d.engine.Run)
	run("control", func(ctx context.Context) error {
		return control.Serve(ctx, l, d, d.log.With("component", "control"))
	})
	// Probe what already runs here (read-only) so status shows it; which
	// groups this node runs is the cluster core's decision.
	run("probe", func(ctx context.Context) error {
		for _, g := range d.cfg.Resources.Groups {
			d.lrm.Probe(ctx, g)
		}
		return nil
	})
	d.log.Info("vigil daemon started", "cluster", d.cfg.HA.Cluster, "node", d.cfg.Self.Name, "incarnation", d.incarnation,
		"keepalive", d.cfg.HA.Keepalive.String(), "deadtime", d.cfg.HA.Deadtime.String(), "socket", d.socket)
	<-ctx.Done()
	wg.Wait()
	d.plugins.Close()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	d.log.Info("vigil daemon stopped")
	return nil
}

// Status implements control.Backend.
func (d *Daemon) Status() control.Status {
	ha := &d.cfg.HA
	s := control.Status{
		Cluster: ha.Cluster, Node: d.cfg.Self.Name, Version: d.version, Incarnation: d.incarnation,
		Started: d.started, Now: time.Now(),
		Timing: control.Timing{Keepalive: ha.Keepalive.String(), Warntime: ha.Warntime.String(), Deadtime: ha.Deadtime.String(), Initdead: ha.Initdead.String()},
		Links:  d.engine.Counters(),
		Groups: d.lrm.Status(), Plugins: d.plugins.Status(),
	}
	peers := map[string]membership.PeerStatus{}
	for _, p := range d.tracker.Peers() {
		peers[p.Node] = p
	}
	for _, n := range ha.Nodes {
		ns := control.NodeStatus{Name: n.Name, Address: n.Address, Role: n.Role}
		if n.Name == d.cfg.Self.Name {
			ns.Self = true
			ns.PeerStatus = membership.PeerStatus{Node: n.Name, State: "up", Since: d.started, Incarnation: d.incarnation}
		} else {
			ns.PeerStatus = peers[n.Name]
		}
		s.Nodes = append(s.Nodes, ns)
	}
	return s
}

// Subscribe implements control.Backend.
func (d *Daemon) Subscribe(buf int) (<-chan membership.Event, func()) {
	return d.tracker.Subscribe(buf)
}

// nextIncarnation returns a number larger than any this node used before:
// peers use it to tell a restart from a replay. It is kept in the state
// directory (like heartbeat's hb_generation) and never below the wall clock,
// so a lost state directory still gives a fresh value.
func nextIncarnation(stateDir string, now time.Time) (uint64, error) {
	inc := uint64(now.UnixNano())
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return 0, fmt.Errorf("state dir: %w", err)
	}
	p := filepath.Join(stateDir, "incarnation")
	if b, err := os.ReadFile(p); err == nil && len(b) == 8 {
		inc = max(inc, binary.BigEndian.Uint64(b)+1)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, binary.BigEndian.AppendUint64(nil, inc), 0o600); err != nil {
		return 0, fmt.Errorf("state dir: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return 0, fmt.Errorf("state dir: %w", err)
	}
	return inc, nil
}

// openMedia opens every configured medium; on error it closes those
// already open.
func openMedia(cfg *config.Config) (media []heartbeat.Medium, err error) {
	defer func() {
		if err != nil {
			for _, m := range media {
				m.Close()
			}
		}
	}()
	ha := &cfg.HA
	self, err := netip.ParseAddr(cfg.Self.Address)
	if err != nil {
		return nil, fmt.Errorf("node %s address: %w", cfg.Self.Name, err)
	}
	seen := map[string]int{}
	unique := func(n string) string {
		seen[n]++
		if seen[n] > 1 {
			return fmt.Sprintf("%s#%d", n, seen[n])
		}
		return n
	}
	add := func(m heartbeat.Medium, err error) error {
		if err == nil {
			media = append(media, m)
		}
		return err
	}
	for _, u := range ha.UCast {
		bind := self
		if u.Bind != "" {
			bind = netip.MustParseAddr(u.Bind) // validated by config
		}
		var peers []netip.Addr
		if len(u.Peers) > 0 {
			for _, p := range u.Peers {
				peers = append(peers, netip.MustParseAddr(p))
			}
		} else {
			for _, n := range ha.Nodes {
				peers = append(peers, netip.MustParseAddr(n.Address))
			}
		}
		// Like heartbeat, skip our own address so one file fits all nodes.
		peers = slices.DeleteFunc(peers, func(a netip.Addr) bool { return a == self || a == bind })
		name := "ucast:" + bind.String()
		if u.Interface != "" {
			name = "ucast:" + u.Interface
		}
		if err := add(heartbeat.NewUCast(unique(name), bind, u.Port, u.Interface, peers)); err != nil {
			return media, err
		}
	}
	for _, b := range ha.BCast {
		if err := add(heartbeat.NewBCast(unique("bcast:"+b.Interface), b.Interface, b.Port)); err != nil {
			return media, err
		}
	}
	for _, mc := range ha.MCast {
		if err := add(heartbeat.NewMCast(unique("mcast:"+mc.Interface+":"+mc.Group), netip.MustParseAddr(mc.Group), mc.Interface, mc.Port, mc.TTL, mc.Loop)); err != nil {
			return media, err
		}
	}
	for _, s := range ha.Serial {
		if err := add(heartbeat.NewSerial(unique("serial:"+s.Device), s.Device, s.Baud)); err != nil {
			return media, err
		}
	}
	return media, nil
}
