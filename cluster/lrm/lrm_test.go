package lrm_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/internal/testutil/builtintest"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/builtin"
	"github.com/vigil-ha/vigil/plugins/host"
)

// The test binary serves the built-in plugins, so the Dummy resources
// below run in a real plugin process that the tests can kill.
func TestMain(m *testing.M) {
	builtintest.ServeBuiltin()
	goleak.VerifyTestMain(m)
}

type env struct {
	m       *lrm.Manager
	h       *host.Host
	logs    *testutil.LogSink
	journal string
	dir     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{logs: testutil.NewLogSink(), dir: t.TempDir()}
	e.journal = filepath.Join(e.dir, "journal")
	log := slog.New(e.logs)
	var m *lrm.Manager
	h, err := host.New(host.Options{Executable: os.Args[0], Builtin: builtin.Has, Log: log, MinBackoff: 10 * time.Millisecond,
		OnRestart: func(_ plugins.Kind, name string) { m.PluginRestarted(context.Background(), name) }})
	if err != nil {
		t.Fatal(err)
	}
	m = lrm.New(h, log, 10*time.Second)
	e.m, e.h = m, h
	t.Cleanup(h.Close)
	return e
}

// dummy is a Dummy resource journaling into the shared journal, so the
// journal shows the order of operations across resources.
func (e *env) dummy(id string, params ...string) config.Resource {
	p := map[string]string{"state": filepath.Join(e.dir, id), "log": e.journal}
	for i := 0; i+1 < len(params); i += 2 {
		p[params[i]] = params[i+1]
	}
	return config.Resource{ID: id, Type: "Dummy", Params: p}
}

// ops reads the journal as "OP:RESULT" words, with the state file's
// resource id: "a:start:success".
func (e *env) ops(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.journal)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		out = append(out, f[1]+":"+f[2])
	}
	return strings.Join(out, " ")
}

func TestOrder(t *testing.T) {
	e := newEnv(t)
	g := config.Group{Name: "g", Resources: []config.Resource{e.dummy("a"), e.dummy("b")}}
	ctx := context.Background()
	if err := e.m.Start(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start(ctx, g); err != nil { // idempotent: monitors only
		t.Fatal(err)
	}
	if err := e.m.Stop(ctx, g); err != nil {
		t.Fatal(err)
	}
	want := "monitor:not_running start:success monitor:not_running start:success " +
		"monitor:success monitor:success stop:success stop:success"
	if got := e.ops(t); got != want {
		t.Fatalf("journal:\n%s\nwant:\n%s", got, want)
	}
	st := e.m.Status()
	if len(st) != 1 || st[0].State != lrm.Stopped || st[0].Resources[0].State != lrm.Stopped || st[0].Resources[1].LastOp != "stop" {
		t.Fatalf("status %+v", st)
	}
}

func TestFailedStartStopsTheGroup(t *testing.T) {
	e := newEnv(t)
	g := config.Group{Name: "g", Resources: []config.Resource{e.dummy("a"), e.dummy("b", "fail", "start"), e.dummy("c")}}
	err := e.m.Start(context.Background(), g)
	if err == nil || !strings.Contains(err.Error(), "start b: ERR_GENERIC") {
		t.Fatalf("start: %v", err)
	}
	// heartbeat stops the whole group right to left, c included.
	want := "monitor:not_running start:success monitor:not_running start:err_generic stop:success stop:success stop:success"
	if got := e.ops(t); got != want {
		t.Fatalf("journal:\n%s\nwant:\n%s", got, want)
	}
	if st := e.m.Status()[0]; st.State != lrm.Failed {
		t.Fatalf("group %+v", st)
	}
}

// A plugin killed in the middle of a start: the operation fails cleanly,
// the plugin is restarted, the group is reconciled back to running, and
// this process (the daemon's role) carries on.
func TestPluginKilledMidStart(t *testing.T) {
	e := newEnv(t)
	g := config.Group{Name: "g", Resources: []config.Resource{e.dummy("a"), e.dummy("b", "delay", "1s")}}
	errc := make(chan error, 1)
	go func() { errc <- e.m.Start(context.Background(), g) }()
	e.logs.Wait(t, "start", "id", "b")
	var pid int
	for _, s := range e.h.Status() {
		if s.Name == "dummy" {
			pid = s.PID
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "plugin crashed") {
		t.Fatalf("start across the crash: %v", err)
	}
	e.logs.Wait(t, "plugin restarted; reconciling group", "group", "g")
	e.logs.Wait(t, "group started", "group", "g")
	// b's first start died with the plugin (no journal line); the group
	// was rolled back, then started again after the restart.
	want := "monitor:not_running start:success monitor:not_running stop:success stop:success " +
		"monitor:not_running start:success monitor:not_running start:success"
	if st := e.m.Status()[0]; st.State != lrm.Running {
		t.Fatalf("group after reconcile: %+v", st)
	}
	if got := e.ops(t); got != want {
		t.Fatalf("journal:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range e.h.Status() {
		if s.Name == "dummy" && (s.Crashes != 1 || s.Restarts != 1) {
			t.Fatalf("plugin status %+v", s)
		}
	}
}

func TestMonitorInterval(t *testing.T) {
	res := func(intervals ...time.Duration) config.Group {
		var g config.Group
		for _, d := range intervals {
			g.Resources = append(g.Resources, config.Resource{Interval: config.Duration(d)})
		}
		return g
	}
	for _, c := range []struct {
		g    config.Group
		want time.Duration
	}{
		{res(), lrm.DefaultInterval},
		{res(0, 0), lrm.DefaultInterval},
		{res(0, 3*time.Second, 5*time.Second), 3 * time.Second},
		{res(30*time.Second, 20*time.Second), 20 * time.Second},
		{res(30*time.Second, 0), lrm.DefaultInterval}, // one that sets none has the default
	} {
		if got := lrm.MonitorInterval(c.g); got != c.want {
			t.Errorf("%+v: %s, want %s", c.g.Resources, got, c.want)
		}
	}
}
