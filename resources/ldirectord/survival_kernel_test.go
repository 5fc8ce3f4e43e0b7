package ldirectord

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// The connection-survival lab (issue 24): in one kernel (the IPVS VM) a
// switch namespace with two bridges, "front" (client, directors, the VIP)
// and "back" (directors, real servers, the sync multicast); a client, two
// real servers answering with their name, a router for direct-routing
// replies, and per run two fresh director namespaces each driven by its
// own ldirectord Engine. What a failover does is played by the test, as
// Vigil's resources would do it, since no Vigil cluster runs in the VM:
//
//   - crash of the active director A: its engine is dead from then on
//     (its later writes are discarded, as those of a killed process
//     would never happen; the kernel keeps A's table and daemons, as a
//     kill -9 leaves them) and A's links go down; B takes over: its
//     engine activates (services programmed, sync master), then the VIP
//     (and, for NAT, the reals' gateway address) is added on B and the
//     client's and reals' neighbour entries are pointed at B, which is
//     what the gratuitous ARP of IPaddr does;
//   - A comes back (VIP and gateway removed, as after a reboot, links
//     up, a new engine configured: a standby), fresh connections are
//     opened through B, then a planned move back: the VIP and gateway
//     leave B, B's engine deactivates (cleanstop, sync backup), A's
//     activates, the VIP and gateway are added on A and the neighbour
//     entries pointed at A.
//
// Each of N connections sends a request every 50 ms and checks the
// reply (the same real server's name every time). A connection carried
// on through an event when it completes three exchanges begun after the
// event; it broke when an exchange fails (a reset, or no reply within
// exchangeTimeout).
const (
	vipAddr         = "10.80.0.10"
	frontNet        = "10.80.0."
	backNet         = "10.81.0."
	clientHex       = "0A500064" // 10.80.0.100 in /proc/net/ip_vs_conn
	exchangeEvery   = 50 * time.Millisecond
	exchangeTimeout = 10 * time.Second // past TCP's retransmissions over a takeover in the VM
	// survivalDeadline bounds waiting for every connection's verdict:
	// an exchange's timeout plus room for three more under emulation.
	survivalDeadline = exchangeTimeout + 20*time.Second
)

// Variants of a run.
const (
	withSync      = "sync"
	withStateless = "stateless"
	withNeither   = "none"
)

type survivalLab struct {
	t      testing.TB
	ns     *nstest.Netns
	mode   string // director.Masq or director.Gate
	sw     string
	client string
	reals  []string
	runs   int
}

// newSurvivalLab builds the switch, client, reals and router for one
// forwarding mode.
func newSurvivalLab(t testing.TB, mode string) *survivalLab {
	ns := nstest.NewNetns(t)
	l := &survivalLab{t: t, ns: ns, mode: mode, sw: ns.Add("sw"), client: ns.Add("cl")}
	for _, br := range []string{"brf", "brb"} {
		l.ip("-n", l.sw, "link", "add", br, "type", "bridge")
		l.ip("-n", l.sw, "link", "set", br, "up")
	}
	l.plug(l.client, "cl", "front", frontNet+"100/24")
	// A director that lost the VIP forwards what still reaches it and
	// tells the client to use the new holder by an ICMP redirect; the
	// client would keep that route exception into the next run (LVS
	// directors run with redirects off for the same reason).
	for _, k := range []string{"all", "default", "front"} {
		l.sysctl(l.client, "/proc/sys/net/ipv4/conf/"+k+"/accept_redirects", "0")
	}
	rt := ns.Add("rt")
	l.plug(rt, "rt", "front", frontNet+"253/24")
	l.plug(rt, "rt", "back", backNet+"253/24")
	l.sysctl(rt, "/proc/sys/net/ipv4/ip_forward", "1")
	for i := range 2 {
		r := ns.Add(fmt.Sprintf("r%d", i+1))
		l.reals = append(l.reals, r)
		l.plug(r, fmt.Sprintf("r%d", i+1), "back", fmt.Sprintf("%s%d/24", backNet, 11+i))
		if mode == director.Masq {
			// NAT: replies go back through the active director, at the
			// gateway address that moves with the VIP.
			l.ip("-n", r, "route", "add", "default", "via", backNet+"254")
		} else {
			// Direct routing: the VIP on lo, never answered for in ARP;
			// replies go straight to the client through the router.
			l.ip("-n", r, "addr", "add", vipAddr+"/32", "dev", "lo")
			for _, k := range []string{"all", "back"} {
				l.sysctl(r, "/proc/sys/net/ipv4/conf/"+k+"/arp_ignore", "1")
				l.sysctl(r, "/proc/sys/net/ipv4/conf/"+k+"/arp_announce", "2")
			}
			l.ip("-n", r, "route", "add", "default", "via", backNet+"253")
		}
		l.serve(r, fmt.Sprintf("r%d", i+1))
	}
	return l
}

