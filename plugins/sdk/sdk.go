// Package sdk is what a plugin author imports. A plugin is a Go main that
// implements one or more of the generated service interfaces (usually by
// embedding the Base types here) and calls Serve:
//
//	type hello struct{ sdk.BaseResource }
//
//	func (hello) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
//		sdk.Log().Info("starting", "id", in.Id)
//		return sdk.OK(), nil
//	}
//
//	func main() { sdk.Serve(sdk.Plugin{Resource: hello{}}) }
//
// Drop the binary into the daemon's plugin_dir and name it in
// resources.toml (type = "plugin:hello"). Examples of every kind live in
// plugins/sdk/examples.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Plugin is what one plugin process serves; leave unused kinds nil.
type Plugin struct {
	Resource pb.ResourceServer
	Monitor  pb.MonitorServer
	Alert    pb.AlertServer
	Fence    pb.FenceServer
}

// stderr is the process's real standard error, saved before go-plugin
// redirects os.Stderr: the host reads structured log lines from it.
var stderr io.Writer = os.Stderr

var logger = slog.New(NewLogHandler(stderr, slog.LevelDebug))

// Log is the plugin's logger. Its records arrive in the daemon's log with
// the plugin's name and level; do not print to stdout.
func Log() *slog.Logger { return logger }

// NewLogHandler writes records in the JSON shape the host parses
// (go-plugin's "@level"/"@message"/"@timestamp" keys).
func NewLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.LevelKey:
			return slog.String("@level", strings.ToLower(a.Value.String()))
		case slog.MessageKey:
			return slog.String("@message", a.Value.String())
		case slog.TimeKey:
			return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
		}
		return a
	}})
}

// Serve runs the plugin until the host closes it. It never returns when
// started by the host; run by hand it prints a hint and exits 1.
func Serve(p Plugin) {
	if os.Getenv(plugins.Handshake.MagicCookieKey) != plugins.Handshake.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "this is a Vigil plugin: the vigil daemon starts it, it is not meant to be run by hand")
		os.Exit(1)
	}
	// Once the daemon is gone, a log line would meet a closed pipe, and
	// SIGPIPE would end the plugin before it released what it holds; and
	// the plugin leads its own process group, which its daemon's death
	// orphans: the kernel then sends a stopped plugin SIGHUP (and
	// SIGCONT), which would end it the same way.
	signal.Ignore(syscall.SIGPIPE, syscall.SIGHUP)
	gone := func() {}
	drain := func() {}
	if d, ok := p.Resource.(Drainer); ok {
		drain = d.Drain
	}
	page, err := plugins.LeasePageFromEnv()
	if err != nil {
		logger.Warn("renewals of the lease come by call only", "err", err)
	}
	if r, ok := p.Resource.(Releaser); ok {
		l := newLeased(p.Resource, r, page)
		p.Resource, gone = l, l.releaseNow
	} else if page != nil {
		page.Close() // keeps no lease: not passed on to what it runs
	}
	letGo, err := plugins.KeepHoldFromEnv()
	if err != nil {
		logger.Warn("a restarted daemon will not wait for this plugin's release", "err", err)
	}
	go exitWithParent(parentPID(), func() { gone(); letGo(); drain() })
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugins.Handshake,
		Plugins:         plugins.Set(p.Resource, p.Monitor, p.Alert, p.Fence),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "go-plugin", Level: hclog.Warn, Output: stderr, JSONFormat: true,
		}),
	})
	drain()
	os.Exit(0)
}

// Drainer is a resource plugin with work to finish after the host closed
// it (IPaddr's hand-over forwarding): Serve calls Drain before the
// process exits. The host kills a plugin that takes two seconds to exit.
type Drainer interface {
	Drain()
}

// parentPID is the daemon's process id: the one it put in the
// environment, else this process's parent now. (Read from the parent
// alone, a daemon killed between starting the plugin and this call left
// it orphaned for good: its parent was already init.)
func parentPID() int {
	if pid, err := strconv.Atoi(os.Getenv(plugins.EnvDaemonPID)); err == nil && pid > 0 {
		return pid
	}
	return os.Getppid()
}

// exitWithParent ends the plugin when the daemon that started it is gone
// (killed with -9, say), so no orphan keeps acting on resources the
// cluster may already have moved; what only the lease holder may have is
// released first (normally the lease ran out before this notices).
func exitWithParent(ppid int, release func()) {
	awaitExit(ppid)
	logger.Warn("daemon gone, plugin exiting", "parent", ppid)
	release()
	os.Exit(2)
}

// awaitExit returns once process pid, this plugin's parent, has exited:
// at once through a pidfd, which also spares an idle plugin a poll;
// where pidfds are missing, by looking at the parent twice a second.
func awaitExit(pid int) {
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(fd)
		// The pidfd names pid's process only if it is still this
		// plugin's parent (else the daemon is gone and pid may be reused).
		if os.Getppid() != pid {
			return
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			// A pidfd polls readable when its process exits; a failing
			// poll (never seen) falls back to looking, below.
			n, err := unix.Poll(pfd, -1)
			if n > 0 {
				return
			}
			if err != nil && err != unix.EINTR {
				break
			}
		}
	} else if errors.Is(err, unix.ESRCH) {
		return
	}
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != pid {
			return
		}
	}
}

// OK is a successful resource result.
func OK() *pb.Result { return &pb.Result{Code: pb.Code_SUCCESS} }

// NotRunning is a monitor result for a cleanly stopped resource.
func NotRunning(reason string) *pb.Result {
	return &pb.Result{Code: pb.Code_NOT_RUNNING, Reason: reason}
}

// Fail is a failed resource result with the given OCF class.
func Fail(code pb.Code, format string, args ...any) *pb.Result {
	return &pb.Result{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// BaseResource gives a resource plugin defaults for the optional
// operations: meta-data with no parameters, validate and reload succeed.
// Start, Stop and Monitor must be implemented.
type BaseResource struct{ pb.UnimplementedResourceServer }

func (BaseResource) MetaData(_ context.Context, in *pb.MetaDataRequest) (*pb.Meta, error) {
	return &pb.Meta{Name: in.GetType(), Version: "1.0"}, nil
}
func (BaseResource) Validate(context.Context, *pb.Instance) (*pb.Result, error) { return OK(), nil }
func (BaseResource) Reload(context.Context, *pb.Instance) (*pb.Result, error)   { return OK(), nil }

// MonitorFunc turns a function into a monitor plugin.
func MonitorFunc(f func(context.Context, *pb.CheckRequest) (*pb.CheckResult, error)) pb.MonitorServer {
	return monitorFunc{f: f}
}

type monitorFunc struct {
	pb.UnimplementedMonitorServer
	f func(context.Context, *pb.CheckRequest) (*pb.CheckResult, error)
}

func (m monitorFunc) Check(ctx context.Context, in *pb.CheckRequest) (*pb.CheckResult, error) {
	return m.f(ctx, in)
}

// AlertFunc turns a function into an alert plugin.
func AlertFunc(f func(context.Context, *pb.AlertRequest) (*pb.AlertResult, error)) pb.AlertServer {
	return alertFunc{f: f}
}

type alertFunc struct {
	pb.UnimplementedAlertServer
	f func(context.Context, *pb.AlertRequest) (*pb.AlertResult, error)
}

func (a alertFunc) Deliver(ctx context.Context, in *pb.AlertRequest) (*pb.AlertResult, error) {
	return a.f(ctx, in)
}
