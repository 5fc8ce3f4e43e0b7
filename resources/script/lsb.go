package script

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// LSB runs init scripts: DIR/NAME start|stop|status|reload, judged by the
// LSB exit codes. The instance type is the script's name.
type LSB struct {
	pb.UnimplementedResourceServer
	// Dir holds the scripts (default $VIGIL_LSB_DIR or /etc/init.d).
	Dir string
}

// NewLSB returns the adapter with its directory from the environment.
func NewLSB() *LSB { return &LSB{Dir: envOr("VIGIL_LSB_DIR", "/etc/init.d")} }

// path finds the script, or says why it cannot.
func (l *LSB) path(in *pb.Instance) (string, *pb.Result) {
	if !validName(in.GetType()) {
		return "", &pb.Result{Code: pb.Code_ERR_CONFIGURED, Reason: fmt.Sprintf("invalid init script name %q", in.GetType())}
	}
	path := filepath.Join(l.Dir, in.GetType())
	if !executable(path) {
		return "", &pb.Result{Code: pb.Code_ERR_INSTALLED, Reason: fmt.Sprintf("init script %s is not installed", path)}
	}
	return path, nil
}

func (l *LSB) action(ctx context.Context, in *pb.Instance, action string) (run, *pb.Result, error) {
	path, res := l.path(in)
	if res != nil {
		return run{}, res, nil
	}
	ctx, cancel := plugins.OpContext(ctx, in) // the kill and the answer fit in the host's grace
	defer cancel()
	r, err := execScript(ctx, path, []string{action}, []string{monitors.BasePath, "LANG=C"})
	return r, nil, err
}

// lsbAction maps the exit status of start, stop and reload: LSB's action
// codes 0–7 have the meanings of the OCF codes with the same numbers.
func (l *LSB) lsbAction(ctx context.Context, in *pb.Instance, action string) (*pb.Result, error) {
	r, res, err := l.action(ctx, in, action)
	if res != nil || err != nil {
		return res, err
	}
	code := pb.Code(r.Code)
	if r.Code < 0 || r.Code > int(pb.Code_NOT_RUNNING) {
		code = pb.Code_ERR_GENERIC
	}
	if action == "stop" && code == pb.Code_NOT_RUNNING {
		code = pb.Code_SUCCESS // stopping a stopped service succeeds
	}
	reason := ""
	if code != pb.Code_SUCCESS {
		reason = exitReason(action, r)
	}
	return result(code, reason, r), nil
}

func (l *LSB) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return l.lsbAction(ctx, in, "start")
}
func (l *LSB) Stop(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return l.lsbAction(ctx, in, "stop")
}
func (l *LSB) Reload(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return l.lsbAction(ctx, in, "reload")
}

// Monitor runs status: 0 running; 1 (dead, pid file left), 2 (dead, lock
// file left) and 3 not running; 4 and anything else unknown — an error
// (LEGACY.md §2.7; Pacemaker maps them the same way).
func (l *LSB) Monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	r, res, err := l.action(ctx, in, "status")
	if res != nil || err != nil {
		return res, err
	}
	text := lastLine(r.Stdout)
	switch r.Code {
	case 0:
		return result(pb.Code_SUCCESS, "", r), nil
	case 1:
		return result(pb.Code_NOT_RUNNING, "dead, pid file exists", r), nil
	case 2:
		return result(pb.Code_NOT_RUNNING, "dead, lock file exists", r), nil
	case 3:
		return result(pb.Code_NOT_RUNNING, "", r), nil
	}
	return result(pb.Code_ERR_GENERIC, strings.TrimSpace(fmt.Sprintf("status exited %d (unknown) %s", r.Code, text)), r), nil
}

func (l *LSB) Validate(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if _, res := l.path(in); res != nil {
		return res, nil
	}
	return &pb.Result{Code: pb.Code_SUCCESS}, nil
}

func (l *LSB) MetaData(_ context.Context, in *pb.MetaDataRequest) (*pb.Meta, error) {
	return &pb.Meta{Name: in.GetType(), Version: "1.0", Description: "LSB init script " + filepath.Join(l.Dir, in.GetType()),
		Actions: scriptActions}, nil
}

var scriptActions = []*pb.Action{{Name: "start"}, {Name: "stop"}, {Name: "monitor"}}
