package lab_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/internal/instances"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/test/lab"
)

// The shipped examples (issue 25 item 3) run in the lab from their files
// as shipped. What must differ in the lab is rewritten, and only that,
// through two small tables:
//
//   - every IPv4 address an example names maps to a lab address (a
//     shipped address the table lacks fails the test, and so does a row
//     no file uses), since the lab's helpers (client, real servers, router)
//     live on the lab's 10.77.1.0/24;
//   - the few other strings the lab cannot use, each with its reason.
//
// Not rewritten, because the lab gives each node what a machine of its
// own has: the control socket, state_dir and Raft data_dir (StartNode
// mounts a private /run and /var/lib per node), the ports (each node has
// its own network namespace), interface names (the lab wires eth0 and
// eth1), the secret (the shipped authkeys, given mode 0600 as the README
// says), and the smtp_relay of mon's mail alerts (the node's own
// loopback; a mail is sent only when a real server fails, which this
// test does not make happen).
//
// What each example is for is then checked on the loaded configuration
// (the README's claims: members, witness, two_node and its tie-breaker,
// auto_failback, preferred nodes), so that an example changing meaning
// fails here, not only one that stops parsing.

// rewrite replaces old by new in file of an example directory.
type rewrite struct {
	file, old, new, why string
}

// example is one shipped configuration directory and what its README
// paragraph says happens.
type example struct {
	dir string // under the repository root
	// addrs maps every IPv4 address the example names to the lab's.
	addrs map[string]string
	// rewrites are the other changes; dir is the lab's directory.
	rewrites func(dir string) []rewrite
	// scripts are heartbeat resource.d scripts the lab stands in for.
	scripts []string
	// claims checks what the README says of the configuration.
	claims func(c *config.Config) error
	// where groups run once the cluster is up, the node whose power is
	// cut, where they run after that, and after it comes back.
	initially map[string]string
	crash     string
	after     map[string]string
	back      map[string]string
}

// keep are the addresses that stay: the node's own loopback (the sorry
// server and the mail relay) and the multicast group (it never leaves
// the lab's bridge: ttl 1, and the bridge has no uplink).
var keep = map[string]bool{"127.0.0.1": true, "239.192.0.42": true}

// The lab's cable is a socat pty pair; each node's /run/ttyS0 (its own,
// see StartNode) links to its end.
var serialRewrite = rewrite{"ha.toml", `device = "/dev/ttyS0"`, `device = "/run/ttyS0"`,
	"the lab's serial cable is a socat pty pair, linked from each node's own /run/ttyS0 (a witness the cable does not name gets an end nothing is connected to, as a port without a cable; one it names none)"}

