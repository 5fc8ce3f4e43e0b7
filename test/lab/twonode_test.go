package lab_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/test/lab"
)

// startPair starts a two_node pair (n1, n2, no witness) with the router
// namespace gw as a possible ping node and the Dummy group g preferring n1.
func startPair(t *testing.T, extra string) *coreLab {
	c, work := coreCluster(t, "two_node = true\n"+extra)
	l := needLab(t)
	return &coreLab{Lab: l, t: t, nodes: l.Pair(vigilBin, c), work: work}
}

// waitPair waits until node's two_node status satisfies cond.
func (c *coreLab) waitPair(node, what string, cond func(s *api.Status) bool) *api.Status {
	c.t.Helper()
	st, err := c.nodes[node].WaitStatus(10*time.Second, func(s *api.Status) bool {
		return s.Core != nil && s.Core.Pair != nil && cond(s)
	})
	if err != nil {
		var pair any
		if st != nil && st.Core != nil {
			pair = st.Core.Pair
		}
		c.t.Fatalf("%s: %s: %v (pair status %+v)", node, what, err, pair)
	}
	return st
}

// voters lists the Raft voters in name order.
func voters(s *api.Status) string {
	return strings.Join(slices.Sorted(slices.Values(s.Core.Voters)), " ")
}

func noteHas(sub string) func(*api.Status) bool {
	return func(s *api.Status) bool { return strings.Contains(s.Core.Pair.Note, sub) }
}

// localState is the state of group g in node's own LRM.
func localState(s *api.Status) string {
	for _, g := range s.Groups {
		if g.Name == "g" {
			return g.State
		}
	}
	return ""
}

// startPingPair starts a pair with the router as its ping node, g on n1
// and the ping node answering n1.
func startPingPair(t *testing.T) *coreLab {
	c := startPair(t, `ping_nodes = ["`+lab.PingNode+`"]`+"\n")
	if on := c.waitRunning("n2", 30*time.Second); on != "n1" {
		t.Fatalf("g runs on %s, want n1", on)
	}
	c.waitPair("n1", "the ping node answers", func(s *api.Status) bool {
		return len(s.Core.Pair.TieBreak.Ping) == 1 && s.Core.Pair.TieBreak.Ping[0].Up
	})
	return c
}

// rejoinsUnderN2 waits until n1 is a voter and online again, has taken
// n2's state and holds its lease, and g stayed on n2.
func (c *coreLab) rejoinsUnderN2() {
	c.t.Helper()
	c.waitPair("n2", "n1 rejoins", func(s *api.Status) bool {
		n := s.Core.State.Nodes["n1"]
		return voters(s) == "n1 n2" && n != nil && n.Online && runningOn(s) == "n2"
	})
	c.waitPair("n1", "n1 caught up", func(s *api.Status) bool { return runningOn(s) == "n2" && s.Core.HoldsLease })
}

// stopBeforeStart checks that n1 stopped d1 before n2 started it, and
// logs both times since cut.
func (c *coreLab) stopBeforeStart(cut time.Time, what string) {
	c.t.Helper()
	var stopped, started time.Time
	for _, i := range c.checkJournal(nil) {
		if i.Node == "n1" && !i.End.IsZero() {
			stopped = i.End
		}
		if i.Node == "n2" {
			started = i.Start
		}
	}
	if stopped.IsZero() || !stopped.Before(started) {
		c.t.Fatalf("n1 stopped d1 at %v, n2 started it at %v: want the stop first", stopped, started)
	}
	c.t.Logf("%s: it stopped d1 after %s, n2 started it after %s (deadtime %s)", what,
		stopped.Sub(cut).Round(time.Millisecond), started.Sub(cut).Round(time.Millisecond), coreDeadtime)
}