func (l *survivalLab) ip(args ...string) { l.t.Helper(); l.ns.Run(append([]string{"ip"}, args...)...) }

// plug links namespace ns to the front or back bridge by a veth pair
// whose end in ns is named after the bridge.
func (l *survivalLab) plug(ns, short, side, cidr string) {
	l.t.Helper()
	port, br := short+side[:1], map[string]string{"front": "brf", "back": "brb"}[side]
	l.ip("-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", side, "netns", ns)
	l.ip("-n", l.sw, "link", "set", port, "master", br, "up")
	l.ip("-n", ns, "addr", "add", cidr, "dev", side)
	l.ip("-n", ns, "link", "set", side, "up")
}

func (l *survivalLab) sysctl(ns, path, v string) {
	l.t.Helper()
	if err := nstest.InNS(ns, func() error { return os.WriteFile(path, []byte(v), 0o644) }); err != nil {
		l.t.Fatal(err)
	}
}

var macRE = regexp.MustCompile(`link/ether ([0-9a-f:]{17})`)

func (l *survivalLab) mac(ns, dev string) string {
	l.t.Helper()
	m := macRE.FindStringSubmatch(l.ns.Run("ip", "-n", ns, "-o", "link", "show", dev))
	if m == nil {
		l.t.Fatalf("no MAC for %s in %s", dev, ns)
	}
	return m[1]
}

