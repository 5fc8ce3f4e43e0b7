package host_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

// The test binary doubles as the plugin executable: the host runs it as
// `TESTBINARY plugin serve KIND NAME`, exactly as it runs vigil.
func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		serveTestPlugin(plugins.Kind(os.Args[3]), os.Args[4])
		return
	}
	goleak.VerifyTestMain(m)
}

func serveTestPlugin(kind plugins.Kind, name string) {
	switch {
	case kind == plugins.KindResource && name == "testres":
		sdk.Serve(sdk.Plugin{Resource: testResource{}})
	case kind == plugins.KindMonitor && name == "testmon":
		sdk.Serve(sdk.Plugin{Monitor: sdk.MonitorFunc(func(_ context.Context, in *pb.CheckRequest) (*pb.CheckResult, error) {
			if in.GetParams()["latency"] == "negative" {
				return &pb.CheckResult{Ok: true, LatencyUs: -1}, nil
			}
			return &pb.CheckResult{Ok: len(in.GetHosts()) > 0, Summary: strings.Join(in.GetHosts(), " "), LatencyUs: 42}, nil
		})})
	case kind == plugins.KindAlert && name == "testalert":
		sdk.Serve(sdk.Plugin{Alert: sdk.AlertFunc(func(_ context.Context, in *pb.AlertRequest) (*pb.AlertResult, error) {
			return &pb.AlertResult{Detail: "delivered " + in.GetEvent().GetSubject()}, nil
		})})
	case kind == plugins.KindFence && name == "testfence":
		sdk.Serve(sdk.Plugin{Fence: testFence{}})
	case kind == plugins.KindResource && name == "testraw":
		// A plugin built without the SDK, on an older protocol: no
		// Batch.
		plugin.Serve(&plugin.ServeConfig{HandshakeConfig: plugins.Handshake, GRPCServer: plugin.DefaultGRPCServer,
			Plugins: plugin.PluginSet{string(plugins.KindResource): rawResource{}}})
	}
	os.Exit(3)
}

// testResource misbehaves on request, through its parameters.
type testResource struct{ sdk.BaseResource }

func (testResource) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	p := in.GetParams()
	sdk.Log().Info("start entered", "id", in.GetId(), "answer", 42)
	switch {
	case p["wait"] == "ctx":
		<-ctx.Done()
		return nil, ctx.Err()
	case p["wait"] == "forever":
		select {} // ignores its deadline
	case p["panic"] != "":
		panic(p["panic"])
	case p["code"] != "":
		var c int32
		fmt.Sscan(p["code"], &c)
		return &pb.Result{Code: pb.Code(c)}, nil
	case p["error"] != "":
		return nil, errors.New(p["error"])
	case p["stderr"] != "":
		fmt.Fprintln(os.Stderr, p["stderr"])
	}
	return &pb.Result{Output: grpcMethod(ctx) + " " + in.GetId()}, nil
}
func (testResource) Stop(context.Context, *pb.Instance) (*pb.Result, error) { return sdk.OK(), nil }
func (testResource) Monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	switch p := in.GetParams(); {
	case p["code"] != "":
		var c int32
		fmt.Sscan(p["code"], &c)
		return &pb.Result{Code: pb.Code(c)}, nil
	case p["nolease"] != "":
		return nil, status.Error(codes.FailedPrecondition, "lease ran out")
	}
	// Output says how the monitor came: in a call of its own or a batch.
	res := sdk.NotRunning("never runs")
	res.Output = grpcMethod(ctx) + " " + in.GetId()
	return res, nil
}

// grpcMethod is the name of the call that ctx serves, less its service.
func grpcMethod(ctx context.Context) string {
	m, _ := grpc.Method(ctx)
	return m[strings.LastIndexByte(m, '/')+1:]
}

// rawResource serves testResource as go-plugin's gRPC plugin, by hand.
type rawResource struct{ plugin.NetRPCUnsupportedPlugin }

func (rawResource) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterResourceServer(s, testResource{})
	return nil
}

func (rawResource) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("server only")
}

type testFence struct{ pb.UnimplementedFenceServer }

func (testFence) Off(_ context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	return &pb.FenceResult{Power: pb.Power_OFF, Detail: in.GetNode() + " off"}, nil
}
func (testFence) Status(_ context.Context, in *pb.FenceRequest) (*pb.FenceResult, error) {
	if in.GetNode() == "bogus" {
		return &pb.FenceResult{Power: pb.Power(7)}, nil
	}
	return &pb.FenceResult{Power: pb.Power_ON}, nil
}

