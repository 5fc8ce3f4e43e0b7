package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/resources/ldirectord"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
	"github.com/vigil-ha/vigil/resources/mon"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func status() api.Status {
	lvsSt := ldirectord.Status{Active: true, Services: []ldirectord.ServiceState{{
		Key: "TCP  10.0.0.3:80", Stats: &director.Counters{Conns: 7, InBytes: 700, OutBytes: 7000, InPkts: 70, OutPkts: 71},
		Reals: []ldirectord.RealState{
			{Addr: "10.0.0.21:80", Weight: 5, Health: "up", Active: 2, Checks: 10, ChecksFailed: 1, CheckSeconds: 0.002, Stats: &director.Counters{Conns: 4}},
			{Addr: "10.0.0.22:80", Weight: -1, Health: "down", Checks: 10, ChecksFailed: 10},
		}}},
		Sync: &ldirectord.SyncStatus{Want: "master", SyncVersion: 1, Daemons: []director.SyncDaemon{{Role: "master", Interface: "eth1", SyncID: 115}}}}
	lvs, _ := json.Marshal(lvsSt)
	monSt := []mon.ServiceStatus{{Service: "www:http", OK: false, Runs: 12, Alerts: 2, Took: "15ms"}}
	watches, _ := json.Marshal(monSt)
	return api.Status{Cluster: "c", Node: "n1", Version: "v1",
		Nodes: []api.NodeStatus{{Name: "n1", Self: true}, {Name: "n2", PeerStatus: membership.PeerStatus{Node: "n2", State: "up",
			Links: []membership.LinkStatus{{Link: "ucast:eth0", State: "up", Received: 100, Late: 3}, {Link: "serial:ttyS0", State: "dead"}}}}},
		Links: []heartbeat.LinkCounters{{Link: "ucast:eth0", Sent: 120, Received: 100, Dropped: map[string]uint64{"bad_mac": 2}}},
		Core: &api.ClusterStatus{Leader: "n1", RaftState: "Leader", Term: "4", Applied: 42, HoldsLease: true, State: &fsm.State{
			NodeOrder: []string{"n1", "n2"}, Nodes: map[string]*fsm.Node{"n1": {Name: "n1", Online: true}, "n2": {Name: "n2", Standby: true}},
			GroupOrder: []string{"lvs", "web"}, Groups: map[string]*fsm.Group{
				"lvs": {GroupSpec: fsm.GroupSpec{Name: "lvs", Preferred: "n2"}, Owner: "n1", Reports: map[string]fsm.NodeReport{"n1": {State: "running"}, "n2": {State: "stopped"}}},
				"web": {GroupSpec: fsm.GroupSpec{Name: "web"}, Reports: map[string]fsm.NodeReport{"n2": {State: "failed"}},
					Failcounts: map[string]map[string]int{"n2": {"IPaddr_10.0.0.4": fsm.Infinity}}}}, Moves: 3}},
		Groups: []lrm.GroupStatus{{Name: "lvs", State: lrm.Running, Resources: []lrm.ResourceStatus{
			{ID: "IPaddr_10.0.0.3", Plugin: "ipaddr", State: lrm.Running, Ops: map[string]uint64{"start SUCCESS": 1, "monitor SUCCESS": 9}},
			{ID: "ldirectord_www", Plugin: "ldirectord", State: lrm.Running, Ops: map[string]uint64{"monitor NOT_RUNNING": 1, "reload error": 1}},
			{ID: "mon_mon", Plugin: "mon", State: lrm.Running}}}},
		Plugins: []host.Status{{Kind: plugins.KindResource, Name: "ipaddr", State: "running", Crashes: 1}},
		// The series come from the plugins' own answers, as in the daemon.
		Inspections: []lrm.Inspection{{Group: "lvs", Resource: "ldirectord_www", JSON: lvs, Metrics: lrm.MetricsOf(lvsSt.Metrics())},
			{Group: "lvs", Resource: "mon_mon", JSON: watches, Metrics: lrm.MetricsOf(mon.Metrics(monSt))}},
		Alerts: &api.AlertStatus{},
	}
}

