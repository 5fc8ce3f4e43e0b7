package builtin_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/testutil/builtintest"
	"github.com/vigil-ha/vigil/plugins/builtin"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// The test binary serves the built-in plugins the way `vigil plugin serve`
// does, so every test below crosses a real process boundary.
func TestMain(m *testing.M) {
	builtintest.ServeBuiltin()
	goleak.VerifyTestMain(m)
}

func newHost(t *testing.T) *host.Host {
	t.Helper()
	h, err := host.New(host.Options{Executable: os.Args[0], Builtin: builtin.Has,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func need(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s missing: install Debian's %s (make deps does)", path, pkg)
	}
}

type step struct {
	op       string
	in       *pb.Instance
	want     pb.Code
	inReason string
}

func runSteps(t *testing.T, r host.Resource, steps []step) {
	t.Helper()
	ctx := context.Background()
	ops := map[string]func(context.Context, *pb.Instance) (*pb.Result, error){
		"start": r.Start, "stop": r.Stop, "monitor": r.Monitor, "validate": r.Validate, "reload": r.Reload,
	}
	for i, s := range steps {
		res, err := ops[s.op](ctx, s.in)
		if err != nil {
			t.Fatalf("step %d %s: %v", i, s.op, err)
		}
		if res.Code != s.want || !strings.Contains(res.Reason, s.inReason) {
			t.Fatalf("step %d %s: %s %q (output %q), want %s with %q", i, s.op, res.Code, res.Reason, res.Output, s.want, s.inReason)
		}
	}
}

// ocf:heartbeat:Dummy from Debian's resource-agents, through the OCF
// adapter: the exit codes LEGACY.md §3.3 recorded.
func TestOCFDummyAgent(t *testing.T) {
	need(t, "/usr/lib/ocf/resource.d/heartbeat/Dummy", "resource-agents")
	state := filepath.Join(t.TempDir(), "d1.state")
	in := &pb.Instance{Id: "d1", Type: "heartbeat:Dummy", Params: map[string]string{"state": state}, TimeoutMs: 20000}
	recurring := &pb.Instance{Id: "d1", Type: "heartbeat:Dummy", Params: in.Params, TimeoutMs: 20000, IntervalMs: 10000}
	bad := &pb.Instance{Id: "d2", Type: "heartbeat:Dummy", Params: map[string]string{"state": "/nonexistent/dir/d2.state"}, TimeoutMs: 20000}
	r := newHost(t).Resource("ocf")
	runSteps(t, r, []step{
		{"monitor", in, pb.Code_NOT_RUNNING, ""}, // a probe
		{"monitor", recurring, pb.Code_NOT_RUNNING, "No process state file found"},
		{"stop", in, pb.Code_SUCCESS, ""}, // stop of a stopped resource
		{"start", in, pb.Code_SUCCESS, ""},
		{"start", in, pb.Code_SUCCESS, ""},
		{"monitor", in, pb.Code_SUCCESS, ""},
		{"validate", in, pb.Code_SUCCESS, ""},
		{"reload", in, pb.Code_SUCCESS, ""},
		{"stop", in, pb.Code_SUCCESS, ""},
		{"monitor", in, pb.Code_NOT_RUNNING, ""},
		{"validate", bad, pb.Code_ERR_ARGS, "is not writable"},
		{"start", &pb.Instance{Id: "x", Type: "heartbeat:NoSuchAgent"}, pb.Code_ERR_INSTALLED, "not installed"},
		{"start", &pb.Instance{Id: "x", Type: "../../../bin:sh"}, pb.Code_ERR_CONFIGURED, "invalid OCF agent"},
	})
	meta, err := r.MetaData(context.Background(), "heartbeat:Dummy")
	if err != nil {
		t.Fatal(err)
	}
	// Dummy has a reload action and no reloadable marks: as Pacemaker
	// does, its non-unique "fake" reloads in place, its unique "state"
	// needs a restart.
	var params []string
	for _, p := range meta.Parameters {
		params = append(params, fmt.Sprintf("%s:%v", p.Name, p.Reloadable))
	}
	if meta.Name != "Dummy" || !strings.Contains(strings.Join(params, ","), "state:false,fake:true") {
		t.Fatalf("meta-data: %s %v", meta.Name, params)
	}
	for _, a := range meta.Actions {
		if a.Name == "start" && a.TimeoutMs != 20000 {
			t.Fatalf("start timeout %d ms, want 20000 from timeout=\"20s\"", a.TimeoutMs)
		}
	}
}

// The heartbeat resource.d script Delay (from Debian's heartbeat package),
// called as haresources' Delay::SECONDS::0 would call it.
func TestHeartbeatDelayScript(t *testing.T) {
	need(t, "/etc/ha.d/resource.d/Delay", "heartbeat")
	// Delay names its instance after its arguments and keeps state under
	// /run/resource-agents: a per-run delay keeps parallel runs apart.
	delay := fmt.Sprintf("0.%d", 300+os.Getpid()%600)
	in := &pb.Instance{Id: "delay", Type: "Delay", Args: []string{delay, "0"}, TimeoutMs: 20000,
		// Delay's status sleeps mondelay (30 s by default) first.
		Params: map[string]string{"OCF_RESKEY_mondelay": "0"}}
	r := newHost(t).Resource("heartbeat")
	t.Cleanup(func() { _, _ = r.Stop(context.Background(), in) })
	runSteps(t, r, []step{{"monitor", in, pb.Code_NOT_RUNNING, "stopped"}})
	start := time.Now()
	runSteps(t, r, []step{{"start", in, pb.Code_SUCCESS, ""}})
	if d, _ := strconv.ParseFloat(delay, 64); time.Since(start).Seconds() < d {
		t.Fatalf("start took %s, Delay sleeps %ss", time.Since(start), delay)
	}
	runSteps(t, r, []step{
		{"monitor", in, pb.Code_SUCCESS, ""},
		{"start", in, pb.Code_SUCCESS, ""}, // status says running: start skipped
		{"stop", in, pb.Code_SUCCESS, ""},
		{"monitor", in, pb.Code_NOT_RUNNING, ""},
		{"start", &pb.Instance{Id: "x", Type: "no-such-script"}, pb.Code_ERR_INSTALLED, "Cannot locate resource script no-such-script"},
	})
}

const lsbScript = `#!/bin/sh
# An LSB init script for a tiny daemon (sleep), with a pid file.
PIDFILE=%[1]s/lsbd.pid
case "$1" in
start)
	if [ -f $PIDFILE ] && kill -0 $(cat $PIDFILE) 2>/dev/null; then exit 0; fi
	sleep 1000 &
	echo $! > $PIDFILE
	echo "Starting lsbd"
	exit 0;;
stop)
	[ -f $PIDFILE ] && kill $(cat $PIDFILE) 2>/dev/null
	rm -f $PIDFILE
	exit 0;;
status)
	if [ -f $PIDFILE ]; then
		if kill -0 $(cat $PIDFILE) 2>/dev/null; then echo "lsbd is running"; exit 0; fi
		echo "lsbd dead but pid file exists"; exit 1
	fi
	echo "lsbd is not running"; exit 3;;
reload) exit 3;;
*) echo "Usage: $0 {start|stop|status}"; exit 2;;
esac
`

func TestLSBScript(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lsbd"), []byte(fmt.Sprintf(lsbScript, dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VIGIL_LSB_DIR", dir) // inherited by the plugin process
	in := &pb.Instance{Id: "lsbd", Type: "lsbd", TimeoutMs: 10000}
	r := newHost(t).Resource("lsb")
	t.Cleanup(func() { _, _ = r.Stop(context.Background(), in) })
	runSteps(t, r, []step{
		{"validate", in, pb.Code_SUCCESS, ""},
		{"monitor", in, pb.Code_NOT_RUNNING, ""},
		{"start", in, pb.Code_SUCCESS, ""}, // the daemon keeps the script's stdout: no hang
		{"monitor", in, pb.Code_SUCCESS, ""},
		{"reload", in, pb.Code_ERR_UNIMPLEMENTED, "reload exited 3"},
	})
	pid, err := os.ReadFile(filepath.Join(dir, "lsbd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Reap the killed daemon? It is the script's orphan, reparented away
	// from us; wait until the kernel reports it gone.
	for syscall.Kill(n, 0) == nil {
		runtime.Gosched()
	}
	runSteps(t, r, []step{
		{"monitor", in, pb.Code_NOT_RUNNING, "dead, pid file exists"},
		{"stop", in, pb.Code_SUCCESS, ""},
		{"monitor", in, pb.Code_NOT_RUNNING, ""},
		{"start", &pb.Instance{Id: "x", Type: "nothere"}, pb.Code_ERR_INSTALLED, "not installed"},
	})
}

func TestDummyResource(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "d.state")
	in := &pb.Instance{Id: "d", Params: map[string]string{"state": state}, TimeoutMs: 5000}
	r := newHost(t).Resource("dummy")
	runSteps(t, r, []step{
		{"monitor", in, pb.Code_NOT_RUNNING, "no state file"},
		{"start", in, pb.Code_SUCCESS, ""},
		{"monitor", in, pb.Code_SUCCESS, ""},
		{"stop", in, pb.Code_SUCCESS, ""},
		{"stop", in, pb.Code_SUCCESS, ""},
		{"validate", &pb.Instance{Id: "d", Params: map[string]string{"bogus": "1"}}, pb.Code_ERR_CONFIGURED, `unknown parameter "bogus"`},
		{"start", &pb.Instance{Id: "d", Params: map[string]string{"state": state, "fail": "start"}}, pb.Code_ERR_GENERIC, "on purpose"},
	})
	journal, err := os.ReadFile(state + ".log")
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	var last time.Time
	for _, l := range strings.Split(strings.TrimSpace(string(journal)), "\n") {
		f := strings.Fields(l)
		ts, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil || ts.Before(last) {
			t.Fatalf("journal line %q: bad or unordered time", l)
		}
		last = ts
		ops = append(ops, f[1]+":"+f[2])
	}
	want := "monitor:not_running start:success monitor:success stop:success stop:success start:err_generic"
	if strings.Join(ops, " ") != want {
		t.Fatalf("journal %q, want %q", strings.Join(ops, " "), want)
	}
	// delay honours the deadline.
	slow := &pb.Instance{Id: "d", Params: map[string]string{"state": state, "delay": "1m"}, TimeoutMs: 200}
	if _, err := r.Start(context.Background(), slow); !errors.Is(err, host.ErrTimeout) {
		t.Fatalf("slow start: %v", err)
	}
}