type env struct {
	h        *host.Host
	logs     *testutil.LogSink
	restarts chan string
}

func newHost(t *testing.T, mod func(*host.Options)) *env {
	t.Helper()
	e := &env{logs: testutil.NewLogSink(), restarts: make(chan string, 16)}
	opts := host.Options{
		Executable: os.Args[0],
		Builtin: func(k plugins.Kind, n string) bool {
			return strings.HasPrefix(n, "test")
		},
		Log:        slog.New(e.logs),
		Grace:      300 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond,
		OnRestart:  func(k plugins.Kind, n string) { e.restarts <- string(k) + "/" + n },
	}
	if mod != nil {
		mod(&opts)
	}
	h, err := host.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	t.Cleanup(h.Close)
	return e
}

func inst(params map[string]string) *pb.Instance {
	return &pb.Instance{Id: "r1", Type: "t", Params: params, TimeoutMs: 5000}
}

func pluginStatus(t *testing.T, h *host.Host, kind plugins.Kind, name string) host.Status {
	t.Helper()
	for _, s := range h.Status() {
		if s.Kind == kind && s.Name == name {
			return s
		}
	}
	t.Fatalf("no plugin %s/%s in status", kind, name)
	return host.Status{}
}

func TestRoundTripEveryKind(t *testing.T) {
	e := newHost(t, nil)
	ctx := context.Background()

	res, err := e.h.Resource("testres").Start(ctx, inst(nil))
	if err != nil || res.Code != pb.Code_SUCCESS {
		t.Fatalf("start: %v %v", res, err)
	}
	res, err = e.h.Resource("testres").Monitor(ctx, inst(nil))
	if err != nil || res.Code != pb.Code_NOT_RUNNING || res.Reason != "never runs" {
		t.Fatalf("monitor: %v %v", res, err)
	}
	meta, err := e.h.Resource("testres").MetaData(ctx, "x")
	if err != nil || meta.Name != "x" {
		t.Fatalf("meta-data: %v %v", meta, err)
	}
	chk, err := e.h.Monitor("testmon").Check(ctx, &pb.CheckRequest{Hosts: []string{"a", "b"}})
	if err != nil || !chk.Ok || chk.Summary != "a b" || chk.LatencyUs != 42 {
		t.Fatalf("check: %v %v", chk, err)
	}
	al, err := e.h.Alert("testalert").Deliver(ctx, &pb.AlertRequest{Event: &pb.Event{Subject: "www/http"}})
	if err != nil || al.Detail != "delivered www/http" {
		t.Fatalf("alert: %v %v", al, err)
	}
	f, err := e.h.Fence("testfence").Off(ctx, &pb.FenceRequest{Node: "lvs2"})
	if err != nil || f.Power != pb.Power_OFF || f.Detail != "lvs2 off" {
		t.Fatalf("fence off: %v %v", f, err)
	}
	if _, err := e.h.Fence("testfence").On(ctx, &pb.FenceRequest{Node: "lvs2"}); !errors.Is(err, host.ErrUnimplemented) {
		t.Fatalf("fence on of a plugin without it: %v, want ErrUnimplemented", err)
	}
	// One process per plugin, reused across calls.
	st := pluginStatus(t, e.h, plugins.KindResource, "testres")
	if st.State != "running" || st.PID == 0 || st.Crashes != 0 || !st.Builtin {
		t.Fatalf("status: %+v", st)
	}
	if got := len(e.h.Status()); got != 4 {
		t.Fatalf("%d plugin processes, want 4", got)
	}
}

