package lab_test

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/test/lab"
)

// keepalivedPair derives a MASTER/BACKUP pair from Debian's
// keepalived.conf.vrrp (four instances, twelve addresses (one twice) on eth0 and eth1,
// auth_pass, multicast VRRP) as an operator would: the addresses moved
// onto the lab's networks (192.168.200.0/24 → eth0's 10.77.1.0/24,
// 192.168.201.0/24 → eth1's 10.77.2.0/24), and the other router's copy
// with every instance in state BACKUP at half the priority.
func keepalivedPair(t *testing.T) (master, backup []byte) {
	t.Helper()
	sample := filepath.Join(lab.RepoRoot(), "bin/samples/usr/share/doc/keepalived/samples/keepalived.conf.vrrp")
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatalf("%v (make deps unpacks Debian's keepalived package there)", err)
	}
	s := strings.NewReplacer("192.168.200.", "10.77.1.", "192.168.201.", "10.77.2.").Replace(string(data))
	b := strings.ReplaceAll(s, "state MASTER", "state BACKUP")
	b = regexp.MustCompile(`priority (\d+)`).ReplaceAllStringFunc(b, func(m string) string {
		p, _ := strconv.Atoi(strings.Fields(m)[1])
		return "priority " + strconv.Itoa(p/2)
	})
	return []byte(s), []byte(b)
}

// importedPair is a keepalived pair imported and running in the lab.
type importedPair struct {
	l     *lab.Lab
	ti    timing.Timing
	nodes map[string]*lab.Node
	w     *lab.AddrWatcher
	vips  []netip.Addr
	// bound is how long a group may be without a holder after a fault
	// (detection, election, lease, ping settle, start), from the timing.
	bound time.Duration
}

