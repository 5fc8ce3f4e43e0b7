// Package metrics exports a node's state to Prometheus: membership and
// heartbeat links, heartbeat packets, Raft, placement, resource operations,
// ldirectord's real servers and IPVS counters, mon's services, alerts.
//
// Almost everything is read at scrape time from the same snapshot `vigil
// status` shows (api.Status), so the numbers agree with status and no
// hot path takes a metrics lock; only the Raft apply latency is observed
// as it happens.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/fsm"
)

// Metrics is one daemon's registry.
type Metrics struct {
	reg        *prometheus.Registry
	apply      prometheus.Histogram
	applyFails prometheus.Counter
}

// New returns the metrics of the node whose status snapshot is status.
func New(status func() api.Status) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_raft_apply_duration_seconds",
			Help:    "Time from handing a command to Raft to its commit and application (this node's commands).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		applyFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_raft_apply_failures_total",
			Help: "Commands this node handed to Raft that were not applied (no leader, timeout, refused)."}),
	}
	m.reg.MustRegister(m.apply, m.applyFails, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), snapshot{status})
	return m
}

// ObserveApply records one Raft apply.
func (m *Metrics) ObserveApply(took time.Duration, err error) {
	if err != nil {
		m.applyFails.Inc()
		return
	}
	m.apply.Observe(took.Seconds())
}

// Extras are what else the listener serves, each off unless set.
type Extras struct {
	// Pprof (ha.toml metrics_pprof): Go's runtime profiles under
	// /debug/pprof/.
	Pprof bool
	// Web (ha.toml web_view): the live web view, served under /web/.
	Web http.Handler
}

