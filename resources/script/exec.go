// Package script holds the legacy adapters, built-in resource plugins that
// run operators' existing scripts unchanged: OCF resource agents ("ocf"),
// LSB init scripts ("lsb") and heartbeat resource.d scripts ("heartbeat").
// The conventions are those observed from the real tools (LEGACY.md §2–3).
package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// run is one finished script execution.
type run = monitors.Run

// execScript runs path with args and env until it exits or ctx ends (see
// monitors.Exec). On ctx's end the result is a gRPC DeadlineExceeded, which
// the host reports as a timeout.
func execScript(ctx context.Context, path string, args, env []string) (run, error) {
	r, err := monitors.Exec(ctx, path, args, env, "")
	if errors.Is(err, monitors.ErrKilled) {
		return r, status.Error(codes.DeadlineExceeded, err.Error())
	}
	return r, err
}

// exitReason explains a failed action: its status and the script's last
// words.
func exitReason(action string, r run) string {
	reason := fmt.Sprintf("%s exited %d", action, r.Code)
	if l := lastLine(r.Stderr + "\n" + r.Stdout); l != "" {
		reason += ": " + l
	}
	return reason
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// executable reports whether path is a regular file with an execute bit,
// the test heartbeat's ResourceManager applies.
func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// validName keeps agent and script names from walking out of their
// directories.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// result builds a result, keeping the output for the log.
func result(code pb.Code, reason string, r run) *pb.Result {
	out := strings.TrimSpace(r.Stdout + "\n" + r.Stderr)
	return &pb.Result{Code: code, Reason: reason, Output: out}
}

// isTimeout reports whether err is execScript's deadline error.
func isTimeout(err error) bool {
	return status.Code(err) == codes.DeadlineExceeded
}
