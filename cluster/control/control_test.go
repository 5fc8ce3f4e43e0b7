package control

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
	"github.com/vigil-ha/vigil/cluster/membership"
)

var update = flag.Bool("update", false, "rewrite golden files")

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func fixture() *api.Status {
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	return &api.Status{
		Cluster: "lvs", Node: "lvs1", Version: "0.1.0", Incarnation: 42, Started: at(3*time.Hour + 12*time.Minute), Now: now,
		Timing: api.Timing{Keepalive: "200ms", Warntime: "600ms", Deadtime: "1s", Initdead: "10s"},
		Nodes: []api.NodeStatus{
			{Name: "lvs1", Address: "10.0.0.1", Role: "member", Self: true, PeerStatus: api.PeerStatus{Node: "lvs1", State: "up", Since: at(3 * time.Hour)}},
			{Name: "lvs2", Address: "10.0.0.2", Role: "member", PeerStatus: api.PeerStatus{Node: "lvs2", State: "up", Since: at(2 * time.Hour), Links: []api.LinkStatus{
				{Link: "ucast:10.0.0.1", State: "up", LastHeard: at(120 * time.Millisecond), Received: 54000},
				{Link: "serial:/dev/ttyS0", State: "dead", LastHeard: at(95 * time.Second), Late: 3, Received: 51000},
			}}},
			{Name: "witness", Address: "10.0.0.9", Role: "witness", PeerStatus: api.PeerStatus{Node: "witness", State: "dead", Since: at(5 * time.Minute), Links: []api.LinkStatus{
				{Link: "ucast:10.0.0.1", State: "dead", LastHeard: at(5*time.Minute + time.Second), Received: 10},
				{Link: "serial:/dev/ttyS0", State: "dead"},
			}}},
		},
		Links: []heartbeat.LinkCounters{
			{Link: "ucast:10.0.0.1", Sent: 57600, Received: 54010, Dropped: map[string]uint64{"bad_mac": 12, "replay": 1}},
			{Link: "serial:/dev/ttyS0", Sent: 57600, SendErrors: 475, Received: 51000},
		},
		Groups: []api.GroupStatus{{Name: "lvs", Wanted: true, State: "running", Resources: []api.ResourceStatus{
			{ID: "IPaddr_10.0.0.3", Type: "IPaddr", Plugin: "ipaddr", State: "running", LastOp: "start", Result: "SUCCESS", At: at(2 * time.Hour)},
			{ID: "web", Type: "ocf:heartbeat:apache", Plugin: "ocf", State: "failed", LastOp: "monitor", Result: "ERR_INSTALLED", Reason: "apache not installed", At: at(4 * time.Second)},
		}}},
		Plugins: []api.PluginStatus{
			{Kind: "resource", Name: "ipaddr", State: "running", PID: 4242, Builtin: true},
			{Kind: "resource", Name: "ocf", State: "running", PID: 4343, Crashes: 1, Restarts: 1, LastExit: "signal: killed", LastExitAt: at(90 * time.Second)},
			{Kind: "resource", Name: "counter", State: "failed", LastError: "fork/exec /usr/lib/vigil/plugins/counter: permission denied"},
		},
		Core: &api.ClusterStatus{Leader: "witness", RaftState: "Follower", Term: "7", Applied: 812, Quorum: 2, HoldsLease: true, Lease: "740ms",
			Fencing: &api.TieBreakStatus{Fence: "pdu", LastFence: &api.FenceRecord{Node: "lvs2", At: at(40 * time.Minute), Result: "off"}},
			State: &fsm.State{
				NodeOrder: []string{"lvs1", "lvs2", "witness"},
				Nodes: map[string]*fsm.Node{
					"lvs1":    {Name: "lvs1", Role: "member", Online: true},
					"lvs2":    {Name: "lvs2", Role: "member", Online: true, Standby: true},
					"witness": {Name: "witness", Role: "witness", Online: false, Reason: "silent on every link for deadtime"},
				},
				GroupOrder: []string{"lvs"},
				Groups: map[string]*fsm.Group{"lvs": {
					GroupSpec: fsm.GroupSpec{Name: "lvs", Preferred: "lvs1"}, Owner: "lvs1", Reason: "preferred node lvs1",
					Reports: map[string]fsm.NodeReport{
						"lvs1": {State: "running", Op: "start", Result: "OK"},
						"lvs2": {State: "stopped", Op: "stop", Result: "OK", Reason: "assigned to \"lvs1\""},
					},
					Failcounts: map[string]map[string]int{"lvs2": {"web": fsm.Infinity}},
				}},
				Failures:  []fsm.Failure{{Time: at(20 * time.Minute), Node: "lvs2", Group: "lvs", Resource: "web", Op: "start", Result: "ERR_INSTALLED", Reason: "apache not installed"}},
				Decisions: []fsm.Decision{{Time: at(20 * time.Minute), Group: "lvs", From: "lvs2", To: "lvs1", Reason: "lvs2 reached the migration threshold (1000000 failures, threshold 3)"}},
			}},
		Alerts: &api.AlertStatus{AlertCounts: api.AlertCounts{Sent: 3, Failed: 1}, Recent: []api.AlertRecord{
			{Time: at(20 * time.Minute), Kind: "failover", Type: "failure", Via: "file.alert", Summary: "group lvs moved from lvs2 to lvs1: lvs2 reached the migration threshold"},
			{Time: at(5 * time.Minute), Kind: "node", Type: "failure", Via: "mail", Summary: "node witness offline: silent on every link for deadtime", Err: "mail via 127.0.0.1:25: connection refused"},
		}},
	}
}

