// Command demo shows Vigil's membership layer at work, with no input
// needed: three nodes in network namespaces heartbeat over UDP unicast, UDP
// broadcast and (n1–n2) a serial cable; it prints `vigil status`, cuts n2's
// network (the serial cable keeps it alive), kills n3 with SIGKILL, and
// removes everything it made. Run it as root: `make demo`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/cluster/control"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/test/lab"
)

// run is a minimal lab.TB for a program: it records cleanups and runs them
// in reverse order at the end, whatever happens.
type run struct {
	dir      string
	cleanups []func()
	failed   bool
}

func (r *run) Helper()                   {}
func (r *run) Logf(f string, a ...any)   { fmt.Printf(f+"\n", a...) }
func (r *run) Failed() bool              { return r.failed }
func (r *run) Cleanup(f func())          { r.cleanups = append(r.cleanups, f) }
func (r *run) TempDir() string           { return r.dir }
func (r *run) Fatalf(f string, a ...any) { r.failed = true; panic(fmt.Sprintf(f, a...)) }
func (r *run) close() {
	slices.Reverse(r.cleanups)
	for _, f := range r.cleanups {
		f()
	}
	os.RemoveAll(r.dir)
}

func main() {
	bin := flag.String("vigil", "bin/vigil", "vigil binary")
	flag.Parse()
	if why := lab.Available(); why != "" {
		fmt.Fprintln(os.Stderr, "demo:", why)
		os.Exit(1)
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, _ := os.MkdirTemp("", "vigil-demo")
	r := &run{dir: dir}
	// Ctrl-C or SIGTERM still removes the namespaces.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; r.failed = true; r.close(); os.Exit(130) }()
	code := 0
	func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintln(os.Stderr, "demo failed:", p)
				code = 1
			}
			r.close()
		}()
		demo(r, abs)
	}()
	os.Exit(code)
}

func step(f string, a ...any) { fmt.Printf("\n\033[1m==> "+f+"\033[0m\n", a...) }

func status(bin string, n *lab.Node) {
	out, _ := exec.Command(bin, "status", "-s", n.Socket).CombinedOutput()
	fmt.Print(string(out))
}

func demo(r *run, bin string) {
	start := time.Now()
	l := lab.New(r)
	step("building a lab: switch namespace with two bridges, nodes n1 n2 n3, a serial cable n1–n2 (prefix %s)", l.Prefix)
	c := &lab.Cluster{Name: "demo", Keepalive: 100 * time.Millisecond, Deadtime: 500 * time.Millisecond, Initdead: 3 * time.Second, Secret: "demo-secret-0123456789abcdef"}
	nodes := l.Trio(bin, c, true, nil)
	n1 := nodes["n1"]
	step("waiting for every node to see every other (keepalive 100ms, deadtime 500ms)")
	up := func(st *control.Status) bool {
		return lab.Peer(st, "n2").State == "up" && lab.Peer(st, "n3").State == "up" && lab.LinkState(st, "n2", "serial") == "up"
	}
	if _, err := n1.WaitStatus(15*time.Second, up); err != nil {
		r.Fatalf("%v", err)
	}
	step("vigil status on n1")
	status(bin, n1)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, err := n1.Client.Events(ctx)
	if err != nil {
		r.Fatalf("%v", err)
	}
	step("cutting n2's network (eth0 and eth1 down): the serial cable keeps it alive")
	l.LinkSet("n2", "eth0", "down")
	l.LinkSet("n2", "eth1", "down")
	wait(r, evs, membership.LinkDead, "n2", 2)
	status(bin, n1)
	l.LinkSet("n2", "eth0", "up")
	l.LinkSet("n2", "eth1", "up")
	wait(r, evs, membership.LinkUp, "n2", 2)

	step("kill -9 n3")
	killed := time.Now()
	nodes["n3"].Proc.Kill()
	ev := wait(r, evs, membership.NodeDead, "n3", 1)
	fmt.Printf("n1 declared n3 dead %s after the kill (%s)\n", ev.Time.Sub(killed).Round(time.Millisecond), ev.Reason)
	status(bin, n1)
	step("done in %s; removing the lab", time.Since(start).Round(100*time.Millisecond))
}

func wait(r *run, ch <-chan membership.Event, kind membership.EventKind, node string, count int) membership.Event {
	timeout := time.After(10 * time.Second)
	var last membership.Event
	for count > 0 {
		select {
		case ev := <-ch:
			if ev.Kind == kind && ev.Node == node {
				fmt.Printf("event: %s %s %s (%s)\n", ev.Kind, ev.Node, ev.Link, ev.Reason)
				last = ev
				count--
			}
		case <-timeout:
			r.Fatalf("no %s event for %s", kind, node)
		}
	}
	return last
}
