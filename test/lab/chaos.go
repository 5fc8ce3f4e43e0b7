package lab

// The randomized fault campaign (issue 20, `make chaos`): a seeded
// generator of fault schedules, the injectors that play a schedule on a
// real cluster in the lab's namespaces, and checkers that look only at
// the kernels' addresses and the replicated state read back after a
// restart, never at what the daemons say they do.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/plugins"
)

// FaultKind names one kind of fault a schedule injects.
type FaultKind string

// The fault kinds. Each is injected on one node, held for a while, then
// healed; RestartAll ends a schedule.
const (
	FaultCrash      FaultKind = "crash"       // power loss: every process killed, links down; reboot after
	FaultKillDaemon FaultKind = "kill-daemon" // kill -9 of the daemon only; its plugins release by their lease
	FaultKillPlugin FaultKind = "kill-plugin" // kill -9 of the IPaddr plugin only; the daemon restarts it
	FaultPause      FaultKind = "pause"       // SIGSTOP of the daemon past its lease, then SIGCONT
	FaultIsolate    FaultKind = "isolate"     // every link of the node down (symmetric partition)
	FaultDeaf       FaultKind = "one-way-in"  // the node hears nothing (nft ingress drop), its own packets still go out
	FaultMute       FaultKind = "one-way-out" // the node's packets are dropped (nft egress), it still hears the others
	FaultFlap       FaultKind = "link-flap"   // links of the node down and up a few times
	FaultNetem      FaultKind = "loss+delay"  // random loss both ways on the node's links (nft), delay with tc netem where the kernel has it
	FaultCPU        FaultKind = "cpu"         // stress-ng on both cores, started in the node's namespace
	// FaultKillAll is kill -9 of the daemon and its plugins with the
	// network up: only the VIPs' kernel lifetime removes them.
	FaultKillAll    FaultKind = "kill-all-netup"
	FaultRestartAll FaultKind = "restart-all" // every node killed, then all restarted
)

// FaultKinds lists every kind in the order the summary prints them.
var FaultKinds = []FaultKind{FaultCrash, FaultKillDaemon, FaultKillPlugin, FaultPause, FaultIsolate, FaultDeaf,
	FaultMute, FaultFlap, FaultNetem, FaultCPU, FaultKillAll, FaultRestartAll}

// Fault is one step of a schedule.
type Fault struct {
	Kind FaultKind
	Node string
	// Hold is how long the fault lasts before it is healed (a flap's
	// total is in Flaps).
	Hold time.Duration
	// Links are the node's interfaces a flap, netem or one-way partition
	// acts on.
	Links []string
	Loss  int           // netem: percent of packets lost
	Delay time.Duration // netem: added delay (jitter a quarter of it)
	Flaps []Flap
	// Power: RestartAll as a power loss of every node (links down, VIPs
	// gone at reboot) rather than kill -9 of every daemon, network up.
	Power bool
	// Gap is the quiet time after the cluster recovered, before the next
	// fault: a random phase against the heartbeat and monitor cycles.
	Gap time.Duration
}

// Flap is one down-then-up of a link.
type Flap struct{ Down, Up time.Duration }

// OpCommand is an operator command a schedule sends before RestartAll,
// through node Via's control socket.
type OpCommand struct {
	Via     string
	Command api.Command
}

// Schedule is one randomized campaign run, a pure function of its seed
// and the options.
type Schedule struct {
	Seed     uint64
	Topology string // "pair+witness" (n1, n2 directors, n3 witness) or "two-node" (n1, n2, ping node gw)
	// Lifetime is the VIPs' kernel address lifetime (0: none); with it,
	// kill -9 of every Vigil process with the network up is a fault too.
	Lifetime time.Duration
	Groups   int
	Faults   []Fault
	Commands []OpCommand // sent before the last fault when it is RestartAll
}

// ChaosOptions are the timing and the choices the generator may make.
type ChaosOptions struct {
	Keepalive, Deadtime time.Duration
	// TwoNode lets the generator pick the two-node topology too.
	TwoNode bool
	// Lifetime is the kernel address lifetime (ha.toml's
	// address_lifetime) a schedule may give its VIPs (0: the
	// kill-all-netup fault is left out).
	Lifetime time.Duration
	// CPU and NFT say that stress-ng and nft are installed: without
	// them CPU starvation, and one-way partitions and packet loss, are
	// skipped (the schedule is the same).
	CPU, NFT bool
}

// Timing is the schedules' timing as the daemons derive it; the lease
// and initdead are written in ha.toml, with ha.toml's default values.
func (o ChaosOptions) Timing(lifetime time.Duration) timing.Timing {
	return timing.Timing{Keepalive: o.Keepalive, Deadtime: o.Deadtime,
		Lease:           timing.DefaultLease(o.Keepalive, o.Deadtime),
		Initdead:        timing.DefaultInitdead(o.Deadtime),
		AddressLifetime: lifetime}
}

// Lease is the schedules' lease.
func (o ChaosOptions) Lease() time.Duration { return o.Timing(0).Lease }

// Initdead is the schedules' initdead.
func (o ChaosOptions) Initdead() time.Duration { return o.Timing(0).Initdead }

// Bound is how long a group may be without a holder once a fault leaves
// a quorum and an eligible node (or once it is healed): detection
// (deadtime); an election when the node that failed led (hashicorp/raft
// waits one to two Raft timeouts); the lease and its margin the new owner
// waits out (rule 3) and the linger of VIPs with a kernel lifetime; a
// two_node survivor's ping settle; the start itself with its
// announcements (a deadtime); and two deadtimes for a loaded machine's
// scheduling.
func (o ChaosOptions) Bound(lifetime time.Duration) time.Duration {
	t := o.Timing(lifetime)
	return t.Deadtime + 2*t.RaftTimeout() + t.Lease + t.LeaseMargin() + t.Linger(plugins.AddressLifetimeSlack) +
		t.PingSettle() + 3*t.Deadtime
}