func TestKilledMidOperation(t *testing.T) {
	e := newHost(t, nil)
	r := e.h.Resource("testres")
	errc := make(chan error, 1)
	go func() {
		_, err := r.Start(context.Background(), inst(map[string]string{"wait": "ctx"}))
		errc <- err
	}()
	entered := e.logs.Wait(t, "start entered")
	pid := pluginStatus(t, e.h, plugins.KindResource, "testres").PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	if !errors.Is(err, host.ErrCrashed) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("start during a kill: %v, want ErrCrashed naming the signal", err)
	}
	if got := <-e.restarts; got != "resource/testres" {
		t.Fatalf("restart notice for %s", got)
	}
	st := pluginStatus(t, e.h, plugins.KindResource, "testres")
	if st.Crashes != 1 || st.Restarts != 1 || st.PID == pid || st.PID == 0 || !strings.Contains(st.LastExit, "killed") {
		t.Fatalf("after restart: %+v", st)
	}
	if res, err := r.Start(context.Background(), inst(nil)); err != nil || res.Code != pb.Code_SUCCESS {
		t.Fatalf("start after restart: %v %v", res, err)
	}
	// The plugin's log line reached the daemon's log with its name.
	a := testutil.Attrs(entered)
	if a["plugin"] != "resource/testres" || a["id"] != "r1" || a["answer"] != "42" || entered.Level != slog.LevelInfo {
		t.Fatalf("captured log record: %v %v", entered.Level, a)
	}
}

func TestPanicIsACrash(t *testing.T) {
	e := newHost(t, nil)
	_, err := e.h.Resource("testres").Start(context.Background(), inst(map[string]string{"panic": "boom"}))
	if !errors.Is(err, host.ErrCrashed) {
		t.Fatalf("panicking plugin: %v", err)
	}
	e.logs.Wait(t, "panic: boom")
	<-e.restarts
	if st := pluginStatus(t, e.h, plugins.KindResource, "testres"); st.Crashes != 1 {
		t.Fatalf("crash not counted: %+v", st)
	}
}

func TestDeadlines(t *testing.T) {
	// A generous ping: on a loaded machine (with -race) a plugin that is
	// only busy may take over the default second to answer, and would be
	// killed as hung; the hung plugin below is then found after 5 s.
	e := newHost(t, func(o *host.Options) { o.PingTimeout = 5 * time.Second })
	r := e.h.Resource("testres")
	// Launch the plugin first, with the default deadline: waiting for a
	// plugin that is still starting counts against a call's deadline, and
	// on a loaded machine (with -race) a launch can take longer than the
	// short deadlines this test is about.
	if _, err := r.Monitor(context.Background(), inst(nil)); err != nil {
		t.Fatalf("launching the plugin: %v", err)
	}
	in := inst(map[string]string{"wait": "forever"})
	in.TimeoutMs = 200
	start := time.Now()
	_, err := r.Start(context.Background(), in)
	took := time.Since(start)
	if !errors.Is(err, host.ErrTimeout) {
		t.Fatalf("handler ignoring its deadline: %v, want ErrTimeout", err)
	}
	if took < 200*time.Millisecond || took > 3*time.Second {
		t.Fatalf("deadline hit after %s, want timeout+grace (500ms)", took)
	}
	// The process still answers, so it is kept.
	if st := pluginStatus(t, e.h, plugins.KindResource, "testres"); st.Crashes != 0 || st.State != "running" {
		t.Fatalf("responsive plugin was killed: %+v", st)
	}

	// A plugin process that hangs entirely is killed and restarted.
	in = inst(nil)
	in.TimeoutMs = 200
	pid := pluginStatus(t, e.h, plugins.KindResource, "testres").PID
	testutil.Pause(t, pid)
	if _, err := r.Start(context.Background(), in); !errors.Is(err, host.ErrTimeout) {
		t.Fatalf("stopped plugin: %v, want ErrTimeout", err)
	}
	<-e.restarts
	st := pluginStatus(t, e.h, plugins.KindResource, "testres")
	if st.Crashes != 1 || st.PID == pid || !strings.Contains(st.LastError, "unresponsive") {
		t.Fatalf("hung plugin not replaced: %+v", st)
	}
}

