package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/vigil-ha/vigil/monitors"
)

// Daemon is how a plugin talks back to the daemon that runs it: commands
// to other resources (mon's ipvs alert to ldirectord) and events for the
// daemon's alert routes, over the daemon's control socket (the plugin runs
// as root, as the daemon does). Its wire format is the control API's.
type Daemon struct {
	socket string
	c      *http.Client
}

// DaemonFromEnv returns the daemon named by EnvControlSocket, or nil for
// a plugin run outside a daemon (tests, `vigil plugin serve` by hand).
func DaemonFromEnv() *Daemon {
	socket := os.Getenv(EnvControlSocket)
	if socket == "" {
		return nil
	}
	return &Daemon{socket: socket, c: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}}}}
}

// ResourceCommand hands a command to a resource running on this node
// (resource "": every running instance that takes it).
func (d *Daemon) ResourceCommand(ctx context.Context, resource, name string, args []string) error {
	return d.post(ctx, map[string]any{"op": "resource-command", "resource": resource, "name": name, "args": args})
}

// Event gives the daemon an event to route to its alert senders.
func (d *Daemon) Event(ctx context.Context, a monitors.Alert) error {
	return d.post(ctx, map[string]any{"op": "event", "event": a})
}

func (d *Daemon) post(ctx context.Context, cmd map[string]any) error {
	body, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://vigil/v1/command", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := d.c.Do(req)
	if err != nil {
		return fmt.Errorf("daemon at %s: %w", d.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("daemon: %s", strings.TrimSpace(string(msg)))
	}
	return nil
}
