package script

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Heartbeat runs scripts the way heartbeat's ResourceManager does
// (LEGACY.md §2): found in resource.d first, then init.d (the first that is
// a regular executable file), called with the haresources "::" arguments
// followed by start|stop|status, and judged running or not by the text
// status prints, never by its exit code. The instance type is the script's
// name and Args are its arguments.
type Heartbeat struct {
	pb.UnimplementedResourceServer
	// HADir is heartbeat's HA_DIR (default $VIGIL_HA_DIR or /etc/ha.d);
	// scripts are looked up in HADir/resource.d, then InitDir.
	HADir string
	// InitDir defaults to $VIGIL_LSB_DIR or /etc/init.d.
	InitDir string
}

// NewHeartbeat returns the adapter with its directories from the environment.
func NewHeartbeat() *Heartbeat {
	return &Heartbeat{HADir: envOr("VIGIL_HA_DIR", "/etc/ha.d"), InitDir: envOr("VIGIL_LSB_DIR", "/etc/init.d")}
}

// Lookup returns the script heartbeat would run for name.
func (h *Heartbeat) Lookup(name string) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("invalid resource script name %q", name)
	}
	for _, dir := range []string{filepath.Join(h.HADir, "resource.d"), h.InitDir} {
		if p := filepath.Join(dir, name); executable(p) {
			return p, nil
		}
	}
	// heartbeat's own words, so operators recognise it.
	return "", fmt.Errorf("Cannot locate resource script %s", name)
}

// envName is what a parameter name must look like to be exported.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// hbPathPrefix is what heartbeat's shellfuncs puts before PATH (HA_BIN,
// its sbin and its no-arch scripts: hb_standby, ResourceManager…), so a
// script that calls heartbeat's helpers by name finds them.
const hbPathPrefix = "/usr/libexec/heartbeat:/usr/sbin:/usr/share/heartbeat:"

// env is heartbeat's environment for scripts (as Debian's heartbeat 3.0.6
// gives it, test/hbdiff compares), plus the instance's params exported as
// variables (a Vigil extension: heartbeat had no parameters besides the
// "::" arguments, but wrappers like Delay read OCF_RESKEY_*). What
// heartbeat exports that Vigil cannot mean (the ha.cf directives as
// HA_<name>, its FIFO, its log files) is left out: the README's
// "Migrating" lists it.
func (h *Heartbeat) env(in *pb.Instance) ([]string, error) {
	host, _ := os.Hostname()
	ocfRoot := envOr("VIGIL_OCF_ROOT", "/usr/lib/ocf")
	env := []string{"PATH=" + hbPathPrefix + strings.TrimPrefix(monitors.BasePath, "PATH="),
		"HA_CURHOST=" + strings.ToLower(host),
		"HA_DIR=" + h.HADir,
		"HA_RESOURCEDIR=" + filepath.Join(h.HADir, "resource.d"),
		"HA_RCDIR=" + filepath.Join(h.HADir, "rc.d"),
		"HA_FUNCS=" + filepath.Join(h.HADir, "shellfuncs"),
		"HA_BIN=/usr/libexec/heartbeat",
		"HA_DOCDIR=/usr/share/doc/heartbeat",
		"HA_DATEFMT=%Y/%m/%d_%T\t",
		// Scripts append to it (ResourceManager's 2>>$HA_DEBUGLOG):
		// heartbeat's default when ha.cf names no debugfile.
		"HA_DEBUGLOG=/dev/null",
		"HA_LOGD=no",
		"OCF_ROOT=" + ocfRoot,
		"OCF_AGENTS=" + ocfRoot + "/resource.d/heartbeat/",
		"LC_ALL=C",
		// Vigil always decides failback itself, like auto_failback on|off.
		"HA_NICEFAILBACK=yes",
	}
	keys := slices.Sorted(maps.Keys(in.GetParams()))
	for _, k := range keys {
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("parameter %q cannot be an environment variable name", k)
		}
		env = append(env, k+"="+in.GetParams()[k])
	}
	return env, nil
}

func (h *Heartbeat) call(ctx context.Context, in *pb.Instance, action string) (run, error) {
	path, err := h.Lookup(in.GetType())
	if err != nil {
		return run{}, err
	}
	env, err := h.env(in)
	if err != nil {
		return run{}, err
	}
	ctx, cancel := plugins.OpContext(ctx, in) // the kill and the answer fit in the host's grace
	defer cancel()
	return execScript(ctx, path, append(append([]string{}, in.GetArgs()...), action), env)
}

var (
	hbNotRunning = regexp.MustCompile(`[Nn][Oo][Tt] .*[Rr]unning`)
	hbRunning    = regexp.MustCompile(`[Rr]unning|OK`)
)

// StatusRunning is ResourceManager's we_own_resource on status's stdout:
// "not<space>…running" is not held, then "running" or "OK" anywhere is
// held, anything else (including nothing) is not held.
func StatusRunning(stdout string) bool {
	if hbNotRunning.MatchString(stdout) {
		return false
	}
	return hbRunning.MatchString(stdout)
}

func (h *Heartbeat) Monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	r, err := h.call(ctx, in, "status")
	switch {
	case isTimeout(err):
		return nil, err
	case err != nil:
		// heartbeat: a script it cannot locate reads as not running.
		return &pb.Result{Code: pb.Code_NOT_RUNNING, Reason: err.Error()}, nil
	case StatusRunning(r.Stdout):
		return result(pb.Code_SUCCESS, "", r), nil
	}
	return result(pb.Code_NOT_RUNNING, lastLine(r.Stdout), r), nil
}

// Start runs start. ResourceManager runs status first and skips start
// when the script says the resource already runs: the local resource
// manager's monitor before every start is that status (running it here
// too would call status twice).
func (h *Heartbeat) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return h.change(ctx, in, "start")
}

// Stop runs stop unconditionally; heartbeat does no status check first.
func (h *Heartbeat) Stop(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return h.change(ctx, in, "stop")
}

func (h *Heartbeat) change(ctx context.Context, in *pb.Instance, action string) (*pb.Result, error) {
	r, err := h.call(ctx, in, action)
	switch {
	case isTimeout(err):
		return nil, err
	case err != nil:
		return &pb.Result{Code: pb.Code_ERR_INSTALLED, Reason: err.Error()}, nil
	case r.Code != 0:
		return result(pb.Code_ERR_GENERIC, exitReason(action, r), r), nil
	}
	return result(pb.Code_SUCCESS, "", r), nil
}

func (h *Heartbeat) Validate(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if _, err := h.Lookup(in.GetType()); err != nil {
		return &pb.Result{Code: pb.Code_ERR_INSTALLED, Reason: err.Error()}, nil
	}
	if _, err := h.env(in); err != nil {
		return &pb.Result{Code: pb.Code_ERR_CONFIGURED, Reason: err.Error()}, nil
	}
	return &pb.Result{Code: pb.Code_SUCCESS}, nil
}

func (h *Heartbeat) MetaData(_ context.Context, in *pb.MetaDataRequest) (*pb.Meta, error) {
	p, err := h.Lookup(in.GetType())
	if err != nil {
		return nil, err
	}
	return &pb.Meta{Name: in.GetType(), Version: "1.0", Description: "heartbeat resource script " + p, Actions: scriptActions}, nil
}
