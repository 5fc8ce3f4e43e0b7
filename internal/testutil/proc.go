package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Pause sends SIGSTOP to pid and returns once every thread of it has
// stopped. kill(2) returns before that: the kernel wakes one thread to
// begin the group stop, and until it runs the others go on — on a busy
// machine long enough to answer a call the test expects to hang.
func Pause(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %d: %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		running, err := runningThreads(pid)
		if err != nil {
			t.Fatalf("pausing %d: %v", pid, err)
		}
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pausing %d: %d threads still running 30 s after SIGSTOP", pid, running)
		}
		time.Sleep(time.Millisecond)
	}
}

// runningThreads counts the threads of pid not in a stopped state.
func runningThreads(pid int) (int, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return 0, fmt.Errorf("no threads under /proc/%d: %v", pid, err)
	}
	n := 0
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		// "pid (comm) S ...": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return 0, fmt.Errorf("%s: unexpected format", p)
		}
		if s := b[i+2]; s != 'T' && s != 't' {
			n++
		}
	}
	return n, nil
}
