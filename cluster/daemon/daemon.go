// Package daemon wires one node together: configuration → heartbeat media
// and engine → membership → control API.
package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/alerts"
	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/control"
	"github.com/vigil-ha/vigil/cluster/coord"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
	"github.com/vigil-ha/vigil/cluster/lease"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/cluster/metrics"
	"github.com/vigil-ha/vigil/cluster/placement"
	"github.com/vigil-ha/vigil/cluster/tiebreak"
	"github.com/vigil-ha/vigil/cluster/web"
	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins"
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
	plugins     *host.Host // nil on a witness
	lrm         *lrm.Manager
	fsm         *fsm.FSM
	lease       *lease.Tracker
	tiebreak    *tiebreak.Breaker // two_node pairs, and clusters with a [fence] plugin
	raft        *consensus.Node
	coord       *coord.Coordinator
	gate        *raftGate
	alerts      *alerts.Router
	alertHost   *host.Lazy // alert plugins on a witness, which has no plugin host
	reloading   sync.Mutex // one reload at a time
	metrics     *metrics.Metrics
	metricsL    net.Listener // nil without metrics_listen
	web         *web.Server  // nil without web_view
}

// opTimeout bounds each resource operation that sets no timeout of its own.
const opTimeout = 20 * time.Second

// alertTimeout bounds one alert delivery (mon's alert timeout is larger,
// but a hung pager script should not hold the next event for minutes).
const alertTimeout = 30 * time.Second

// predecessorWait bounds how long a starting daemon waits for the
// resource plugins of its previous incarnation to release and exit: they
// see their daemon gone at once (a pidfd) and release in milliseconds, so
// only a stopped plugin takes this long.
const predecessorWait = 3 * time.Second

// awaitPredecessor waits for the plugins a killed predecessor left
// behind (plugins.AwaitPredecessor) and returns the hold file for this
// incarnation's plugins.
func awaitPredecessor(stateDir string, log *slog.Logger) (*os.File, error) {
	hold, waited, err := plugins.AwaitPredecessor(context.Background(), filepath.Join(stateDir, "plugins.hold"), predecessorWait)
	switch {
	case errors.Is(err, plugins.ErrPredecessorLives):
		log.Warn("starting while plugins of the previous daemon still run; a group they release may read as running until its next monitor", "err", err)
	case err != nil:
		return nil, err
	case waited > 10*time.Millisecond:
		log.Info("waited for the previous daemon's plugins to release and exit", "waited", waited.Round(time.Millisecond))
	}
	return hold, nil
}