func TestRenderGolden(t *testing.T) {
	var buf bytes.Buffer
	Render(&buf, fixture())
	golden := filepath.Join("testdata", "status.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("status output differs from %s (go test -update to accept):\n%s", golden, buf.String())
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 340 * time.Millisecond: "340ms", 4210 * time.Millisecond: "4.2s",
		192 * time.Second: "3m12s", 5*time.Hour + 3*time.Minute: "5h3m", 52 * time.Hour: "2d4h",
	} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
}

type fakeBackend struct {
	st api.Status
	ch chan api.Event
}

func (f *fakeBackend) Status() api.Status { return f.st }
func (f *fakeBackend) Command(_ context.Context, c api.Command) error {
	if c.Op != "move" {
		return fmt.Errorf("%w: unknown command %q", api.ErrRefused, c.Op)
	}
	return nil
}
func (f *fakeBackend) Subscribe(int) (<-chan api.Event, func()) {
	return f.ch, func() {}
}

// Listen never deletes what is not a socket at its path (a mistyped
// control_socket pointing at a file).
func TestListenKeepsOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "important")
	if err := os.WriteFile(path, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l, err := Listen(path); err == nil {
		l.Close()
		t.Fatal("Listen replaced a regular file")
	} else if !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("error: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Errorf("the file is gone or changed: %q %v", b, err)
	}
}

// TestServeRoundTrip runs the real server on a unix socket: status and the
// event stream reach the client, and the socket is owner-only.
func TestServeRoundTrip(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "vigil.sock")
	b := &fakeBackend{st: *fixture(), ch: make(chan api.Event, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- Serve(ctx, l, b, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	c := api.NewClient(sock)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cluster != "lvs" || len(st.Nodes) != 3 || st.Links[0].Dropped["bad_mac"] != 12 {
		t.Errorf("status did not survive the round trip: %+v", st)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	evs, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.ch <- api.Event{Kind: membership.NodeDead, Node: "lvs2", Reason: "test"}
	if ev := <-evs; ev.Kind != membership.NodeDead || ev.Node != "lvs2" {
		t.Errorf("event %+v", ev)
	}
	// A second daemon on the same socket is refused.
	if _, err := Listen(sock); err == nil {
		t.Error("second listener on a live socket was allowed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Error("socket left behind after shutdown")
	}
}

// `vigil status -1`: the line and the Nagios exit code.
func TestOneLine(t *testing.T) {
	s := fixture()
	line, code := OneLine(s)
	want := "VIGIL WARNING - lvs: node lvs2 in standby, node witness offline, 1 failed operations, links dead: lvs2/serial:/dev/ttyS0, plugin resource/counter failed, 1 alerts failed; " +
		"2/3 nodes online, 1/1 groups running, leader witness | nodes_online=2;;;0;3 groups_running=1;;;0;1"
	if line != want || code != NagiosWarning {
		t.Errorf("got %d %q\nwant %d %q", code, line, NagiosWarning, want)
	}
	// A link that never heard the peer (a serial cable to another node)
	// is no warning.
	for i := range s.Nodes {
		if s.Nodes[i].Name == "lvs2" {
			s.Nodes[i].Links = append(s.Nodes[i].Links, api.LinkStatus{Link: "serial:/dev/ttyS1", State: "dead"})
		}
	}
	if line, _ := OneLine(s); line != want {
		t.Errorf("with a never-heard link: %q", line)
	}

	s.Core.State.Groups["lvs"].Owner = ""
	s.Core.Leader = ""
	if line, code := OneLine(s); code != NagiosCritical || !strings.HasPrefix(line, "VIGIL CRITICAL - lvs: no leader (no quorum?), group lvs not running, node lvs2 in standby, node witness offline") {
		t.Errorf("critical: %d %q", code, line)
	}

	ok := fixture()
	ok.Core.State.Nodes["witness"].Online = true
	ok.Core.State.Nodes["lvs2"].Standby = false
	ok.Core.State.Failures = nil
	ok.Nodes = ok.Nodes[:1]
	ok.Plugins, ok.Alerts = nil, nil
	if line, code := OneLine(ok); code != NagiosOK || line != "VIGIL OK - lvs: 3/3 nodes online, 1/1 groups running, leader witness | nodes_online=3;;;0;3 groups_running=1;;;0;1" {
		t.Errorf("ok: %d %q", code, line)
	}
}