var examples = []example{
	{
		dir: "etc/vigil",
		addrs: map[string]string{
			"10.0.0.1": "10.77.1.1", "10.0.0.2": "10.77.1.2", "10.0.0.254": lab.PingNode,
			"10.0.0.3": lab.VIP, "192.168.6.2": lab.RealIP1, "192.168.6.3": lab.RealIP2,
		},
		rewrites: func(dir string) []rewrite {
			return []rewrite{serialRewrite,
				{"ha.toml", "file.alert /var/log/vigil-alerts.log", "file.alert " + filepath.Join(dir, "alerts.log"),
					"the host's /var/log is not the node's own; the test reads the failover alert there"}}
		},
		claims: func(c *config.Config) error {
			return all(
				members(c, "lvs1", "lvs2"), witnesses(c),
				check(c.HA.TwoNode, "two_node is not set: a pair without a witness never fails over"),
				check(slices.Equal(c.HA.PingNodes, []string{lab.PingNode}), "ping_nodes %v, want the router", c.HA.PingNodes),
				check(!c.HA.AutoFailback, "auto_failback is on"),
				check(len(c.HA.Serial) == 1 && len(c.HA.UCast) == 1, "media: want UDP unicast and a serial cable"),
				lvsGroup(c))
		},
		initially: map[string]string{"lvs": "lvs1"}, crash: "lvs1",
		after: map[string]string{"lvs": "lvs2"}, back: map[string]string{"lvs": "lvs2"},
	},
	{
		dir: "etc/examples/pair-witness",
		addrs: map[string]string{
			"10.0.0.1": "10.77.1.1", "10.0.0.2": "10.77.1.2", "10.0.0.9": "10.77.1.9",
			"10.0.0.3": lab.VIP, "192.168.6.2": lab.RealIP1, "192.168.6.3": lab.RealIP2,
		},
		rewrites: func(string) []rewrite { return []rewrite{serialRewrite} },
		claims: func(c *config.Config) error {
			return all(members(c, "lvs1", "lvs2"), witnesses(c, "witness"),
				check(!c.HA.TwoNode, "two_node is set beside a witness"),
				check(len(c.HA.Serial) == 1 && !c.HA.Serial[0].Joins("witness"), "the witness opens the directors' serial cable"),
				check(!c.HA.AutoFailback, "auto_failback is on"),
				lvsGroup(c))
		},
		initially: map[string]string{"lvs": "lvs1"}, crash: "lvs1",
		after: map[string]string{"lvs": "lvs2"}, back: map[string]string{"lvs": "lvs2"},
	},
	{
		dir: "etc/examples/three-node",
		addrs: map[string]string{
			"192.168.10.1": "10.77.1.1", "192.168.10.2": "10.77.1.2", "192.168.10.3": "10.77.1.3",
			"192.168.10.100": lab.VIP, "192.168.10.101": "10.77.1.51",
		},
		rewrites: func(string) []rewrite { return nil },
		// The lab has no apache or PostgreSQL: stand-ins of those names
		// in a resource.d of the test's (VIGIL_HA_DIR) keep the example's
		// resources as written.
		scripts: []string{"apache", "postgresql"},
		claims: func(c *config.Config) error {
			return all(members(c, "node1", "node2", "node3"), witnesses(c),
				check(!c.HA.TwoNode, "two_node is set with three members"),
				check(c.HA.AutoFailback, "auto_failback is off"),
				check(len(c.HA.UCast) == 1 && len(c.HA.BCast) == 1 && len(c.HA.MCast) == 1, "media: want unicast, broadcast and multicast"),
				preferred(c, map[string]string{"web": "node1", "db": "node2"}))
		},
		// node1 dies: web goes to the first eligible node in ha.toml's
		// order, node2, beside db; with auto_failback it returns.
		initially: map[string]string{"web": "node1", "db": "node2"}, crash: "node1",
		after: map[string]string{"web": "node2", "db": "node2"}, back: map[string]string{"web": "node1", "db": "node2"},
	},
}

func check(ok bool, f string, a ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(f, a...)
}

func all(errs ...error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

func nodesWithRole(c *config.Config, witness bool) []string {
	var out []string
	for _, n := range c.HA.Nodes {
		if (n.Role == "witness") == witness {
			out = append(out, n.Name)
		}
	}
	return out
}

func members(c *config.Config, want ...string) error {
	got := nodesWithRole(c, false)
	return check(slices.Equal(got, want), "members %v, want %v", got, want)
}

func witnesses(c *config.Config, want ...string) error {
	got := nodesWithRole(c, true)
	return check(slices.Equal(got, want), "witnesses %v, want %v", got, want)
}

func preferred(c *config.Config, want map[string]string) error {
	got := map[string]string{}
	for _, g := range c.Resources.Groups {
		got[g.Name] = g.Node
	}
	return check(fmt.Sprint(got) == fmt.Sprint(want), "groups and preferred nodes %v, want %v", got, want)
}

// lvsGroup is the seed: heartbeat's `lvs1 IPaddr::VIP ldirectord::www mon`.
func lvsGroup(c *config.Config) error {
	var types []string
	if len(c.Resources.Groups) == 1 {
		for _, r := range c.Resources.Groups[0].Resources {
			types = append(types, r.Type+":"+r.Params["ip"]+r.Params["config"])
		}
	}
	want := []string{"IPaddr:" + lab.VIP, "ldirectord:www", "mon:lvs"}
	return all(preferred(c, map[string]string{"lvs": "lvs1"}),
		check(slices.Equal(types, want), "group lvs runs %v, want %v", types, want))
}

var ipv4 = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)

