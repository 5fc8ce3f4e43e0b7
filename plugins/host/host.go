// Package host launches and supervises plugin processes. Every call has a
// deadline; a plugin that crashes is restarted with backoff and reported
// through Options.OnRestart so its owner can re-reconcile what the plugin
// manages; one that stops answering after a missed deadline is killed (and
// with it every script it was running) and restarted the same way. The
// daemon never shares a fate with a plugin.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Errors a call can end with; match them with errors.Is.
var (
	ErrUnknownPlugin = errors.New("no such plugin")
	ErrCrashed       = errors.New("plugin crashed")
	ErrTimeout       = errors.New("deadline exceeded")
	ErrBadOutput     = errors.New("bad plugin output")
	ErrUnimplemented = errors.New("not implemented by the plugin")
	ErrClosed        = errors.New("plugin host closed")
	// ErrNoLease: the plugin refused to acquire a resource because the
	// node's lease it holds ran out (pb.Lease) — not the resource's fault.
	ErrNoLease = errors.New("the node's lease ran out in the plugin")
)

// Options configures a Host. Zero durations take the defaults noted.
type Options struct {
	// Executable is the vigil binary that serves built-in plugins with
	// `vigil plugin serve KIND NAME` (default: this process's executable).
	Executable string
	// Builtin reports whether the executable serves kind/name itself.
	Builtin func(kind plugins.Kind, name string) bool
	// Dir is plugin_dir: external plugins are executables named after the
	// plugin. Built-in names take precedence.
	Dir string
	Log *slog.Logger
	// StartTimeout bounds a plugin's handshake (default 10s).
	StartTimeout time.Duration
	// DefaultTimeout applies to calls that carry none (default 20s).
	DefaultTimeout time.Duration
	// Grace is added to an operation's own timeout for the transport, so
	// that a plugin enforcing the timeout itself can still answer (default 2s).
	Grace time.Duration
	// PingTimeout bounds the ping that decides whether a plugin that
	// missed a deadline still answers, or hangs and is killed (default 1s).
	PingTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a restart (100ms, 5s).
	MinBackoff, MaxBackoff time.Duration
	// Env is added to every plugin's environment (NAME=value).
	Env []string
	// Hold is the daemon's hold file (plugins.AwaitPredecessor), passed
	// to every resource plugin; the host owns it from New on.
	Hold *os.File
	// BatchWindow is the longest a recurring monitor waits for others of
	// its plugin to go out with it in one call (default 100ms; a batch
	// waits a hundredth of its first monitor's interval, at most this);
	// negative: every monitor is a call of its own.
	BatchWindow time.Duration
	// OnRestart runs, in its own goroutine, after a plugin came back from
	// a crash or a kill.
	OnRestart func(kind plugins.Kind, name string)
}

// Status describes one plugin process for `vigil status`. It is the control
// API's wire type, defined in package api.
type Status = api.PluginStatus

// Host owns every plugin process of a daemon.
type Host struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	procs    map[key]*proc
	batchers map[string]*batcher // by resource plugin

	// page shares the node's lease with every resource plugin process
	// (plugins.LeasePage); nil where memfd is missing: Hold then
	// carries every renewal.
	page *plugins.LeasePage
}

type key struct {
	kind plugins.Kind
	name string
}

