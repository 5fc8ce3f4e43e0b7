package lab_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/test/lab"
)

// The core tests run faster beats than the membership tests, still with
// room for a loaded CI machine.
const (
	coreKeepalive = 20 * time.Millisecond
	coreDeadtime  = 200 * time.Millisecond
)

type coreLab struct {
	*lab.Lab
	t     *testing.T
	nodes map[string]*lab.Node
	work  string // journals: work/NODE/ID.log
}

// startCore starts the three-node lab (n1..n3, roles as given) with one
// Dummy group "g" preferring n1.
func startCore(t *testing.T, roles map[string]string, extra string) *coreLab {
	return startCoreOn(t, needLab(t), roles, extra)
}

// startCoreOn is startCore on a lab made already (whose namespace names
// the configuration may need).
func startCoreOn(t *testing.T, l *lab.Lab, roles map[string]string, extra string) *coreLab {
	c, work := coreCluster(t, extra)
	for name, role := range roles {
		c.Nodes = append(c.Nodes, lab.NodeSpec{Name: name, Role: role})
	}
	return &coreLab{Lab: l, t: t, nodes: l.Trio(vigilBin, c, false, nil), work: work}
}

// coreCluster is the core tests' cluster: their timing and the Dummy
// group g (d1, d2) preferring n1, journaling under work.
func coreCluster(t *testing.T, extra string) (c *lab.Cluster, work string) {
	work = t.TempDir()
	return &lab.Cluster{Name: "coretest", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef",
		Extra: extra, Resources: lab.DummyResources(work, "g", "n1", `, interval = "100ms"`, "d1", "d2")}, work
}

func group(st *api.Status, name string) *fsm.Group {
	if st == nil || st.Core == nil || st.Core.State == nil {
		return nil
	}
	return st.Core.State.Groups[name]
}

// runningOn is the node whose report says g runs there and which owns it.
func runningOn(st *api.Status) string { return groupOn(st, "g") }

// groupOn is the node whose report says the named group runs there and
// which owns it.
func groupOn(st *api.Status, name string) string {
	g := group(st, name)
	if g == nil || g.Owner == "" || g.Reports[g.Owner].State != "running" {
		return ""
	}
	return g.Owner
}

// waitRunning waits, asking node via, until g runs on a node in want (any
// node when want is empty) and returns it.
func (c *coreLab) waitRunning(via string, timeout time.Duration, want ...string) string {
	c.t.Helper()
	st, err := c.nodes[via].WaitStatus(timeout, func(s *api.Status) bool {
		on := runningOn(s)
		if on == "" {
			return false
		}
		if len(want) == 0 {
			return true
		}
		for _, w := range want {
			if on == w {
				return true
			}
		}
		return false
	})
	if err != nil {
		g := group(st, "g")
		c.t.Fatalf("g not running on %v: %v\ngroup: %+v", want, err, g)
	}
	return runningOn(st)
}

// checkJournal asserts that no two nodes ever ran a resource at the same
// time and returns the intervals of d1.
func (c *coreLab) checkJournal(crashed map[string]time.Time) []lab.Interval {
	c.t.Helper()
	var d1 []lab.Interval
	for _, id := range []string{"d1", "d2"} {
		ops, err := lab.ReadJournal(c.work, id)
		if err != nil {
			c.t.Fatal(err)
		}
		iv := lab.Intervals(ops, crashed)
		if o := lab.Overlap(iv); o != nil {
			c.t.Errorf("%s ran on two nodes at once: %s [%s, %s] and %s [%s, %s]", id,
				o[0].Node, o[0].Start.Format(time.StampMicro), o[0].End.Format(time.StampMicro),
				o[1].Node, o[1].Start.Format(time.StampMicro), o[1].End.Format(time.StampMicro))
		}
		if id == "d1" {
			d1 = iv
		}
	}
	return d1
}

func startsAfter(iv []lab.Interval, t time.Time) []lab.Interval {
	var out []lab.Interval
	for _, i := range iv {
		if i.Start.After(t) {
			out = append(out, i)
		}
	}
	return out
}

// Three nodes: the owner is killed (kill -9 and its links cut at once);
// the group starts on another node exactly once, and never while the old
// owner's lease could still be valid.
func TestCoreCrashOwner(t *testing.T) {
	c := startCore(t, nil, "")
	if on := c.waitRunning("n2", 30*time.Second); on != "n1" {
		t.Fatalf("g runs on %s, want its preferred node n1", on)
	}
	crash := c.Crash(c.nodes["n1"])
	on := c.waitRunning("n2", 10*time.Second, "n2", "n3")
	took := time.Since(crash)
	iv := c.checkJournal(map[string]time.Time{"n1": crash})
	after := startsAfter(iv, crash)
	if len(after) != 1 || after[0].Node != on {
		t.Fatalf("after the crash d1 started %d times (%+v), want once on %s", len(after), after, on)
	}
	t.Logf("failover to %s: d1 started %s after the crash (observed by status after %s; deadtime %s)",
		on, after[0].Start.Sub(crash).Round(time.Millisecond), took.Round(time.Millisecond), coreDeadtime)
}