// New prepares a daemon: it opens every medium, so a missing device or a
// port in use is reported before anything runs. builtin says which
// plugins the binary serves itself (the registry of built-ins,
// handed down by cmd/vigil: the core imports no resource).
func New(cfg *config.Config, version string, builtin func(kind plugins.Kind, name string) bool, log *slog.Logger) (*Daemon, error) {
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
	media, reach, err := openMedia(cfg)
	if err != nil {
		return nil, err
	}
	// What New opened is closed again when a later step fails.
	ready := false
	defer func() {
		if !ready {
			closeMedia(media)
			if d.metricsL != nil {
				d.metricsL.Close()
			}
			if d.plugins != nil {
				d.plugins.Close()
			}
		}
	}()
	if ha := &cfg.HA; ha.MetricsListen != "" {
		// Listen now: a port in use is a start-up error, not a later one.
		if d.metricsL, err = net.Listen("tcp", ha.MetricsListen); err != nil {
			return nil, fmt.Errorf("metrics_listen: %w", err)
		}
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
	tm := ha.Timing()
	d.tracker = membership.New(membership.Options{
		Peers: peers, Links: links, Reach: reach,
		Warntime: tm.Warntime, Deadtime: tm.Deadtime, Initdead: tm.Initdead,
		Log: log.With("component", "membership"),
	}, d.started)
	d.fsm = fsm.New(log.With("component", "fsm"))
	var configured []string
	for _, n := range ha.Nodes {
		configured = append(configured, n.Name)
	}
	lopt := lease.Options{
		Self: cfg.Self.Name, Incarnation: inc, Lease: tm.Lease, StopBudget: tm.StopBudget(), Margin: tm.LeaseMargin(),
		Linger: tm.Linger(plugins.AddressLifetimeSlack),
		Voters: func() (v []string) {
			if ha.TwoNode {
				// A survivor that took over is the only voter.
				ps, _ := d.raft.Voters()
				for _, p := range ps {
					v = append(v, p.Name)
				}
				return v
			}
			d.fsm.Read(func(s *fsm.State) { v = s.NodeOrder })
			if len(v) == 0 {
				return configured
			}
			return v
		},
		Online: func(node string) (on bool) {
			d.fsm.Read(func(s *fsm.State) { on = s.Nodes[node] != nil && s.Nodes[node].Online })
			return on
		},
		Applied: d.fsm.Applied,
		// d.lrm is made below (not on a witness, which holds nothing).
		Overrun: func() time.Duration {
			if d.lrm == nil {
				return 0
			}
			return d.lrm.Overrun()
		},
	}
	if ha.TwoNode {
		// d.tiebreak is made below, once the plugin host its fence
		// calls go through exists; the lease asks it only at run time.
		lopt.Alone = func(now time.Time) (time.Time, time.Time) { return d.tiebreak.AloneUntil(now), d.tiebreak.AloneSince() }
		lopt.AloneSettle = tm.PingSettle()
		lopt.PeerSilent = func() bool {
			for _, p := range d.tracker.Peers() {
				if p.State == "up" {
					return false
				}
			}
			return true
		}
	}
	d.lease = lease.New(lopt)
	d.engine = heartbeat.NewEngine(heartbeat.EngineConfig{
		Codec: codec, Node: cfg.Self.Name, Incarnation: inc, Keepalive: tm.Keepalive,
		Media: media, Observer: observers{d.tracker, d.lease}, View: d.tracker.View, Decorate: d.lease.Decorate,
		RTPriority: ha.RTPriority, Log: log.With("component", "heartbeat"),
	})
	if cfg.Self.Role != "witness" {
		// Plugins inherit it: resources learn which node runs them.
		os.Setenv(plugins.EnvNode, cfg.Self.Name)
		hold, err := awaitPredecessor(ha.StateDir, log)
		if err != nil {
			return nil, err
		}
		d.plugins, err = host.New(host.Options{Hold: hold,
			Builtin: builtin, Dir: ha.PluginDir, Log: log.With("component", "plugin"),
			Env: []string{plugins.EnvControlSocket + "=" + ha.ControlSocket, plugins.EnvPluginDir + "=" + ha.PluginDir,
				plugins.EnvDaemonPID + "=" + strconv.Itoa(os.Getpid())},
			OnRestart: func(_ plugins.Kind, name string) { d.lrm.PluginRestarted(context.Background(), name) },
		})
		if err != nil {
			hold.Close()
			return nil, err
		}
		d.lrm = lrm.New(d.plugins, log.With("component", "lrm"), opTimeout)
		d.lrm.SetStopBudget(lopt.StopBudget)
		d.lrm.SetAddressLifetime(tm.AddressLifetime)
		// A start inherits the hand-over state the group's previous
		// owner replicated (the userspace director's persistence).
		d.lrm.SetHandover(func(group, resource string) []byte {
			var b []byte
			d.fsm.Read(func(s *fsm.State) {
				if g := s.Groups[group]; g != nil {
					b = g.Handover[resource].State
				}
			})
			return b
		})
	}
	// The tie-breakers of a pair, or, in another cluster with a [fence]
	// plugin, just the fencing (its Fence method).
	d.alertHost = &host.Lazy{Dir: ha.PluginDir, Log: log}
	if ha.TwoNode || ha.Fence != nil {
		opt := tiebreak.Options{Interval: tm.PingInterval(), Lease: tm.PingLease(), Settle: tm.PingSettle(), Log: log.With("component", "tiebreak")}
		if ha.TwoNode {
			opt.PingNodes = ha.PingNodes
		}
		if f := ha.Fence; f != nil {
			opt.Fence, opt.FenceName, opt.FenceParams, opt.FenceTimeout, opt.FenceDelay = d.fencePlugin(f.Plugin), f.Plugin, f.Params, f.Timeout.D(), f.Delay.D()
		}
		d.tiebreak = tiebreak.New(opt)
	}
	var voters []consensus.Peer
	for _, n := range ha.Nodes {
		voters = append(voters, consensus.Peer{Name: n.Name, Address: raftAddr(n.Address, ha.Raft.Port)})
	}
	d.gate = newRaftGate(d.tracker, voters)
	d.raft, err = consensus.Start(consensus.Options{
		Cluster: ha.Cluster, Self: cfg.Self.Name, Bind: raftAddr(cfg.Self.Address, ha.Raft.Port),
		Secret: cfg.Auth.Secret.Bytes(), DataDir: ha.Raft.DataDir, Peers: voters, PeerWait: d.gate.wait,
		Timing: consensus.TimingFor(tm), FSM: d.fsm,
		Log: log.With("component", "raft"),
	})
	if err != nil {
		return nil, err
	}
	d.alerts = alerts.New(ha, d.senders(ha), alertTimeout, log.With("component", "alert"))
	d.metrics = metrics.New(d.Status)
	if ha.WebView {
		d.web = web.New(d, web.Options{Log: log.With("component", "web")})
	}
	groups, nodes := coord.Specs(cfg)
	copt := coord.Options{
		Self: cfg.Self.Name, Incarnation: d.incarnation, Role: cfg.Self.Role, Timing: tm,
		Placement: placement.Options{AutoFailback: ha.AutoFailback, MigrationThreshold: *ha.MigrationThreshold},
		Groups:    groups, Nodes: nodes, FSM: d.fsm, Raft: d.raft, Lease: d.lease, Members: d.tracker,
		Log: log.With("component", "core"), ObserveApply: d.metrics.ObserveApply,
	}
	if d.lrm != nil {
		// Not a nil *lrm.Manager in the interface: the witness runs none.
		copt.LRM = d.lrm
	}
	if ha.TwoNode {
		copt.TieBreak = d.tiebreak
	}
	if ha.Fence != nil {
		copt.Fencer = d.tiebreak
	}
	d.coord = coord.New(copt)
	ready = true
	return d, nil
}

// senders are the alert senders ha's routes reach.
func (d *Daemon) senders(ha *config.HA) monitors.Senders {
	return monitors.Senders{AlertDir: ha.AlertDir, SMTPRelay: ha.SMTPRelay, MailFrom: ha.MailFrom,
		Log: d.log.With("component", "alert"), Plugin: d.alertPlugin}
}

// Reload reads the configuration directory again (vigil reload, SIGHUP)
// and applies what changed: group definitions cluster-wide through Raft
// (every node then converges its groups, see lrm.Reconfigure), this
// node's alert routes at once. The whole configuration is validated
// first; an invalid one, or one changing what only a restart can change,
// is refused and nothing changes. Heartbeats and Raft run on throughout.
func (d *Daemon) Reload(ctx context.Context) error {
	d.reloading.Lock()
	defer d.reloading.Unlock()
	cfg, err := d.cfg.Reread()
	if err != nil {
		return fmt.Errorf("%w: configuration not reloaded, nothing changed:\n%w", api.ErrRefused, err)
	}
	if keys := config.RestartNeeded(d.cfg, cfg); len(keys) > 0 {
		return fmt.Errorf("%w: configuration not reloaded, nothing changed: these settings change only with a restart of the daemon: %s",
			api.ErrRefused, strings.Join(keys, ", "))
	}
	if d.plugins != nil {
		errs, warns := lrm.CheckConfig(ctx, d.plugins, cfg, opTimeout, changedResources(d.cfg, cfg))
		if len(errs) > 0 {
			return fmt.Errorf("%w: configuration not reloaded, nothing changed: refused by the resources' plugins:\n%w", api.ErrRefused, errs)
		}
		cfg.Warnings = append(cfg.Warnings, warns...)
	}
	for _, w := range cfg.Warnings {
		d.log.Warn(w)
	}
	groups, nodes := coord.Specs(cfg)
	changed, err := d.coord.Reload(ctx, groups, nodes)
	if err != nil {
		return err
	}
	d.alerts.Set(&cfg.HA, d.senders(&cfg.HA))
	d.log.Info("configuration reloaded", "groups_changed", changed, "alert_routes", len(cfg.HA.Alerts))
	return nil
}

// changedResources reports the resources of loaded that running does not
// have as they are: only those need their plugins' validation again.
func changedResources(running, loaded *config.Config) func(gi, ri int) bool {
	had := map[[2]string]config.Resource{}
	for _, g := range running.Resources.Groups {
		for _, r := range g.Resources {
			had[[2]string{g.Name, r.ID}] = r
		}
	}
	return func(gi, ri int) bool {
		g := loaded.Resources.Groups[gi]
		old, ok := had[[2]string{g.Name, g.Resources[ri].ID}]
		return !ok || !reflect.DeepEqual(old, g.Resources[ri])
	}
}

func raftAddr(ip string, port int) string {
	return net.JoinHostPort(ip, strconv.Itoa(port))
}

func closeMedia(media []heartbeat.Medium) {
	for _, m := range media {
		m.Close()
	}
}

// observers feeds accepted heartbeats to membership, then to the lease.
type observers struct {
	members *membership.Tracker
	lease   *lease.Tracker
}

func (o observers) Heard(link string, m *heartbeat.Message, at time.Time) heartbeat.DropReason {
	r := o.members.Heard(link, m, at)
	if r == heartbeat.Accepted {
		o.lease.Heard(m, at)
	}
	return r
}

func (o observers) Check(now time.Time) time.Time { return o.members.Check(now) }

// Run runs the node until ctx ends. If any part fails, the others are
// stopped and the error returned.
func (d *Daemon) Run(ctx context.Context) error {
	// Listen before announcing the start, so that whoever waits for
	// "started" can talk to the daemon at once.
	l, err := control.Listen(d.socket)
	if err != nil {
		return err
	}
	// The parts run until the daemon's own context ends: when ctx ends (a
	// graceful stop), the groups are first handed over while heartbeats,
	// Raft and the LRM keep running.
	parent := ctx
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
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
	run("beat-on-down", func(ctx context.Context) error { return beatOnDown(ctx, d.fsm, d.engine.BeatNow) })
	run("control", func(ctx context.Context) error {
		return control.Serve(ctx, l, d, d.log.With("component", "control"))
	})
	run("raft-gate", d.gate.run)
	run("core", d.coord.Run)
	if d.lrm != nil {
		run("lease", func(ctx context.Context) error { d.lrm.RunLease(ctx); return nil })
	}
	if d.tiebreak != nil {
		run("tiebreak", d.tiebreak.Run)
	}
	run("alerts", d.alerts.Run)
	run("events", d.watchEvents)
	if d.metricsL != nil {
		x := metrics.Extras{Pprof: d.cfg.HA.MetricsPprof}
		if d.web != nil {
			x.Web = d.web.Handler()
			run("web", d.web.Run)
		}
		run("metrics", func(ctx context.Context) error {
			return d.metrics.Serve(ctx, d.metricsL, x, d.log.With("component", "metrics"))
		})
	}
	d.log.Info("vigil daemon started", "cluster", d.cfg.HA.Cluster, "node", d.cfg.Self.Name, "incarnation", d.incarnation,
		"keepalive", d.cfg.HA.Keepalive.String(), "deadtime", d.cfg.HA.Deadtime.String(), "socket", d.socket)
	select {
	case <-ctx.Done(): // a part failed
	case <-parent.Done():
		lctx, lcancel := context.WithTimeout(ctx, d.leaveTimeout())
		if err := d.coord.Leave(lctx); err != nil {
			d.log.Warn("graceful hand-over incomplete; stopping what runs here", "err", err)
		} else {
			d.log.Info("groups handed over")
		}
		lcancel()
		cancel(context.Canceled)
	}
	wg.Wait()
	if err := d.raft.Close(); err != nil {
		d.log.Warn("raft shutdown", "err", err)
	}
	if d.plugins != nil {
		d.plugins.Close()
	}
	d.alertHost.Close()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	d.log.Info("vigil daemon stopped")
	return nil
}

// Status implements control.Backend.
func (d *Daemon) Status() api.Status {
	ha := &d.cfg.HA
	s := api.Status{
		Cluster: ha.Cluster, Node: d.cfg.Self.Name, Version: d.version, Incarnation: d.incarnation,
		Started: d.started, Now: time.Now(),
		Timing: api.Timing{Keepalive: ha.Keepalive.String(), Warntime: ha.Warntime.String(), Deadtime: ha.Deadtime.String(), Initdead: ha.Initdead.String()},
		Links:  d.engine.Counters(),
		Core:   d.clusterStatus(),
	}
	if len(ha.Alerts) > 0 {
		counts, recent := d.alerts.Status()
		s.Alerts = &api.AlertStatus{AlertCounts: counts, Recent: recent}
	}
	if d.lrm != nil {
		s.Groups, s.Plugins = d.lrm.Status(), d.plugins.Status()
		s.Inspections = d.lrm.Inspect(context.Background(), 2*time.Second)
	}
	peers := map[string]membership.PeerStatus{}
	for _, p := range d.tracker.Peers() {
		peers[p.Node] = p
	}
	for _, n := range ha.Nodes {
		ns := api.NodeStatus{Name: n.Name, Address: n.Address, Role: n.Role}
		if n.Name == d.cfg.Self.Name {
			ns.Self = true
			ns.PeerStatus = membership.PeerStatus{Node: n.Name, State: "up", Since: d.started, Incarnation: d.incarnation}
		} else {
			ns.PeerStatus = peers[n.Name]
		}
		s.Nodes = append(s.Nodes, ns)
	}
	// Every form of status (text, --json, -1, metrics) reads these.
	s.Nodes = control.SharedLinks(s.Nodes)
	s.Placement, s.FilesDiffer = api.Placement(&s), api.FilesDiffer(&s)
	return s
}

// Changed implements web.Source: closed at the next applied change of
// the replicated state.
func (d *Daemon) Changed() <-chan struct{} { return d.fsm.Changed() }

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
// already open. reach is, by medium name, the peers a medium joins this
// node to when not all of them: a serial cable with its two ends named.
func openMedia(cfg *config.Config) (media []heartbeat.Medium, reach map[string][]string, err error) {
	defer func() {
		if err != nil {
			closeMedia(media)
		}
	}()
	ha := &cfg.HA
	self, err := netip.ParseAddr(cfg.Self.Address)
	if err != nil {
		return nil, nil, fmt.Errorf("node %s address: %w", cfg.Self.Name, err)
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
			return media, nil, err
		}
	}
	for _, b := range ha.BCast {
		if err := add(heartbeat.NewBCast(unique("bcast:"+b.Interface), b.Interface, b.Port)); err != nil {
			return media, nil, err
		}
	}
	for _, mc := range ha.MCast {
		if err := add(heartbeat.NewMCast(unique("mcast:"+mc.Interface+":"+mc.Group), netip.MustParseAddr(mc.Group), mc.Interface, mc.Port, mc.TTL, mc.Loop)); err != nil {
			return media, nil, err
		}
	}
	reach = map[string][]string{}
	for _, s := range ha.Serial {
		if !s.Joins(cfg.Self.Name) {
			continue // the cable joins two other nodes
		}
		name := unique("serial:" + s.Device)
		if err := add(heartbeat.NewSerial(name, s.Device, s.Baud)); err != nil {
			return media, nil, err
		}
		if len(s.Nodes) > 0 {
			reach[name] = slices.DeleteFunc(slices.Clone(s.Nodes), func(n string) bool { return n == cfg.Self.Name })
		}
	}
	return media, reach, nil
}

