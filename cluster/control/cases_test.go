package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
)

// trio is the demo's cluster as n1 sees it, all well: directors n1 and n2
// with a serial cable between them, witness n3 (no cable), Raft led by the
// witness, group lvs running on its preferred node n1.
func trio() *api.Status {
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	link := func(name string, heard time.Duration) api.LinkStatus {
		return api.LinkStatus{Link: name, State: "up", LastHeard: at(heard), Received: 3000}
	}
	cable := api.LinkStatus{Link: "serial:/dev/pts/3", State: "dead"} // never heard from n3
	return &api.Status{
		Cluster: "seed", Node: "n1", Version: "0.1.0", Incarnation: 7, Started: at(10 * time.Minute), Now: now,
		Timing: api.Timing{Keepalive: "100ms", Warntime: "175ms", Deadtime: "350ms", Initdead: "3s"},
		Nodes: []api.NodeStatus{
			{Name: "n1", Address: "10.77.1.1", Role: "member", Self: true, PeerStatus: api.PeerStatus{Node: "n1", State: "up", Since: at(10 * time.Minute)}},
			{Name: "n2", Address: "10.77.1.2", Role: "member", PeerStatus: api.PeerStatus{Node: "n2", State: "up", Since: at(9 * time.Minute), Links: []api.LinkStatus{
				link("ucast:10.77.1.1", 40*time.Millisecond), link("bcast:eth1", 60*time.Millisecond), link("serial:/dev/pts/3", 80*time.Millisecond)}}},
			{Name: "n3", Address: "10.77.1.3", Role: "witness", PeerStatus: api.PeerStatus{Node: "n3", State: "up", Since: at(9 * time.Minute), Links: []api.LinkStatus{
				link("ucast:10.77.1.1", 30*time.Millisecond), link("bcast:eth1", 50*time.Millisecond), cable}}},
		},
		Links: []heartbeat.LinkCounters{
			{Link: "ucast:10.77.1.1", Sent: 12000, Received: 11000},
			{Link: "bcast:eth1", Sent: 6000, Received: 11000},
			{Link: "serial:/dev/pts/3", Sent: 6000, Received: 5500},
		},
		Core: &api.ClusterStatus{Leader: "n3", RaftState: "Follower", Term: "3", Applied: 120, Quorum: 2, Voters: []string{"n1", "n2", "n3"},
			HoldsLease: true, Lease: "290ms", Files: "a1b2c3d4e5f60718",
			State: &fsm.State{
				GroupsVersion: "a1b2c3d4e5f60718",
				NodeOrder:     []string{"n1", "n2", "n3"},
				Nodes: map[string]*fsm.Node{
					"n1": {Name: "n1", Role: "member", Online: true, Since: at(9 * time.Minute), Reason: "heartbeats resumed"},
					"n2": {Name: "n2", Role: "member", Online: true, Since: at(9 * time.Minute), Reason: "marked itself online as Raft leader"},
					"n3": {Name: "n3", Role: "witness", Online: true, Since: at(9 * time.Minute), Reason: "heartbeats resumed"},
				},
				GroupOrder: []string{"lvs"},
				Groups: map[string]*fsm.Group{"lvs": {
					GroupSpec: fsm.GroupSpec{Name: "lvs", Preferred: "n1"}, Owner: "n1", Reason: "preferred node n1",
					Reports: map[string]fsm.NodeReport{
						"n1": {State: "running", Op: "start", Result: "OK", At: at(9 * time.Minute)},
						"n2": {State: "stopped", Op: "probe", Result: "OK", At: at(9 * time.Minute)},
					},
				}},
			}},
	}
}

