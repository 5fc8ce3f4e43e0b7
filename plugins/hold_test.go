package plugins

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The hold file's lock lives in every process it was passed to: a new
// incarnation waits until the last of them is gone, gives up after max
// with ErrPredecessorLives, and stops waiting when cancelled.
func TestAwaitPredecessor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugins.hold")
	ctx := context.Background()
	first, waited, err := AwaitPredecessor(ctx, path, 0)
	if err != nil {
		t.Fatalf("nothing holds it: %v (after %v)", err, waited)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("hold file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	// A plugin of that incarnation inherits the file, then the daemon
	// dies (its copy closes): the plugin alone holds the lock.
	child := exec.Command("sleep", "600")
	child.ExtraFiles = []*os.File{first}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	first.Close()

	if f, _, err := AwaitPredecessor(ctx, path, 0); !errors.Is(err, ErrPredecessorLives) {
		t.Fatalf("with a plugin of the predecessor alive: %v, want ErrPredecessorLives", err)
	} else {
		f.Close() // returned unlocked, to pass on all the same
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if f, _, err := AwaitPredecessor(cctx, path, time.Hour); !errors.Is(err, context.Canceled) || f != nil {
		t.Fatalf("cancelled: %v, %v", f, err)
	}

	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	second, _, err := AwaitPredecessor(ctx, path, time.Hour)
	if err != nil {
		t.Fatalf("after the last holder exited: %v", err)
	}
	defer second.Close()
	if _, _, err := AwaitPredecessor(ctx, path, 0); !errors.Is(err, ErrPredecessorLives) {
		t.Fatalf("while the new incarnation holds it: %v", err)
	}
}

// A plugin keeps the descriptor its daemon named, closed on exec, until
// it lets go; a bad variable is an error, a missing one nothing.
func TestKeepHoldFromEnv(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvHoldFD, strconv.Itoa(fd))
	letGo, err := KeepHoldFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("descriptor flags %#x, %v: want close-on-exec", flags, err)
	}
	letGo()
	letGo() // once only: the number may belong to another file by now
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("after letting go: %v, want EBADF", err)
	}
	for _, v := range []string{"x", "2", "-1"} {
		t.Setenv(EnvHoldFD, v)
		if _, err := KeepHoldFromEnv(); err == nil {
			t.Errorf("%s=%q accepted", EnvHoldFD, v)
		}
	}
	t.Setenv(EnvHoldFD, "")
	if letGo, err := KeepHoldFromEnv(); err != nil || letGo == nil {
		t.Fatalf("unset: %v", err)
	}
}
