package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/arp"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/test/lab"
)

// arpFrame is one ARP frame the client saw.
type arpFrame struct {
	at       time.Time
	op       arp.Operation
	sha      string
	spa, tpa netip.Addr
}

// arpCapture records every ARP frame on node's eth0 until the test ends.
type arpCapture struct {
	mu     sync.Mutex
	frames []arpFrame
}

func captureARP(t *testing.T, l *lab.Lab, node string) *arpCapture {
	t.Helper()
	ac := &arpCapture{}
	nstest.CaptureARP(t, l.NS(node), "eth0", func(at time.Time, p *arp.Packet) {
		ac.mu.Lock()
		ac.frames = append(ac.frames, arpFrame{at: at, op: p.Operation, sha: p.SenderHardwareAddr.String(), spa: p.SenderIP, tpa: p.TargetIP})
		ac.mu.Unlock()
	})
	return ac
}

// announced returns the gratuitous frames (sender = target = VIP) from
// mac since t0, by operation.
func (ac *arpCapture) announced(mac string, t0 time.Time) map[arp.Operation][]time.Time {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	vip := netip.MustParseAddr(lab.VIP)
	out := map[arp.Operation][]time.Time{}
	for _, f := range ac.frames {
		if f.at.After(t0) && f.sha == mac && f.spa == vip && f.tpa == vip {
			out[f.op] = append(out[f.op], f.at)
		}
	}
	return out
}