// labCopy copies the example into dir with the rewrites applied, and
// fails unless every rewrite and every address row was used and no
// address the table lacks is left.
func labCopy(t *testing.T, ex example, dir, labDir string) {
	t.Helper()
	src := filepath.Join(lab.RepoRoot(), ex.dir)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	usedAddr := map[string]bool{}
	rws := ex.rewrites(labDir)
	usedRW := make([]bool, len(rws))
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s := ipv4.ReplaceAllStringFunc(string(data), func(a string) string {
			if to, ok := ex.addrs[a]; ok {
				usedAddr[a] = true
				return to
			}
			if !keep[a] {
				t.Errorf("%s/%s names %s, which the lab's address table lacks", ex.dir, e.Name(), a)
			}
			return a
		})
		for i, rw := range rws {
			if rw.file == e.Name() && strings.Contains(s, rw.old) {
				s = strings.ReplaceAll(s, rw.old, rw.new)
				usedRW[i] = true
			}
		}
		mode := os.FileMode(0o644)
		if e.Name() == "authkeys" {
			mode = 0o600 // git keeps no modes: the README's chmod
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	for a := range ex.addrs {
		if !usedAddr[a] {
			t.Errorf("%s names %s no more: the rewrite table is stale", ex.dir, a)
		}
	}
	for i, rw := range rws {
		if !usedRW[i] {
			t.Errorf("%s/%s has no %q any more: the rewrite table is stale", ex.dir, rw.file, rw.old)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// standIn is a heartbeat resource.d script in place of a service the lab
// does not have: it records that it runs in the node's own /run.
const standIn = `#!/bin/sh
state=/run/lab-$(basename "$0").running
case "$1" in
start) touch "$state";;
stop) rm -f "$state";;
status) if [ -e "$state" ]; then echo running; else echo stopped; fi;;
esac
`

// Every shipped example configuration, loaded from its files as shipped
// with only the lab's rewrites, starts with its groups where its README
// paragraph says, survives a power loss of the owner (kill -9 of every
// process of it, links down) with its groups where the README says
// within a bound derived from its own timing, a client reaching the VIP
// through the survivor, and no instant with two reachable holders of a
// VIP; when the node comes back, the groups go where auto_failback says.
func TestShippedExamples(t *testing.T) {
	for _, ex := range examples {
		t.Run(strings.ReplaceAll(ex.dir, "/", "_"), func(t *testing.T) { runExample(t, ex) })
	}
}

func runExample(t *testing.T, ex example) {
	l := needLab(t)
	dir := filepath.Join(l.Dir, "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	labCopy(t, ex, dir, l.Dir)
	var env []string
	if len(ex.scripts) > 0 {
		had := filepath.Join(l.Dir, "ha.d")
		for _, s := range ex.scripts {
			testutil.WriteScript(t, filepath.Join(had, "resource.d", s), standIn)
		}
		// and no init.d, so that a host's own script of that name is
		// never run
		env = []string{"VIGIL_HA_DIR=" + had, "VIGIL_LSB_DIR=" + filepath.Join(l.Dir, "no-init.d")}
	}
	cfg, err := config.Load(dir, instances.Options(ex.crash))
	if err != nil {
		t.Fatalf("%s with the lab's rewrites: %v", ex.dir, err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("%s: config check warns: %q", ex.dir, cfg.Warnings)
	}
	if err := ex.claims(cfg); err != nil {
		t.Fatalf("%s is not what the README says: %v", ex.dir, err)
	}
	ti := cfg.HA.Timing()
	if ti.Lease != timing.DefaultLease(ti.Keepalive, ti.Deadtime) || ti.AddressLifetime != 0 {
		t.Fatalf("the bound below assumes the default lease and no address_lifetime: %+v", ti)
	}
	bound := lab.ChaosOptions{Keepalive: ti.Keepalive, Deadtime: ti.Deadtime}.Bound(0)
	var vips []netip.Addr
	var vipGroup string
	var lvs bool // a group directs through ldirectord
	for _, g := range cfg.Resources.Groups {
		for _, r := range g.Resources {
			lvs = lvs || r.Type == "ldirectord"
			if r.Type == "IPaddr" {
				vips = append(vips, netip.MustParseAddr(r.Params["ip"]))
				if r.Params["ip"] == lab.VIP {
					vipGroup = g.Name
				}
			}
		}
	}
	if vipGroup == "" {
		t.Fatalf("%s: no group has the VIP the client asks", ex.dir)
	}

	// The network: every node on eth0 (the example's addresses, moved to
	// 10.77.1.0/24) and eth1 (10.77.2.0/24, the three-node example's
	// cluster network), the router, the real servers, the client.
	l.AddNS("sw")
	l.Bridge("sw", "br0")
	l.Bridge("sw", "br1")
	var names, memberNames []string
	witness := map[string]bool{}
	for _, n := range cfg.HA.Nodes {
		names = append(names, n.Name)
		if n.Role == "witness" {
			witness[n.Name] = true
		} else {
			memberNames = append(memberNames, n.Name)
		}
		l.AddNS(n.Name)
		l.Wire(n.Name, "eth0", "sw", "br0", n.Address+"/24")
		l.Wire(n.Name, "eth1", "sw", "br1", strings.Replace(n.Address, "10.77.1.", "10.77.2.", 1)+"/24")
	}
	if len(cfg.HA.PingNodes) > 0 {
		l.AddNS("gw")
		l.Wire("gw", "eth0", "sw", "br0", lab.PingNode+"/24")
	}
	if len(cfg.HA.Serial) > 0 {
		ends := map[string]string{}
		if len(memberNames) != 2 {
			t.Fatalf("a serial cable joins two members, not %v", memberNames)
		}
		ends[memberNames[0]], ends[memberNames[1]] = l.SerialCable("cable")
		for w := range witness {
			if cfg.HA.Serial[0].Joins(w) {
				ends[w], _ = l.SerialCable("nothing-" + w)
			}
		}
		for n, end := range ends {
			run := filepath.Join(l.NodeRoot(n), "run")
			if err := os.MkdirAll(run, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(end, filepath.Join(run, "ttyS0")); err != nil {
				t.Fatal(err)
			}
		}
	}
	client := l.AddClient()
	if lvs {
		l.AddWebServer("rs1", lab.RealIP1)
		l.AddWebServer("rs2", lab.RealIP2)
	} else {
		for _, n := range memberNames {
			l.Serve(n) // what answers on the VIP: the node's name
		}
	}
	w := l.StartAddrWatcher(vips, memberNames...)

	start := func(name string) *lab.Node {
		return l.StartNode(vigilBin, name, name, dir, lab.NodeOptions{Witness: witness[name], Env: env})
	}
	nodes := map[string]*lab.Node{}
	started := time.Now()
	for _, n := range names {
		nodes[n] = start(n)
	}
	survivor := nodes[ex.after[cfg.Resources.Groups[0].Name]]

	// served waits until a client's request to the VIP is answered by one
	// of want (the real servers behind ldirectord, or the node holding
	// the VIP) and returns when.
	served := func(what string, timeout time.Duration, want ...string) time.Time {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			var body string
			var err error
			if lvs {
				body, err = l.Get(client, lab.VIP+":80", "/", ti.Deadtime)
			} else {
				body, err = ask(l, client, ti.Deadtime)
			}
			if err == nil && slices.Contains(want, body) {
				return time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the client got %q (%v) from the VIP within %s, want one of %v", what, body, err, timeout, want)
			}
			time.Sleep(ti.Keepalive)
		}
	}
	// placed waits, asking via, until every group runs where want says
	// and the VIPs are held by those nodes only (a node without power
	// holds what it held, out of anyone's reach).
	down := map[string]bool{}
	placed := func(what string, via *lab.Node, timeout time.Duration, want map[string]string) {
		t.Helper()
		st, err := via.WaitStatus(timeout, func(s *api.Status) bool {
			for g, n := range want {
				if groupOn(s, g) != n {
					return false
				}
			}
			return true
		})
		if err != nil {
			got := map[string]string{}
			if st != nil {
				for g := range want {
					got[g] = groupOn(st, g)
				}
			}
			t.Fatalf("%s: groups run %v, want %v: %v", what, got, want, err)
		}
		holds := map[string]int{}
		for _, g := range cfg.Resources.Groups {
			for _, r := range g.Resources {
				if r.Type == "IPaddr" {
					holds[want[g.Name]]++
				}
			}
		}
		if _, err := w.Wait(bound, func(h map[string]int) bool {
			for _, n := range memberNames {
				if !down[n] && h[n] != holds[n] {
					return false
				}
			}
			return true
		}); err != nil {
			t.Fatalf("%s: VIPs: %v, want %v", what, err, holds)
		}
	}
	// Behind ldirectord the real servers answer; else the node that
	// holds the lab's VIP, whose group is vipGroup.
	whoServes := func(place map[string]string) []string {
		if lvs {
			return []string{"rs1", "rs2"}
		}
		return []string{place[vipGroup]}
	}

	placed("start", survivor, ti.Initdead+bound, ex.initially)
	served("start", bound, whoServes(ex.initially)...)
	t.Logf("%s: groups %v and the VIP served %s after the daemons started", ex.dir, ex.initially, time.Since(started).Round(time.Millisecond))

	w.SetDown(ex.crash, true)
	down[ex.crash] = true
	crashed := l.Crash(nodes[ex.crash])
	placed("after "+ex.crash+"'s power loss", survivor, bound, ex.after)
	took := time.Since(crashed)
	at := served("after "+ex.crash+"'s power loss", bound, whoServes(ex.after)...)
	t.Logf("%s: %s lost power; groups %v after %s, the client served through the VIP after %s (deadtime %s, bound %s)",
		ex.dir, ex.crash, ex.after, took.Round(time.Millisecond), at.Sub(crashed).Round(time.Millisecond), ti.Deadtime, bound)
	if lvs {
		// The survivor directs through the userspace director (this
		// kernel has no IPVS) with the health its standby checks kept.
		real1, real2 := lab.RealIP1+":80", lab.RealIP2+":80"
		if st, err := survivor.WaitStatus(bound, func(s *api.Status) bool {
			tab, text := lvsTable(s)
			return strings.Contains(text, "userspace backend") && tab[real1] == "5 up" && tab[real2] == "5 up"
		}); err != nil {
			_, text := lvsTable(st)
			t.Errorf("%s's table after the failover: %v\n%s", survivor.Name, err, text)
		}
	}
	if len(cfg.HA.Alerts) > 0 {
		moved := fmt.Sprintf("group %s moved from %s to %s", cfg.Resources.Groups[0].Name, ex.crash, ex.after[cfg.Resources.Groups[0].Name])
		alerts := filepath.Join(l.Dir, "alerts.log")
		if log, err := lab.WaitFile(alerts, bound, func(s string) bool { return strings.Contains(s, moved) }); err != nil {
			t.Errorf("the example's alert route did not tell %q: %v\n%s", moved, err, log)
		}
	}

	// The node comes back as a rebooted machine: a fresh /run (its
	// stand-in scripts' state and socket gone), no VIP, links up.
	if err := os.RemoveAll(filepath.Join(l.NodeRoot(ex.crash), "run", "vigil")); err != nil {
		t.Fatal(err)
	}
	for _, s := range ex.scripts {
		_ = os.Remove(filepath.Join(l.NodeRoot(ex.crash), "run", "lab-"+s+".running"))
	}
	if err := l.FlushAddrs(ex.crash, vips); err != nil {
		t.Fatal(err)
	}
	l.Isolate(ex.crash, false)
	w.SetDown(ex.crash, false)
	down[ex.crash] = false
	rebooted := time.Now()
	nodes[ex.crash] = start(ex.crash)
	if _, err := survivor.WaitStatus(ti.Initdead+bound, func(s *api.Status) bool {
		if s.Core == nil || s.Core.State == nil || s.Core.State.Nodes[ex.crash] == nil || !s.Core.State.Nodes[ex.crash].Online {
			return false
		}
		for _, g := range cfg.Resources.Groups {
			fg := group(s, g.Name)
			if fg == nil || !fg.Reports[ex.crash].At.After(rebooted) {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("%s back: %v", ex.crash, err)
	}
	placed(ex.crash+" back", survivor, bound, ex.back)
	served(ex.crash+" back", bound, whoServes(ex.back)...)
	t.Logf("%s: %s back; groups %v after %s", ex.dir, ex.crash, ex.back, time.Since(rebooted).Round(time.Millisecond))

	rep := w.Report()
	if len(rep.Dual) > 0 || rep.Err != nil {
		t.Fatalf("two reachable holders of a VIP: %v (err %v)", rep.Dual, rep.Err)
	}
}

// ask is one request to VIP:ServePort as the lab's Serve answers it: the
// name of the node that holds the VIP.
func ask(l *lab.Lab, client string, timeout time.Duration) (string, error) {
	var line string
	err := l.InNS(client, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(lab.VIP, strconv.Itoa(lab.ServePort)), timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("example\n")); err != nil {
			return err
		}
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}
