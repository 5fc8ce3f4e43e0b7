package lab_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/control"
	"github.com/vigil-ha/vigil/test/lab"
)

// TestStatusTruth is issue 25 on a real cluster, the demo's shape: two
// directors with a serial cable between them and a witness, which leads.
//   - The witness restarts with a resources.toml of its own (one group
//     more): its files win when it leads again; every node's status names
//     the directors whose files differ, and each director logs it once.
//   - A cable joins n1 and n2 only: no node lists it towards the witness.
//   - After the owner's crash, the survivors show it OFFLINE with its last
//     known state, never running; RAFT names the witness as leader.
//   - The CLI takes its options after the arguments; -1 warns about a
//     node in standby.
func TestStatusTruth(t *testing.T) {
	cl, c, work := witnessTrio(t, true)
	l, nodes := cl.Lab, cl.nodes

	// The witness's files get a group more; restarted, it leads again
	// (the hand-over) and its definitions replace the cluster's.
	extra := lab.DummyResources(work, "extra", "n1", `, interval = "100ms"`, "x1")
	if err := os.WriteFile(nodes["n3"].Dir+"/resources.toml", []byte(c.Resources+"\n"+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes["n3"].Proc.Stop(10 * time.Second)
	l.Restart(vigilBin, nodes["n3"])
	st, err := nodes["n1"].WaitStatus(30*time.Second, func(s *api.Status) bool {
		return s.Core != nil && s.Core.Leader == "n3" && slices.Equal(api.FilesDiffer(s), []string{"n1", "n2"}) && groupOn(s, "extra") == "n1"
	})
	if err != nil {
		t.Fatalf("the witness's files did not win as it led, or n1 does not show it: %v\n%s", err, rendered(st))
	}
	// Every node shows it, the witness whose files won too.
	for _, n := range []string{"n1", "n2", "n3"} {
		st, err := nodes[n].WaitStatus(10*time.Second, func(s *api.Status) bool {
			return slices.Equal(s.FilesDiffer, []string{"n1", "n2"})
		})
		if err != nil {
			t.Fatalf("%s: %v: %v", n, err, st.FilesDiffer)
		}
		if text := rendered(st); !strings.Contains(text, "DEFINITIONS DIFFER: the resources.toml files of n1, n2 are not what the cluster runs") {
			t.Errorf("%s's status does not say whose files differ:\n%s", n, text)
		}
		// -1 is a snapshot: under load a group may be restarting
		// (CRITICAL) for a moment; the warning must come.
		if _, err := nodes[n].WaitStatus(10*time.Second, func(s *api.Status) bool {
			line, code := control.OneLine(s)
			return code == control.NagiosWarning && strings.Contains(line, "resources.toml of n1 n2 differs from the cluster's")
		}); err != nil {
			line, code := control.OneLine(st)
			t.Errorf("%s: -1 with other files: %v: %d %s", n, err, code, line)
		}
	}
	// The cable reaches n2 only.
	for _, n := range []string{"n1", "n2"} {
		st := statusOf(t, nodes[n])
		if s := lab.LinkState(st, "n3", "serial:"); s != "" {
			t.Errorf("%s lists the cable as a link to the witness (%s)", n, s)
		}
		other := map[string]string{"n1": "n2", "n2": "n1"}[n]
		if s := lab.LinkState(st, other, "serial:"); s != "up" {
			t.Errorf("%s: cable to %s %q, want up", n, other, s)
		}
	}

	// A refusal by the leader (n3), asked on a follower, reads once: no
	// "refused" per hop, no Raft address.
	if out, code := vigilCLI(t, "move", "g", "nX", "-s", nodes["n1"].Socket); code != 1 || out != "vigil move: refused: no node \"nX\"\n" {
		t.Errorf("vigil move g nX on a follower: %d %q", code, out)
	}

	watchJSON(t, nodes["n1"].Socket)
	otherUser(t, nodes["n1"].Socket)

	// Standby through the CLI with the options last (issue 25: only the
	// usage line), then -1 through the CLI.
	if out, code := vigilCLI(t, "standby", "n2", "-s", nodes["n1"].Socket, "--json"); code != 0 || !strings.Contains(out, `"done": true`) {
		t.Fatalf("vigil standby n2 -s … --json: %d %s", code, out)
	}
	if _, err := nodes["n1"].WaitStatus(10*time.Second, func(s *api.Status) bool {
		n := s.Core.State.Nodes["n2"]
		return n != nil && n.Standby
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes["n1"].WaitStatus(10*time.Second, func(*api.Status) bool {
		out, code := vigilCLI(t, "status", "-1", "-s", nodes["n1"].Socket)
		return code == 1 && strings.Contains(out, "node n2 in standby")
	}); err != nil {
		out, code := vigilCLI(t, "status", "-1", "-s", nodes["n1"].Socket)
		t.Errorf("status -1 with n2 in standby: %v: %d %s", err, code, out)
	}
	if out, code := vigilCLI(t, "online", "n2", "-s", nodes["n1"].Socket); code != 0 {
		t.Fatalf("vigil online n2: %d %s", code, out)
	}
	if _, err := nodes["n2"].WaitStatus(10*time.Second, func(s *api.Status) bool {
		n := s.Core.State.Nodes["n2"]
		return n != nil && !n.Standby && groupOn(s, "extra") == "n1" // g and extra both prefer n1
	}); err != nil {
		t.Fatal(err)
	}

	// The owner crashes: on n2, n1's row is OFFLINE with its last known
	// state, never running.
	l.Crash(nodes["n1"])
	st, err = nodes["n2"].WaitStatus(30*time.Second, func(s *api.Status) bool { return groupOn(s, "g") == "n2" })
	if err != nil {
		t.Fatalf("no failover to n2: %v\n%s", err, rendered(st))
	}
	text := rendered(st)
	for _, g := range st.Placement {
		for _, n := range g.Nodes {
			if n.Node == "n1" && (n.State != "offline" || n.LastKnown != "running" || n.OfflineSince.IsZero()) {
				t.Errorf("group %s: n1 %+v, want offline, last known running", g.Name, n)
			}
		}
	}
	if regexp.MustCompile(`(?m)^\s+n1\s+running`).MatchString(text) || !regexp.MustCompile(`(?m)^\s+n1\s+OFFLINE\s+last known running \S+ ago`).MatchString(text) {
		t.Errorf("n1's row after the crash:\n%s", text)
	}
	if !regexp.MustCompile(`(?m)^\s+n3\s+witness\s+online\s+-\s+leader\s`).MatchString(text) {
		t.Errorf("the witness is not shown as Raft leader:\n%s", text)
	}
	if _, err := nodes["n2"].WaitStatus(10*time.Second, func(s *api.Status) bool {
		line, code := control.OneLine(s)
		return code == control.NagiosWarning && strings.Contains(line, "node n1 offline") && strings.Contains(line, "group g on n2, preferred n1")
	}); err != nil {
		line, code := control.OneLine(st)
		t.Errorf("-1 after the failover: %v: %d %s", err, code, line)
	}
	// The --json the CLI prints carries the same placement.
	out, code := vigilCLI(t, "status", "-s", nodes["n2"].Socket, "--json")
	var js api.Status
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil || len(js.Placement) == 0 {
		t.Fatalf("status --json: %d %.300s", code, out)
	}

	// The witness said it replaced the cluster's definitions; each
	// director said once that its files differ: once per change of the
	// cluster's definitions (a director that led for a moment under load
	// put its own back, and the witness its own again: each a change).
	const differ, replaced = "this node's resources.toml differs from the cluster's group definitions, which", "the leader's files replace them"
	changes := 0
	for _, n := range []string{"n1", "n2", "n3"} {
		changes += strings.Count(readLog(t, nodes[n]), replaced)
	}
	if !strings.Contains(readLog(t, nodes["n3"]), replaced) {
		t.Error("the witness did not log that its files replaced the cluster's")
	}
	for _, n := range []string{"n1", "n2"} {
		if got := strings.Count(readLog(t, nodes[n]), differ); got < 1 || got > changes {
			t.Errorf("%s logged its files differing %d times, want once per change of the definitions (%d)", n, got, changes)
		}
	}
	t.Logf("n2 after the failover:\n%s", text)
}

func rendered(st *api.Status) string {
	if st == nil {
		return "(no status)"
	}
	var b strings.Builder
	control.Render(&b, st)
	return b.String()
}

func statusOf(t *testing.T, n *lab.Node) *api.Status {
	t.Helper()
	st, err := n.WaitStatus(5*time.Second, func(*api.Status) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStatusCutOffOwner: the owner of a group loses both peers, so its
// lease runs out and it stops the group, which no leader can record. Its
// own status must say so (stopped, CRITICAL), not show its last record
// ("running", as it did: 1/1 groups running).
func TestStatusCutOffOwner(t *testing.T) {
	cl, _, _ := witnessTrio(t, false)
	l, nodes := cl.Lab, cl.nodes
	l.Crash(nodes["n2"])
	l.Crash(nodes["n3"])
	st, err := nodes["n1"].WaitStatus(30*time.Second, func(s *api.Status) bool {
		return len(s.Groups) == 1 && s.Groups[0].State == "stopped" && s.Core != nil && s.Core.Leader == ""
	})
	if err != nil {
		t.Fatalf("n1 did not stop g on losing its lease: %v\n%s", err, rendered(st))
	}
	for _, g := range api.Placement(st) {
		if g.Running() || g.State != "stopped" || len(g.Nodes) == 0 || g.Nodes[0].Node != "n1" || g.Nodes[0].State != "stopped" || !g.Nodes[0].Unrecorded {
			t.Errorf("placement shows g as %q, n1's row %+v, want stopped here, unrecorded\n%s", g.State, g.Nodes, rendered(st))
		}
	}
	if out, code := vigilCLI(t, "status", "-1", "-s", nodes["n1"].Socket); code != control.NagiosCritical || !strings.Contains(out, "group g not running") || !strings.Contains(out, "0/1 groups running") {
		t.Errorf("status -1 on the cut-off owner: %d %s", code, out)
	}
	// A command there is refused in the operator's words, not Raft's.
	if out, code := vigilCLI(t, "move", "g", "n1", "-s", nodes["n1"].Socket); code != 1 || !strings.HasPrefix(out, "vigil move: no leader: this node reaches no quorum") {
		t.Errorf("vigil move on the cut-off owner: %d %s", code, out)
	}
}

// witnessTrio starts the status tests' cluster, the demo's shape: the
// directors n1 and n2 (a serial cable between them when serial) and the
// witness n3, with g running on its preferred node n1.
func witnessTrio(t *testing.T, serial bool) (*coreLab, *lab.Cluster, string) {
	t.Helper()
	l := needLab(t)
	c, work := coreCluster(t, "")
	c.Nodes = []lab.NodeSpec{{Name: "n3", Role: "witness"}}
	cl := &coreLab{Lab: l, t: t, nodes: l.Trio(vigilBin, c, serial, nil), work: work}
	if on := cl.waitRunning("n2", 30*time.Second); on != "n1" {
		t.Fatalf("g runs on %s, want n1", on)
	}
	return cl, c, work
}

// otherUser runs the CLI as nobody on a socket made reachable to it (as
// an operator who opened the socket's mode for a monitoring user would):
// the daemon serves root and its own user only, and says so, where the
// client read EOF ("cannot reach the daemon at …: EOF").
func otherUser(t *testing.T, socket string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	if err := os.Link(vigilBin, bin); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bin, socket} {
		for d := filepath.Dir(p); d != "/" && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil { // test directories only
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(socket, 0o666); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(socket, 0o600)
	want := "the daemon at " + socket + " takes status and commands from root and its own user only, not uid 65534: run this as root"
	for _, args := range [][]string{{"status"}, {"status", "-1"}, {"status", "--json"}, {"standby", "n2"}} {
		var out bytes.Buffer
		cmd := exec.Command(bin, append(args, "-s", socket)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(out.String(), want) {
			t.Errorf("nobody: vigil %v: %v\n%s", args, err, out.String())
		}
	}
}

// watchJSON runs 'vigil status --watch --json' on a live daemon as a
// script would read it: each line is one whole status, no terminal
// escapes; ^C ends it with exit 0.
func watchJSON(t *testing.T, socket string) {
	t.Helper()
	cmd := exec.Command(vigilBin, "status", "--watch", "--json", "-i", "20ms", "-s", socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	for i := 0; i < 3; i++ {
		line, err := r.ReadBytes('\n')
		var st api.Status
		if err != nil || bytes.ContainsRune(line, 0x1b) || json.Unmarshal(line, &st) != nil || st.Core == nil {
			t.Errorf("status --watch --json: line %d: %v %.200q", i, err, line)
			break
		}
	}
	_ = cmd.Process.Signal(os.Interrupt)
	_, _ = io.Copy(io.Discard, r) // to the end: it exits on ^C
	if err := cmd.Wait(); err != nil {
		t.Errorf("status --watch --json after ^C: %v", err)
	}
}

// vigilCLI runs the vigil binary as an operator would and returns its
// output and exit code.
func vigilCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(vigilBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

func readLog(t *testing.T, n *lab.Node) string {
	t.Helper()
	b, err := os.ReadFile(n.Proc.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
