// Package lab builds throwaway network labs for Vigil's end-to-end tests,
// benchmarks and demo: network namespaces joined by veth pairs and bridges,
// serial cables made of socat pty pairs, and vigil daemons running inside.
//
// Every namespace carries a per-run prefix, so labs of packages tested in
// parallel never collide, and everything a lab makes is removed by Close,
// also when a test fails. Addresses live only inside the lab's namespaces.
package lab

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/internal/nstest"
)

// TB is the part of testing.TB a lab needs (the demo passes its own).
type TB interface {
	Helper()
	Logf(string, ...any)
	Fatalf(string, ...any)
	Failed() bool
	Cleanup(func())
	TempDir() string
}

// Available says why a lab cannot run here, or "" if it can.
func Available() string { return nstest.NetnsMissing() }

// Lab is one set of namespaces and processes.
type Lab struct {
	t      TB
	Prefix string
	Dir    string
	// LogLevel is the daemons' --log-level: "debug" unless set (the tests
	// read debug lines; a benchmark of idle cost runs as operators do).
	LogLevel string

	mu    sync.Mutex
	ns    []string
	procs []*Proc
}

// New creates an empty lab that removes itself when the test ends.
func New(t TB) *Lab {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	l := &Lab{t: t, Prefix: "vg" + hex.EncodeToString(b), Dir: t.TempDir()}
	t.Cleanup(l.Close)
	return l
}

// Close ends every process the lab started (by PID) and deletes its
// namespaces. On a failed test it prints the daemons' logs first.
func (l *Lab) Close() {
	l.mu.Lock()
	procs, nss := l.procs, l.ns
	l.procs, l.ns = nil, nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	if dir := os.Getenv("VIGIL_LAB_LOGS"); dir != "" {
		l.keepLogs(dir, procs)
	}
	if l.t.Failed() {
		for _, p := range procs {
			if b, err := os.ReadFile(p.LogPath); err == nil {
				l.t.Logf("==== log of %s ====\n%s", p.Name, tail(string(b), 60))
			}
		}
	}
	for _, ns := range nss {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			l.t.Logf("lab: delete netns %s: %v %s", ns, err, out)
		}
	}
}

// keepEarlierLog moves the log of an earlier process of the same name (a
// restarted daemon) aside, as NAME.N.log, so that the new one starts
// empty and the old one is still there to read.
func (l *Lab) keepEarlierLog(path string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	base := strings.TrimSuffix(path, ".log")
	for n := 1; ; n++ {
		old := fmt.Sprintf("%s.%d.log", base, n)
		if _, err := os.Stat(old); err == nil {
			continue
		}
		if err := os.Rename(path, old); err != nil {
			l.t.Logf("lab: keeping %s: %v", path, err)
			return
		}
		for _, p := range l.procs {
			if p.LogPath == path {
				p.LogPath = old
			}
		}
		return
	}
}