// DefaultChaosOptions are the campaign's: 100 ms / 500 ms (the timing
// the targets are stated at), every fault kind this tree and
// machine support.
func DefaultChaosOptions() ChaosOptions {
	o := ChaosOptions{Keepalive: 100 * time.Millisecond, Deadtime: 500 * time.Millisecond, TwoNode: true, Lifetime: time.Second}
	_, err := exec.LookPath("stress-ng")
	o.CPU = err == nil
	_, err = exec.LookPath("nft")
	o.NFT = err == nil
	return o
}

// NewSchedule derives a schedule from seed.
func NewSchedule(seed uint64, o ChaosOptions) Schedule {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := Schedule{Seed: seed, Topology: "pair+witness", Groups: 1 + r.IntN(3)}
	nodes := []string{"n1", "n2", "n3"}
	if o.TwoNode && r.IntN(4) == 0 {
		s.Topology, nodes = "two-node", []string{"n1", "n2"}
	}
	if o.Lifetime > 0 && r.IntN(4) == 0 {
		s.Lifetime = o.Lifetime
	}
	// Every kind is drawn whatever this machine has, so that a seed is
	// the same schedule everywhere; one the machine cannot inject is
	// skipped and noted.
	kinds := []FaultKind{FaultCrash, FaultKillDaemon, FaultKillPlugin, FaultPause, FaultIsolate, FaultDeaf,
		FaultMute, FaultFlap, FaultNetem, FaultCPU}
	if s.Lifetime > 0 {
		kinds = append(kinds, FaultKillAll, FaultKillAll) // the point of the lifetime: pick it often
	}
	dt, ka, lease := o.Deadtime, o.Keepalive, o.Lease()
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	links := func() []string {
		return [][]string{{"eth0"}, {"eth1"}, {"eth0", "eth1"}}[r.IntN(3)]
	}
	n := 2 + r.IntN(4)
	for range n {
		f := Fault{Kind: kinds[r.IntN(len(kinds))], Node: nodes[r.IntN(len(nodes))], Gap: between(0, dt)}
		switch f.Kind {
		case FaultCrash, FaultKillDaemon, FaultKillAll:
			f.Hold = between(dt, 5*dt)
		case FaultKillPlugin:
		case FaultPause:
			// Past the lease, up to well past the deadtime.
			f.Hold = between(lease+ka, 4*dt)
		case FaultIsolate, FaultDeaf, FaultMute:
			// From shorter than the lease (nothing should move) to long
			// enough for a failover.
			f.Hold = between(ka, 5*dt)
			f.Links = []string{"eth0", "eth1"}
			if f.Kind == FaultDeaf {
				// Up to past the liveness bound: a deaf node is still
				// heard, so only rules beyond heartbeat silence can move
				// its groups, and a short cut would hide their absence.
				// (Doubled, not drawn anew: the other draws, and so the
				// fixed seeds, stay as they were.)
				f.Hold *= 2
			}
		case FaultFlap:
			f.Links = links()
			for range 1 + r.IntN(5) {
				f.Flaps = append(f.Flaps, Flap{Down: between(ka, 2*dt), Up: between(ka, dt)})
			}
		case FaultNetem:
			f.Links = links()
			f.Loss = r.IntN(41)
			f.Delay = between(0, dt/4)
			f.Hold = between(dt, 6*dt)
		case FaultCPU:
			f.Hold = between(dt, 6*dt)
		}
		if f.Kind == FaultKillPlugin || f.Kind == FaultKillAll {
			f.Node = nodes[r.IntN(2)] // a director: the witness runs no IPaddr
		}
		s.Faults = append(s.Faults, f)
	}
	if r.IntN(2) == 0 {
		s.Commands = opCommands(r, s, nodes)
		s.Faults = append(s.Faults, Fault{Kind: FaultRestartAll, Power: r.IntN(2) == 0, Hold: between(0, 2*dt)})
	}
	return s
}

// opCommands draws a few operator commands that keep a director eligible
// for every group: at most one director in standby, no group pinned to it.
func opCommands(r *rand.Rand, s Schedule, nodes []string) []OpCommand {
	var out []OpCommand
	standby := map[string]bool{}
	pinned := map[string]string{}
	for range 1 + r.IntN(5) {
		via := nodes[r.IntN(len(nodes))]
		g := ChaosGroup(r.IntN(s.Groups))
		d := []string{"n1", "n2"}[r.IntN(2)]
		var c api.Command
		switch r.IntN(4) {
		case 0:
			if standby[d] {
				continue
			}
			c = api.Command{Op: "move", Group: g, Node: d}
			pinned[g] = d
		case 1:
			c = api.Command{Op: "unmove", Group: g}
			delete(pinned, g)
		case 2:
			other := map[string]string{"n1": "n2", "n2": "n1"}[d]
			if standby[other] || slices.Contains(slices.Collect(maps.Values(pinned)), d) {
				continue
			}
			c = api.Command{Op: "standby", Node: d}
			standby[d] = true
		default:
			c = api.Command{Op: "online", Node: d}
			delete(standby, d)
		}
		out = append(out, OpCommand{Via: via, Command: c})
	}
	return out
}

// String prints the schedule, one fault a line, as a failing run shows it.
func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s, %d group(s)", s.Seed, s.Topology, s.Groups)
	if s.Lifetime > 0 {
		fmt.Fprintf(&b, ", VIP lifetime %s", s.Lifetime)
	}
	for i, f := range s.Faults {
		fmt.Fprintf(&b, "\n  %d. %s", i+1, f.Kind)
		if f.Node != "" {
			fmt.Fprintf(&b, " %s", f.Node)
		}
		if len(f.Links) > 0 {
			fmt.Fprintf(&b, " %s", strings.Join(f.Links, "+"))
		}
		switch f.Kind {
		case FaultNetem:
			fmt.Fprintf(&b, " loss %d%% delay %s", f.Loss, f.Delay)
		case FaultFlap:
			for _, fl := range f.Flaps {
				fmt.Fprintf(&b, " [down %s up %s]", fl.Down, fl.Up)
			}
		case FaultRestartAll:
			if f.Power {
				b.WriteString(" (power loss)")
			} else {
				b.WriteString(" (kill -9 of every daemon, network up)")
			}
		}
		if f.Hold > 0 {
			fmt.Fprintf(&b, " for %s", f.Hold)
		}
		if f.Kind == FaultRestartAll {
			for _, c := range s.Commands {
				fmt.Fprintf(&b, "\n     before it: vigil %s", strings.Join(slices.DeleteFunc([]string{c.Command.Op, c.Command.Group, c.Command.Node}, func(s string) bool { return s == "" }), " "))
				fmt.Fprintf(&b, " (via %s)", c.Via)
			}
			continue
		}
		fmt.Fprintf(&b, ", then %s quiet", f.Gap)
	}
	return b.String()
}

// ChaosGroup is the name of a chaos cluster's group i (0-based).
func ChaosGroup(i int) string { return fmt.Sprintf("g%d", i+1) }

// ChaosVIPs are the schedule's floating addresses, one per group: host
// addresses outside the lab's networks (ScaleVIPs).
func (s Schedule) ChaosVIPs() []netip.Addr { return ScaleVIPs(s.Groups) }

// resources is the schedule's resources.toml: group i prefers n1 or n2
// in turn, one IPaddr each, monitored every 2 keepalives.
func (s Schedule) resources(o ChaosOptions) string {
	var b strings.Builder
	for i, v := range s.ChaosVIPs() {
		fmt.Fprintf(&b, "[[group]]\nname = %q\nnode = \"n%d\"\nresources = [\n  { type = \"IPaddr\", id = \"vip%d\", interval = %q, params = { ip = %q, cidr_netmask = \"32\", nic = \"eth0\", arp_count = \"2\", arp_interval = \"20ms\" } },\n]\n\n",
			ChaosGroup(i), i%2+1, i+1, (2 * o.Keepalive).String(), v)
	}
	return b.String()
}

// ChaosResult is what the checkers found in one schedule.
type ChaosResult struct {
	Schedule Schedule
	Injected map[FaultKind]int
	// LongestDown is the longest time any group had not exactly one
	// reachable holder; LongestNoHolder the longest any VIP was on no
	// node at all. Both leave out the time every node was down.
	LongestDown, LongestNoHolder time.Duration
	Dual                         []string // two reachable holders at once
	Unresolved                   []string // second holders the kernel no longer showed when asked
	Liveness                     []string // a group down past the bound while a quorum and an eligible node existed
	Lost                         []string // acknowledged operator commands missing after the restart
	Acked                        int      // acknowledged operator commands checked
	Notes                        []string
	// Timeline has every phase, address change and reachability change,
	// in time since the cluster was ready: what a failing run prints.
	Timeline []string
}

// Failed says whether a checker found a violation.
func (r *ChaosResult) Failed() bool {
	return len(r.Dual) > 0 || len(r.Liveness) > 0 || len(r.Lost) > 0
}

// phase is a span of the run: from start, the groups must be up within
// bound when required (a quorum and an eligible node exist).
type phase struct {
	start    time.Time
	required bool
	bound    time.Duration
	what     string
}

// reach is a change of whether clients can reach a node's eth0.
type reach struct {
	at   time.Time
	node string
	up   bool
}

// chaosRun plays one schedule.
type chaosRun struct {
	l      *Lab
	bin    string
	o      ChaosOptions
	s      Schedule
	nodes  map[string]*Node
	names  []string
	vips   []netip.Addr
	w      *AddrWatcher
	res    *ChaosResult
	bound  time.Duration
	settle time.Duration

	phases  []phase
	reaches []reach
	dead    [][2]time.Time // spans during which every node was down
	eth0    map[string]bool
	want    *expected      // what acknowledged operator commands set
	netem   bool           // the kernel has sch_netem: loss+delay faults delay too
	killed  map[string]int // the IPaddr plugin last killed on each node
}