// A two_node pair whose ping node only one side reaches: only that side
// holds the group. The owner cut off stops g before its peer, which still
// reaches the ping node, takes over as the only voter; healed, the owner
// rejoins as a voter and g stays. Then the standby is cut off: it takes
// nothing over, the active node keeps g throughout.
func TestTwoNodePingNode(t *testing.T) {
	c := startPingPair(t)

	cut := time.Now()
	c.Isolate("n1", true)
	c.waitRunning("n2", 10*time.Second, "n2")
	c.waitPair("n2", "n2 alone", func(s *api.Status) bool { return voters(s) == "n2" })
	c.waitPair("n1", "n1 refuses to take over", func(s *api.Status) bool {
		return strings.Contains(s.Core.Pair.Note, "no ping node answers") && localState(s) == "stopped" && !s.Core.HoldsLease
	})
	c.stopBeforeStart(cut, "owner cut off")

	// Healed: n1 joins n2's Raft again and takes n2's state; g stays.
	c.Isolate("n1", false)
	c.rejoinsUnderN2()

	// The standby cut off: it reaches no ping node, so it takes nothing
	// over; n2 reaches it and goes on alone.
	healed := time.Now()
	c.Isolate("n1", true)
	c.waitPair("n1", "the cut-off standby refuses", noteHas("no ping node answers"))
	c.waitPair("n2", "n2 alone again", func(s *api.Status) bool { return voters(s) == "n2" && runningOn(s) == "n2" })
	c.Isolate("n1", false)
	c.waitPair("n2", "n1 rejoins again", func(s *api.Status) bool {
		n := s.Core.State.Nodes["n1"]
		return voters(s) == "n1 n2" && n != nil && n.Online
	})
	for _, i := range c.checkJournal(nil) {
		if i.Start.After(healed) || i.Node == "n2" && !i.End.IsZero() {
			t.Errorf("d1 moved while the standby was cut off: %+v", i)
		}
	}
	// Each time its links came back, n1 heard the ping node again before
	// n2's heartbeats, with n2 still "dead": the cut-off side must not
	// take over then (it would have run d1 next to n2).
	if b, err := os.ReadFile(c.nodes["n1"].Proc.LogPath); err != nil || strings.Contains(string(b), "took over") {
		t.Errorf("the cut-off node took over after it was healed (log read: %v)", err)
	}
}

// A two_node pair whose owner goes deaf: it hears nothing on either link
// while its packets still go out, so its peer never finds it silent. Its
// hold lapses (no echo, no ping answer) and it says so; the peer takes
// over once that lapse lasted DeafAfter and what the owner held is gone —
// after the owner stopped d1 — and keeps it offline while it is deaf.
// Healed, the owner rejoins as a voter and g stays (docs/SAFETY.md, rule
// 7; chaos seed 734082614 found g running nowhere for the whole cut).
func TestTwoNodeDeafOwner(t *testing.T) {
	c := startPingPair(t)
	cut := time.Now()
	c.Deafen("n1", true)
	c.waitRunning("n2", 10*time.Second, "n2")
	c.waitPair("n2", "n2 alone, n1 offline while deaf", func(s *api.Status) bool {
		n := s.Core.State.Nodes["n1"]
		return voters(s) == "n2" && n != nil && !n.Online && strings.Contains(n.Reason, "hold lapsed")
	})
	c.stopBeforeStart(cut, "owner deaf")

	c.Deafen("n1", false)
	c.rejoinsUnderN2()
	if after := startsAfter(c.checkJournal(nil), cut); len(after) != 1 || after[0].Node != "n2" {
		t.Fatalf("after n1 went deaf d1 started %+v, want once on n2", after)
	}
}