// failedOver is trio after n1's crash, as n2 sees it: n1 offline since
// 12 s, the group running on n2; n1's last report still says running.
func failedOver() *api.Status {
	s := trio()
	s.Node = "n2"
	s.Nodes[0].Self, s.Nodes[1].Self = false, true
	s.Nodes[0].PeerStatus = api.PeerStatus{Node: "n1", State: "dead", Since: now.Add(-12 * time.Second), Links: []api.LinkStatus{
		{Link: "ucast:10.77.1.2", State: "dead", LastHeard: now.Add(-12400 * time.Millisecond), Received: 5000},
		{Link: "serial:/dev/pts/4", State: "dead", LastHeard: now.Add(-12400 * time.Millisecond), Received: 2500},
	}}
	s.Nodes[1].PeerStatus = api.PeerStatus{Node: "n2", State: "up", Since: now.Add(-9 * time.Minute)}
	s.Nodes[2].Links = []api.LinkStatus{
		{Link: "ucast:10.77.1.2", State: "up", LastHeard: now.Add(-20 * time.Millisecond), Received: 5400},
		{Link: "serial:/dev/pts/4", State: "dead"},
	}
	s.Links = []heartbeat.LinkCounters{{Link: "ucast:10.77.1.2", Sent: 12000, Received: 10400}, {Link: "serial:/dev/pts/4", Sent: 6000, Received: 2500}}
	st := s.Core.State
	st.Nodes["n1"].Online, st.Nodes["n1"].Since, st.Nodes["n1"].Reason = false, now.Add(-12*time.Second), "silent on every link for deadtime"
	g := st.Groups["lvs"]
	g.Owner, g.Reason = "n2", "n1 is offline: first eligible node n2"
	g.Reports["n2"] = fsm.NodeReport{State: "running", Op: "start", Result: "OK", At: now.Add(-11 * time.Second)}
	st.Decisions = []fsm.Decision{{Time: now.Add(-12 * time.Second), Group: "lvs", From: "n1", To: "n2", Reason: g.Reason}}
	return s
}

