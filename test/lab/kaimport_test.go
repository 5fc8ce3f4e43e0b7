package lab_test

import (
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

	"github.com/vigil-ha/vigil/cluster/config"
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

// Issue 23: a keepalived pair imported node by node becomes a Vigil pair
// that runs from the files as written. Each director's keepalived.conf is
// imported for it (with the other's as --peer-conf, the addresses
// multicast VRRP does not name, and the router as ping node); both
// imports agree on the cluster-wide settings and the groups; two daemons
// start from the output unchanged (their own /run and /var/lib, as two
// machines); every VIP comes up on the MASTER side, n1; n1 loses power
// and n2, the survivor, takes every VIP; at no instant do both reachable
// directors hold one.
func TestKeepalivedImportPair(t *testing.T) {
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
		cmd := exec.Command(vigilBin, "import", "keepalived", "-o", out, "--node", n, "--peer", other[n],
			"--peer-conf", filepath.Join(l.Dir, other[n]+".conf"), "--address", "n1=10.77.1.1", "--address", "n2=10.77.1.2",
			"--ping-node", lab.PingNode, filepath.Join(l.Dir, n+".conf"))
		b, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(b), "checked: OK") {
			t.Fatalf("import for %s: %v\n%s", n, err, b)
		}
		if cfgs[n], err = config.Load(out, config.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// One cluster: the same timing, preference and groups on both.
	h1, h2 := cfgs["n1"].HA, cfgs["n2"].HA
	if h1.Timing() != h2.Timing() || h1.AutoFailback != h2.AutoFailback || !h1.TwoNode || !reflect.DeepEqual(h1.Nodes, h2.Nodes) ||
		!reflect.DeepEqual(cfgs["n1"].Resources, cfgs["n2"].Resources) {
		t.Fatalf("the two imports disagree:\nn1 %+v\nn2 %+v\nn1 %+v\nn2 %+v", h1, h2, cfgs["n1"].Resources, cfgs["n2"].Resources)
	}
	var vips []netip.Addr
	for _, g := range cfgs["n1"].Resources.Groups {
		if g.Node != "n1" {
			t.Errorf("group %s prefers %s, want n1 (MASTER, the higher priority)", g.Name, g.Node)
		}
		for _, r := range g.Resources {
			vips = append(vips, netip.MustParseAddr(r.Params["ip"]))
		}
	}
	ti := h1.Timing()
	// A VRRPv2 backup at priority 25: 3 × 1 s + (256 − 25)/256 s.
	if ti.Keepalive != time.Second || ti.Deadtime != 3902*time.Millisecond || !h1.AutoFailback || len(vips) != 12 {
		t.Fatalf("keepalive %s, deadtime %s, auto_failback %v, %d VIPs; want 1s, 3.902s, true, 12", ti.Keepalive, ti.Deadtime, h1.AutoFailback, len(vips))
	}

	l.Directors(2)
	l.AddNS("gw")
	l.Wire("gw", "eth0", "sw", "br0", lab.PingNode+"/24")
	w := l.StartAddrWatcher(vips, "n1", "n2")
	nodes := map[string]*lab.Node{}
	for _, n := range []string{"n1", "n2"} {
		nodes[n] = l.StartImported(vigilBin, n, n, cfgs[n].Dir)
	}
	// Margins from the timing: how long a group may be without a holder
	// after a fault (detection, election, lease, ping settle, start), and
	// at boot initdead on top.
	bound := lab.ChaosOptions{Keepalive: ti.Keepalive, Deadtime: ti.Deadtime}.Bound(0)
	if _, err := w.Wait(ti.Initdead+bound, func(h map[string]int) bool { return h["n1"] == len(vips) && h["n2"] == 0 }); err != nil {
		t.Fatalf("start: %v", err)
	}

	w.SetDown("n1", true)
	crash := l.Crash(nodes["n1"])
	if _, err := w.Wait(bound, func(h map[string]int) bool { return h["n2"] == len(vips) }); err != nil {
		t.Fatalf("after n1's power loss: %v", err)
	}
	var last time.Time
	for _, at := range w.FirstUp("n2", crash) {
		if at.After(last) {
			last = at
		}
	}
	rep := w.Report()
	if len(rep.Dual) > 0 || rep.Err != nil {
		t.Fatalf("two reachable holders: %v (err %v)", rep.Dual, rep.Err)
	}
	t.Logf("n2 held all %d VIPs %s after n1's power loss (deadtime %s after n1's last heartbeat, as keepalived's backup at its master-down interval after the last advert); %d address changes, no second holder",
		len(vips), last.Sub(crash).Round(time.Millisecond), ti.Deadtime, rep.Changes)
}
