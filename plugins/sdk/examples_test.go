package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
)

var pluginDir string

// TestMain compiles every example once into one plugin_dir, as a third
// party would install them.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-sdk-examples-")
	if err != nil {
		panic(err)
	}
	pluginDir = dir
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	code := 0
	for _, name := range []string{"counter", "portcheck", "filealert", "filefence"} {
		out, err := exec.Command(goBin, "build", "-o", filepath.Join(dir, name), "./examples/"+name).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build example %s: %v\n%s", name, err, out)
			code = 1
		}
	}
	if code == 0 {
		code = m.Run()
	}
	if code == 0 {
		// Every plugin client and its log pumps ended with its test.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestExamplesAsExternalPlugins(t *testing.T) {
	h, err := host.New(host.Options{Dir: pluginDir, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	work := t.TempDir()

	// Resource: start twice, monitor, stop.
	in := &pb.Instance{Id: "c", Params: map[string]string{"file": filepath.Join(work, "count")}}
	r := h.Resource("counter")
	for _, step := range []struct {
		op   func(context.Context, *pb.Instance) (*pb.Result, error)
		want pb.Code
	}{{r.Monitor, pb.Code_NOT_RUNNING}, {r.Start, pb.Code_SUCCESS}, {r.Start, pb.Code_SUCCESS},
		{r.Monitor, pb.Code_SUCCESS}, {r.Validate, pb.Code_SUCCESS}} {
		if res, err := step.op(ctx, in); err != nil || res.Code != step.want {
			t.Fatalf("counter: %v %v, want %s", res, err, step.want)
		}
	}
	if b, _ := os.ReadFile(in.Params["file"]); string(b) != "2" {
		t.Fatalf("counter file %q, want 2", b)
	}

	// Monitor: one listening host, one refusing.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	res, err := h.Monitor("portcheck").Check(ctx, &pb.CheckRequest{Hosts: []string{"127.0.0.1", "127.0.0.2"},
		Params: map[string]string{"port": port}, TimeoutMs: 2000})
	if err != nil || res.Ok || res.Summary != "127.0.0.2" {
		t.Fatalf("portcheck: %v %v", res, err)
	}

	// Alert: the event arrives whole.
	file := filepath.Join(work, "alerts")
	ev := &pb.Event{Kind: "service", Subject: "www/http", Node: "lvs1", Severity: pb.Severity_CRITICAL, Summary: "rs2 down"}
	if _, err := h.Alert("filealert").Deliver(ctx, &pb.AlertRequest{Event: ev, Params: map[string]string{"file": file}}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil || got["subject"] != "www/http" || got["summary"] != "rs2 down" {
		t.Fatalf("alert line %s (%v)", b, err)
	}

	// Fence: off, then status confirms it.
	f := h.Fence("filefence")
	req := &pb.FenceRequest{Node: "lvs2", Params: map[string]string{"dir": work}}
	if res, err := f.Off(ctx, req); err != nil || res.Power != pb.Power_OFF {
		t.Fatalf("fence off: %v %v", res, err)
	}
	if res, err := f.Status(ctx, req); err != nil || res.Power != pb.Power_OFF {
		t.Fatalf("fence status: %v %v", res, err)
	}
}

func TestExampleRunByHand(t *testing.T) {
	out, err := exec.Command(filepath.Join(pluginDir, "counter")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not meant to be run by hand") {
		t.Fatalf("run by hand: %v %s", err, out)
	}
}
