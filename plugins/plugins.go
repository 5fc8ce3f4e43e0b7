// Package plugins is Vigil's plugin protocol on top of hashicorp/go-plugin:
// one handshake for every kind (resource, monitor, alert, fence), gRPC only,
// with AutoMTLS. The generated protocol lives in plugins/pb, the process
// supervisor in plugins/host and the kit plugin authors use in plugins/sdk.
package plugins

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Kind names one plugin service. It is the control
// API's wire type, defined in package api.
type Kind = api.PluginKind

// The plugin kinds (DESIGN.md §2.3).
const (
	KindResource Kind = "resource"
	KindMonitor  Kind = "monitor"
	KindAlert    Kind = "alert"
	KindFence    Kind = "fence"
)

// The daemon puts these in every plugin's environment: its node's name,
// its control socket (mon's ipvs alert reaches ldirectord through it),
// the operator's plugin_dir (for plugins that run plugins of their own)
// and its process id (a plugin whose daemon died before the plugin first
// looked at its parent must still see that it is gone).
const (
	EnvNode          = "VIGIL_NODE"
	EnvControlSocket = "VIGIL_CONTROL_SOCKET"
	EnvPluginDir     = "VIGIL_PLUGIN_DIR"
	EnvDaemonPID     = "VIGIL_DAEMON_PID"
)

// Kinds lists every kind, in the order status shows them.
var Kinds = []Kind{KindResource, KindMonitor, KindAlert, KindFence}

// ValidKind reports whether k is a known plugin kind.
func ValidKind(k Kind) bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Handshake is shared by the host and every plugin. The cookie only stops
// a plugin binary from being run by hand by mistake; it is not security
// (AutoMTLS authenticates the connection).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "VIGIL_PLUGIN",
	MagicCookieValue: "b3c1a4e0-vigil-plugin-protocol",
}

// Set returns the go-plugin set for the given implementations; nil ones are
// left out, so a plugin serves only the kinds it implements. The host passes
// Set(nil, nil, nil, nil) to get clients for every kind.
func Set(r pb.ResourceServer, m pb.MonitorServer, a pb.AlertServer, f pb.FenceServer) plugin.PluginSet {
	set := plugin.PluginSet{}
	host := r == nil && m == nil && a == nil && f == nil
	if host || r != nil {
		set[string(KindResource)] = &grpcPlugin{register: func(s *grpc.Server) { pb.RegisterResourceServer(s, batched{r}) },
			client: func(c *grpc.ClientConn) any { return pb.NewResourceClient(c) }}
	}
	if host || m != nil {
		set[string(KindMonitor)] = &grpcPlugin{register: func(s *grpc.Server) { pb.RegisterMonitorServer(s, m) },
			client: func(c *grpc.ClientConn) any { return pb.NewMonitorClient(c) }}
	}
	if host || a != nil {
		set[string(KindAlert)] = &grpcPlugin{register: func(s *grpc.Server) { pb.RegisterAlertServer(s, a) },
			client: func(c *grpc.ClientConn) any { return pb.NewAlertClient(c) }}
	}
	if host || f != nil {
		set[string(KindFence)] = &grpcPlugin{register: func(s *grpc.Server) { pb.RegisterFenceServer(s, f) },
			client: func(c *grpc.ClientConn) any { return pb.NewFenceClient(c) }}
	}
	return set
}

// grpcPlugin adapts one generated service to go-plugin.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	register func(*grpc.Server)
	client   func(*grpc.ClientConn) any
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	p.register(s)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return p.client(c), nil
}