// The owner is cut off alive: it loses its lease and stops the group
// before any other node starts it. Repeated with random timing, each time
// partitioning whichever node owns the group, then healing.
func TestCorePartitionOwnerNoOverlap(t *testing.T) {
	c := startCore(t, nil, "")
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	owner := c.waitRunning("n2", 30*time.Second)
	prev := ""
	for round := range rounds {
		// Random phase against the heartbeat and monitor cycles.
		wait := time.Duration(rand.IntN(int(5 * coreKeepalive)))
		<-time.After(wait)
		cut := time.Now()
		c.Isolate(owner, true)
		// Ask the node that was cut off in neither this round nor the last:
		// a node that just rejoined may still be catching up.
		var via string
		for _, n := range []string{"n1", "n2", "n3"} {
			if n != owner && n != prev {
				via = n
				break
			}
		}
		others := []string{}
		for _, n := range []string{"n1", "n2", "n3"} {
			if n != owner {
				others = append(others, n)
			}
		}
		next := c.waitRunning(via, 10*time.Second, others...)
		// The isolated node stopped by itself: its status says so.
		if _, err := c.nodes[owner].WaitStatus(5*time.Second, func(s *api.Status) bool {
			for _, g := range s.Groups {
				if g.Name == "g" {
					return g.State == "stopped"
				}
			}
			return false
		}); err != nil {
			t.Fatalf("round %d: isolated %s did not stop g: %v", round, owner, err)
		}
		c.Isolate(owner, false)
		iv := c.checkJournal(nil)
		var stopped, started time.Time
		for _, i := range iv {
			if i.Node == owner && !i.End.IsZero() && i.End.After(cut) && stopped.IsZero() {
				stopped = i.End
			}
			if i.Node == next && i.Start.After(cut) {
				started = i.Start
			}
		}
		t.Logf("round %d: cut %s; it stopped d1 after %s, %s started it after %s", round, owner,
			stopped.Sub(cut).Round(time.Millisecond), next, started.Sub(cut).Round(time.Millisecond))
		// The healed node rejoins; wait until the cluster sees it online
		// so the next round starts from a full cluster.
		if _, err := c.nodes[owner].WaitStatus(10*time.Second, func(s *api.Status) bool {
			n := s.Core.State.Nodes[owner]
			return n != nil && n.Online && s.Core.HoldsLease && runningOn(s) == next
		}); err != nil {
			t.Fatalf("round %d: %s did not rejoin: %v", round, owner, err)
		}
		prev, owner = owner, next
	}
	if t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, _ := c.nodes[owner].Client.Status(ctx)
	for _, d := range st.Core.State.Decisions {
		t.Logf("decision %d: %s → %s: %s", d.Index, d.From, d.To, d.Reason)
	}
	if len(st.Core.State.Decisions) < rounds+1 {
		t.Errorf("%d placement decisions, want %d (the first placement and one move per round)", len(st.Core.State.Decisions), rounds+1)
	}
}