// A director pair with a witness serves a TCP service on the VIP to a
// client on the same bridge. The VIP follows a crash of the active
// director, a planned move and a graceful stop; after each, the client's
// neighbour entry points at the new owner, the client saw its gratuitous
// ARP, the service answers from there, and at no sampled instant did two
// reachable directors have the VIP configured.
func TestVIPFailover(t *testing.T) {
	l := needLab(t)
	c := &lab.Cluster{Name: "viptest", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef",
		Resources: lab.VIPResources(""), Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	nodes := l.Trio(vigilBin, c, false, nil)
	client := l.AddClient()
	mac := map[string]string{"n1": l.MAC("n1", "eth0"), "n2": l.MAC("n2", "eth0")}
	l.Serve("n1")
	l.Serve("n2")
	capt := captureARP(t, l, client)
	sampler := l.StartVIPSampler(time.Millisecond, "n1", "n2")
	probe := l.StartProber(client, 10*time.Millisecond, 50*time.Millisecond)

	// takeover checks that node answers on the VIP after t0 and that the
	// client followed it there because of its announcements.
	takeover := func(what string, t0 time.Time, node string) {
		t.Helper()
		r, err := probe.WaitAnswer(t0, node, 30*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := l.NeighMAC(client, lab.VIP); got != mac[node] {
			t.Errorf("%s: client's neighbour entry for the VIP is %q, want %s's %s", what, got, node, mac[node])
		}
		ann := capt.announced(mac[node], t0)
		// The first start may have announced before the client existed
		// (the daemons start the group as soon as they agree, which on
		// a quick run is before the lab wires the client): its
		// announcements are not looked for.
		if what != "start" && (len(ann[arp.OperationRequest]) == 0 || len(ann[arp.OperationReply]) == 0) {
			t.Errorf("%s: client saw %d gratuitous requests and %d replies from %s, want both kinds",
				what, len(ann[arp.OperationRequest]), len(ann[arp.OperationReply]), node)
		}
		outage, failed := lab.Outage(probe.Results(), t0)
		t.Logf("%s: %s answers %s after; outage %s, %d failed probes; %d gratuitous requests seen",
			what, node, r.At.Sub(t0).Round(time.Millisecond), outage.Round(time.Millisecond), failed, len(ann[arp.OperationRequest]))
	}

	takeover("start", time.Now(), "n1")

	crash := time.Now()
	sampler.SetDown("n1", true)
	l.Crash(nodes["n1"])
	takeover("crash of n1", crash, "n2")

	l.Reboot(vigilBin, nodes["n1"])
	sampler.SetDown("n1", false)
	if _, err := nodes["n3"].WaitStatus(30*time.Second, func(s *api.Status) bool {
		n := s.Core.State.Nodes["n1"]
		return n != nil && n.Online
	}); err != nil {
		t.Fatalf("n1 did not rejoin: %v", err)
	}
	moved := time.Now()
	if err := nodes["n3"].Client.Command(context.Background(), api.Command{Op: "move", Group: "web", Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	takeover("move to n1", moved, "n1")

	// A graceful stop hands the group over like a move, before the daemon
	// exits, instead of leaving it to the peers' failure detection.
	stopped := time.Now()
	nodes["n1"].Proc.Stop(10 * time.Second)
	takeover("graceful stop of n1", stopped, "n2")
	if b, err := os.ReadFile(nodes["n1"].Proc.LogPath); err != nil || !strings.Contains(string(b), "groups handed over") {
		t.Errorf("n1's graceful stop did not hand its group over (err %v)", err)
	}

	samples, dual, err := sampler.Report()
	if err != nil {
		t.Errorf("sampling: %v", err)
	}
	if len(dual) > 0 {
		t.Errorf("two reachable directors held the VIP at %d sampled instants: %v", len(dual), dual)
	}
	if samples < 100 {
		t.Errorf("only %d samples of who holds the VIP", samples)
	}
	t.Logf("%d samples of who holds the VIP, none with two holders", samples)
}

// The daemon alone fails while its host and network stay up — paused
// past its lease, then resumed; killed with -9 while its plugins live on
// — and its IPaddr plugin, no longer renewed, removes the VIP by itself
// before the survivor adds it: at no sampled instant do two reachable
// directors hold it (before the lease reached the plugins, the paused or
// killed director kept the address until its daemon came back).
func TestDaemonOnlyFaults(t *testing.T) {
	l := needLab(t)
	c := &lab.Cluster{Name: "daemonfault", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef",
		Resources: lab.VIPResources(""), Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	nodes := l.Trio(vigilBin, c, false, nil)
	sampler := l.StartVIPSampler(time.Millisecond, "n1", "n2")
	// Generous bounds: a failover takes deadtime and a few keepalives.
	within := 100 * coreDeadtime
	onlyOn := func(what, node string) { t.Helper(); vipOnlyOn(t, l, within, what, node) }
	onlyOn("start", "n1")

	paused := nodes["n1"].Proc.Cmd.Process.Pid
	testutil.Pause(t, paused)
	onlyOn("daemon of n1 paused", "n2")
	if err := syscall.Kill(paused, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes["n3"].WaitStatus(within, func(s *api.Status) bool {
		n := s.Core.State.Nodes["n1"]
		return n != nil && n.Online && groupOn(s, "web") == "n2"
	}); err != nil {
		t.Fatalf("n1 did not come back: %v", err)
	}
	onlyOn("daemon of n1 resumed", "n2")

	if err := nodes["n3"].Client.Command(context.Background(), api.Command{Op: "move", Group: "web", Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	onlyOn("move to n1", "n1")
	plugins := l.Children(nodes["n1"].Proc.Cmd.Process.Pid)
	if len(plugins) == 0 {
		t.Fatal("n1's daemon runs no plugin process")
	}
	nodes["n1"].Proc.Kill()
	onlyOn("daemon of n1 killed", "n2")
	// The orphaned plugins notice that their daemon is gone and exit.
	for _, pid := range plugins {
		if err := l.WaitExit(pid, within); err != nil {
			t.Error(err)
		}
	}

	noDual(t, sampler)
}

// A daemon killed with -9 and started again at once, while its orphaned
// IPaddr plugin is still releasing the VIP: the new daemon waits for that
// release (its predecessor's plugins hold the hold file) before its first
// probe. Before, the probe could still see the address, record the group
// running, and the VIP was then gone with nobody looking until the next
// monitor (make chaos seed 734082560: 14.9 s without a holder). The
// monitor interval here is far longer than the bound, so only the probe
// can find the truth in time. Both directors stay within their lease
// rules throughout: the sampler sees no second holder.
func TestDaemonRestartedAtOnce(t *testing.T) {
	l := needLab(t)
	res := strings.Replace(lab.VIPResources(""), `interval = "200ms"`, `interval = "10m"`, 1)
	// A plugin stopped while it holds the VIP and its daemon is dead
	// releases nothing: only the kernel's address lifetime (rule 1b)
	// keeps the survivor from adding the VIP meanwhile.
	c := &lab.Cluster{Name: "restartnow", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef",
		Extra: `address_lifetime = "1s"`, Resources: res, Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	nodes := l.Trio(vigilBin, c, false, nil)
	sampler := l.StartVIPSampler(time.Millisecond, "n1", "n2")
	within := 100 * coreDeadtime
	vipOnlyOn(t, l, within, "start", "n1")
	orphans := l.Children(nodes["n1"].Proc.Cmd.Process.Pid)
	if len(orphans) == 0 {
		t.Fatal("n1's daemon runs no plugin process")
	}
	// The orphans are stopped as soon as their daemon is dead (those that
	// have not released and exited by then), until well after the new
	// daemon started, as a loaded host may delay them: a release they had
	// not finished by then comes after any probe the new daemon could make
	// without waiting for them.
	nodes["n1"].Proc.Kill()
	signalAll := func(sig syscall.Signal) {
		for _, pid := range orphans {
			if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
				t.Fatal(err)
			}
		}
	}
	signalAll(syscall.SIGSTOP)
	l.Restart(vigilBin, nodes["n1"])
	time.Sleep(time.Second) // the length of the plugins' stall is the fault
	signalAll(syscall.SIGCONT)
	for _, pid := range orphans {
		if err := l.WaitExit(pid, within); err != nil {
			t.Error(err)
		}
	}
	// Wherever the group now runs, by the replicated state, that node
	// holds the VIP and the other does not.
	// Bound: a start after the probe, a few deadtimes; nothing may wait
	// for a monitor.
	var last string
	t0 := time.Now()
	if _, err := nodes["n3"].WaitStatus(20*coreDeadtime+time.Second+plugins.AddressLifetimeSlack, func(s *api.Status) bool {
		on := groupOn(s, "web")
		n1, n2 := l.HasAddr("n1", lab.VIP), l.HasAddr("n2", lab.VIP)
		last = fmt.Sprintf("web running on %q, VIP on n1 %v, on n2 %v", on, n1, n2)
		return (on == "n1" && n1 && !n2) || (on == "n2" && n2 && !n1)
	}); err != nil {
		t.Fatalf("after n1's daemon restarted at once: %s: %v", last, err)
	}
	t.Logf("%v after the orphans exited: %s", time.Since(t0).Round(time.Millisecond), last)
	noDual(t, sampler)
}

// noDual fails t if the sampler saw two directors hold the VIP.
func noDual(t *testing.T, sampler *lab.VIPSampler) {
	t.Helper()
	samples, dual, err := sampler.Report()
	if err != nil {
		t.Errorf("sampling: %v", err)
	}
	if len(dual) > 0 {
		t.Errorf("two reachable directors held the VIP at %d sampled instants: %v", len(dual), dual)
	}
	t.Logf("%d samples of who holds the VIP, none with two holders", samples)
}

// vipOnlyOn waits until node, n1 or n2, is the only one of them whose
// kernel has the VIP ("" for neither).
func vipOnlyOn(t *testing.T, l *lab.Lab, within time.Duration, what, node string) {
	t.Helper()
	testutil.Eventually(t, within, fmt.Sprintf("%s: the VIP on %q only (n1 has it, n2 has it)", what, node), func() ([2]bool, bool) {
		n1, n2 := l.HasAddr("n1", lab.VIP), l.HasAddr("n2", lab.VIP)
		return [2]bool{n1, n2}, (node == "n1") == n1 && (node == "n2") == n2
	})
}

// With address_lifetime, killing every Vigil process of the owner while
// its network stays up leaves no second holder either: nothing of Vigil
// is left there to remove the VIP, the kernel does once its lifetime is
// not extended, and the survivor waits the lifetime and the kernel's
// slack past the owner's lease before it takes over.
func TestAddressLifetimeAllKilled(t *testing.T) {
	l := needLab(t)
	const life = time.Second
	c := &lab.Cluster{Name: "lifetime", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef",
		Extra: fmt.Sprintf("address_lifetime = %q", life.String()), Resources: lab.VIPResources(""), Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	nodes := l.Trio(vigilBin, c, false, nil)
	w := l.StartAddrWatcher([]netip.Addr{netip.MustParseAddr(lab.VIP)}, "n1", "n2")
	defer w.Stop()
	within := 100*coreDeadtime + life + plugins.AddressLifetimeSlack
	vipOnlyOn(t, l, within, "start", "n1")
	// Past its lifetime twice over, the VIP is still there: the plugin
	// extends it.
	time.Sleep(2 * life) // time passing is the point
	vipOnlyOn(t, l, 0, "two lifetimes later", "n1")
	t0 := l.KillAll(nodes["n1"])
	vipOnlyOn(t, l, within, "every process of n1 killed", "n2")
	var gone, up time.Duration
	for _, e := range w.Events(t0) {
		switch {
		case !e.Up && e.Node == "n1" && gone == 0:
			gone = e.At.Sub(t0)
		case e.Up && e.Node == "n2" && up == 0:
			up = e.At.Sub(t0)
		}
	}
	t.Logf("killed at 0: the kernel removed the VIP from n1 after %s (lifetime %s), n2 added it after %s",
		gone.Round(time.Millisecond), life, up.Round(time.Millisecond))
	if rep := w.Report(); len(rep.Dual) > 0 || rep.Err != nil {
		t.Errorf("two directors held the VIP: %v (%v)", rep.Dual, rep.Err)
	}
}