// RunChaos builds the schedule's cluster in l, plays the schedule and
// checks it. Problems of the lab itself fail l's test.
func (l *Lab) RunChaos(bin string, s Schedule, o ChaosOptions) *ChaosResult {
	l.t.Helper()
	// The lease and initdead are set, not left to defaults, so that the
	// bounds derived here are the daemons' own.
	c := &Cluster{Name: "chaos", Keepalive: o.Keepalive, Deadtime: o.Deadtime, Initdead: o.Initdead(),
		Secret: "lab-secret-0123456789abcdef", Resources: s.resources(o),
		// Failcounts are not under test: kill-plugin faults must not make
		// the directors ineligible one after the other.
		Extra: fmt.Sprintf("lease = %q\nmigration_threshold = 0\n", o.Lease().String())}
	if s.Lifetime > 0 {
		c.Extra += fmt.Sprintf("address_lifetime = %q\n", s.Lifetime.String())
	}
	r := &chaosRun{l: l, bin: bin, o: o, s: s, vips: s.ChaosVIPs(), eth0: map[string]bool{}, killed: map[string]int{},
		res: &ChaosResult{Schedule: s, Injected: map[FaultKind]int{}}, bound: o.Bound(s.Lifetime)}
	// settle bounds a wait for the whole cluster to be back (a rebooted
	// daemon rejoining Raft): not a checked figure, a harness deadline.
	r.settle = 20*o.Deadtime + o.Initdead() + r.bound
	if s.Topology == "two-node" {
		c.Extra += fmt.Sprintf("two_node = true\nping_nodes = [%q]\n", PingNode)
		r.nodes = l.Pair(bin, c)
		r.names = []string{"n1", "n2"}
	} else {
		c.Nodes = []NodeSpec{{Name: "n3", Role: "witness"}}
		r.nodes = l.Trio(bin, c, false, nil)
		r.names = []string{"n1", "n2", "n3"}
	}
	for _, n := range r.names {
		r.eth0[n] = true
	}
	if r.netem = r.hasNetem("n1"); !r.netem {
		r.res.Notes = append(r.res.Notes, "this kernel has no sch_netem: loss+delay faults lose packets but add no delay")
	}
	r.w = l.StartAddrWatcher(r.vips, r.names...)
	if err := r.healthy(r.settle + o.Initdead()); err != nil {
		l.t.Fatalf("chaos: %s: the cluster never came up: %v", s, err)
	}
	ready := time.Now()
	r.phase(ready, true, r.bound, "start")
	for i, f := range s.Faults {
		if !r.play(i, f) {
			break
		}
	}
	end := time.Now()
	rep := r.w.Report()
	r.res.Dual, r.res.Unresolved = rep.Dual, rep.Unresolved
	if rep.Err != nil {
		l.t.Fatalf("chaos: watching the VIPs: %v", rep.Err)
	}
	if rep.Resyncs > 0 {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("%d address event streams lost and resynced", rep.Resyncs))
	}
	r.check(ready, end)
	return r.res
}

func (r *chaosRun) phase(at time.Time, required bool, bound time.Duration, what string) {
	r.phases = append(r.phases, phase{start: at, required: required, bound: bound, what: what})
}

// setReach records whether node's eth0 (the VIPs' network) can be
// reached and tells the watcher: an address on a node cut off from its
// clients is not a second holder, but it is one the moment the node is
// back.
func (r *chaosRun) setReach(node string, up bool) {
	if r.eth0[node] == up {
		return
	}
	r.eth0[node] = up
	r.w.SetDown(node, !up)
	r.reaches = append(r.reaches, reach{at: time.Now(), node: node, up: up})
}

// play injects fault i, holds it, heals it and waits for the cluster to
// recover. It returns false when the run cannot go on.
func (r *chaosRun) play(i int, f Fault) bool {
	l := r.l
	l.t.Logf("chaos seed %d: fault %d: %s %s", r.s.Seed, i+1, f.Kind, f.Node)
	n := r.nodes[f.Node]
	// A fault leaving a quorum and an eligible node (any single node's
	// failure in either topology) keeps the liveness bound; faults that
	// only degrade (loss, delay, flaps, a loaded CPU) suspend it until
	// they are healed.
	required := true
	switch f.Kind {
	case FaultFlap, FaultNetem, FaultCPU, FaultRestartAll:
		required = false
	}
	if f.Kind == FaultRestartAll {
		r.commands()
	}
	if (f.Kind == FaultCPU && !r.o.CPU) || ((f.Kind == FaultDeaf || f.Kind == FaultMute || f.Kind == FaultNetem) && !r.o.NFT) {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("fault %d (%s) skipped: stress-ng or nft is not installed", i+1, f.Kind))
		return true
	}
	r.res.Injected[f.Kind]++
	r.phase(time.Now(), required, r.bound, strings.TrimSpace(string(f.Kind)+" "+f.Node))
	afterBound := r.bound
	switch f.Kind {
	case FaultCrash:
		r.setReach(f.Node, false)
		l.Crash(n)
		time.Sleep(f.Hold) // the fault's duration: the schedule
		r.reboot(n)
	case FaultKillAll:
		l.KillAll(n)
		time.Sleep(f.Hold)
		l.Restart(r.bin, n)
	case FaultKillDaemon:
		n.Proc.Kill()
		time.Sleep(f.Hold)
		l.Restart(r.bin, n)
	case FaultKillPlugin:
		pid := r.pluginPID(n)
		if pid == 0 {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("fault %d: %s runs no IPaddr plugin", i+1, f.Node))
			break
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		r.killed[f.Node] = pid
	case FaultPause:
		pid := n.Proc.Cmd.Process.Pid
		if err := pause(pid); err != nil {
			l.t.Fatalf("chaos: pause %s: %v", f.Node, err)
		}
		time.Sleep(f.Hold)
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			l.t.Fatalf("chaos: resume %s: %v", f.Node, err)
		}
	case FaultIsolate:
		r.setReach(f.Node, false)
		l.Isolate(f.Node, true)
		time.Sleep(f.Hold)
		l.Isolate(f.Node, false)
		r.setReach(f.Node, true)
	case FaultDeaf, FaultMute:
		r.oneWay(f, true)
		time.Sleep(f.Hold)
		r.oneWay(f, false)
	case FaultFlap:
		for _, fl := range f.Flaps {
			for _, link := range f.Links {
				l.LinkSet(f.Node, link, "down")
				if link == "eth0" {
					r.setReach(f.Node, false)
				}
			}
			time.Sleep(fl.Down)
			for _, link := range f.Links {
				l.LinkSet(f.Node, link, "up")
				if link == "eth0" {
					r.setReach(f.Node, true)
				}
			}
			time.Sleep(fl.Up)
		}
	case FaultNetem:
		var rules []string
		for _, link := range f.Links {
			for _, hook := range []string{"ingress", "egress"} {
				rules = append(rules, chain(hook, link, fmt.Sprintf("numgen random mod 100 < %d drop", f.Loss)))
			}
			if r.netem {
				delay := fmt.Sprintf("%dus", f.Delay.Microseconds())
				jitter := fmt.Sprintf("%dus", f.Delay.Microseconds()/4)
				r.tc(f.Node, "qdisc", "replace", "dev", link, "root", "netem", "delay", delay, jitter)
			}
		}
		r.nft(f.Node, rules)
		time.Sleep(f.Hold)
		r.nft(f.Node, nil)
		if r.netem {
			for _, link := range f.Links {
				r.tc(f.Node, "qdisc", "del", "dev", link, "root")
			}
		}
	case FaultCPU:
		r.starve(f)
	case FaultRestartAll:
		afterBound = r.restartAll(f)
	}
	healed := time.Now()
	r.phase(healed, true, afterBound, strings.TrimSpace("healed "+string(f.Kind)+" "+f.Node))
	if err := r.healthy(r.settle); err != nil {
		r.res.Liveness = append(r.res.Liveness, fmt.Sprintf("after fault %d (%s %s) the cluster did not recover within %s: %v",
			i+1, f.Kind, f.Node, r.settle, err))
		return false
	}
	if f.Kind == FaultRestartAll {
		r.durable()
	}
	time.Sleep(f.Gap) // a random phase before the next fault: the schedule
	return true
}