// A director pair with a witness (n3): the witness holds no resources and
// keeps Raft's leadership where it can; losing the standby director or the
// witness moves nothing; the state survives a restart of every node; a
// crash of the active director moves the group to the other one.
func TestCorePairWithWitness(t *testing.T) {
	c := startCore(t, map[string]string{"n3": "witness"}, "")
	if on := c.waitRunning("n3", 30*time.Second); on != "n1" {
		t.Fatalf("g runs on %s, want n1", on)
	}
	// Leadership moves to the witness.
	if _, err := c.nodes["n2"].WaitStatus(10*time.Second, func(s *api.Status) bool { return s.Core.Leader == "n3" }); err != nil {
		t.Errorf("leader is not the witness: %v", err)
	}
	// Pin the group (state to survive restarts), then lose n2 and the
	// witness in turn: nothing moves.
	if err := c.nodes["n2"].Client.Command(context.Background(), api.Command{Op: "move", Group: "g", Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	for _, victim := range []string{"n2", "n3"} {
		c.nodes[victim].Proc.Kill()
		if _, err := c.nodes["n1"].WaitStatus(10*time.Second, func(s *api.Status) bool {
			n := s.Core.State.Nodes[victim]
			return victim == "n3" && lab.Peer(s, "n3").State == "dead" || n != nil && !n.Online
		}); err != nil {
			t.Fatalf("%s not seen dead: %v", victim, err)
		}
		if on := c.waitRunning("n1", 5*time.Second); on != "n1" {
			t.Fatalf("after losing %s, g runs on %s", victim, on)
		}
		c.Restart(vigilBin, c.nodes[victim])
	}
	// Restart every node: the pin, from disk, is still there.
	for _, n := range []string{"n1", "n2", "n3"} {
		c.nodes[n].Proc.Stop(10 * time.Second)
	}
	restarted := time.Now()
	for _, n := range []string{"n1", "n2", "n3"} {
		c.Restart(vigilBin, c.nodes[n])
	}
	// A report from before the restarts may still say "running" (with
	// every node stopping there was no quorum to record the stop): wait
	// for the restarted n1's own, or the crash below could come while it
	// is still starting the group.
	st, err := c.nodes["n2"].WaitStatus(30*time.Second, func(s *api.Status) bool {
		return runningOn(s) == "n1" && group(s, "g").Reports["n1"].At.After(restarted)
	})
	if err != nil {
		t.Fatalf("after restarting everything: %v", err)
	}
	if g := group(st, "g"); g.Pinned != "n1" {
		t.Errorf("pin lost across the restart: %+v", g)
	}
	// Unpin and crash the active director.
	if err := c.nodes["n2"].Client.Command(context.Background(), api.Command{Op: "unmove", Group: "g"}); err != nil {
		t.Fatal(err)
	}
	crash := c.Crash(c.nodes["n1"])
	if on := c.waitRunning("n2", 10*time.Second, "n2"); on != "n2" {
		t.Fatalf("after the crash g runs on %s", on)
	}
	iv := c.checkJournal(map[string]time.Time{"n1": crash})
	after := startsAfter(iv, crash)
	if len(after) != 1 {
		t.Fatalf("d1 started %d times after the crash: %+v", len(after), after)
	}
	t.Logf("pair + witness failover: d1 started on n2 %s after the crash", after[0].Start.Sub(crash).Round(time.Millisecond))
	for _, i := range iv {
		if i.Node == "n3" {
			t.Errorf("the witness ran d1: %+v", i)
		}
	}
}

func (c *coreLab) command(via string, cmd api.Command) {
	c.t.Helper()
	if err := c.nodes[via].Client.Command(context.Background(), cmd); err != nil {
		c.t.Fatalf("%s %s %s: %v", cmd.Op, cmd.Group, cmd.Node, err)
	}
}

// Operator commands and failure handling with auto_failback on:
// standby/online, move/unmove, migration after repeated monitor failures,
// cleanup — and never two nodes running the group at once.
func TestCoreOperations(t *testing.T) {
	c := startCore(t, nil, "auto_failback = true\nmigration_threshold = 2\n")
	c.waitRunning("n3", 30*time.Second, "n1")

	c.command("n3", api.Command{Op: "standby", Node: "n1"})
	c.waitRunning("n3", 10*time.Second, "n2")
	c.command("n3", api.Command{Op: "online", Node: "n1"})
	c.waitRunning("n3", 10*time.Second, "n1") // auto_failback

	c.command("n2", api.Command{Op: "move", Group: "g", Node: "n3"})
	c.waitRunning("n2", 10*time.Second, "n3")
	c.command("n2", api.Command{Op: "unmove", Group: "g"})
	c.waitRunning("n2", 10*time.Second, "n1")

	// d2 fails under n1 (its state file vanishes): the monitor notices,
	// the group is recovered in place, and at the second failure
	// (migration_threshold = 2) it moves.
	state := filepath.Join(c.work, "n1", "d2.state")
	for fails := 1; fails <= 2; fails++ {
		if err := os.Remove(state); err != nil {
			t.Fatal(err)
		}
		st, err := c.nodes["n3"].WaitStatus(10*time.Second, func(s *api.Status) bool {
			return s.Core.State.Failcount("g", "n1") == fails
		})
		if err != nil {
			t.Fatalf("failure %d not counted: %v", fails, err)
		}
		if fails == 1 {
			// Restarted in place: running on n1 again, state file back.
			c.waitRunning("n3", 10*time.Second, "n1")
			if _, err := os.Stat(state); err != nil {
				t.Fatalf("d2 not restarted on n1: %v", err)
			}
		} else {
			on := c.waitRunning("n3", 10*time.Second, "n2", "n3")
			t.Logf("after %d failures on n1 g moved to %s: %s", fails, on, st.Core.State.Groups["g"].Reason)
		}
	}
	st, _ := c.nodes["n3"].Client.Status(context.Background())
	if f := st.Core.State.Failures; len(f) != 2 || f[0].Resource != "d2" || f[0].Op != "monitor" {
		t.Errorf("recent failures: %+v", f)
	}
	c.command("n3", api.Command{Op: "cleanup", Group: "g"})
	c.waitRunning("n3", 10*time.Second, "n1") // eligible again, auto_failback
	c.checkJournal(nil)
}

// Without auto_failback the group stays where it went when its preferred
// node comes back.
func TestCoreNoFailback(t *testing.T) {
	c := startCore(t, nil, "")
	c.waitRunning("n2", 30*time.Second, "n1")
	c.Crash(c.nodes["n1"])
	on := c.waitRunning("n2", 10*time.Second, "n2", "n3")
	c.Isolate("n1", false)
	c.Restart(vigilBin, c.nodes["n1"])
	// n1 is back, holds a lease and reported what it runs (nothing).
	if _, err := c.nodes["n1"].WaitStatus(20*time.Second, func(s *api.Status) bool {
		g := group(s, "g")
		return s.Core.HoldsLease && g != nil && g.Reports["n1"].State == "stopped" && s.Core.State.Nodes["n1"].Online
	}); err != nil {
		t.Fatal(err)
	}
	st, _ := c.nodes["n2"].Client.Status(context.Background())
	if g := group(st, "g"); g.Owner != on {
		t.Fatalf("g moved back to %s without auto_failback (decisions %+v)", g.Owner, st.Core.State.Decisions)
	}
}

// TestCoreNodeRemoveAdd: `vigil node remove|add` typed on a follower runs
// on the leader; a removed node votes and counts for nothing, an owner
// cannot be removed, and a node added back is a working voter: after the
// owner's crash the group fails over with its vote.
func TestCoreNodeRemoveAdd(t *testing.T) {
	c := startCore(t, nil, "")
	c.waitRunning("n1", 30*time.Second, "n1")
	st, err := c.nodes["n1"].WaitStatus(10*time.Second, func(s *api.Status) bool { return s.Core.Leader != "" })
	if err != nil {
		t.Fatal(err)
	}
	// target: neither the owner n1 nor the leader; via: the third node,
	// a follower, so both commands are forwarded.
	target, via := "n2", "n3"
	switch st.Core.Leader {
	case "n2":
		target, via = "n3", "n1"
	case "n3":
		via = "n1"
	}
	members := func(s *api.Status) string {
		return strings.Join(s.Core.Voters, " ") + " / " + strings.Join(s.Core.State.NodeOrder, " ")
	}
	if err := c.nodes[via].Client.Command(context.Background(), api.Command{Op: "node-remove", Node: "n1"}); err == nil || !strings.Contains(err.Error(), "still owns group g") {
		t.Fatalf("removing the owner: %v", err)
	}
	c.command(via, api.Command{Op: "node-remove", Node: target})
	rest := map[string]string{"n2": "n1 n3", "n3": "n1 n2"}[target]
	if _, err := c.nodes[via].WaitStatus(10*time.Second, func(s *api.Status) bool {
		voters := slices.Clone(s.Core.Voters)
		slices.Sort(voters)
		return strings.Join(voters, " ") == rest && s.Core.State.Nodes[target] == nil
	}); err != nil {
		t.Fatalf("%s not removed: %v", target, err)
	}
	addr := map[string]string{"n2": "10.77.1.2", "n3": "10.77.1.3"}[target]
	c.command(via, api.Command{Op: "node-add", Node: target, Address: fmt.Sprintf("%s:%d", addr, config.DefaultRaftPort)})
	st, err = c.nodes[via].WaitStatus(10*time.Second, func(s *api.Status) bool {
		n := s.Core.State.Nodes[target]
		return len(s.Core.Voters) == 3 && n != nil && n.Online
	})
	if err != nil {
		t.Fatalf("%s not added back: %v", target, err)
	}
	t.Logf("voters / nodes after the add: %s", members(st))

	// With the owner gone, the quorum needs the re-added node's vote.
	crash := c.Crash(c.nodes["n1"])
	on := c.waitRunning(target, 10*time.Second, "n2", "n3") // via may have been n1
	if after := startsAfter(c.checkJournal(map[string]time.Time{"n1": crash}), crash); len(after) != 1 || after[0].Node != on {
		t.Fatalf("after the crash d1 started %+v, want once on %s", after, on)
	}
}
