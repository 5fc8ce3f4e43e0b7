// Package script holds the legacy adapters, built-in resource plugins that
// run operators' existing scripts unchanged: OCF resource agents ("ocf"),
// LSB init scripts ("lsb") and heartbeat resource.d scripts ("heartbeat").
// The conventions are those observed from the real tools (LEGACY.md §2–3).
package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/plugins/pb"
)

// maxOutput bounds what is kept of a script's stdout or stderr.
const maxOutput = 64 << 10

// basePath is the PATH scripts run with; the rest of their environment is
// what their convention defines, not the daemon's.
const basePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// run is one finished script execution.
type run struct {
	code           int // exit status; -1 when killed by a signal
	stdout, stderr string
}

// execScript runs path with args and env until it exits or ctx ends. Output
// goes to unlinked temporary files rather than pipes: an init script that
// leaves a daemon holding its stdout must not hang the operation. On ctx's
// end the script's whole process group is killed and the result is a gRPC
// DeadlineExceeded, which the host reports as a timeout.
func execScript(ctx context.Context, path string, args, env []string) (run, error) {
	outF, err := tempFile()
	if err != nil {
		return run{}, err
	}
	defer outF.Close()
	errF, err := tempFile()
	if err != nil {
		return run{}, err
	}
	defer errF.Close()

	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = outF, errF
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return run{}, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		return run{}, status.Errorf(codes.DeadlineExceeded, "%s %s: killed after %s (%v)",
			path, strings.Join(args, " "), time.Since(start).Round(time.Millisecond), ctx.Err())
	}
	r := run{code: cmd.ProcessState.ExitCode(), stdout: readAll(outF), stderr: readAll(errF)}
	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		return r, werr
	}
	return r, nil
}

func tempFile() (*os.File, error) {
	f, err := os.CreateTemp("", "vigil-script-*")
	if err != nil {
		return nil, fmt.Errorf("script output file: %w", err)
	}
	_ = os.Remove(f.Name())
	return f, nil
}

func readAll(f *os.File) string {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, maxOutput))
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

// exitReason explains a failed action: its status and the script's last
// words.
func exitReason(action string, r run) string {
	reason := fmt.Sprintf("%s exited %d", action, r.code)
	if l := lastLine(r.stderr + "\n" + r.stdout); l != "" {
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
	out := strings.TrimSpace(r.stdout + "\n" + r.stderr)
	return &pb.Result{Code: code, Reason: reason, Output: out}
}

// opTimeout is the script's deadline: the host's, less a little so that
// the kill and the answer fit inside the host's grace.
func opTimeout(ctx context.Context, in *pb.Instance) (context.Context, context.CancelFunc) {
	if in.GetTimeoutMs() > 0 {
		return context.WithTimeout(ctx, time.Duration(in.GetTimeoutMs())*time.Millisecond)
	}
	return context.WithCancel(ctx)
}

// isTimeout reports whether err is execScript's deadline error.
func isTimeout(err error) bool {
	return status.Code(err) == codes.DeadlineExceeded
}
