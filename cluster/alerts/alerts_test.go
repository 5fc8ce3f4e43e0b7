package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/monitors"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// state builds a state at index idx from node online flags and group
// owners.
func state(idx uint64, online map[string]bool, owners map[string]string) *fsm.State {
	s := fsm.NewState()
	s.Index = idx
	for _, n := range []string{"n1", "n2", "n3"} {
		s.NodeOrder = append(s.NodeOrder, n)
		s.Nodes[n] = &fsm.Node{Name: n, Online: online[n]}
		if online[n] {
			s.Nodes[n].Since = t0
		}
	}
	for g, o := range owners {
		s.GroupOrder = append(s.GroupOrder, g)
		s.Groups[g] = &fsm.Group{GroupSpec: fsm.GroupSpec{Name: g}, Owner: o}
		if o != "" {
			s.Groups[g].Since = t0
		}
	}
	return s
}

func summaries(as []monitors.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Kind+" "+a.Type+" "+a.Group+"/"+a.Service+" ["+strings.Join(a.Hosts, " ")+"] "+a.Summary)
	}
	return out
}

func TestClusterEvents(t *testing.T) {
	expect := func(what string, old, cur *fsm.State, want ...string) {
		t.Helper()
		if got := summaries(Cluster("lvs", old, cur)); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	all := map[string]bool{"n1": true, "n2": true, "n3": true}
	boot := state(0, map[string]bool{}, map[string]string{"www": ""})

	// Boot: nodes come online, the group is placed: nothing to tell.
	up := state(5, all, map[string]string{"www": "n1"})
	up.Decisions = []fsm.Decision{{Index: 5, Time: t0, Group: "www", To: "n1", Reason: "preferred node n1"}}
	if got := Cluster("lvs", boot, up); len(got) != 0 {
		t.Errorf("boot: %q", summaries(got))
	}

	// n1 dies: the node alert, the failover, in that order.
	dead := state(9, map[string]bool{"n2": true, "n3": true}, map[string]string{"www": "n2"})
	dead.Nodes["n1"].Since, dead.Nodes["n1"].Reason = t0.Add(time.Minute), "silent on every link for deadtime"
	dead.Decisions = append(slices.Clone(up.Decisions), fsm.Decision{Index: 8, Time: t0.Add(time.Minute), Group: "www", From: "n1", To: "n2", Reason: "n1 is offline"})
	dead.Failures = []fsm.Failure{{Index: 4, Node: "n2", Group: "www", Resource: "old", Op: "start", Result: "ERROR"}}
	expect("crash", up, dead,
		"node failure lvs/node [n1] node n1 offline: silent on every link for deadtime",
		"failover failure www/failover [n2] group www moved from n1 to n2: n1 is offline",
	)

	// A failed start on n2 (newer than the old view; the one at index 4
	// was told before), the group stopped everywhere.
	failed := state(12, map[string]bool{"n2": true, "n3": true}, map[string]string{"www": ""})
	failed.Nodes["n1"].Since = t0.Add(time.Minute)
	failed.Groups["www"].Since = t0.Add(2 * time.Minute) // the FSM stamps every assignment, "nowhere" too
	failed.Failures = append(slices.Clone(dead.Failures), fsm.Failure{Index: 11, Time: t0.Add(2 * time.Minute), Node: "n2", Group: "www", Resource: "IPaddr_10.0.0.3", Op: "start", Result: "ERR_CONFIGURED", Reason: "no such interface"})
	failed.Decisions = append(slices.Clone(dead.Decisions), fsm.Decision{Index: 12, Group: "www", From: "n2", Reason: "no node may run it"})
	expect("failure", dead, failed,
		"failover failure www/failover [n2] group www stopped on n2, placed nowhere: no node may run it",
		"resource failure www/IPaddr_10.0.0.3 [n2] start of IPaddr_10.0.0.3 failed on n2 (ERR_CONFIGURED): no such interface",
	)

	// n1 is back and takes the group: both are recoveries.
	back := state(15, all, map[string]string{"www": "n1"})
	back.Nodes["n1"].Reason = "heard again"
	back.Decisions = append(slices.Clone(failed.Decisions), fsm.Decision{Index: 14, Group: "www", To: "n1", Reason: "preferred node n1"})
	expect("recovery", failed, back,
		"node up lvs/node [n1] node n1 online: heard again",
		"failover up www/failover [n1] group www placed on n1: preferred node n1",
	)
	if got := Cluster("lvs", back, back); len(got) != 0 {
		t.Errorf("no change: %q", summaries(got))
	}
}

func TestLinkEvents(t *testing.T) {
	l := NewLinks("lvs", "n2")
	ev := func(k membership.EventKind) membership.Event {
		return membership.Event{Time: t0, Kind: k, Node: "n1", Link: "ucast:eth0", Reason: "no heartbeat for deadtime"}
	}
	if _, ok := l.Event(ev(membership.LinkUp)); ok {
		t.Error("a link's first up (boot) is an alert")
	}
	if _, ok := l.Event(ev(membership.NodeDead)); ok {
		t.Error("node events are told from the replicated state, not per node")
	}
	a, ok := l.Event(ev(membership.LinkDead))
	if !ok || a.Type != monitors.AlertFailure || a.Summary != "link ucast:eth0 from n2 to n1 down: no heartbeat for deadtime" || a.Hosts[0] != "n1" {
		t.Errorf("link dead: %v %+v", ok, a)
	}
	if a, ok = l.Event(ev(membership.LinkUp)); !ok || a.Type != monitors.AlertUp {
		t.Errorf("link back: %v %+v", ok, a)
	}
	if _, ok := l.Event(ev(membership.LinkUp)); ok {
		t.Error("a second up without a down is an alert")
	}
}

// The router delivers through the real senders: Debian mon's file.alert
// (unchanged), and a plugin sender; routes filter by kind and upalert,
// each line sees its events in order.
func TestRouterDelivers(t *testing.T) {
	if _, err := os.Stat("/usr/lib/mon/alert.d/file.alert"); err != nil {
		t.Fatal("Debian's mon is not installed (make deps installs it): ", err)
	}
	dir := t.TempDir()
	nodesLog, allLog := filepath.Join(dir, "nodes.log"), filepath.Join(dir, "all.log")
	no := false
	ha := &config.HA{Alerts: []config.AlertRoute{
		{Events: []string{"node"}, Send: []string{"file.alert " + nodesLog}, Upalert: &no},
		{Events: config.AlertKinds, Send: []string{"file.alert " + allLog, "plugin:pager team=ops"}},
	}}
	var mu sync.Mutex
	var paged []string
	senders := monitors.Senders{AlertDir: []string{"/usr/lib/mon/alert.d"},
		Plugin: func(_ context.Context, name string, args []string, a monitors.Alert) error {
			mu.Lock()
			defer mu.Unlock()
			paged = append(paged, name+" "+strings.Join(args, " ")+": "+a.Summary)
			if a.Kind == "link" {
				return errors.New("pager unreachable")
			}
			return nil
		}}
	const sendTimeout = 10 * time.Second
	r := New(ha, senders, sendTimeout, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	events := []monitors.Alert{
		{Type: monitors.AlertFailure, Kind: "node", Group: "lvs", Service: "node", Hosts: []string{"n1"}, Time: t0, Summary: "node n1 offline", Output: "node n1 offline\nsilent\n"},
		{Type: monitors.AlertFailure, Kind: "failover", Group: "www", Service: "failover", Hosts: []string{"n2"}, Time: t0, Summary: "group www moved from n1 to n2", Output: "group www moved from n1 to n2\n"},
		{Type: monitors.AlertFailure, Kind: "link", Group: "lvs", Service: "link", Hosts: []string{"n1"}, Time: t0, Summary: "link down", Output: "link down\n"},
		{Type: monitors.AlertUp, Kind: "node", Group: "lvs", Service: "node", Hosts: []string{"n1"}, Time: t0, Summary: "node n1 online", Output: "node n1 online\n"},
	}
	for _, a := range events {
		r.Emit(a)
	}
	// Deliveries run one after another, each bounded by the send timeout;
	// the failing pager is the only one that could take that long.
	testutil.Eventually(t, 2*sendTimeout, "9 deliveries (nodes.log 1, all.log 4, pager 4)", func() (Counts, bool) {
		c, _ := r.Status()
		return c, c.Sent+c.Failed == 9
	})
	c, recent := r.Status()
	if c.Failed != 1 || len(recent) != 9 {
		t.Errorf("counts %+v, %d records", c, len(recent))
	}
	nodes, _ := os.ReadFile(nodesLog)
	if strings.Count(string(nodes), "\n.\n") != 1 || !strings.HasPrefix(string(nodes), "failure lvs node ") || !strings.Contains(string(nodes), "node n1 offline\nDESCR=\nOPSTATUS=0\nsilent\n.\n") {
		t.Errorf("nodes route (no upalerts):\n%s", nodes)
	}
	all, _ := os.ReadFile(allLog)
	var firsts []string
	for _, line := range strings.Split(string(all), "\n") {
		if f := strings.Fields(line); len(f) > 3 && (f[0] == "failure" || f[0] == "up") {
			firsts = append(firsts, f[0]+" "+f[1]+" "+f[2])
		}
	}
	if strings.Join(firsts, ",") != "failure lvs node,failure www failover,failure lvs link,up lvs node" {
		t.Errorf("all route, in order: %q\n%s", firsts, all)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paged) != 4 || paged[0] != "pager team=ops: node n1 offline" {
		t.Errorf("plugin sender: %q", paged)
	}
}

// Set (vigil reload) changes the routes of a running router: a new line
// delivers from then on, a removed one no longer does, a kept one goes on.
func TestRouterSet(t *testing.T) {
	var mu sync.Mutex
	var got []string
	senders := monitors.Senders{Plugin: func(_ context.Context, name string, _ []string, a monitors.Alert) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, name+":"+a.Summary)
		return nil
	}}
	route := func(names ...string) *config.HA {
		ha := &config.HA{}
		for _, n := range names {
			ha.Alerts = append(ha.Alerts, config.AlertRoute{Events: []string{"node"}, Send: []string{"plugin:" + n}})
		}
		return ha
	}
	const sendTimeout = 10 * time.Second
	r := New(route("a"), senders, sendTimeout, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	emit := func(summary string, total uint64) {
		t.Helper()
		r.Emit(monitors.Alert{Type: monitors.AlertFailure, Kind: "node", Summary: summary, Time: t0})
		testutil.Eventually(t, 2*sendTimeout, fmt.Sprintf("%d sent after %q", total, summary), func() (Counts, bool) {
			c, _ := r.Status()
			return c, c.Sent == total
		})
	}
	emit("one", 1)
	r.Set(route("a", "b"), senders)
	emit("two", 3)
	r.Set(route("b"), senders)
	emit("three", 4)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got[1:3])
	if want := "a:one a:two b:two b:three"; strings.Join(got, " ") != want {
		t.Fatalf("deliveries %q, want %s", got, want)
	}
}