// reboot brings a crashed node back as a rebooted machine: without the
// VIPs the crash left, links up, daemon started.
func (r *chaosRun) reboot(n *Node) {
	if err := r.l.FlushAddrs(n.NS, r.vips); err != nil {
		r.l.t.Fatalf("chaos: %v", err)
	}
	r.l.Isolate(n.NS, false)
	r.setReach(n.NS, true)
	r.l.Restart(r.bin, n)
}

// oneWay cuts (or restores) one direction of every link of the node:
// FaultMute drops what the node sends, FaultDeaf what reaches it (nft's
// netdev hooks see every frame, ARP included).
func (r *chaosRun) oneWay(f Fault, on bool) {
	if !on {
		r.nft(f.Node, nil)
		return
	}
	hook := "egress"
	if f.Kind == FaultDeaf {
		hook = "ingress"
	}
	var rules []string
	for _, link := range f.Links {
		rules = append(rules, chain(hook, link, "drop"))
	}
	r.nft(f.Node, rules)
}

// chain is an nft netdev chain applying rule on ifname's hook.
func chain(hook, ifname, rule string) string {
	return fmt.Sprintf("chain %s_%s { type filter hook %s device %q priority 0; %s; }", hook, ifname, hook, ifname, rule)
}

// Deafen drops (deaf) or stops dropping everything that reaches node
// on eth0 and eth1, as FaultDeaf on both links: its own packets still go
// out.
func (l *Lab) Deafen(node string, deaf bool) {
	l.t.Helper()
	var rules []string
	for _, link := range []string{"eth0", "eth1"} {
		if deaf {
			rules = append(rules, chain("ingress", link, "drop"))
		}
	}
	l.nft(node, rules)
}

func (r *chaosRun) nft(node string, chains []string) {
	r.l.t.Helper()
	r.l.nft(node, chains)
}

// nft replaces the chaos table of the lab namespace node (short name)
// with chains (nil: removes it). The table lives and dies with the
// namespace, so a failed test leaves nothing on the host.
func (l *Lab) nft(node string, chains []string) {
	l.t.Helper()
	ns := l.NS(node)
	script := "table netdev chaos {}\ndelete table netdev chaos\n"
	if len(chains) > 0 {
		script += "table netdev chaos {\n" + strings.Join(chains, "\n") + "\n}\n"
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("chaos: nft in %s: %v\n%s\n%s", ns, err, script, out)
	}
}

// tc runs tc in the lab namespace node (short name): never on the host's.
func (r *chaosRun) tc(node string, args ...string) {
	r.l.t.Helper()
	r.l.must(append([]string{"tc", "-n", r.l.NS(node)}, args...)...)
}

// hasNetem says whether the kernel has tc's netem qdisc (the packet
// delay; loss is nft's), trying it on lo of a lab namespace.
func (r *chaosRun) hasNetem(node string) bool {
	ns := r.l.NS(node)
	if exec.Command("tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").Run() != nil {
		return false
	}
	r.tc(node, "qdisc", "del", "dev", "lo", "root")
	return true
}

