package hbdiff

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/internal/instances"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/legacy"
	"github.com/vigil-ha/vigil/plugins/builtin"
	"github.com/vigil-ha/vigil/plugins/host"
)

// TestVigilSide is Vigil's half of a case, run by the outer test in the
// case's namespaces (/etc/ha.d is the case's): the haresources imported
// as `vigil import heartbeat -d /etc/ha.d` imports it, then each group run by the
// local resource manager as the daemon runs it — a probe when the node
// starts, the start, and the stop at shutdown — through the real plugins.
func TestVigilSide(t *testing.T) {
	dir := inner.Value(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("/etc/ha.d", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	imp, err := legacy.ImportHeartbeat(legacy.HeartbeatInput{
		HACf: read("ha.cf"), HAResources: read("haresources"), Authkeys: read("authkeys"),
		HACfPath: "/etc/ha.d/ha.cf", HAResourcesPath: "/etc/ha.d/haresources", AuthkeysPath: "/etc/ha.d/authkeys",
		Addresses: map[string]string{"hbnode1": "127.0.0.1", "hbnode2": "127.0.0.2"},
		OCFConf: func(agent, instance string) ([]byte, error) {
			return os.ReadFile(filepath.Join("/etc/ha.d/conf/OCF", agent, instance))
		}})
	if err != nil {
		imp.Report.Write(os.Stderr)
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "vigil")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range imp.Files {
		if err := os.WriteFile(filepath.Join(conf, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(conf, instances.Options("hbnode1"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(testutil.NewLogSink())
	h, err := host.New(host.Options{Executable: os.Args[0], Builtin: builtin.Has, Log: log, MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	// heartbeat has no timeout on resource scripts; the daemon's default
	// operation timeout is far beyond what these scripts take.
	const timeout = 20 * time.Second
	switch os.Getenv(envMode) {
	case "group":
		m := lrm.New(h, log, timeout)
		for _, g := range cfg.Resources.Groups {
			m.Probe(ctx, g)
		}
		// The probe's calls are told apart: heartbeat has none when it
		// takes a dead node's groups over.
		f, err := os.OpenFile(filepath.Join(dir, "rec", "log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString(probeEnd + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range cfg.Resources.Groups {
			if err := m.Start(ctx, g); err != nil {
				t.Logf("start %s: %v", g.Name, err)
			}
		}
		for _, g := range cfg.Resources.Groups {
			// At shutdown the daemon stops what may run here.
			if lrm.Active(m.State(g.Name)) {
				if err := m.Stop(ctx, g); err != nil {
					t.Logf("stop %s: %v", g.Name, err)
				}
			}
		}
	case "status":
		r := cfg.Resources.Groups[0].Resources[0]
		rows, err := filepath.Glob(filepath.Join(dir, "rows", "*"))
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for _, row := range rows {
			b, err := os.ReadFile(row)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "rec", "ctl", "Rec1.status"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := lrm.Once(ctx, h, r, "monitor", timeout, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&out, "%s %s\n", filepath.Base(row), res.Code)
		}
		if err := os.WriteFile(filepath.Join(dir, "status-result"), []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown %s", envMode)
	}
}