// Every family from the status snapshot, with the values it holds.
func TestCollect(t *testing.T) {
	m := New(status)
	m.ObserveApply(3*time.Millisecond, nil)
	m.ObserveApply(time.Second, errors.New("no leader"))
	want := `
# HELP vigil_link_up A heartbeat link to a peer is up.
# TYPE vigil_link_up gauge
vigil_link_up{link="serial:ttyS0",peer="n2"} 0
vigil_link_up{link="ucast:eth0",peer="n2"} 1
# HELP vigil_heartbeat_packets_dropped_total Heartbeat packets dropped on a medium, by reason.
# TYPE vigil_heartbeat_packets_dropped_total counter
vigil_heartbeat_packets_dropped_total{link="ucast:eth0",reason="bad_mac"} 2
# HELP vigil_raft_leader This node is the Raft leader.
# TYPE vigil_raft_leader gauge
vigil_raft_leader 1
# HELP vigil_node_online The node is online as status shows it: the cluster (replicated) holds it online and, while this node knows no leader, it is heard here.
# TYPE vigil_node_online gauge
vigil_node_online{node="n1"} 1
vigil_node_online{node="n2"} 0
# HELP vigil_group_owner The node a group is assigned to (1).
# TYPE vigil_group_owner gauge
vigil_group_owner{group="lvs",node="n1"} 1
# HELP vigil_group_running The group's owner is online and reported it running (0: it runs nowhere, or only on a node held offline; every group has this series).
# TYPE vigil_group_running gauge
vigil_group_running{group="lvs"} 1
vigil_group_running{group="web"} 0
# HELP vigil_group_preferred A group's preferred node (1).
# TYPE vigil_group_preferred gauge
vigil_group_preferred{group="lvs",node="n2"} 1
# HELP vigil_group_moves_total Groups given a new owner: failovers, moves, failbacks.
# TYPE vigil_group_moves_total counter
vigil_group_moves_total 3
# HELP vigil_resource_operations_total Resource operations on this node, by result.
# TYPE vigil_resource_operations_total counter
vigil_resource_operations_total{group="lvs",op="monitor",resource="IPaddr_10.0.0.3",result="SUCCESS"} 9
vigil_resource_operations_total{group="lvs",op="start",resource="IPaddr_10.0.0.3",result="SUCCESS"} 1
vigil_resource_operations_total{group="lvs",op="monitor",resource="ldirectord_www",result="NOT_RUNNING"} 1
vigil_resource_operations_total{group="lvs",op="reload",resource="ldirectord_www",result="error"} 1
# HELP vigil_ldirectord_real_up A real server passes its health check.
# TYPE vigil_ldirectord_real_up gauge
vigil_ldirectord_real_up{real="10.0.0.21:80",resource="ldirectord_www",service="TCP 10.0.0.3:80"} 1
vigil_ldirectord_real_up{real="10.0.0.22:80",resource="ldirectord_www",service="TCP 10.0.0.3:80"} 0
# HELP vigil_ldirectord_checks_total Health checks run on a real server, by result.
# TYPE vigil_ldirectord_checks_total counter
vigil_ldirectord_checks_total{real="10.0.0.21:80",resource="ldirectord_www",result="failed",service="TCP 10.0.0.3:80"} 1
vigil_ldirectord_checks_total{real="10.0.0.21:80",resource="ldirectord_www",result="ok",service="TCP 10.0.0.3:80"} 9
vigil_ldirectord_checks_total{real="10.0.0.22:80",resource="ldirectord_www",result="failed",service="TCP 10.0.0.3:80"} 10
vigil_ldirectord_checks_total{real="10.0.0.22:80",resource="ldirectord_www",result="ok",service="TCP 10.0.0.3:80"} 0
# HELP vigil_ldirectord_sync_daemons Kernel IPVS connection-sync daemons running for the instance, by role (master, backup).
# TYPE vigil_ldirectord_sync_daemons gauge
vigil_ldirectord_sync_daemons{resource="ldirectord_www",role="backup"} 0
vigil_ldirectord_sync_daemons{resource="ldirectord_www",role="master"} 1
# HELP vigil_ipvs_connections_total Connections scheduled (real empty: the whole service).
# TYPE vigil_ipvs_connections_total counter
vigil_ipvs_connections_total{real="",resource="ldirectord_www",service="TCP 10.0.0.3:80"} 7
vigil_ipvs_connections_total{real="10.0.0.21:80",resource="ldirectord_www",service="TCP 10.0.0.3:80"} 4
# HELP vigil_mon_service_ok A mon service's last monitor run succeeded.
# TYPE vigil_mon_service_ok gauge
vigil_mon_service_ok{resource="mon_mon",service="www:http"} 0
# HELP vigil_mon_run_duration_seconds How long a mon service's last monitor run took.
# TYPE vigil_mon_run_duration_seconds gauge
vigil_mon_run_duration_seconds{resource="mon_mon",service="www:http"} 0.015
# HELP vigil_raft_apply_failures_total Commands this node handed to Raft that were not applied (no leader, timeout, refused).
# TYPE vigil_raft_apply_failures_total counter
vigil_raft_apply_failures_total 1
`
	names := []string{"vigil_link_up", "vigil_heartbeat_packets_dropped_total", "vigil_raft_leader", "vigil_node_online", "vigil_group_owner",
		"vigil_group_running", "vigil_group_preferred",
		"vigil_group_moves_total", "vigil_resource_operations_total", "vigil_ldirectord_real_up", "vigil_ldirectord_checks_total",
		"vigil_ldirectord_sync_daemons",
		"vigil_ipvs_connections_total", "vigil_mon_service_ok", "vigil_mon_run_duration_seconds", "vigil_raft_apply_failures_total"}
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// The endpoint serves the same, with the histogram and the process.
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, s := range []string{"vigil_raft_apply_duration_seconds_count 1", `vigil_info{cluster="c",node="n1",version="v1"} 1`, "process_resident_memory_bytes", "go_goroutines"} {
		if !strings.Contains(rec.Body.String(), s) {
			t.Errorf("/metrics lacks %q", s)
		}
	}
	if n, err := testutil.GatherAndCount(m.reg); err != nil || n < 60 {
		t.Errorf("%d series, %v", n, err)
	}
}