// starve runs stress-ng on both cores from the node's namespace for the
// fault's hold and ends it by its PID (its own --timeout is a backstop
// should this process die first).
func (r *chaosRun) starve(f Fault) {
	secs := int((f.Hold+time.Second-1)/time.Second) + 5
	p := r.l.Start(f.Node, "stress-ng-"+f.Node, "stress-ng", "--cpu", "2", "--timeout", strconv.Itoa(secs), "--quiet")
	time.Sleep(f.Hold)
	workers := r.l.Children(p.Cmd.Process.Pid)
	// SIGINT: stress-ng ends its workers and waits for them.
	p.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
	for _, pid := range workers {
		if err := r.l.WaitExit(pid, 10*time.Second); err != nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// pluginPID finds the node's IPaddr plugin process among its daemon's
// children (0: none).
func (r *chaosRun) pluginPID(n *Node) int {
	for _, pid := range r.l.Children(n.Proc.Cmd.Process.Pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(strings.ToLower(string(b)), "ipaddr") {
			return pid
		}
	}
	return 0
}

// restartAll kills every node (a power loss, or kill -9 of every daemon
// with the network up, their plugins left to release by their lease),
// then starts them all again. It returns the bound from the restart:
// the daemons' initdead comes first.
func (r *chaosRun) restartAll(f Fault) time.Duration {
	killed := time.Now()
	for _, name := range r.names {
		n := r.nodes[name]
		if f.Power {
			r.setReach(name, false)
			r.l.Crash(n)
		} else {
			n.Proc.Kill()
		}
	}
	time.Sleep(f.Hold)
	for _, name := range r.names {
		n := r.nodes[name]
		if f.Power {
			if err := r.l.FlushAddrs(name, r.vips); err != nil {
				r.l.t.Fatalf("chaos: %v", err)
			}
			r.l.Isolate(name, false)
			r.setReach(name, true)
		}
		r.l.Restart(r.bin, n)
	}
	// Time from the kill until the last daemon runs again is the
	// harness's: no node could hold anything.
	r.dead = append(r.dead, [2]time.Time{killed, time.Now()})
	return r.bound + r.o.Initdead()
}

// statusOf asks the nodes in turn for a status (the first that answers).
func (r *chaosRun) statusOf(ctx context.Context) (*api.Status, error) {
	var errs []error
	for _, name := range r.names {
		st, err := r.nodes[name].Client.Status(ctx)
		if err == nil && st.Core != nil && st.Core.State != nil {
			return st, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// healthy waits until every node is online in the replicated state, a
// leader is known, and every VIP is on exactly one reachable node and
// nowhere else.
func (r *chaosRun) healthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		_, err := r.w.Wait(time.Until(deadline), func(map[string]int) bool { return r.vipsSettled() })
		if err != nil {
			return fmt.Errorf("VIPs not each on one node: %s", r.holdersString())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := r.statusOf(ctx)
		cancel()
		if err == nil {
			ok := st.Core.Leader != ""
			for _, name := range r.names {
				if n := st.Core.State.Nodes[name]; n == nil || !n.Online {
					ok = false
				}
			}
			for i := range r.vips {
				g := st.Core.State.Groups[ChaosGroup(i)]
				if g == nil || g.Owner == "" || g.Reports[g.Owner].State != fsm.Running {
					ok = false
				}
			}
			if ok && r.vipsSettled() && r.pluginsBack() {
				return nil
			}
			last = fmt.Sprintf("leader %q, nodes %s", st.Core.Leader, nodeStates(st))
		} else {
			last = err.Error()
		}
		time.Sleep(r.o.Keepalive) // polling the control API
	}
	return fmt.Errorf("not healthy within %s: %s; VIPs %s", timeout, last, r.holdersString())
}

// pluginsBack says whether every node's IPaddr plugin runs and has had
// an operation on each VIP its node runs since it (re)started: after a
// plugin was killed, recovery is a new plugin keeping the lease over
// what its node holds. (Until then nothing of Vigil would remove the VIP
// if the daemon died too: the limit docs/SAFETY.md states for kill -9 of
// a daemon and its plugins, which the next fault must not stumble into.)
func (r *chaosRun) pluginsBack() bool {
	for _, name := range r.names {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := r.nodes[name].Client.Status(ctx)
		cancel()
		if err != nil {
			return false
		}
		var since time.Time
		for _, p := range st.Plugins {
			if strings.EqualFold(p.Name, "ipaddr") {
				// The daemon may not have seen the killed one exit yet.
				if p.State != fsm.Running || p.PID == r.killed[name] {
					return false
				}
				since = p.Since
			}
		}
		for _, g := range st.Groups {
			if g.State != fsm.Running {
				continue
			}
			for _, res := range g.Resources {
				if res.At.Before(since) {
					return false
				}
			}
		}
	}
	return true
}

func nodeStates(st *api.Status) string {
	var parts []string
	for _, name := range st.Core.State.NodeOrder {
		n := st.Core.State.Nodes[name]
		parts = append(parts, fmt.Sprintf("%s online=%v standby=%v", name, n.Online, n.Standby))
	}
	return strings.Join(parts, ", ")
}

// vipsSettled: every VIP is held by exactly one node, which is reachable.
func (r *chaosRun) vipsSettled() bool {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	for _, a := range r.vips {
		holders := 0
		for n, h := range r.w.held {
			if h[a.Unmap()] {
				holders++
				if r.w.down[n] {
					return false
				}
			}
		}
		if holders != 1 {
			return false
		}
	}
	return true
}

func (r *chaosRun) holdersString() string {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	var parts []string
	for _, a := range r.vips {
		var on []string
		for n, h := range r.w.held {
			if h[a.Unmap()] {
				on = append(on, n)
			}
		}
		sort.Strings(on)
		parts = append(parts, fmt.Sprintf("%s on %v", a, on))
	}
	return strings.Join(parts, "; ")
}

// expected is the operator state the acknowledged commands leave.
type expected struct {
	pinned  map[string]string // group → node ("" unpinned)
	standby map[string]bool
	unknown map[string]bool // keys a command that failed without an answer may or may not have set
}

// commands sends the schedule's operator commands and remembers what the
// acknowledged ones set.
func (r *chaosRun) commands() {
	e := &expected{pinned: map[string]string{}, standby: map[string]bool{}, unknown: map[string]bool{}}
	for _, c := range r.s.Commands {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.nodes[c.Via].Client.Command(ctx, c.Command)
		cancel()
		key := "group " + c.Command.Group
		if c.Command.Group == "" {
			key = "node " + c.Command.Node
		}
		switch {
		case err == nil:
			r.res.Acked++
			delete(e.unknown, key)
			switch c.Command.Op {
			case "move":
				e.pinned[c.Command.Group] = c.Command.Node
			case "unmove":
				e.pinned[c.Command.Group] = ""
			case "standby":
				e.standby[c.Command.Node] = true
			case "online":
				e.standby[c.Command.Node] = false
			}
		case errors.Is(err, api.ErrRefused):
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("vigil %s %s%s refused: %v", c.Command.Op, c.Command.Group, c.Command.Node, err))
		default:
			// No answer: it may have been committed or not.
			e.unknown[key] = true
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("vigil %s %s%s: no answer: %v", c.Command.Op, c.Command.Group, c.Command.Node, err))
		}
	}
	r.want = e
}

// durable checks, after every node restarted, that each node's replicated
// state has what the acknowledged commands set.
func (r *chaosRun) durable() {
	e := r.want
	if e == nil {
		return
	}
	// Each missing item once, with the nodes whose state lacks it.
	missing := map[string][]string{}
	var order []string
	for _, name := range r.names {
		var diff []string
		st, err := r.nodes[name].WaitStatus(r.settle, func(st *api.Status) bool {
			if st.Core == nil || st.Core.State == nil {
				return false
			}
			diff = e.diff(st)
			return len(diff) == 0
		})
		if err != nil && st == nil {
			diff = []string{fmt.Sprintf("no status after the restart: %v", err)}
		}
		for _, d := range diff {
			if missing[d] == nil {
				order = append(order, d)
			}
			missing[d] = append(missing[d], name)
		}
	}
	for _, d := range order {
		r.res.Lost = append(r.res.Lost, fmt.Sprintf("%s (state of %s)", d, strings.Join(missing[d], ", ")))
	}
}

func (e *expected) diff(st *api.Status) []string {
	var out []string
	for g, want := range e.pinned {
		if e.unknown["group "+g] {
			continue
		}
		if grp := st.Core.State.Groups[g]; grp == nil || grp.Pinned != want {
			got := "(no group)"
			if grp != nil {
				got = strconv.Quote(grp.Pinned)
			}
			out = append(out, fmt.Sprintf("group %s pinned to %s, acknowledged %q", g, got, want))
		}
	}
	for n, want := range e.standby {
		if e.unknown["node "+n] {
			continue
		}
		if node := st.Core.State.Nodes[n]; node == nil || node.Standby != want {
			out = append(out, fmt.Sprintf("node %s standby is not %v as acknowledged", n, want))
		}
	}
	return out
}

// check turns the address events into the figures and the liveness
// verdicts, from ready to end.
func (r *chaosRun) check(ready, end time.Time) {
	type change struct {
		at   time.Time
		node string
		addr netip.Addr
		up   bool
		eth0 bool // a reachability change (addr unset)
	}
	var cs []change
	for _, e := range r.w.Events(time.Time{}) {
		cs = append(cs, change{at: e.At, node: e.Node, addr: e.Addr, up: e.Up})
	}
	for _, x := range r.reaches {
		cs = append(cs, change{at: x.at, node: x.node, up: x.up, eth0: true})
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].at.Before(cs[j].at) })
	var lines []timed
	for _, c := range cs {
		switch {
		case c.eth0 && c.up:
			lines = append(lines, timed{c.at, c.node + " reachable"})
		case c.eth0:
			lines = append(lines, timed{c.at, c.node + " unreachable"})
		case c.up:
			lines = append(lines, timed{c.at, fmt.Sprintf("%s + %s", c.node, c.addr)})
		default:
			lines = append(lines, timed{c.at, fmt.Sprintf("%s - %s", c.node, c.addr)})
		}
	}
	r.timeline(ready, lines)
	held := map[string]map[netip.Addr]bool{}
	reachable := map[string]bool{}
	for _, n := range r.names {
		held[n], reachable[n] = map[netip.Addr]bool{}, true
	}
	// Spans, per VIP, with no holder at all and without exactly one
	// reachable holder.
	type span struct{ from, to time.Time }
	noHolder := map[netip.Addr][]span{}
	down := map[netip.Addr][]span{}
	noSince := map[netip.Addr]time.Time{}
	downSince := map[netip.Addr]time.Time{}
	eval := func(at time.Time) {
		for _, a := range r.vips {
			total, live := 0, 0
			for n, h := range held {
				if h[a] {
					total++
					if reachable[n] {
						live++
					}
				}
			}
			if t, ok := noSince[a]; ok && total > 0 {
				noHolder[a] = append(noHolder[a], span{t, at})
				delete(noSince, a)
			} else if !ok && total == 0 {
				noSince[a] = at
			}
			if t, ok := downSince[a]; ok && live == 1 {
				down[a] = append(down[a], span{t, at})
				delete(downSince, a)
			} else if !ok && live != 1 {
				downSince[a] = at
			}
		}
	}
	eval(time.Time{})
	for _, c := range cs {
		if c.eth0 {
			reachable[c.node] = c.up
		} else if c.up {
			held[c.node][c.addr] = true
		} else {
			delete(held[c.node], c.addr)
		}
		eval(c.at)
	}
	for _, a := range r.vips {
		if t, ok := noSince[a]; ok {
			noHolder[a] = append(noHolder[a], span{t, end})
		}
		if t, ok := downSince[a]; ok {
			down[a] = append(down[a], span{t, end})
		}
	}
	// clip keeps what lies between ready and end, outside the spans in
	// which every node was down.
	clip := func(s span) []span {
		if s.from.Before(ready) {
			s.from = ready
		}
		if s.to.After(end) {
			s.to = end
		}
		if !s.from.Before(s.to) {
			return nil
		}
		out := []span{s}
		for _, d := range r.dead {
			var next []span
			for _, x := range out {
				if !x.from.Before(d[1]) || !d[0].Before(x.to) {
					next = append(next, x)
					continue
				}
				if x.from.Before(d[0]) {
					next = append(next, span{x.from, d[0]})
				}
				if d[1].Before(x.to) {
					next = append(next, span{d[1], x.to})
				}
			}
			out = next
		}
		return out
	}
	for i, a := range r.vips {
		for _, s := range noHolder[a] {
			for _, x := range clip(s) {
				r.res.LongestNoHolder = max(r.res.LongestNoHolder, x.to.Sub(x.from))
			}
		}
		for _, s := range down[a] {
			for _, x := range clip(s) {
				r.res.LongestDown = max(r.res.LongestDown, x.to.Sub(x.from))
			}
			// Liveness: within each required phase, counted from the
			// later of the phase's start and the outage's.
			for j, p := range r.phases {
				if !p.required {
					continue
				}
				pend := end
				if j+1 < len(r.phases) {
					pend = r.phases[j+1].start
				}
				from, to := s.from, s.to
				if from.Before(p.start) {
					from = p.start
				}
				if to.After(pend) {
					to = pend
				}
				if to.Sub(from) > p.bound {
					r.res.Liveness = append(r.res.Liveness, fmt.Sprintf("group %s (VIP %s) down %s from %s during %q (bound %s)",
						ChaosGroup(i), a, to.Sub(from).Round(time.Millisecond), from.Format(time.StampMilli), p.what, p.bound))
				}
			}
		}
	}
}

