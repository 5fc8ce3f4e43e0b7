package lab_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/test/lab"
)

func pluginPID(st *api.Status, name string) (pid, crashes int, state string) {
	for _, p := range st.Plugins {
		if p.Name == name {
			return p.PID, p.Crashes, p.State
		}
	}
	return 0, 0, ""
}

func resourceState(st *api.Status, id string) string {
	for _, g := range st.Groups {
		for _, r := range g.Resources {
			if r.ID == id {
				return r.State
			}
		}
	}
	return ""
}

// The real daemon runs its built-in plugins as subprocesses of the vigil
// binary, probes the configured resources through them (the Dummy and the
// Debian OCF Dummy agent), and survives a plugin killed under it: the
// crash is counted in status, the plugin restarted.
func TestDaemonSurvivesPluginCrash(t *testing.T) {
	l := needLab(t)
	l.AddNS("n1")
	c := &lab.Cluster{Name: "plugtest", Keepalive: keepalive, Deadtime: deadtime, Secret: "lab-secret-0123456789abcdef",
		Nodes: []lab.NodeSpec{{Name: "n1", Address: "127.0.0.1"}, {Name: "n2", Address: "127.0.0.2"}}}
	dir := l.WriteConfig(c, "n1", "[[ucast]]\ninterface = \"lo\"\n", "")
	work := t.TempDir()
	res := fmt.Sprintf(`[[group]]
name = "g"
node = "n1"
resources = [
  { type = "Dummy", id = "d1", params = { state = %q } },
  "OCF::Dummy::o1::state=%s",
]
`, filepath.Join(work, "d1"), filepath.Join(work, "o1"))
	if err := os.WriteFile(filepath.Join(dir, "resources.toml"), []byte(res), 0o644); err != nil {
		t.Fatal(err)
	}
	n := l.StartDaemon(vigilBin, "n1", "n1", dir)

	st, err := n.WaitStatus(20*time.Second, func(s *api.Status) bool {
		return resourceState(s, "d1") == "stopped" && resourceState(s, "o1") == "stopped"
	})
	if err != nil {
		t.Fatalf("probe: %v (%+v)", err, st)
	}
	pid, _, _ := pluginPID(st, "dummy")
	if pid == 0 {
		t.Fatalf("no dummy plugin process in status: %+v", st.Plugins)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, err = n.WaitStatus(20*time.Second, func(s *api.Status) bool {
		p, crashes, state := pluginPID(s, "dummy")
		return crashes == 1 && state == "running" && p != pid && p != 0
	})
	if err != nil {
		t.Fatalf("plugin not restarted: %v (%+v)", err, st.Plugins)
	}
	if n.Proc.Exited() {
		t.Fatal("daemon died with its plugin")
	}
	out, err := exec.Command(vigilBin, "status", "-s", n.Socket).CombinedOutput()
	if err != nil {
		t.Fatalf("vigil status: %v\n%s", err, out)
	}
	for _, want := range []string{"Resource groups on this node:", "o1", "(ocf:heartbeat:Dummy via ocf)", "resource/dummy", "signal: killed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