func TestBadOutput(t *testing.T) {
	e := newHost(t, nil)
	ctx := context.Background()
	r := e.h.Resource("testres")
	if _, err := r.Start(ctx, inst(map[string]string{"code": "42"})); !errors.Is(err, host.ErrBadOutput) ||
		!strings.Contains(err.Error(), "42") {
		t.Fatalf("code 42: %v", err)
	}
	if _, err := r.Start(ctx, inst(map[string]string{"error": "disk on fire"})); err == nil ||
		!strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "r1") {
		t.Fatalf("plugin error: %v", err)
	}
	if _, err := e.h.Monitor("testmon").Check(ctx, &pb.CheckRequest{Params: map[string]string{"latency": "negative"}}); !errors.Is(err, host.ErrBadOutput) {
		t.Fatalf("negative latency: %v", err)
	}
	if _, err := e.h.Fence("testfence").Status(ctx, &pb.FenceRequest{Node: "bogus"}); !errors.Is(err, host.ErrBadOutput) {
		t.Fatalf("power 7: %v", err)
	}
	// Hostile stderr: not JSON, JSON of the wrong shape, a huge line.
	for _, s := range []string{`{"@message": 1, "@level": []}`, "plain words", strings.Repeat("x", 100000)} {
		if _, err := r.Start(ctx, inst(map[string]string{"stderr": s})); err != nil {
			t.Fatal(err)
		}
	}
	e.logs.Wait(t, "plain words")
	e.logs.Wait(t, `{"@message": 1`)
	if st := pluginStatus(t, e.h, plugins.KindResource, "testres"); st.Crashes != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("noexec", 0o644)
	write("open", 0o777)
	write("exits", 0o755)
	e := newHost(t, func(o *host.Options) { o.Dir = dir; o.StartTimeout = 2 * time.Second })
	for _, c := range []struct{ name, want string }{
		{"nothere", "none in " + dir},
		{"noexec", "not an executable"},
		{"open", "world-writable"},
		{"../etc", "invalid plugin name"},
	} {
		_, err := e.h.Resource(c.name).Start(context.Background(), inst(nil))
		if !errors.Is(err, host.ErrUnknownPlugin) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A plugin that never completes the handshake fails fast, not at the
	// call's deadline.
	start := time.Now()
	_, err := e.h.Resource("exits").Start(context.Background(), inst(nil))
	if err == nil || !strings.Contains(err.Error(), "does not start") || time.Since(start) > 4*time.Second {
		t.Fatalf("non-plugin executable: %v after %s", err, time.Since(start))
	}
	if st := pluginStatus(t, e.h, plugins.KindResource, "exits"); st.State != "failed" || st.LastError == "" {
		t.Fatalf("%+v", st)
	}
}

func TestCloseStopsPlugins(t *testing.T) {
	e := newHost(t, nil)
	if _, err := e.h.Resource("testres").Start(context.Background(), inst(nil)); err != nil {
		t.Fatal(err)
	}
	pid := pluginStatus(t, e.h, plugins.KindResource, "testres").PID
	e.h.Close()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("plugin %d still there after Close: %v", pid, err)
	}
	if _, err := e.h.Resource("testres").Start(context.Background(), inst(nil)); !errors.Is(err, host.ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}