// timeline merges the phases into lines (time since ready, text).
func (r *chaosRun) timeline(ready time.Time, lines []timed) {
	for _, p := range r.phases {
		lines = append(lines, timed{p.start, fmt.Sprintf("phase: %s (liveness required: %v)", p.what, p.required)})
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	for _, x := range lines {
		r.res.Timeline = append(r.res.Timeline, fmt.Sprintf("%+9.3fs %s", x.at.Sub(ready).Seconds(), x.text))
	}
}

type timed struct {
	at   time.Time
	text string
}

// pause stops pid and returns once every thread of it has stopped (a
// SIGSTOP takes effect thread by thread; testutil.Pause does the same for
// tests).
func pause(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %d: %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(stats) == 0 {
			return fmt.Errorf("no threads under /proc/%d: %v", pid, err)
		}
		running := 0
		for _, p := range stats {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] != 'T' && b[i+2] != 't' {
				running++
			}
		}
		if running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d threads of %d still run 30 s after SIGSTOP", running, pid)
		}
		time.Sleep(time.Millisecond) // polling /proc
	}
}

// ChaosSummary adds up the results of a campaign.
type ChaosSummary struct {
	mu                           sync.Mutex
	Runs, Failed                 int
	Injected                     map[FaultKind]int
	LongestDown, LongestNoHolder time.Duration
	DownSeed, NoHolderSeed       uint64
	Dual, Liveness, Lost         int
	Acked, Unresolved            int
	FailedSeeds                  []uint64
}

