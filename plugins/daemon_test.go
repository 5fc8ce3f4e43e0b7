package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/control"
	"github.com/vigil-ha/vigil/monitors"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is the daemon's side, as the control server hands it commands.
type backend struct{ got chan api.Command }

func (b *backend) Status() api.Status { return api.Status{} }
func (b *backend) Subscribe(int) (<-chan api.Event, func()) {
	return make(chan api.Event), func() {}
}
func (b *backend) Command(_ context.Context, c api.Command) error {
	if c.Resource == "nobody" {
		return fmt.Errorf("%w: no running resource %q", api.ErrRefused, c.Resource)
	}
	b.got <- c
	return nil
}

// A plugin's commands reach the daemon's control server as the commands
// the daemon dispatches, through the real socket and server.
func TestDaemonCommands(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	t.Setenv(EnvControlSocket, sock)
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &backend{got: make(chan api.Command, 2)}
	done := make(chan error, 1)
	go func() { done <- control.Serve(ctx, l, b, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	d := DaemonFromEnv()
	if d == nil {
		t.Fatal("no daemon with " + EnvControlSocket + " set")
	}
	defer d.client.Close()
	if err := d.ResourceCommand(ctx, "ldirectord_www", "ipvs", []string{"down", "10.0.0.21"}); err != nil {
		t.Fatal(err)
	}
	if c := <-b.got; c.Op != api.OpResourceCommand || c.Resource != "ldirectord_www" || c.Name != "ipvs" || fmt.Sprint(c.Args) != "[down 10.0.0.21]" {
		t.Errorf("daemon got %+v", c)
	}
	a := monitors.Alert{Type: monitors.AlertFailure, Kind: "realserver", Group: "ldirectord_www", Service: "http", Hosts: []string{"10.0.0.21"}}
	if err := d.Event(ctx, a); err != nil {
		t.Fatal(err)
	}
	if c := <-b.got; c.Op != api.OpEvent || c.Event == nil || c.Event.Kind != "realserver" || c.Event.Hosts[0] != "10.0.0.21" {
		t.Errorf("daemon got %+v", c)
	}
	if err := d.ResourceCommand(ctx, "nobody", "ipvs", nil); !errors.Is(err, api.ErrRefused) {
		t.Errorf("refused command: %v", err)
	}
}

func TestDaemonFromEnv(t *testing.T) {
	t.Setenv(EnvControlSocket, "")
	if d := DaemonFromEnv(); d != nil {
		t.Error("a daemon without " + EnvControlSocket)
	}
	sock := filepath.Join(t.TempDir(), "none.sock")
	t.Setenv(EnvControlSocket, sock)
	err := DaemonFromEnv().Event(context.Background(), monitors.Alert{})
	if !errors.Is(err, api.ErrUnreachable) {
		t.Errorf("no daemon: %v", err)
	}
}
