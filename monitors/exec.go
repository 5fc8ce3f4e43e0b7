package monitors

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
)

// BasePath is the PATH scripts run with; the rest of their environment is
// what their convention (OCF, mon, ldirectord) defines, not the daemon's.
const BasePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// MaxOutput bounds what is kept of a script's stdout or stderr.
const MaxOutput = 64 << 10

// ErrKilled is returned (wrapped) by Exec when ctx ended before the script.
var ErrKilled = errors.New("killed at its deadline")

// Run is one finished script execution.
type Run struct {
	Code           int // exit status; -1 when killed by a signal
	Stdout, Stderr string
	Took           time.Duration
}

// Exec runs path with args and env until it exits or ctx ends. Output goes
// to unlinked temporary files rather than pipes: an init script that leaves
// a daemon holding its stdout must not hang the caller. On ctx's end the
// script's whole process group is SIGKILLed and the error wraps ErrKilled.
func Exec(ctx context.Context, path string, args, env []string, stdin string) (Run, error) {
	outF, err := tempFile()
	if err != nil {
		return Run{}, err
	}
	defer outF.Close()
	errF, err := tempFile()
	if err != nil {
		return Run{}, err
	}
	defer errF.Close()

	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = outF, errF
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Run{}, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		return Run{Code: -1, Took: time.Since(start)}, fmt.Errorf("%s %s: %w after %s (%v)",
			path, strings.Join(args, " "), ErrKilled, time.Since(start).Round(time.Millisecond), ctx.Err())
	}
	r := Run{Code: cmd.ProcessState.ExitCode(), Stdout: readAll(outF), Stderr: readAll(errF), Took: time.Since(start)}
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
	b, _ := io.ReadAll(io.LimitReader(f, MaxOutput))
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

// External is ldirectord's checktype=external and keepalived's MISC_CHECK:
// Command runs with Args (ldirectord passes VIP VPORT RIP RPORT); exit 0
// passes, anything else or the deadline fails. The first line of output is
// the summary.
type External struct {
	Command string
	Args    []string
	Env     []string
}

func (c External) String() string { return "external " + c.Command + " " + strings.Join(c.Args, " ") }

func (c External) Check(ctx context.Context) Result {
	start := time.Now()
	env := c.Env
	if env == nil {
		env = []string{BasePath}
	}
	r, err := Exec(ctx, c.Command, c.Args, env, "")
	if err != nil {
		return failed(start, "external", err)
	}
	first, rest, _ := strings.Cut(strings.TrimSpace(r.Stdout), "\n")
	res := Result{OK: r.Code == 0, Summary: first, Detail: rest, Latency: r.Took}
	if !res.OK && res.Summary == "" {
		res.Summary = fmt.Sprintf("exited %d", r.Code)
	}
	return res
}