// New returns a host; plugins start on first use.
func New(opts Options) (*Host, error) {
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("plugin host: own executable: %w", err)
		}
		opts.Executable = exe
	}
	if opts.Builtin == nil {
		opts.Builtin = func(plugins.Kind, string) bool { return false }
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.StartTimeout, 10*time.Second)
	def(&opts.DefaultTimeout, 20*time.Second)
	def(&opts.Grace, 2*time.Second)
	def(&opts.PingTimeout, time.Second)
	def(&opts.MinBackoff, 100*time.Millisecond)
	def(&opts.MaxBackoff, 5*time.Second)
	if opts.BatchWindow == 0 {
		opts.BatchWindow = 100 * time.Millisecond
	}
	page, err := plugins.NewLeasePage()
	if err != nil {
		opts.Log.Warn("the lease goes to resource plugins by call only", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Host{opts: opts, log: opts.Log, ctx: ctx, cancel: cancel, procs: map[key]*proc{}, batchers: map[string]*batcher{}, page: page}, nil
}

// resourceFiles are the files a resource plugin inherits (descriptors
// from 3 on) and env with the variables that name them.
func (h *Host) resourceFiles(env []string) ([]*os.File, []string) {
	var files []*os.File
	pass := func(f *os.File, name string) {
		files = append(files, f)
		env = append(env, name+"="+strconv.Itoa(2+len(files)))
	}
	if h.page != nil {
		pass(h.page.File(), plugins.EnvLeaseFD)
	}
	if h.opts.Hold != nil {
		pass(h.opts.Hold, plugins.EnvHoldFD)
	}
	return files, env
}

// Close stops every plugin process and waits for them.
func (h *Host) Close() {
	h.cancel()
	h.wg.Wait()
	if h.page != nil {
		h.page.Close()
	}
	if h.opts.Hold != nil {
		h.opts.Hold.Close()
	}
}

// spawn runs f in a goroutine Close waits for; false once closed.
func (h *Host) spawn(f func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return false
	}
	h.spawnLocked(f)
	return true
}

// spawnLocked is spawn for a caller that holds h.mu and saw h open.
func (h *Host) spawnLocked(f func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// ShareLease writes the node's lease to the page every resource plugin
// reads (see plugins.LeasePage); it reports whether there is one.
func (h *Host) ShareLease(le *pb.Lease) bool {
	if h.page == nil || le == nil {
		return false
	}
	h.page.Store(le)
	return true
}

// SharedLease is what the lease page holds; nil: nothing, or no page.
func (h *Host) SharedLease() *pb.Lease {
	if h.page == nil {
		return nil
	}
	return h.page.Load()
}

// Status lists the plugin processes started so far.
func (h *Host) Status() []Status {
	h.mu.Lock()
	ps := make([]*proc, 0, len(h.procs))
	for _, p := range h.procs {
		ps = append(ps, p)
	}
	h.mu.Unlock()
	out := make([]Status, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.status())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// lookup resolves kind/name to the command that serves it.
func (h *Host) lookup(kind plugins.Kind, name string) (path string, args []string, builtin bool, err error) {
	if !plugins.ValidKind(kind) {
		return "", nil, false, fmt.Errorf("%w: unknown plugin kind %q", ErrUnknownPlugin, kind)
	}
	if !validName.MatchString(name) {
		return "", nil, false, fmt.Errorf("%w: invalid plugin name %q", ErrUnknownPlugin, name)
	}
	if h.opts.Builtin(kind, name) {
		return h.opts.Executable, []string{"plugin", "serve", string(kind), name}, true, nil
	}
	if h.opts.Dir == "" {
		return "", nil, false, fmt.Errorf("%w: no built-in %s plugin %q and no plugin_dir", ErrUnknownPlugin, kind, name)
	}
	path = filepath.Join(h.opts.Dir, name)
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return "", nil, false, fmt.Errorf("%w: no built-in %s plugin %q and none in %s", ErrUnknownPlugin, kind, name, h.opts.Dir)
	case !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0:
		return "", nil, false, fmt.Errorf("%w: %s is not an executable file", ErrUnknownPlugin, path)
	case fi.Mode()&0o002 != 0:
		// Anyone could replace what the daemon runs as root.
		return "", nil, false, fmt.Errorf("%w: %s is world-writable, refused", ErrUnknownPlugin, path)
	}
	return path, nil, false, nil
}

func (h *Host) proc(kind plugins.Kind, name string) (*proc, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	k := key{kind, name}
	if p, ok := h.procs[k]; ok {
		return p, nil
	}
	path, args, builtin, err := h.lookup(kind, name)
	if err != nil {
		return nil, err
	}
	p := &proc{h: h, key: k, path: path, args: args, builtin: builtin, state: api.PluginStarting,
		changed: make(chan struct{}), since: time.Now(),
		log: h.log.With("plugin", string(kind)+"/"+name)}
	h.procs[k] = p
	h.spawnLocked(func() { p.run(h.ctx) })
	return p, nil
}

// proc is one plugin process and its successive incarnations.
type proc struct {
	h *Host
	key
	path    string
	args    []string
	builtin bool
	log     *slog.Logger

	mu       sync.Mutex
	state    string
	changed  chan struct{} // closed and replaced on every state change
	client   *plugin.Client
	runner   *procRunner
	raw      any
	startErr error
	since    time.Time
	crashes  int
	restarts int
	lastExit string
	exitAt   time.Time
	lastErr  string
}

func (p *proc) setState(state string, f func()) {
	p.mu.Lock()
	p.state = state
	p.since = time.Now()
	if f != nil {
		f()
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// run starts the plugin and restarts it whenever it ends, until ctx ends.
func (p *proc) run(ctx context.Context) {
	backoff := p.h.opts.MinBackoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				p.setState(api.PluginStopped, nil)
				return
			}
			backoff = min(2*backoff, p.h.opts.MaxBackoff)
		}
		client, r, raw, err := p.spawn()
		if err != nil {
			p.log.Error("plugin failed to start", "path", p.path, "err", err)
			p.setState(api.PluginFailed, func() { p.startErr = err; p.lastErr = err.Error() })
			continue
		}
		restarted := attempt > 0
		p.setState(api.PluginRunning, func() {
			p.client, p.runner, p.raw, p.startErr = client, r, raw, nil
			if restarted {
				p.restarts++
			}
		})
		p.log.Info("plugin running", "pid", r.pid(), "path", p.path)
		if restarted && p.h.opts.OnRestart != nil {
			go p.h.opts.OnRestart(p.kind, p.name)
		}
		started := time.Now()
		select {
		case <-r.done:
			reason := r.exitReason()
			p.log.Error("plugin exited unexpectedly; restarting", "pid", r.pid(), "exit", reason)
			p.setState(api.PluginRestarting, func() {
				p.crashes++
				p.lastExit, p.exitAt = reason, time.Now()
			})
			stop(client, r)
			if time.Since(started) > 30*time.Second {
				backoff = p.h.opts.MinBackoff
			}
		case <-ctx.Done():
			stop(client, r)
			p.setState(api.PluginStopped, nil)
			return
		}
	}
}