// startImportedPair derives the pair, imports each director's file for
// it with `vigil import keepalived` (the other's as --peer-conf, the
// addresses multicast VRRP does not name, and extra flags), checks that
// both imports agree on what the cluster shares, starts two daemons on
// the output unchanged (their own /run and /var/lib, as two machines),
// and waits until every VIP is on the MASTER side, n1.
func startImportedPair(t *testing.T, extra ...string) *importedPair {
	l := needLab(t)
	master, backup := keepalivedPair(t)
	confs := map[string][]byte{"n1": master, "n2": backup}
	other := map[string]string{"n1": "n2", "n2": "n1"}
	for n, data := range confs {
		if err := os.WriteFile(filepath.Join(l.Dir, n+".conf"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgs := map[string]*config.Config{}
	for _, n := range []string{"n1", "n2"} {
		out := filepath.Join(l.Dir, "etc-"+n)
		args := append([]string{"import", "keepalived", "-o", out, "--node", n, "--peer", other[n],
			"--peer-conf", filepath.Join(l.Dir, other[n]+".conf"), "--address", "n1=10.77.1.1", "--address", "n2=10.77.1.2"}, extra...)
		b, err := exec.Command(vigilBin, append(args, filepath.Join(l.Dir, n+".conf"))...).CombinedOutput()
		if err != nil || !strings.Contains(string(b), "checked: OK") || !strings.Contains(string(b), "two_node = true (two members, no witness)") {
			t.Fatalf("import for %s: %v\n%s", n, err, b)
		}
		if cfgs[n], err = config.Load(out, config.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// One cluster: the same timing, preference and groups on both.
	h1, h2 := cfgs["n1"].HA, cfgs["n2"].HA
	if h1.Timing() != h2.Timing() || h1.AutoFailback != h2.AutoFailback || !h1.TwoNode || !reflect.DeepEqual(h1.Nodes, h2.Nodes) ||
		!reflect.DeepEqual(h1.PingNodes, h2.PingNodes) || !reflect.DeepEqual(cfgs["n1"].Resources, cfgs["n2"].Resources) {
		t.Fatalf("the two imports disagree:\nn1 %+v\nn2 %+v\nn1 %+v\nn2 %+v", h1, h2, cfgs["n1"].Resources, cfgs["n2"].Resources)
	}
	p := &importedPair{l: l, ti: h1.Timing(), nodes: map[string]*lab.Node{}}
	for _, g := range cfgs["n1"].Resources.Groups {
		if g.Node != "n1" {
			t.Errorf("group %s prefers %s, want n1 (MASTER, the higher priority)", g.Name, g.Node)
		}
		for _, r := range g.Resources {
			p.vips = append(p.vips, netip.MustParseAddr(r.Params["ip"]))
		}
	}
	// A VRRPv2 backup at priority 25: 3 × 1 s + (256 − 25)/256 s.
	if p.ti.Keepalive != time.Second || p.ti.Deadtime != 3902*time.Millisecond || !h1.AutoFailback || len(p.vips) != 12 {
		t.Fatalf("keepalive %s, deadtime %s, auto_failback %v, %d VIPs; want 1s, 3.902s, true, 12", p.ti.Keepalive, p.ti.Deadtime, h1.AutoFailback, len(p.vips))
	}

	l.Directors(2)
	l.AddNS("gw")
	l.Wire("gw", "eth0", "sw", "br0", lab.PingNode+"/24")
	p.w = l.StartAddrWatcher(p.vips, "n1", "n2")
	for _, n := range []string{"n1", "n2"} {
		p.nodes[n] = l.StartImported(vigilBin, n, n, cfgs[n].Dir)
	}
	p.bound = lab.ChaosOptions{Keepalive: p.ti.Keepalive, Deadtime: p.ti.Deadtime}.Bound(0)
	if _, err := p.w.Wait(p.ti.Initdead+p.bound, func(h map[string]int) bool { return h["n1"] == len(p.vips) && h["n2"] == 0 }); err != nil {
		t.Fatalf("start: %v", err)
	}
	return p
}

// survivorHoldsAll waits until n2 holds every VIP, or fails, checks
// that no instant had two reachable holders, and returns how long after
// since n2 held the last one.
func (p *importedPair) survivorHoldsAll(t *testing.T, since time.Time, what string) time.Duration {
	t.Helper()
	if _, err := p.w.Wait(p.bound, func(h map[string]int) bool { return h["n2"] == len(p.vips) }); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var last time.Time
	for _, at := range p.w.FirstUp("n2", since) {
		if at.After(last) {
			last = at
		}
	}
	rep := p.w.Report()
	if len(rep.Dual) > 0 || rep.Err != nil {
		t.Fatalf("two reachable holders: %v (err %v)", rep.Dual, rep.Err)
	}
	return last.Sub(since)
}

// Issue 23: a keepalived pair imported node by node, with the router as
// ping node, becomes a Vigil pair that runs from the files as written:
// n1, the MASTER side, loses power and n2, the survivor, takes every
// VIP; at no instant do both reachable directors hold one.
func TestKeepalivedImportPair(t *testing.T) {
	p := startImportedPair(t, "--ping-node", lab.PingNode)
	p.w.SetDown("n1", true)
	crash := p.l.Crash(p.nodes["n1"])
	took := p.survivorHoldsAll(t, crash, "after n1's power loss")
	t.Logf("n2 held all %d VIPs %s after n1's power loss (deadtime %s after n1's last heartbeat, as keepalived's backup at its master-down interval after the last advert); no second holder",
		len(p.vips), took.Round(time.Millisecond), p.ti.Deadtime)
}

// What the import says of a pair imported without a tie-breaker is what
// happens: n1 loses power, and n2, which cannot tell that from a cut
// link, takes nothing over and says why; `vigil takeover`, the
// operator's word that n1 is off, moves every VIP to n2.
func TestKeepalivedImportNoTieBreaker(t *testing.T) {
	p := startImportedPair(t)
	p.w.SetDown("n1", true)
	p.l.Crash(p.nodes["n1"])
	n2 := p.nodes["n2"]
	if _, err := n2.WaitStatus(p.bound, func(s *api.Status) bool {
		return s.Core != nil && s.Core.Pair != nil && strings.Contains(s.Core.Pair.Note, "no tie-breaker configured")
	}); err != nil {
		t.Fatalf("n2 does not say why it takes nothing over: %v", err)
	}
	if h := p.w.Held(); h["n2"] != 0 {
		t.Fatalf("n2 took %d VIPs over without a tie-breaker", h["n2"])
	}
	confirmed := time.Now()
	if err := n2.Client.Command(context.Background(), api.Command{Op: "takeover"}); err != nil {
		t.Fatal(err)
	}
	took := p.survivorHoldsAll(t, confirmed, "after `vigil takeover`")
	t.Logf("n2 held all %d VIPs %s after `vigil takeover`; none before it", len(p.vips), took.Round(time.Millisecond))
}