// BenchmarkMonitorCall is one resource operation's round trip to a
// running plugin process (gRPC over AutoMTLS on a unix socket).
func BenchmarkMonitorCall(b *testing.B) {
	h, err := host.New(host.Options{Executable: os.Args[0], Builtin: func(plugins.Kind, string) bool { return true }})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	r := h.Resource("testres")
	in := inst(nil)
	if _, err := r.Monitor(context.Background(), in); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := r.Monitor(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// A resource plugin keeps its daemon's hold file (plugins.AwaitPredecessor)
// open, closed on exec, so the lock outlives a daemon killed before it:
// the daemon's next incarnation waits for the plugin's release. Other
// kinds hold nothing a successor must wait for and are not given it.
func TestHoldFilePassedToResources(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugins.hold")
	hold, _, err := plugins.AwaitPredecessor(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := newHost(t, func(o *host.Options) { o.Hold = hold })
	if _, err := e.h.Resource("testres").Start(context.Background(), inst(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.Monitor("testmon").Check(context.Background(), &pb.CheckRequest{Hosts: []string{"h"}}); err != nil {
		t.Fatal(err)
	}
	holds := func(kind plugins.Kind, name string) (found bool) {
		t.Helper()
		pid := pluginStatus(t, e.h, kind, name).PID
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			if target, _ := os.Readlink(filepath.Join(dir, fd.Name())); target != path {
				continue
			}
			info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
			if err != nil {
				t.Fatal(err)
			}
			// flags: octal, O_CLOEXEC is 02000000.
			for _, line := range strings.Split(string(info), "\n") {
				if v, ok := strings.CutPrefix(line, "flags:"); ok {
					flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
					if err != nil || flags&syscall.O_CLOEXEC == 0 {
						t.Errorf("%s/%s: hold file descriptor %s flags %q: want close-on-exec", kind, name, fd.Name(), v)
					}
				}
			}
			found = true
		}
		return found
	}
	if !holds(plugins.KindResource, "testres") {
		t.Error("the resource plugin does not hold the hold file")
	}
	if holds(plugins.KindMonitor, "testmon") {
		t.Error("a monitor plugin holds the hold file")
	}
}

// monitorAll runs a recurring monitor (interval 10 s) of each instance
// at once, as a director's group workers do, and returns the replies in
// order.
func monitorAll(ctx context.Context, r host.Resource, ins []*pb.Instance) ([]*pb.Result, []error) {
	return each(ins, func(in *pb.Instance) (*pb.Result, error) {
		rec := proto.CloneOf(in)
		rec.IntervalMs = 10000
		return r.Monitor(ctx, rec)
	})
}

// each runs op on every instance at once and returns the replies in
// order.
func each(ins []*pb.Instance, op func(*pb.Instance) (*pb.Result, error)) ([]*pb.Result, []error) {
	res, errs := make([]*pb.Result, len(ins)), make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Go(func() { res[i], errs[i] = op(in) })
	}
	wg.Wait()
	return res, errs
}

func TestMonitorsBatched(t *testing.T) {
	e := newHost(t, nil)
	ctx := context.Background()
	r := e.h.Resource("testres")
	var ins []*pb.Instance
	for i := range 20 {
		ins = append(ins, &pb.Instance{Id: fmt.Sprintf("vip%d", i), TimeoutMs: 5000})
	}
	ins[3].Params = map[string]string{"nolease": "1"}
	ins[7].Params = map[string]string{"code": "42"}
	ins[9].Params = map[string]string{"code": "0"}
	res, errs := monitorAll(ctx, r, ins)
	for i, in := range ins {
		switch i {
		case 3: // the plugin's own refusal, for this instance alone
			if !errors.Is(errs[i], host.ErrNoLease) || !strings.Contains(errs[i].Error(), "vip3") {
				t.Errorf("%s: %v, want ErrNoLease", in.Id, errs[i])
			}
		case 7:
			if !errors.Is(errs[i], host.ErrBadOutput) || !strings.Contains(errs[i].Error(), "42") {
				t.Errorf("%s: %v, want ErrBadOutput", in.Id, errs[i])
			}
		case 9:
			if errs[i] != nil || res[i].Code != pb.Code_SUCCESS {
				t.Errorf("%s: %v %v, want SUCCESS", in.Id, res[i], errs[i])
			}
		default:
			// Together in one call, each answered for itself.
			if errs[i] != nil || res[i].Code != pb.Code_NOT_RUNNING || res[i].Output != "Batch "+in.Id {
				t.Errorf("%s: %v %v, want NOT_RUNNING from a Batch", in.Id, res[i], errs[i])
			}
		}
	}
	// A probe goes out at once, on its own.
	probe := &pb.Instance{Id: "vip0", TimeoutMs: 5000}
	if res, err := r.Monitor(ctx, probe); err != nil || res.Output != "Monitor vip0" {
		t.Fatalf("probe: %v %v", res, err)
	}
	// A caller that gives up gets its context's error, not a reply.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Monitor(cctx, &pb.Instance{Id: "vip0", TimeoutMs: 5000, IntervalMs: 10000}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled monitor: %v", err)
	}
}

func TestMonitorsOfAPluginWithoutBatches(t *testing.T) {
	e := newHost(t, nil)
	var ins []*pb.Instance
	for i := range 5 {
		ins = append(ins, &pb.Instance{Id: fmt.Sprintf("vip%d", i), TimeoutMs: 5000})
	}
	// The first batch is refused as unimplemented and sent one by one;
	// later monitors go one by one at once.
	for round := range 2 {
		res, errs := monitorAll(context.Background(), e.h.Resource("testraw"), ins)
		for i, in := range ins {
			if errs[i] != nil || res[i].Output != "Monitor "+in.Id {
				t.Fatalf("round %d, %s: %v %v, want a Monitor call of its own", round, in.Id, res[i], errs[i])
			}
		}
	}
}

func TestMonitorsUnbatched(t *testing.T) {
	e := newHost(t, func(o *host.Options) { o.BatchWindow = -1 })
	res, errs := monitorAll(context.Background(), e.h.Resource("testres"), []*pb.Instance{{Id: "vip0", TimeoutMs: 5000}})
	if errs[0] != nil || res[0].Output != "Monitor vip0" {
		t.Fatalf("%v %v, want a Monitor call of its own", res[0], errs[0])
	}
}