// mux routes the listener's paths. The profiles are registered here, not
// on http.DefaultServeMux (where importing net/http/pprof puts them), so
// they are served only when asked for. No write timeout is set: a CPU
// profile or trace writes for as long as its seconds= asks, the web
// view's event stream for as long as the page is open.
func (m *Metrics) mux(x Extras) *http.ServeMux {
	pprof := x.Pprof
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	if x.Web != nil {
		mux.Handle("/web", x.Web)
		mux.Handle("/web/", x.Web)
	}
	if pprof {
		mux.HandleFunc("/debug/pprof/", httppprof.Index) // and every named profile: heap, goroutine, allocs…
		mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	}
	return mux
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Serve serves /metrics on l until ctx ends and, as x says, Go's runtime
// profiles under /debug/pprof/, so that an operator can see where a loaded
// director spends its time, and the web view under /web/. Requests end
// with ctx (the web view's streams would outlast a graceful shutdown).
func (m *Metrics) Serve(ctx context.Context, l net.Listener, x Extras, log *slog.Logger) error {
	srv := &http.Server{Handler: m.mux(x), ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("metrics endpoint", "address", l.Addr().String(), "path", "/metrics", "pprof", x.Pprof, "web_view", x.Web != nil)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// snapshot is an unchecked collector over the status snapshot: the set of
// series (nodes, links, reals) changes with the configuration.
type snapshot struct{ status func() api.Status }

func (snapshot) Describe(chan<- *prometheus.Desc) {}

func desc(name, help string, labels ...string) *prometheus.Desc {
	own[name] = true
	return prometheus.NewDesc(name, help, labels, nil)
}

// own are the daemon's own family names: a plugin's series may not take
// them (the scrape would fail on the clash).
var own = map[string]bool{}

var (
	dInfo        = desc("vigil_info", "The daemon: version, cluster, node.", "version", "cluster", "node")
	dPeerUp      = desc("vigil_peer_up", "A peer is heard on some link (this node's membership view).", "peer")
	dLinkUp      = desc("vigil_link_up", "A heartbeat link to a peer is up.", "peer", "link")
	dLinkRecv    = desc("vigil_link_heartbeats_total", "Fresh heartbeats heard from a peer on a link.", "peer", "link")
	dLinkLate    = desc("vigil_link_late_heartbeats_total", "Heartbeats from a peer that came after more than warntime.", "peer", "link")
	dPktSent     = desc("vigil_heartbeat_packets_sent_total", "Heartbeat packets sent on a medium.", "link")
	dPktSendErr  = desc("vigil_heartbeat_send_errors_total", "Heartbeat packets a medium failed to send.", "link")
	dPktRecv     = desc("vigil_heartbeat_packets_received_total", "Heartbeat packets accepted from peers on a medium.", "link")
	dPktDrop     = desc("vigil_heartbeat_packets_dropped_total", "Heartbeat packets dropped on a medium, by reason.", "link", "reason")
	dLeader      = desc("vigil_raft_leader", "This node is the Raft leader.")
	dHasLeader   = desc("vigil_raft_has_leader", "This node knows a Raft leader.")
	dRaftState   = desc("vigil_raft_state", "This node's Raft state (1 for the current one).", "state")
	dTerm        = desc("vigil_raft_term", "The Raft term.")
	dApplied     = desc("vigil_raft_applied_index", "The last Raft log index applied here.")
	dLease       = desc("vigil_lease_held", "A quorum confirms this node's lease (it may hold groups).")
	dDefsDiffer  = desc("vigil_definitions_differ", "A node's resources.toml is not the group definitions the cluster runs (as it last reported its files).", "node")
	dNodeOnline  = desc("vigil_node_online", "The node is online as status shows it: the cluster (replicated) holds it online and, while this node knows no leader, it is heard here.", "node")
	dNodeStandby = desc("vigil_node_standby", "The node is in standby.", "node")
	dNodeMaint   = desc("vigil_node_maintenance", "The node is in maintenance.", "node")
	dOwner       = desc("vigil_group_owner", "The node a group is assigned to (1).", "group", "node")
	dRunning     = desc("vigil_group_running", "The group's owner is online and reported it running (0: it runs nowhere, or only on a node held offline; every group has this series).", "group")
	dPreferred   = desc("vigil_group_preferred", "A group's preferred node (1).", "group", "node")
	dMoves       = desc("vigil_group_moves_total", "Groups given a new owner: failovers, moves, failbacks.")
	dFailcount   = desc("vigil_group_failcount", "A group's failures on a node.", "group", "node")
	dLocalGroup  = desc("vigil_group_local_state", "A group's state on this node (1 for the current one).", "group", "state")
	dResOps      = desc("vigil_resource_operations_total", "Resource operations on this node, by result.", "group", "resource", "op", "result")
	dResRunning  = desc("vigil_resource_running", "A resource runs on this node.", "group", "resource")
	dPluginUp    = desc("vigil_plugin_running", "A plugin process runs.", "kind", "plugin")
	dPluginCrash = desc("vigil_plugin_crashes_total", "Plugin process crashes (each is restarted).", "kind", "plugin")
	dAlerts      = desc("vigil_alerts_total", "Alerts through ha.toml's routes, by outcome.", "outcome")
)

func (c snapshot) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(dInfo, 1, s.Version, s.Cluster, s.Node)
	for _, n := range s.Nodes {
		if n.Self {
			continue
		}
		gauge(dPeerUp, b2f(n.State == "up"), n.Name)
		for _, l := range n.Links {
			gauge(dLinkUp, b2f(l.State == "up"), n.Name, l.Link)
			counter(dLinkRecv, float64(l.Received), n.Name, l.Link)
			counter(dLinkLate, float64(l.Late), n.Name, l.Link)
		}
	}
	for _, l := range s.Links {
		counter(dPktSent, float64(l.Sent), l.Link)
		counter(dPktSendErr, float64(l.SendErrors), l.Link)
		counter(dPktRecv, float64(l.Received), l.Link)
		for reason, n := range l.Dropped {
			counter(dPktDrop, float64(n), l.Link, reason)
		}
	}
	if cs := s.Core; cs != nil {
		gauge(dLeader, b2f(cs.Leader == s.Node))
		gauge(dHasLeader, b2f(cs.Leader != ""))
		for _, st := range []string{"Leader", "Follower", "Candidate", "Shutdown"} {
			gauge(dRaftState, b2f(cs.RaftState == st), strings.ToLower(st))
		}
		var term float64
		fmt.Sscan(cs.Term, &term)
		gauge(dTerm, term)
		gauge(dApplied, float64(cs.Applied))
		gauge(dLease, b2f(cs.HoldsLease))
		if st := cs.State; st != nil {
			differ := api.FilesDiffer(&s)
			for _, name := range st.NodeOrder {
				n := st.Nodes[name]
				_, off := api.Offline(&s, name) // a cut-off node's replicated view is stale
				gauge(dNodeOnline, b2f(!off), name)
				gauge(dNodeStandby, b2f(n.Standby), name)
				gauge(dNodeMaint, b2f(n.Maintenance), name)
				gauge(dDefsDiffer, b2f(slices.Contains(differ, name)), name)
				for _, g := range st.GroupOrder {
					gauge(dFailcount, float64(st.Failcount(g, name)), g, name)
				}
			}
			for _, name := range st.GroupOrder {
				g := st.Groups[name]
				if g == nil {
					continue
				}
				if g.Owner != "" {
					gauge(dOwner, 1, name, g.Owner)
				}
				if g.Preferred != "" {
					gauge(dPreferred, 1, name, g.Preferred)
				}
			}
			counter(dMoves, float64(st.Moves))
			// Every group has this series, so that an alert sees one
			// that runs nowhere (vigil_group_owner has none then); an
			// owner the cluster holds offline runs it no more, whatever
			// it last reported (api.Placement, as status shows it).
			for _, g := range api.Placement(&s) {
				gauge(dRunning, b2f(g.Running()), g.Name)
			}
		}
	}
	plugins := map[string]string{} // resource id → plugin
	for _, g := range s.Groups {
		gauge(dLocalGroup, 1, g.Name, g.State)
		for _, r := range g.Resources {
			plugins[r.ID] = r.Plugin
			gauge(dResRunning, b2f(r.State == fsm.Running), g.Name, r.ID)
			for k, n := range r.Ops {
				op, result, _ := strings.Cut(k, " ")
				counter(dResOps, float64(n), g.Name, r.ID, op, result)
			}
		}
	}
	for _, p := range s.Plugins {
		gauge(dPluginUp, b2f(p.State == api.PluginRunning), string(p.Kind), p.Name)
		counter(dPluginCrash, float64(p.Crashes), string(p.Kind), p.Name)
	}
	if a := s.Alerts; a != nil {
		counter(dAlerts, float64(a.Sent), "sent")
		counter(dAlerts, float64(a.Failed), "failed")
		counter(dAlerts, float64(a.Dropped), "dropped")
	}
	resourceSeries(s.Inspections, gauge, ch)
}

type emit func(d *prometheus.Desc, v float64, labels ...string)

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