// serve answers each line with the real server's name, until the test
// ends.
func (l *survivalLab) serve(ns, name string) {
	var ln net.Listener
	if err := nstest.InNS(ns, func() (err error) { ln, err = net.Listen("tcp", ":80"); return err }); err != nil {
		l.t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	l.t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := c.Write([]byte(name + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// nsDirector is a director namespace and the engine driving it. dead
// discards the engine's writes to the kernel: the process crashed.
type nsDirector struct {
	ns   string
	e    *Engine
	dead atomic.Bool
	// The engines' sync handles: a dead engine never closes its own (it
	// still sees its daemons), and an open netlink socket would keep the
	// namespace, with the VIP on it, alive past its deletion.
	mu    sync.Mutex
	syncs []SyncControl
}

// closeSyncs closes every sync handle the director's engines opened.
func (d *nsDirector) closeSyncs() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.syncs {
		_ = s.Close()
	}
	d.syncs = nil
}

// nsBackend runs a backend's calls in the director's namespace (the
// kernel director reads /proc/thread-self/net, which follows the
// calling thread).
type nsBackend struct {
	b director.Backend
	d *nsDirector
}

func (n nsBackend) Name() string { return n.b.Name() }
func (n nsBackend) Read() (t director.Table, err error) {
	err = nstest.InNS(n.d.ns, func() error { t, err = n.b.Read(); return err })
	return t, err
}
func (n nsBackend) Apply(ops []director.Op) error {
	if n.d.dead.Load() {
		return nil
	}
	return nstest.InNS(n.d.ns, func() error { return n.b.Apply(ops) })
}
func (n nsBackend) Stats() (s map[director.Key]director.ServiceStats, err error) {
	err = nstest.InNS(n.d.ns, func() error { s, err = n.b.Stats(); return err })
	return s, err
}
func (n nsBackend) Close() error { return n.b.Close() }

type nsSync struct {
	SyncControl
	d *nsDirector
}

func (n *nsSync) Start(ctx context.Context, sd director.SyncDaemon) error {
	if n.d.dead.Load() {
		return nil
	}
	return n.SyncControl.Start(ctx, sd)
}

func (n *nsSync) Stop(ctx context.Context, state uint32) error {
	if n.d.dead.Load() {
		return nil
	}
	return n.SyncControl.Stop(ctx, state)
}

// director makes a fresh director namespace, plugged into both bridges
// (interfaces "front" and "back"), with a configured engine: a standby.
func (l *survivalLab) director(short string, inst func() string) *nsDirector {
	l.t.Helper()
	d := &nsDirector{ns: l.ns.Add(short)}
	l.plug(d.ns, short, "front", frontNet+map[byte]string{'a': "1", 'b': "2"}[short[0]]+"/24")
	l.plug(d.ns, short, "back", backNet+map[byte]string{'a': "1", 'b': "2"}[short[0]]+"/24")
	l.sysctl(d.ns, "/proc/sys/net/ipv4/ip_forward", "1")
	for _, k := range []string{"all", "default", "front", "back"} {
		l.sysctl(d.ns, "/proc/sys/net/ipv4/conf/"+k+"/send_redirects", "0")
	}
	d.start(l, inst())
	return d
}

// start runs a new engine in the director's namespace (a first start,
// or a restart after a crash).
func (d *nsDirector) start(l *survivalLab, src string) {
	d.dead.Store(false)
	in := func(f func() error) error { return nstest.InNS(d.ns, f) }
	d.e = NewEngine(Options{
		Open: func(name string, log *slog.Logger) (director.Backend, error) {
			var b director.Backend
			err := in(func() (err error) { b, err = director.Open(name, log); return err })
			if err != nil {
				return nil, err
			}
			return nsBackend{b: b, d: d}, nil
		},
		OpenSync: func() (SyncControl, error) {
			var s SyncControl
			err := in(func() (err error) { s, err = director.OpenSync(); return err })
			if err != nil {
				return nil, err
			}
			w := &nsSync{SyncControl: s, d: d}
			d.mu.Lock()
			d.syncs = append(d.syncs, w)
			d.mu.Unlock()
			return w, nil
		},
		SetSysctl: func(p, v string) error {
			if d.dead.Load() {
				return nil
			}
			return in(func() error { return writeSysctl(p, v) })
		},
		SetStrayReplies: func(ds []director.StrayReply) error {
			if d.dead.Load() {
				return nil
			}
			return in(func() error { return director.SetStrayReplies(ds) })
		},
		SysctlScope: d.ns,
		GetSysctl: func(p string) (v string, err error) {
			err = in(func() error { v, err = readSysctl(p); return err })
			return v, err
		},
	})
	e := d.e
	l.t.Cleanup(func() { _ = e.Close(); d.closeSyncs() })
	d.e.Configure(instance(l.t, src))
	if st := d.e.Status(); (st.Sync != nil && st.Sync.Error != "") || (st.Stateless != nil && st.Stateless.Error != "") {
		l.t.Fatalf("%s: %s", d.ns, st.Text(d.ns, false))
	}
}

// takeOver makes d the active director: engine, then the addresses, then
// what the gratuitous ARP does on the client and the reals.
func (l *survivalLab) takeOver(d *nsDirector) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.e.Activate(ctx); err != nil {
		l.t.Fatalf("activate %s: %v", d.ns, err)
	}
	l.ip("-n", d.ns, "addr", "add", vipAddr+"/32", "dev", "front")
	l.ip("-n", l.client, "neigh", "replace", vipAddr, "lladdr", l.mac(d.ns, "front"), "dev", "front", "nud", "reachable")
	if l.mode == director.Masq {
		l.ip("-n", d.ns, "addr", "add", backNet+"254/32", "dev", "back")
		mac := l.mac(d.ns, "back")
		for _, r := range l.reals {
			l.ip("-n", r, "neigh", "replace", backNet+"254", "lladdr", mac, "dev", "back", "nud", "reachable")
		}
	}
}

// release is a planned stop on d: the addresses go, then the engine
// deactivates (cleanstop: its services are deleted).
func (l *survivalLab) release(d *nsDirector) {
	l.t.Helper()
	l.dropAddrs(d)
	if err := d.e.Deactivate(); err != nil {
		l.t.Fatalf("deactivate %s: %v", d.ns, err)
	}
}

func (l *survivalLab) dropAddrs(d *nsDirector) {
	l.t.Helper()
	l.ip("-n", d.ns, "addr", "del", vipAddr+"/32", "dev", "front")
	if l.mode == director.Masq {
		l.ip("-n", d.ns, "addr", "del", backNet+"254/32", "dev", "back")
	}
}

func (l *survivalLab) links(d *nsDirector, state string) {
	l.t.Helper()
	for _, dev := range []string{"front", "back"} {
		l.ip("-n", d.ns, "link", "set", dev, state)
	}
}

// survivalInstance is the ldirectord instance of a run.
func (l *survivalLab) survivalInstance(variant string) string {
	var b strings.Builder
	b.WriteString("backend = \"ipvs\"\n[[virtual]]\naddress = \"" + vipAddr + ":80\"\nchecktype = \"on\"\n")
	if variant == withStateless {
		b.WriteString("scheduler = \"mh\"\nmh_port = true\nstateless = true\n")
	} else {
		b.WriteString("scheduler = \"wrr\"\n")
	}
	for i := range l.reals {
		fmt.Fprintf(&b, "  [[virtual.real]]\n  address = \"%s%d:80\"\n  forward = %q\n", backNet, 11+i, l.mode)
	}
	if variant == withSync {
		b.WriteString("[sync]\ninterface = \"back\"\nsync_id = 24\n")
	}
	return b.String()
}

// flow is one client connection and what it has seen.
type flow struct {
	c      net.Conn
	mu     sync.Mutex
	real   string
	starts []time.Time // of exchanges that completed
	err    error
}

func (f *flow) state(since time.Time) (ok int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.starts) - 1; i >= 0 && !f.starts[i].Before(since); i-- {
		ok++
	}
	return ok, f.err
}

func (f *flow) run(ctx context.Context) {
	r := bufio.NewReader(f.c)
	tick := time.NewTicker(exchangeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		_ = f.c.SetDeadline(start.Add(exchangeTimeout))
		_, err := f.c.Write([]byte("ping\n"))
		var line string
		if err == nil {
			line, err = r.ReadString('\n')
		}
		f.mu.Lock()
		switch {
		case err != nil:
		case f.real == "":
			f.real = line
		case f.real != line:
			err = fmt.Errorf("answered by %q after %q", strings.TrimSpace(line), strings.TrimSpace(f.real))
		}
		if err != nil {
			if ctx.Err() == nil {
				f.err = err
			}
			f.mu.Unlock()
			return
		}
		f.starts = append(f.starts, start)
		f.mu.Unlock()
	}
}

// flows opens n connections to the VIP from the client and keeps them
// talking until stop is called.
type flows struct {
	all    []*flow
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (l *survivalLab) open(n int) *flows {
	l.t.Helper()
	fs := &flows{}
	ctx, cancel := context.WithCancel(context.Background())
	fs.cancel = cancel
	l.t.Cleanup(fs.stop)
	if err := nstest.InNS(l.client, func() error {
		for range n {
			c, err := net.DialTimeout("tcp", vipAddr+":80", exchangeTimeout)
			if err != nil {
				return err
			}
			fs.all = append(fs.all, &flow{c: c})
		}
		return nil
	}); err != nil {
		fs.stop()
		l.t.Fatalf("connect to the VIP: %v", err)
	}
	for _, f := range fs.all {
		fs.wg.Add(1)
		go func() { defer fs.wg.Done(); f.run(ctx) }()
	}
	return fs
}

func (fs *flows) stop() {
	fs.cancel()
	for _, f := range fs.all {
		f.c.Close()
	}
	fs.wg.Wait()
}

// settle waits until every connection has completed three exchanges
// (the third incoming packet is the one a sync master sends); a broken
// one fails the test, since nothing has happened yet.
func (l *survivalLab) settle(fs *flows) {
	l.t.Helper()
	start := time.Now()
	deadline := start.Add(survivalDeadline)
	for {
		ready := 0
		for _, f := range fs.all {
			ok, err := f.state(start)
			if err != nil {
				l.t.Fatalf("a connection broke before any event: %v", err)
			}
			if ok >= 3 {
				ready++
			}
		}
		if ready == len(fs.all) {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%d of %d connections talking after %s", ready, len(fs.all), survivalDeadline)
		}
		time.Sleep(exchangeEvery) // polling the flows; the deadline bounds it
	}
}

// held counts fs's connections in ns's IPVS connection table
// (/proc/net/ip_vs_conn lines "TCP 0A500064 C350 0A50000A 0050 …").
func (l *survivalLab) held(ns string, fs *flows) int {
	var b []byte
	if err := nstest.InNS(ns, func() (err error) { b, err = os.ReadFile("/proc/thread-self/net/ip_vs_conn"); return err }); err != nil {
		l.t.Fatal(err)
	}
	table, n := string(b), 0
	for _, f := range fs.all {
		port := f.c.LocalAddr().(*net.TCPAddr).Port
		if strings.Contains(table, fmt.Sprintf(" %s %04X ", clientHex, port)) {
			n++
		}
	}
	return n
}

// synced waits until ns's connection table holds every one of fs's
// connections (the sync reached the standby), and says how long it took.
func (l *survivalLab) synced(ns string, fs *flows) time.Duration {
	l.t.Helper()
	start := time.Now()
	// The master sends within IPVS_SYNC_FLUSH_TIME (2 s) and checks its
	// queue every second; the VM emulates, so allow ten times that.
	deadline := start.Add(30 * time.Second)
	for {
		got := l.held(ns, fs)
		if got == len(fs.all) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the standby's table holds %d of %d connections after %s", got, len(fs.all), time.Since(start))
		}
		time.Sleep(100 * time.Millisecond) // polling /proc; the deadline bounds it
	}
}

// verdict waits until each connection carried on (three exchanges begun
// after since) or broke, and returns how many carried on, with the
// first failure seen.
func (l *survivalLab) verdict(fs *flows, since time.Time) (int, string) {
	deadline := time.Now().Add(survivalDeadline)
	for {
		carried, broke, why := 0, 0, ""
		for _, f := range fs.all {
			ok, err := f.state(since)
			switch {
			case err != nil:
				broke++
				if why == "" {
					why = err.Error()
				}
			case ok >= 3:
				carried++
			}
		}
		if carried+broke == len(fs.all) || time.Now().After(deadline) {
			if carried+broke < len(fs.all) {
				why += fmt.Sprintf(" (%d undecided after %s)", len(fs.all)-carried-broke, survivalDeadline)
			}
			return carried, why
		}
		time.Sleep(exchangeEvery) // polling the flows; the deadline bounds it
	}
}

// survival is one run's result.
type survival struct {
	mode, variant                  string
	n                              int
	crash, move                    int
	crashWhy, moveWhy              string
	syncCrash, syncMove            time.Duration // for the standby to hold every connection
	crashTook, moveTook            time.Duration // the simulated failover and move
	sloppyOnStandby, sloppyRestore bool
	// Stateless NAT: replies that reached the new director before any
	// packet of their client did, rewritten by its nftables table
	// (director.StrayReply) at the crash.
	orphans uint64
}

// run plays a crash of A and a planned move back with n connections each.
func (l *survivalLab) run(variant string, n int) survival {
	l.t.Helper()
	l.runs++
	res := survival{mode: l.mode, variant: variant, n: n}
	src := l.survivalInstance(variant)
	inst := func() string { return src }
	a := l.director(fmt.Sprintf("a%d", l.runs), inst)
	b := l.director(fmt.Sprintf("b%d", l.runs), inst)
	if variant == withStateless {
		// (A NAT standby also holds its table: one rule per real.)
		res.sloppyOnStandby = l.sysctlIn(b.ns, sloppySysctls[0]) == "1" &&
			(l.mode != director.Masq || len(l.strayReplies(b.ns)) == len(l.reals))
	}
	l.takeOver(a)

	fs := l.open(n)
	l.settle(fs)
	if variant == withSync {
		res.syncCrash = l.synced(b.ns, fs)
	}
	start := time.Now()
	a.dead.Store(true)
	l.links(a, "down")
	l.takeOver(b)
	since := time.Now()
	res.crashTook = since.Sub(start)
	res.crash, res.crashWhy = l.verdict(fs, since)
	fs.stop()
	if variant == withStateless {
		for _, n := range l.strayReplies(b.ns) {
			res.orphans += n
		}
	}

	// A comes back as after a reboot: its old engine is gone (its
	// kernel state stays), a new one starts as a standby.
	if err := a.e.Close(); err != nil {
		l.t.Fatal(err)
	}
	a.closeSyncs()
	l.dropAddrs(a)
	l.links(a, "up")
	a.start(l, src)

	fs = l.open(n)
	l.settle(fs)
	if variant == withSync {
		res.syncMove = l.synced(a.ns, fs)
	}
	start = time.Now()
	l.release(b)
	l.takeOver(a)
	since = time.Now()
	res.moveTook = since.Sub(start)
	res.move, res.moveWhy = l.verdict(fs, since)
	fs.stop()
	if variant == withStateless {
		if err := b.e.Close(); err != nil {
			l.t.Fatal(err)
		}
		res.sloppyRestore = l.sysctlIn(b.ns, sloppySysctls[0]) == "0" && l.strayReplies(b.ns) == nil
	}
	// The next run's directors own the VIP alone.
	for _, d := range []*nsDirector{a, b} {
		if err := d.e.Close(); err != nil {
			l.t.Fatal(err)
		}
		d.closeSyncs()
		l.links(d, "down")
		l.ns.Run("ip", "netns", "delete", d.ns)
	}
	return res
}

// strayReplies reads stateless mode's nftables table in namespace ns.
func (l *survivalLab) strayReplies(ns string) (m map[director.StrayReply]uint64) {
	if err := nstest.InNS(ns, func() (err error) { m, err = director.StrayReplies(); return err }); err != nil {
		l.t.Fatal(err)
	}
	return m
}

func (l *survivalLab) sysctlIn(ns, path string) string {
	var v string
	if err := nstest.InNS(ns, func() (err error) { v, err = readSysctl(path); return err }); err != nil {
		l.t.Fatal(err)
	}
	return v
}

func (r survival) String() string {
	pct := func(k int) string { return strconv.FormatFloat(100*float64(k)/float64(r.n), 'f', 1, 64) + "%" }
	s := fmt.Sprintf("%-4s %-9s crash %4d/%d %6s   planned move %4d/%d %6s", map[string]string{director.Masq: "NAT", director.Gate: "DR"}[r.mode],
		r.variant, r.crash, r.n, pct(r.crash), r.move, r.n, pct(r.move))
	if r.orphans > 0 {
		s += fmt.Sprintf("\n       crash: %d replies rewritten before their client's next packet", r.orphans)
	}
	if r.crashWhy != "" {
		s += "\n       crash: first failure: " + r.crashWhy
	}
	if r.moveWhy != "" {
		s += "\n       move: first failure: " + r.moveWhy
	}
	return s
}

func skipWithoutIPVS(t testing.TB) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Skip("kernel has no IPVS here; test/ipvsvm runs this in a VM that has it")
	}
}