// stop asks the plugin to shut down and kills its process group if it has
// not within a second: go-plugin's graceful shutdown has no deadline of
// its own and would wait forever on a hung (or stopped) process.
func stop(client *plugin.Client, r *procRunner) {
	done := make(chan struct{})
	go func() { client.Kill(); close(done) }()
	select {
	case <-r.done:
	case <-time.After(time.Second):
	}
	_ = r.Kill(context.Background()) // and any scripts left in its group
	<-done
}

func (p *proc) spawn() (*plugin.Client, *procRunner, any, error) {
	logs := &logWriter{log: p.log}
	var r *procRunner
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  plugins.Handshake,
		Plugins:          plugins.Set(nil, nil, nil, nil),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     p.h.opts.StartTimeout,
		// go-plugin's own parser of plugin stderr trusts its input (a
		// non-string "@message" panics), so it is switched off and
		// logWriter reads the raw lines instead.
		Logger:     hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard}),
		Stderr:     logs,
		SyncStdout: logs,
		SyncStderr: logs,
		// go-plugin hands over a blank command carrying the handshake
		// environment.
		RunnerFunc: func(_ hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
			cmd := exec.Command(p.path, p.args...)
			cmd.Env = append(spec.Env, p.h.opts.Env...)
			if p.kind == plugins.KindResource {
				cmd.ExtraFiles, cmd.Env = p.h.resourceFiles(cmd.Env)
			}
			r = newRunner(cmd)
			return r, nil
		},
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, nil, nil, err
	}
	raw, err := rpc.Dispense(string(p.kind))
	if err != nil {
		client.Kill()
		return nil, nil, nil, err
	}
	return client, r, raw, nil
}

