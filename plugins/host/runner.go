package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin/runner"
)

// procRunner starts a plugin in its own process group, so that killing a
// hung plugin also ends the scripts it runs, and tells the supervisor the
// moment the process has exited (go-plugin only offers polling).
type procRunner struct {
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
	done           chan struct{}
	waitOnce       sync.Once
	err            error
}

var _ runner.Runner = (*procRunner)(nil)

func newRunner(cmd *exec.Cmd) *procRunner {
	return &procRunner{cmd: cmd, done: make(chan struct{})}
}

func (r *procRunner) Start(context.Context) error {
	var err error
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if r.stdout, err = r.cmd.StdoutPipe(); err != nil {
		return err
	}
	if r.stderr, err = r.cmd.StderrPipe(); err != nil {
		return err
	}
	if err := r.cmd.Start(); err != nil {
		close(r.done)
		r.err = err
		return err
	}
	return nil
}

// Wait reaps the process once; later calls return the same result.
func (r *procRunner) Wait(context.Context) error {
	r.waitOnce.Do(func() {
		if r.cmd.Process != nil {
			r.err = r.cmd.Wait()
		}
		select {
		case <-r.done:
		default:
			close(r.done)
		}
	})
	return r.err
}

// Kill ends the whole process group.
func (r *procRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill plugin group %d: %w", r.cmd.Process.Pid, err)
	}
	return nil
}

func (r *procRunner) pid() int {
	if r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// exitedWithin reports whether the process has exited, waiting up to d.
func (r *procRunner) exitedWithin(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-r.done:
			return true
		default:
			return false
		}
	}
	select {
	case <-r.done:
		return true
	case <-time.After(d):
		return false
	}
}

// exitReason describes how the process ended, once done is closed.
func (r *procRunner) exitReason() string {
	if r.err == nil {
		return "exit status 0"
	}
	return r.err.Error()
}

func (r *procRunner) Stdout() io.ReadCloser                            { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser                            { return r.stderr }
func (r *procRunner) Name() string                                     { return r.cmd.Path }
func (r *procRunner) ID() string                                       { return strconv.Itoa(r.pid()) }
func (r *procRunner) Diagnose(context.Context) string                  { return "" }
func (r *procRunner) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *procRunner) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }
