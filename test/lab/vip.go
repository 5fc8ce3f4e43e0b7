package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// The VIP lab's addresses: the Trio's eth0 network, a client at .100 and
// the floating address at .50.
const (
	VIP       = "10.77.1.50"
	ClientIP  = "10.77.1.100"
	ServePort = 80
)

// VIPResources is a resources.toml with one group, "web", preferring n1:
// the VIP on eth0, announced with a short first burst, monitored often.
func VIPResources(extraParams string) string {
	return fmt.Sprintf(`[[group]]
name = "web"
node = "n1"
resources = [
  { type = "IPaddr", interval = "200ms", params = { ip = %q, cidr_netmask = "24", nic = "eth0", arp_count = "3", arp_interval = "20ms"%s } },
]
`, VIP, extraParams)
}

// AddClient wires a client namespace to the Trio's eth0 bridge and waits
// until its IPv4 address is usable.
func (l *Lab) AddClient() string {
	l.t.Helper()
	l.AddNS("client")
	l.Wire("client", "eth0", "sw", "br0", ClientIP+"/24")
	return "client"
}

// Serve answers TCP connections to port ServePort inside namespace node
// with the node's name, from a goroutine of the test process (so it costs
// no process and survives the node's daemon). It stops when the lab ends.
func (l *Lab) Serve(node string) {
	l.t.Helper()
	var ln net.Listener
	if err := l.InNS(node, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", ServePort))
		return err
	}); err != nil {
		l.t.Fatalf("lab: serve in %s: %v", node, err)
	}
	testutil.Serve(l.t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			_, _ = c.Write([]byte(node + "\n"))
		}
	})
}

// ProbeResult is one probe: a new TCP connection to the VIP and a request.
type ProbeResult struct {
	At  time.Time
	OK  bool
	By  string // the node that answered
	Err string
}

// Prober opens a new TCP connection to VIP:ServePort from the client
// namespace every Every, with Timeout for the whole exchange, and records
// every result.
type Prober struct {
	Every, Timeout time.Duration

	mu      sync.Mutex
	results []ProbeResult
	cancel  context.CancelFunc
	done    chan struct{}
}

// StartProber runs a prober in namespace node until Stop.
func (l *Lab) StartProber(node string, every, timeout time.Duration) *Prober {
	p := &Prober{Every: every, Timeout: timeout, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	started := make(chan struct{})
	go func() {
		defer close(p.done)
		// The probe loop lives on a thread inside the client namespace, so
		// every socket it opens is the client's.
		_ = l.InNS(node, func() error {
			close(started)
			p.loop(ctx)
			return nil
		})
	}()
	<-started
	l.t.Cleanup(p.Stop)
	return p
}

func (p *Prober) loop(ctx context.Context) {
	next := time.Now()
	addr := net.JoinHostPort(VIP, strconv.Itoa(ServePort))
	for ctx.Err() == nil {
		at := time.Now()
		r := ProbeResult{At: at}
		c, err := net.DialTimeout("tcp", addr, p.Timeout)
		if err == nil {
			_ = c.SetDeadline(at.Add(p.Timeout))
			if _, err = c.Write([]byte("probe\n")); err == nil {
				var line string
				line, err = bufio.NewReader(c).ReadString('\n')
				r.By = strings.TrimSpace(line)
			}
			c.Close()
		}
		r.OK = err == nil
		if err != nil {
			r.Err = err.Error()
		}
		p.mu.Lock()
		p.results = append(p.results, r)
		p.mu.Unlock()
		// Fixed rate: the next probe starts Every after the last start,
		// or at once when a probe took longer.
		next = next.Add(p.Every)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		} else {
			next = time.Now()
		}
	}
}

// Stop ends the prober and waits for it.
func (p *Prober) Stop() {
	p.cancel()
	<-p.done
}

// Results returns the probes so far.
func (p *Prober) Results() []ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProbeResult(nil), p.results...)
}

// WaitAnswer waits until a probe after since is answered by node.
func (p *Prober) WaitAnswer(since time.Time, node string, timeout time.Duration) (ProbeResult, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range p.Results() {
			if r.At.After(since) && r.OK && r.By == node {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			return ProbeResult{}, fmt.Errorf("no probe answered by %s within %s", node, timeout)
		}
		time.Sleep(p.Every) // the prober's own pace
	}
}

// Outage is, among the probes after since, the time from the first
// failure to the first success after it (0 when none failed), and the
// number of failed probes.
func Outage(rs []ProbeResult, since time.Time) (time.Duration, int) {
	var first time.Time
	failed := 0
	for _, r := range rs {
		if r.At.Before(since) {
			continue
		}
		if !r.OK {
			failed++
			if first.IsZero() {
				first = r.At
			}
			continue
		}
		if !first.IsZero() {
			return r.At.Sub(first), failed
		}
	}
	return 0, failed
}

// VIPSampler checks, every Every, which directors have the VIP configured,
// through a netlink handle in each director's namespace, and records any
// instant at which two of those whose links are up have it.
type VIPSampler struct {
	mu       sync.Mutex
	handles  map[string]*netlink.Handle
	down     map[string]bool
	samples  int
	dual     []string
	cancel   context.CancelFunc
	done     chan struct{}
	firstErr error
}

// StartVIPSampler samples the given director namespaces until the test ends.
func (l *Lab) StartVIPSampler(every time.Duration, nodes ...string) *VIPSampler {
	l.t.Helper()
	s := &VIPSampler{handles: map[string]*netlink.Handle{}, down: map[string]bool{}, done: make(chan struct{})}
	for _, n := range nodes {
		ns, err := netns.GetFromPath("/run/netns/" + l.NS(n))
		if err != nil {
			l.t.Fatalf("lab: %v", err)
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			l.t.Fatalf("lab: netlink in %s: %v", n, err)
		}
		s.handles[n] = h
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx, every)
	l.t.Cleanup(s.Stop)
	return s
}

// SetDown marks a node's links as down (a crashed or cut-off node holds
// nothing anyone can reach) or up again.
func (s *VIPSampler) SetDown(node string, down bool) {
	s.mu.Lock()
	s.down[node] = down
	s.mu.Unlock()
}

func (s *VIPSampler) run(ctx context.Context, every time.Duration) {
	defer close(s.done)
	vip := netip.MustParseAddr(VIP)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var holding []string
		now := time.Now()
		for n, h := range s.handles {
			addrs, err := h.AddrList(nil, unix.AF_INET)
			if err != nil {
				s.mu.Lock()
				if s.firstErr == nil {
					s.firstErr = err
				}
				s.mu.Unlock()
				continue
			}
			for _, a := range addrs {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == vip {
					holding = append(holding, n)
				}
			}
		}
		s.mu.Lock()
		s.samples++
		live := 0
		for _, n := range holding {
			if !s.down[n] {
				live++
			}
		}
		if live > 1 {
			s.dual = append(s.dual, fmt.Sprintf("%s: %v", now.Format(time.StampMicro), holding))
		}
		s.mu.Unlock()
	}
}

// Stop ends sampling.
func (s *VIPSampler) Stop() {
	s.cancel()
	<-s.done
	for _, h := range s.handles {
		h.Close()
	}
	s.handles = map[string]*netlink.Handle{}
}

// Report returns the number of samples, the instants at which two live
// directors held the VIP, and the first sampling error.
func (s *VIPSampler) Report() (samples int, dual []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, append([]string(nil), s.dual...), s.firstErr
}

// Crash simulates a node losing power: every process in its namespace
// (the daemon and its plugins, all started by this lab) is killed with
// SIGKILL and its links go down at once. It returns the instant of the
// power loss, taken after the processes were listed, so that listing them
// does not count as failover time.
func (l *Lab) Crash(n *Node) time.Time {
	l.t.Helper()
	t0 := l.killAll(n)
	l.Isolate(n.NS, true)
	n.Proc.Kill()
	return t0
}

// KillAll kills every process of node n with SIGKILL — its daemon and
// its plugins — and leaves its network up (an OOM kill or an operator's
// pkill of every Vigil process). It returns the instant of the kill.
func (l *Lab) KillAll(n *Node) time.Time {
	l.t.Helper()
	t0 := l.killAll(n)
	n.Proc.Kill()
	return t0
}

func (l *Lab) killAll(n *Node) time.Time {
	l.t.Helper()
	var t0 time.Time
	// Until none is left: a plugin the daemon was starting as the list
	// was read is not on it (it outlived the power loss, its daemon gone
	// before it first looked).
	for round := 0; round < 5; round++ {
		out, err := exec.Command("ip", "netns", "pids", l.NS(n.NS)).Output()
		if err != nil {
			l.t.Fatalf("lab: pids of %s: %v", n.NS, err)
		}
		var pids []int
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
		if round == 0 {
			t0 = time.Now()
		}
		if len(pids) == 0 {
			break
		}
		// Stop them all before killing any, so that none sees another die
		// and cleans up (keepalived's VRRP child removes its addresses
		// when its parent goes): after a power loss nothing ran.
		for _, sig := range []unix.Signal{unix.SIGSTOP, unix.SIGKILL} {
			for _, pid := range pids {
				_ = unix.Kill(pid, sig)
			}
		}
	}
	return t0
}

// Reboot brings a crashed director back as a rebooted machine would come
// up: without the addresses the crash left configured, links up, daemon
// started.
func (l *Lab) Reboot(bin string, n *Node) {
	l.t.Helper()
	l.DropVIP(n.NS)
	l.Isolate(n.NS, false)
	l.Restart(bin, n)
}

// NeighMAC returns the client's neighbour entry for ip: its link-layer
// address, or "" when it has none.
func (l *Lab) NeighMAC(node, ip string) string {
	out, err := exec.Command("ip", "-n", l.NS(node), "neigh", "show", ip).Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// MAC returns the hardware address of ifname in namespace node.
func (l *Lab) MAC(node, ifname string) string {
	l.t.Helper()
	var mac string
	if err := l.InNS(node, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr.String()
		return nil
	}); err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	return mac
}

// HasAddr reports whether ip is configured on any interface of node.
func (l *Lab) HasAddr(node, ip string) bool {
	l.t.Helper()
	out, err := exec.Command("ip", "-n", l.NS(node), "-o", "addr", "show", "to", ip).Output()
	if err != nil {
		l.t.Fatalf("lab: addresses of %s: %v", node, err)
	}
	return strings.TrimSpace(string(out)) != ""
}

// Children lists the processes whose parent is pid.
func (l *Lab) Children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold anything.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if i < 0 || len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, child)
		}
	}
	return out
}

// WaitExit waits until process pid is gone (or a zombie).
func (l *Lab) WaitExit(pid int, timeout time.Duration) error {
	if _, ok := testutil.EventuallyOK(timeout, func() (struct{}, bool) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		i := bytes.LastIndexByte(b, ')')
		return struct{}{}, err != nil || (i > 0 && i+2 < len(b) && b[i+2] == 'Z')
	}); !ok {
		return fmt.Errorf("process %d still runs after %s", pid, timeout)
	}
	return nil
}