// clusterStatus is the replicated state and this node's part in it.
func (d *Daemon) clusterStatus() *api.ClusterStatus {
	now := time.Now()
	st := d.fsm.View()
	for _, g := range st.Groups {
		// Status tells of hand-over states, it does not carry them (up
		// to 64 KiB each, opaque): the copy's map is its own.
		for id, h := range g.Handover {
			h.State = nil
			g.Handover[id] = h
		}
	}
	stats := d.raft.Stats()
	cs := &api.ClusterStatus{
		Leader: d.raft.Leader(), RaftState: d.raft.State(), Term: stats["term"], Applied: d.fsm.Applied(),
		Quorum: st.Quorum(), State: st, Files: d.coord.FilesVersion(),
	}
	if exp := d.lease.Expiry(now); !exp.IsZero() {
		cs.Lease = exp.Sub(now).Round(time.Millisecond).String()
	}
	cs.HoldsLease = d.lease.Holds(now)
	if vs, err := d.raft.Voters(); err == nil {
		for _, v := range vs {
			cs.Voters = append(cs.Voters, v.Name)
		}
	}
	cs.Pair = d.coord.Pair(now)
	if cs.Pair == nil && d.tiebreak != nil {
		fs := d.tiebreak.Status(now)
		cs.Fencing = &fs
	}
	return cs
}