// A two_node pair without tie-breakers, both links cut: neither side can
// tell a dead peer from cut links, so the owner keeps g and the other node
// does not start it (documented in docs/SAFETY.md). After the owner
// really dies, the operator's `vigil takeover` starts g on the survivor;
// the old owner, restarted, rejoins and stops its stale copy.
func TestTwoNodeNoTieBreaker(t *testing.T) {
	c := startPair(t, "")
	if on := c.waitRunning("n2", 30*time.Second); on != "n1" {
		t.Fatalf("g runs on %s, want n1", on)
	}
	c.Isolate("n1", true)
	c.waitPair("n2", "n2 refuses", noteHas("no tie-breaker configured"))
	c.waitPair("n1", "n1 keeps g", func(s *api.Status) bool {
		return strings.Contains(s.Core.Pair.Note, "no tie-breaker configured") && localState(s) == "running" && s.Core.HoldsLease
	})
	iv := c.checkJournal(nil)
	if len(iv) != 1 || iv[0].Node != "n1" || !iv[0].End.IsZero() {
		t.Fatalf("with both links cut and no tie-breaker d1 ran %+v, want only on n1, uninterrupted", iv)
	}
	crash := time.Now()
	c.nodes["n1"].Proc.Kill()
	c.command("n2", api.Command{Op: "takeover"})
	c.waitRunning("n2", 10*time.Second, "n2")
	c.waitPair("n2", "n2 alone", func(s *api.Status) bool {
		return voters(s) == "n2" && strings.Contains(s.Core.Pair.Note, "the operator confirmed")
	})

	// n1 comes back (its Dummy still "running", as after kill -9): its old
	// view says it owns g, but it holds no lease until n2 confirms it;
	// it joins n2's Raft and stops its copy.
	c.Isolate("n1", false)
	c.Restart(vigilBin, c.nodes["n1"])
	c.waitPair("n1", "n1 merged", func(s *api.Status) bool {
		return voters(s) == "n1 n2" && runningOn(s) == "n2" && localState(s) == "stopped"
	})
	iv = c.checkJournal(map[string]time.Time{"n1": crash})
	if after := startsAfter(iv, crash); len(after) != 1 || after[0].Node != "n2" {
		t.Fatalf("after the crash d1 started %+v, want once on n2", after)
	}
}

// TestTwoNodeFence: a pair with a fencing plugin and no ping nodes. The
// owner crashes; the survivor takes over only after the plugin powered
// it off and confirmed it: while the fence device fails, nothing starts.
func TestTwoNodeFence(t *testing.T) {
	plugins := pluginDir(t, "../../plugins/sdk/examples/filefence")
	power := filepath.Join(t.TempDir(), "power") // missing: the device fails
	c := startPair(t, "plugin_dir = \""+plugins+"\"\n[fence]\nplugin = \"filefence\"\ndelay = \"50ms\"\ntimeout = \"2s\"\nparams = { dir = \""+power+"\" }\n")
	if on := c.waitRunning("n2", 30*time.Second); on != "n1" {
		t.Fatalf("g runs on %s, want n1", on)
	}
	crash := time.Now()
	c.nodes["n1"].Proc.Kill()
	c.Isolate("n1", true)
	c.waitPair("n2", "fencing fails", noteHas("fence n1 off"))
	if iv := startsAfter(c.checkJournal(map[string]time.Time{"n1": crash}), crash); len(iv) != 0 {
		t.Fatalf("d1 started before n1 was fenced: %+v", iv)
	}
	if err := os.Mkdir(power, 0o755); err != nil {
		t.Fatal(err)
	}
	c.waitRunning("n2", 10*time.Second, "n2")
	st := c.waitPair("n2", "fenced", func(s *api.Status) bool { return voters(s) == "n2" })
	if f := st.Core.Pair.TieBreak.LastFence; f == nil || f.Node != "n1" || f.Result != "off" {
		t.Fatalf("last fence: %+v", f)
	}
	b, err := os.ReadFile(filepath.Join(power, "n1"))
	fi, _ := os.Stat(filepath.Join(power, "n1"))
	if err != nil || string(b) != "off" {
		t.Fatalf("n1's power file: %q %v", b, err)
	}
	after := startsAfter(c.checkJournal(map[string]time.Time{"n1": crash}), crash)
	if len(after) != 1 || after[0].Node != "n2" || after[0].Start.Before(fi.ModTime()) {
		t.Fatalf("d1 started %+v; n1 fenced at %s: want one start on n2 after the fence", after, fi.ModTime().Format(time.StampMicro))
	}
	t.Logf("fenced n1 %s after the crash, d1 started on n2 %s after it", fi.ModTime().Sub(crash).Round(time.Millisecond),
		after[0].Start.Sub(crash).Round(time.Millisecond))
}