// TestKernelSurvival plays a crash and a planned move back with a few
// connections in NAT and DR, with sync, stateless mode and neither, and
// holds sync and stateless mode to the targets where they hold
// in the emulated VM. Run by test/ipvsvm.
func TestKernelSurvival(t *testing.T) {
	skipWithoutIPVS(t)
	const n = 20
	for _, mode := range []string{director.Gate, director.Masq} {
		l := newSurvivalLab(t, mode)
		for _, variant := range []string{withStateless, withSync, withNeither} {
			r := l.run(variant, n)
			t.Logf("%s (failover %s, move %s; sync reached the standby in %s and %s)", r, r.crashTook.Round(time.Millisecond), r.moveTook.Round(time.Millisecond),
				r.syncCrash.Round(time.Millisecond), r.syncMove.Round(time.Millisecond))
			if variant == withStateless && (!r.sloppyOnStandby || !r.sloppyRestore) {
				t.Errorf("%s: sloppy_tcp on the standby %v, sysctls restored and table deleted at close %v", r, r.sloppyOnStandby, r.sloppyRestore)
			}
			if variant != withNeither && (r.crash < n || r.move < n) {
				t.Errorf("%s: connections lost", r)
			}
		}
	}
}

// BenchmarkKernelSurvival prints the survival table (mode × event ×
// sync/stateless/none) with VIGIL_SURVIVAL_N connections (default 200).
// make bench-lvs runs it in the VM.
func BenchmarkKernelSurvival(b *testing.B) {
	skipWithoutIPVS(b)
	n := 200
	if v, err := strconv.Atoi(os.Getenv("VIGIL_SURVIVAL_N")); err == nil && v > 0 {
		n = v
	}
	modes, variants := []string{director.Gate, director.Masq}, []string{withSync, withStateless, withNeither}
	if v := os.Getenv("VIGIL_SURVIVAL_MODES"); v != "" { // e.g. gate_masq
		modes = strings.Split(v, "_")
	}
	if v := os.Getenv("VIGIL_SURVIVAL_VARIANTS"); v != "" { // e.g. stateless_sync
		variants = strings.Split(v, "_")
	}
	var rows []string
	for range b.N {
		for _, mode := range modes {
			l := newSurvivalLab(b, mode)
			for _, variant := range variants {
				r := l.run(variant, n)
				rows = append(rows, r.String())
			}
		}
	}
	fmt.Printf("\nconnections carried on (%d each; request every %s):\n%s\n", n, exchangeEvery, strings.Join(rows, "\n"))
}