// Command implements control.Backend.
func (d *Daemon) Command(ctx context.Context, c api.Command) error {
	err := d.command(ctx, c)
	if errors.Is(err, consensus.ErrNoLeader) {
		// in the operator's words, not Raft's ("no raft leader")
		return errors.New("no leader: this node reaches no quorum of the cluster's voters, and only a leader takes commands; try again once 'vigil status' shows one")
	}
	return err
}

func (d *Daemon) command(ctx context.Context, c api.Command) error {
	yes, no := true, false
	apply := func(typ string, cmd any) error { return d.coord.Apply(ctx, typ, cmd) }
	switch c.Op {
	case api.OpTakeover:
		return d.coord.Takeover(ctx)
	case api.OpMove:
		return apply(fsm.TypeMove, fsm.Move{Group: c.Group, Node: c.Node})
	case api.OpUnmove:
		return apply(fsm.TypeMove, fsm.Move{Group: c.Group})
	case api.OpStandby:
		return apply(fsm.TypeNodeState, fsm.NodeState{Node: c.Node, Standby: &yes})
	case api.OpOnline:
		return apply(fsm.TypeNodeState, fsm.NodeState{Node: c.Node, Standby: &no})
	case api.OpMaintenance:
		return apply(fsm.TypeNodeState, fsm.NodeState{Node: c.Node, Maintenance: &yes})
	case api.OpReady:
		return apply(fsm.TypeNodeState, fsm.NodeState{Node: c.Node, Maintenance: &no})
	case api.OpCleanup:
		return apply(fsm.TypeCleanup, fsm.Cleanup{Group: c.Group, Node: c.Node})
	case api.OpNodeAdd:
		return d.coord.AddNode(ctx, c.Node, c.Address)
	case api.OpNodeRemove:
		return d.coord.RemoveNode(ctx, c.Node)
	case api.OpReload:
		return d.Reload(ctx)
	case api.OpEvent:
		if c.Event == nil {
			return fmt.Errorf("%w: event: no event", api.ErrRefused)
		}
		a := *c.Event
		if a.Node == "" {
			a.Node = d.cfg.Self.Name
		}
		d.alerts.Emit(a)
		return nil
	case api.OpResourceCommand:
		if d.lrm == nil {
			return fmt.Errorf("%w: a witness runs no resources", api.ErrRefused)
		}
		return d.lrm.Command(ctx, c.Resource, c.Name, c.Args)
	}
	return fmt.Errorf("%w: unknown command %q", api.ErrRefused, c.Op)
}

// leaveTimeout bounds the hand-over on a graceful stop, whose stop may
// take up to an operation timeout.
func (d *Daemon) leaveTimeout() time.Duration {
	return d.cfg.HA.Timing().LeaveTimeout(opTimeout)
}
