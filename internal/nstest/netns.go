// Package nstest makes network namespaces for tests: a per-run prefix, lo up,
// removal when the test ends, and running code inside one. It imports
// nothing of Vigil, so any package's tests can use it.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NetnsMissing says why network namespaces cannot be made here, or "".
func NetnsMissing() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "network namespaces need iproute2's ip"
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return "kernel has no network namespaces"
	}
	return ""
}

// InNS runs f on an OS thread switched into the named namespace: sockets
// f opens live there. The thread is never unlocked, so it ends with the
// goroutine instead of going back to the pool in the wrong namespace.
func InNS(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Netns makes namespaces for one test, named with a per-run prefix, and
// deletes them when the test ends, also when it fails.
type Netns struct {
	t      testing.TB
	prefix string
}

// NewNetns skips the test, saying why, where namespaces cannot be made.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	if why := NetnsMissing(); why != "" {
		t.Skip(why)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return &Netns{t: t, prefix: "vt" + hex.EncodeToString(b)}
}

// Add creates namespace short (lo up) and returns its full name.
func (n *Netns) Add(short string) string {
	n.t.Helper()
	name := n.prefix + "-" + short
	n.Run("ip", "netns", "add", name)
	n.t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	n.Run("ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Run runs a command and fails the test if it fails; it returns stdout.
func (n *Netns) Run(args ...string) string {
	n.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		n.t.Fatalf("%s: %v %s", strings.Join(args, " "), err, msg)
	}
	return string(out)
}