// serve runs Serve on a loopback listener until the test ends and
// returns its base URL.
func serve(t *testing.T, pprof bool) string { return serveExtras(t, Extras{Pprof: pprof}) }

func serveExtras(t *testing.T, x Extras) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(status).Serve(ctx, l, x, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// With metrics_pprof the listener serves Go's profiles next to /metrics;
// without it, only /metrics, and the profiles are 404.
func TestPprof(t *testing.T) {
	on, off := serve(t, true), serve(t, false)
	for _, base := range []string{on, off} {
		if code, body := get(t, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, "vigil_info") {
			t.Errorf("%s/metrics: %d %.80q", base, code, body)
		}
	}
	// The index lists the profiles; cmdline is this test binary's
	// command line; heap is a profile in the protobuf format (gzip).
	if code, body := get(t, on+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") || !strings.Contains(body, "heap") {
		t.Errorf("index: %d %.200q", code, body)
	}
	if code, body := get(t, on+"/debug/pprof/cmdline"); code != http.StatusOK || !strings.Contains(body, "metrics.test") {
		t.Errorf("cmdline: %d %q", code, body)
	}
	if code, body := get(t, on+"/debug/pprof/heap"); code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Errorf("heap: %d, %d bytes not gzip", code, len(body))
	}
	if code, body := get(t, on+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("goroutine: %d %.80q", code, body)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		if code, _ := get(t, off+p); code != http.StatusNotFound {
			t.Errorf("pprof off: %s answers %d, want 404", p, code)
		}
	}
}