// get waits until the plugin runs (or ctx ends) and returns its client.
func (p *proc) get(ctx context.Context) (any, *procRunner, *plugin.Client, error) {
	for {
		p.mu.Lock()
		state, raw, r, client, startErr, changed := p.state, p.raw, p.runner, p.client, p.startErr, p.changed
		p.mu.Unlock()
		switch {
		// A process that already exited is waited out, not called: the
		// supervisor may not have caught up with its death yet.
		case state == api.PluginRunning && !r.exitedWithin(0):
			return raw, r, client, nil
		case state == api.PluginStopped:
			return nil, nil, nil, ErrClosed
		case state == api.PluginFailed:
			// Do not make every caller wait out its deadline for a plugin
			// that cannot start; the supervisor keeps retrying.
			return nil, nil, nil, fmt.Errorf("plugin does not start: %w", startErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, nil, fmt.Errorf("waiting for the plugin (%s): %w", state, ErrTimeout)
		}
	}
}

func (p *proc) status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{Kind: p.kind, Name: p.name, Path: p.path, Builtin: p.builtin, State: p.state, Since: p.since,
		Crashes: p.crashes, Restarts: p.restarts, LastExit: p.lastExit, LastExitAt: p.exitAt, LastError: p.lastErr}
	if p.state == api.PluginRunning && p.runner != nil {
		s.PID = p.runner.pid()
	}
	return s
}

// classify turns a failed call into one of the package errors. A plugin
// that missed a deadline and no longer answers a ping is killed: the
// supervisor then restarts it.
func (p *proc) classify(ctx context.Context, r *procRunner, client *plugin.Client, err error) error {
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.Unimplemented, st.Code() == codes.FailedPrecondition:
		return statusError(st)
	case st.Code() == codes.Unavailable && r.exitedWithin(time.Second), r.exitedWithin(0):
		return fmt.Errorf("%w during the call (%s)", ErrCrashed, r.exitReason())
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || st.Code() == codes.DeadlineExceeded:
		if !p.answers(client) {
			p.log.Error("plugin unresponsive after a missed deadline; killing it", "pid", r.pid())
			p.mu.Lock()
			p.lastErr = "killed: unresponsive after a missed deadline"
			p.mu.Unlock()
			_ = r.Kill(context.Background())
		}
		return ErrTimeout
	case st.Code() == codes.Canceled:
		return ctx.Err()
	default:
		return statusError(st)
	}
}

// callError words a failed call of op on plugin kind/name.
func callError(op string, kind plugins.Kind, name string, err error) error {
	return fmt.Errorf("%s %s/%s: %w", op, kind, name, err)
}

// statusError is the package error for the status a plugin answered with
// itself (not a broken transport or a missed deadline).
func statusError(st *status.Status) error {
	switch st.Code() {
	case codes.Unimplemented:
		return fmt.Errorf("%w: %s", ErrUnimplemented, st.Message())
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s", ErrNoLease, st.Message())
	case codes.DeadlineExceeded: // the operation's own timeout, in a batch
		return ErrTimeout
	default:
		return fmt.Errorf("plugin error: %s", st.Message())
	}
}

// answers pings the plugin with a short deadline of its own.
func (p *proc) answers(client *plugin.Client) bool {
	rpc, err := client.Client()
	if err != nil {
		return false
	}
	done := make(chan error, 1)
	go func() { done <- rpc.Ping() }() // returns once the kill closes the connection
	select {
	case err := <-done:
		return err == nil
	case <-time.After(p.h.opts.PingTimeout):
		return false
	}
}

// invoke runs one call against kind/name with the operation's deadline.
func invoke[C, R any](ctx context.Context, h *Host, kind plugins.Kind, name, op string, timeout time.Duration,
	call func(context.Context, C) (R, error)) (R, error) {
	var zero R
	wrap := func(err error) error { return callError(op, kind, name, err) }
	p, err := h.proc(kind, name)
	if err != nil {
		return zero, wrap(err)
	}
	if timeout <= 0 {
		timeout = h.opts.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+h.opts.Grace)
	defer cancel()
	raw, r, client, err := p.get(ctx)
	if err != nil {
		return zero, wrap(err)
	}
	c, ok := raw.(C)
	if !ok {
		return zero, wrap(fmt.Errorf("%w: dispensed %T", ErrBadOutput, raw))
	}
	res, err := call(ctx, c)
	if errors.Is(err, ErrBadOutput) {
		return zero, wrap(err)
	}
	if err != nil {
		return zero, wrap(p.classify(ctx, r, client, err))
	}
	return res, nil
}
