package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// EnvHoldFD names, in a resource plugin, the descriptor of its daemon's
// hold file (see AwaitPredecessor).
const EnvHoldFD = "VIGIL_HOLD_FD"

// ErrPredecessorLives is AwaitPredecessor's error when processes of the
// previous incarnation still hold the file after the wait.
var ErrPredecessorLives = errors.New("plugins of the previous daemon still running")

// AwaitPredecessor opens the node's hold file at path (created 0600) and
// locks it exclusively, waiting up to max. The lock belongs to the open
// file, so it lives on in every process the file is passed to, the
// resource plugins, until the last of them exits.
//
// Why: a daemon killed with -9 leaves its resource plugins behind, and
// each releases what it held once it sees its daemon gone. A daemon
// started again at once probed before that release had finished, saw the
// VIP still there, recorded its group running, and nothing looked again
// until the next monitor while the address was gone (make chaos, seed
// 734082560: 14.9 s without a holder). Waiting for the lock is waiting
// for those releases to end.
//
// After max the file is returned unlocked with ErrPredecessorLives (a
// plugin that is stopped, not dead): the daemon carries on, as it did
// before this wait existed, and says so.
func AwaitPredecessor(ctx context.Context, path string, max time.Duration) (*os.File, time.Duration, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("hold file: %w", err)
	}
	start := time.Now()
	// Polled, not blocking: a blocked flock cannot be cancelled, and this
	// runs once, at start-up, for milliseconds.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, time.Since(start), nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, 0, fmt.Errorf("hold file %s: lock: %w", path, err)
		}
		if waited := time.Since(start); waited >= max {
			return f, waited, fmt.Errorf("hold file %s: %w after %v", path, ErrPredecessorLives, waited.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// KeepHoldFromEnv keeps, in a resource plugin, the hold file its daemon
// passed (EnvHoldFD) open, out of reach of what the plugin runs, and
// returns what lets it go: the plugin calls that once it has released
// what it held (its hand-over forwarding may go on after, with the
// address already gone). The descriptor is deliberately never wrapped in
// an *os.File, whose finalizer would close it and end the lock early.
func KeepHoldFromEnv() (letGo func(), err error) {
	v := os.Getenv(EnvHoldFD)
	if v == "" {
		return func() {}, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return func() {}, fmt.Errorf("hold file: %s=%q is not a file descriptor", EnvHoldFD, v)
	}
	unix.CloseOnExec(fd)
	var once sync.Once
	return func() { once.Do(func() { unix.Close(fd) }) }, nil
}