// Each case is one complaint of issue 25, in every form status takes: the
// text, -1 and what --json adds (placement, the links per peer). The
// golden files are testdata/case-NAME.golden (go test -update rewrites them).
func TestStatusCases(t *testing.T) {
	cases := []struct {
		name string
		s    func() *api.Status
	}{
		// All well: OK; n1 lists no cable to the witness.
		{"ok", trio},
		// After a failover, n1's row is OFFLINE with its last known
		// state and its age, never "running": the group does not look
		// as if it ran twice. WARNING: n1 offline, lvs not on n1.
		{"failed-over", failedOver},
		// The owner died and placement has not moved the group yet: its
		// state is unknown (CRITICAL), not the owner's stale "running".
		{"owner-offline", func() *api.Status {
			s := failedOver()
			g := s.Core.State.Groups["lvs"]
			g.Owner, g.Reason = "n1", "preferred node n1"
			g.Reports["n2"] = fsm.NodeReport{State: "stopped", Op: "probe", Result: "OK"}
			s.Core.State.Decisions = nil
			return s
		}},
		// n2 was marked online while it led Raft; the witness leads now:
		// the RAFT column says so apart from the replicated flags.
		{"leader-column", func() *api.Status {
			s := trio()
			s.Core.State.Nodes["n2"].Reason = "leader" // written by an older build
			return s
		}},
		// Standby and maintenance are WARNING, and so is a group away
		// from its preferred node (here moved by the operator).
		{"standby-maintenance", func() *api.Status {
			s := trio()
			s.Core.State.Nodes["n1"].Standby = true
			s.Core.State.Nodes["n2"].Maintenance = true
			return s
		}},
		{"moved", func() *api.Status {
			s := trio()
			g := s.Core.State.Groups["lvs"]
			g.Owner, g.Pinned, g.Reason = "n2", "n2", "moved by the operator"
			g.Reports["n1"] = fsm.NodeReport{State: "stopped", Op: "stop", Result: "OK", Reason: `assigned to "n2"`}
			g.Reports["n2"] = fsm.NodeReport{State: "running", Op: "start", Result: "OK"}
			return s
		}},
		// This node's resources.toml is not what the cluster runs (the
		// leader's files won at start), nor n2's as it reported them:
		// both shown, and WARNING.
		{"files-differ", func() *api.Status {
			s := trio()
			s.Core.Files = "ffee00112233aabb"
			s.Core.State.Nodes["n1"].Files = "a1b2c3d4e5f60718" // its report is older than its files
			s.Core.State.Nodes["n2"].Files = "ffee00112233aabb"
			return s
		}},
		// After a reload elsewhere; seen from the witness, whose files
		// agree: n1's difference shows there too.
		{"files-differ-reload", func() *api.Status {
			s := trio()
			s.Node = "n3"
			s.Core.State.GroupsGeneration = 2
			s.Core.State.Nodes["n1"].Files = "ffee00112233aabb"
			s.Core.State.Nodes["n3"].Files = "a1b2c3d4e5f60718"
			return s
		}},
		// n1 is cut off from both peers: no leader, and its replicated
		// state is as last applied. The peers it does not hear are not
		// shown online, nor the group running on n2.
		{"no-leader", func() *api.Status {
			s := trio()
			s.Core.Leader, s.Core.RaftState, s.Core.HoldsLease, s.Core.Lease = "", "Candidate", false, ""
			g := s.Core.State.Groups["lvs"]
			g.Owner = "n2"
			g.Reports["n1"] = fsm.NodeReport{State: "stopped", Op: "stop", Result: "OK", Reason: "lease lost"}
			g.Reports["n2"] = fsm.NodeReport{State: "running", Op: "start", Result: "OK"}
			for i := 1; i < 3; i++ {
				s.Nodes[i].State, s.Nodes[i].Since = "dead", now.Add(-3*time.Second)
				for j := range s.Nodes[i].Links {
					s.Nodes[i].Links[j].State = "dead"
				}
			}
			return s
		}},
		// n1 owns the group and is cut off from both peers: its lease ran
		// out and it stopped the group, which no leader records (its
		// report still says running). Its row and the group show what
		// it runs now: stopped, CRITICAL, never running.
		{"cut-off-owner", func() *api.Status {
			s := trio()
			s.Core.Leader, s.Core.RaftState, s.Core.HoldsLease, s.Core.Lease = "", "Candidate", false, ""
			for i := 1; i < 3; i++ {
				s.Nodes[i].State, s.Nodes[i].Since = "dead", now.Add(-3*time.Second)
				for j := range s.Nodes[i].Links {
					s.Nodes[i].Links[j].State = "dead"
				}
			}
			s.Groups = []api.GroupStatus{{Name: "lvs", State: "stopped"}}
			return s
		}},
		// No cable was heard from anyone yet: it is listed for every peer.
		{"cable-never-heard", func() *api.Status {
			s := trio()
			s.Nodes[1].Links[2] = api.LinkStatus{Link: "serial:/dev/pts/3", State: "dead"}
			return s
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s()
			var buf bytes.Buffer
			line, code := OneLine(s)
			fmt.Fprintf(&buf, "$ vigil status -1    (exit %d)\n%s\n\n$ vigil status\n", code, line)
			Render(&buf, s)
			// What --json adds for scripts: the placement view and the
			// links per peer (the rest is the raw status).
			s.Placement = api.Placement(s)
			links := map[string][]string{}
			for _, n := range SharedLinks(s.Nodes) {
				for _, l := range n.Links {
					links[n.Name] = append(links[n.Name], l.Link)
				}
			}
			js, err := json.MarshalIndent(map[string]any{"placement": s.Placement, "links": links, "files_differ": api.FilesDiffer(s)}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&buf, "\n$ vigil status --json    (placement, links, files_differ)\n%s\n", js)
			golden(t, filepath.Join("testdata", "case-"+tc.name+".golden"), buf.Bytes())
		})
	}
}

// golden compares got with a golden file; -update rewrites it.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update to accept):\n%s", path, got)
	}
}
