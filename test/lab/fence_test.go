package lab_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/test/lab"
)

// pluginDir builds the plugin packages into a new plugin_dir, each named
// for its package's directory.
func pluginDir(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, pkg := range pkgs {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

// TestFenceFailedStop: a stop that fails leaves the group blocked where it
// may still run. With a fence plugin (nsfence: power is the node's
// namespace) the leader powers that node off and, once the plugin
// confirmed it, the group moves — started strictly after the fence was
// committed. The fenced node stays offline until its daemon restarts.
func TestFenceFailedStop(t *testing.T) {
	plugins := pluginDir(t, "./nsfence")
	l := needLab(t)
	c := startCoreOn(t, l, map[string]string{"n3": "witness"}, fmt.Sprintf(
		"plugin_dir = %q\n[fence]\nplugin = \"nsfence\"\ntimeout = \"5s\"\nparams = { n1 = %q, n2 = %q }\n", plugins, l.NS("n1"), l.NS("n2")))
	c.waitRunning("n3", 30*time.Second, "n1")

	// n1's d2 cannot be stopped any more: its state file became a
	// directory that is not empty.
	state := filepath.Join(c.work, "n1", "d2.state")
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(state, "stuck"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.command("n3", api.Command{Op: "move", Group: "g", Node: "n2"})
	c.waitRunning("n3", 20*time.Second, "n2")

	st, err := c.nodes["n3"].Client.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n1 := st.Core.State.Nodes["n1"]
	if n1.Online || n1.Fenced == 0 || !strings.Contains(n1.Reason, "fenced") {
		t.Fatalf("n1 after the fence: %+v", n1)
	}
	if !c.nodes["n1"].Proc.Exited() {
		t.Fatal("n1's daemon still runs after the fence")
	}
	ops, err := lab.ReadJournal(c.work, "d2")
	if err != nil {
		t.Fatal(err)
	}
	failed := false
	for _, o := range ops {
		failed = failed || o.Node == "n1" && o.Op == "stop" && o.Result != "success"
	}
	if !failed {
		t.Fatalf("no failed stop of d2 on n1 in the journal: %+v", ops)
	}
	fenced := n1.Since
	if after := startsAfter(c.checkJournal(map[string]time.Time{"n1": fenced}), fenced); len(after) != 1 || after[0].Node != "n2" {
		t.Fatalf("after the fence d1 started %+v, want once on n2", after)
	}
	var record string
	for _, n := range []string{"n2", "n3"} {
		if s, err := c.nodes[n].Client.Status(t.Context()); err == nil && s.Core.Fencing != nil && s.Core.Fencing.LastFence != nil {
			record = s.Core.Fencing.LastFence.Node + " " + s.Core.Fencing.LastFence.Result
		}
	}
	if record != "n1 off" {
		t.Errorf("fence record in status: %q, want \"n1 off\"", record)
	}

	// The operator repairs n1 and boots it: a new daemon, so it is
	// online again; it stops its stale d1 and g stays on n2.
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	c.Restart(vigilBin, c.nodes["n1"])
	if _, err := c.nodes["n3"].WaitStatus(20*time.Second, func(s *api.Status) bool {
		n := s.Core.State.Nodes["n1"]
		return n.Online && n.Fenced == 0 && runningOn(s) == "n2" && group(s, "g").Reports["n1"].State == "stopped"
	}); err != nil {
		t.Fatalf("n1 back after its restart: %v", err)
	}
	c.checkJournal(map[string]time.Time{"n1": fenced})
}
