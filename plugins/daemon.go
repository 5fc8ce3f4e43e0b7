package plugins

import (
	"context"
	"os"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/monitors"
)

// Daemon is how a plugin talks back to the daemon that runs it: commands
// to other resources (mon's ipvs alert to ldirectord) and events for the
// daemon's alert routes, over the daemon's control socket (the plugin runs
// as root, as the daemon does) with the control API's own client.
type Daemon struct {
	client *api.Client
}

// DaemonFromEnv returns the daemon named by EnvControlSocket, or nil for
// a plugin run outside a daemon (tests, `vigil plugin serve` by hand).
func DaemonFromEnv() *Daemon {
	socket := os.Getenv(EnvControlSocket)
	if socket == "" {
		return nil
	}
	return &Daemon{client: api.NewClient(socket)}
}

// ResourceCommand hands a command to a resource running on this node
// (resource "": every running instance that takes it).
func (d *Daemon) ResourceCommand(ctx context.Context, resource, name string, args []string) error {
	return d.client.Command(ctx, api.Command{Op: api.OpResourceCommand, Resource: resource, Name: name, Args: args})
}

// Event gives the daemon an event to route to its alert senders.
func (d *Daemon) Event(ctx context.Context, a monitors.Alert) error {
	return d.client.Command(ctx, api.Command{Op: api.OpEvent, Event: &a})
}