// Add counts one schedule's result.
func (s *ChaosSummary) Add(r *ChaosResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Injected == nil {
		s.Injected = map[FaultKind]int{}
	}
	s.Runs++
	for k, v := range r.Injected {
		s.Injected[k] += v
	}
	if r.LongestDown > s.LongestDown {
		s.LongestDown, s.DownSeed = r.LongestDown, r.Schedule.Seed
	}
	if r.LongestNoHolder > s.LongestNoHolder {
		s.LongestNoHolder, s.NoHolderSeed = r.LongestNoHolder, r.Schedule.Seed
	}
	s.Dual += len(r.Dual)
	s.Liveness += len(r.Liveness)
	s.Lost += len(r.Lost)
	s.Acked += r.Acked
	s.Unresolved += len(r.Unresolved)
	if r.Failed() {
		s.Failed++
		s.FailedSeeds = append(s.FailedSeeds, r.Schedule.Seed)
	}
}

// Aborted counts a schedule the lab itself could not play through (its
// test failed with the reason).
func (s *ChaosSummary) Aborted(seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Runs++
	s.Failed++
	s.FailedSeeds = append(s.FailedSeeds, seed)
}

// String is the campaign's summary.
func (s *ChaosSummary) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "chaos: %d schedules run, %d failed", s.Runs, s.Failed)
	if len(s.FailedSeeds) > 0 {
		fmt.Fprintf(&b, " (seeds %v)", s.FailedSeeds)
	}
	b.WriteString("\nfaults injected:")
	total := 0
	for _, k := range FaultKinds {
		fmt.Fprintf(&b, " %s %d,", k, s.Injected[k])
		total += s.Injected[k]
	}
	fmt.Fprintf(&b, " total %d", total)
	fmt.Fprintf(&b, "\nlongest time a group was down (not on exactly one reachable node): %s (seed %d)", s.LongestDown.Round(time.Millisecond), s.DownSeed)
	fmt.Fprintf(&b, "\nlongest time a VIP had no holder: %s (seed %d)", s.LongestNoHolder.Round(time.Millisecond), s.NoHolderSeed)
	fmt.Fprintf(&b, "\ndual-holder instants: %d (unresolved overlaps shorter than a kernel query: %d)", s.Dual, s.Unresolved)
	fmt.Fprintf(&b, "\nliveness violations: %d", s.Liveness)
	fmt.Fprintf(&b, "\nacknowledged operator state lost across a full restart: %d item(s), of %d acknowledged commands", s.Lost, s.Acked)
	return b.String()
}