// The web view (web_view) is on the same listener under /web/, and only
// when set: without it /web/ is 404 like the profiles.
func TestWebViewMounted(t *testing.T) {
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "web view at "+r.URL.Path) })
	on, off := serveExtras(t, Extras{Web: web}), serve(t, false)
	for _, p := range []string{"/web", "/web/", "/web/events"} {
		if code, body := get(t, on+p); code != http.StatusOK || body != "web view at "+p {
			t.Errorf("web view on: %s: %d %q", p, code, body)
		}
		if code, _ := get(t, off+p); code != http.StatusNotFound {
			t.Errorf("web view off: %s answers %d, want 404", p, code)
		}
	}
	if code, body := get(t, on+"/metrics"); code != http.StatusOK || !strings.Contains(body, "vigil_info") {
		t.Errorf("/metrics beside the web view: %d %.80q", code, body)
	}
}

// Metrics never mislead either (issue 25): a group whose owner the
// cluster holds offline is not running, whatever its last report said;
// a node's files differing from the cluster's group definitions shows, as
// each node reported them, this node's as they are now.
func TestCollectStatusTruth(t *testing.T) {
	st := status()
	st.Core.State.Nodes["n1"].Online = false
	st.Core.State.Groups["lvs"].Reports = map[string]fsm.NodeReport{"n1": {State: "running"}}
	st.Core.State.GroupsVersion, st.Core.Files = "aaaa", "bbbb"
	st.Core.State.Nodes["n2"].Files = "aaaa"
	m := New(func() api.Status { return st })
	want := `
# HELP vigil_group_running The group's owner is online and reported it running (0: it runs nowhere, or only on a node held offline; every group has this series).
# TYPE vigil_group_running gauge
vigil_group_running{group="lvs"} 0
vigil_group_running{group="web"} 0
# HELP vigil_definitions_differ A node's resources.toml is not the group definitions the cluster runs (as it last reported its files).
# TYPE vigil_definitions_differ gauge
vigil_definitions_differ{node="n1"} 1
vigil_definitions_differ{node="n2"} 0
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "vigil_group_running", "vigil_definitions_differ"); err != nil {
		t.Fatal(err)
	}
	st.Core.State.Nodes["n1"].Online = true
	st.Core.Files, st.Core.State.Nodes["n2"].Files = "aaaa", "cccc"
	want = strings.NewReplacer(`{group="lvs"} 0`, `{group="lvs"} 1`, `"n1"} 1`, `"n1"} 0`, `"n2"} 0`, `"n2"} 1`).Replace(want)
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "vigil_group_running", "vigil_definitions_differ"); err != nil {
		t.Fatal(err)
	}
	// n1 owns lvs and is cut off: no leader, n2 not heard. Its replicated
	// view says n2 online and lvs running on n1; it stopped lvs when its
	// lease ran out. The metrics say what status says.
	st.Core.Leader, st.Core.State.Nodes["n2"].Online = "", true
	st.Nodes[1].State = "dead"
	st.Groups[0].State = lrm.Stopped
	want = `
# HELP vigil_group_running The group's owner is online and reported it running (0: it runs nowhere, or only on a node held offline; every group has this series).
# TYPE vigil_group_running gauge
vigil_group_running{group="lvs"} 0
vigil_group_running{group="web"} 0
# HELP vigil_node_online The node is online as status shows it: the cluster (replicated) holds it online and, while this node knows no leader, it is heard here.
# TYPE vigil_node_online gauge
vigil_node_online{node="n1"} 1
vigil_node_online{node="n2"} 0
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "vigil_group_running", "vigil_node_online"); err != nil {
		t.Fatal(err)
	}
}