// keepLogs copies every process's log into dir/PREFIX-NAME.log, for a
// look after the run (VIGIL_LAB_LOGS=dir; benchmarks pass, so Close
// would print nothing).
func (l *Lab) keepLogs(dir string, procs []*Proc) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Logf("lab: VIGIL_LAB_LOGS: %v", err)
		return
	}
	for _, p := range procs {
		b, err := os.ReadFile(p.LogPath)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, l.Prefix+"-"+filepath.Base(p.LogPath)), b, 0o644)
		}
		if err != nil {
			l.t.Logf("lab: keeping the log of %s: %v", p.Name, err)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// NS returns the full name of the lab's namespace short.
func (l *Lab) NS(short string) string { return l.Prefix + "-" + short }

// AddNS creates namespace short with lo up.
func (l *Lab) AddNS(short string) string {
	l.t.Helper()
	ns := l.NS(short)
	l.must("ip", "netns", "add", ns)
	l.mu.Lock()
	l.ns = append(l.ns, ns)
	l.mu.Unlock()
	l.must("ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// Bridge creates bridge br in namespace ns (short name) and brings it up.
func (l *Lab) Bridge(ns, br string) {
	l.t.Helper()
	l.must("ip", "-n", l.NS(ns), "link", "add", br, "type", "bridge")
	l.must("ip", "-n", l.NS(ns), "link", "set", br, "up")
}

// Wire connects namespace node to bridge br in namespace sw with a veth
// pair: ifname inside node, with address cidr (may be empty).
func (l *Lab) Wire(node, ifname, sw, br, cidr string) {
	l.t.Helper()
	peer := "v" + node + "-" + ifname
	if len(peer) > 15 {
		peer = peer[:15]
	}
	l.must("ip", "link", "add", ifname, "netns", l.NS(node), "type", "veth", "peer", "name", peer, "netns", l.NS(sw))
	l.must("ip", "-n", l.NS(sw), "link", "set", peer, "master", br)
	l.must("ip", "-n", l.NS(sw), "link", "set", peer, "up")
	if cidr != "" {
		l.must("ip", "-n", l.NS(node), "addr", "add", cidr, "dev", ifname)
	}
	l.must("ip", "-n", l.NS(node), "link", "set", ifname, "up")
}

// LinkSet sets ifname in namespace node "up" or "down".
func (l *Lab) LinkSet(node, ifname, state string) {
	l.t.Helper()
	l.must("ip", "-n", l.NS(node), "link", "set", ifname, state)
}

func (l *Lab) must(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("lab: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// InNS runs f on an OS thread switched into namespace node: sockets f
// opens live in that namespace.
func (l *Lab) InNS(node string, f func() error) error { return nstest.InNS(l.NS(node), f) }

// Proc is a process the lab started.
type Proc struct {
	Name    string
	LogPath string
	Cmd     *exec.Cmd
	done    chan struct{}
	once    sync.Once
}

// Start runs args inside namespace node (or the host's, if node is ""),
// logging to a file in the lab's directory.
func (l *Lab) Start(node, name string, args ...string) *Proc {
	l.t.Helper()
	return l.StartCmd(node, name, nil, args...)
}

// StartCmd is Start with setup, if not nil, called on the command before
// it starts (to pass it more files, say).
func (l *Lab) StartCmd(node, name string, setup func(*exec.Cmd), args ...string) *Proc {
	l.t.Helper()
	if node != "" {
		args = append([]string{"ip", "netns", "exec", l.NS(node)}, args...)
	}
	p := &Proc{Name: name, LogPath: filepath.Join(l.Dir, name+".log"), done: make(chan struct{})}
	l.keepEarlierLog(p.LogPath)
	logf, err := os.Create(p.LogPath)
	if err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	// ip netns exec execs the command in place, so the PID is the daemon's.
	p.Cmd = exec.Command(args[0], args[1:]...)
	p.Cmd.Stdout, p.Cmd.Stderr = logf, logf
	// Pdeathsig fires when the *thread* that forked the child exits, and
	// the Go runtime ends threads that a goroutine left locked (InNS does):
	// fork from a thread locked for the child's whole life, so only the
	// test process's death kills it.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if setup != nil {
		setup(p.Cmd)
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := p.Cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = p.Cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if err := <-started; err != nil {
		logf.Close()
		l.t.Fatalf("lab: start %s: %v", name, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// Kill sends SIGKILL to the process and waits for it to exit.
func (p *Proc) Kill() { p.Signal(syscall.SIGKILL); p.Wait() }

// Signal sends sig to the process if it is still running.
func (p *Proc) Signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Signal(sig)
	}
}

// Stop asks the process to end (SIGTERM) and waits for it, killing it
// after timeout.
func (p *Proc) Stop(timeout time.Duration) {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
}

// Wait waits until the process has ended.
func (p *Proc) Wait() { <-p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// SerialCable makes a null-modem cable from a socat pty pair and returns
// the two ends' device paths.
func (l *Lab) SerialCable(name string) (string, string) {
	l.t.Helper()
	if _, err := exec.LookPath("socat"); err != nil {
		l.t.Fatalf("lab: serial cable needs socat (apt-get install socat): %v", err)
	}
	a, b := filepath.Join(l.Dir, name+"-a"), filepath.Join(l.Dir, name+"-b")
	p := l.Start("", "socat-"+name, "socat", "-d", "-d",
		"pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	// socat logs "starting data transfer loop" once both ends exist.
	if err := waitLog(p, "starting data transfer loop", 10*time.Second); err != nil {
		l.t.Fatalf("lab: socat: %v", err)
	}
	return a, b
}

// waitLog waits until the process's log contains s. It follows the file
// as the process writes it, so it needs no polling interval of its own.
func waitLog(p *Proc, s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	f, err := os.Open(p.LogPath)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var line strings.Builder
	for time.Now().Before(deadline) {
		chunk, err := r.ReadString('\n')
		line.WriteString(chunk)
		if err == nil {
			if strings.Contains(line.String(), s) {
				return nil
			}
			line.Reset()
			continue
		}
		if p.Exited() {
			return errors.New("process exited before logging " + s)
		}
		// At end of file: wait for the writer. inotify would avoid the
		// tick, but this only runs while a lab starts.
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("timed out waiting for %q in %s", s, p.LogPath)
}
