package lab_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/test/lab"
)

// The seed's `IPaddr::VIP lvs mon`: the virtual service is programmed
// without health checks of its own (checktype on), and mon watches each
// real server with Debian's http.monitor, unchanged; its alert takes a
// failed real out of the virtual service and its upalert puts it back, as
// the seed's lvs.alert did with ipvsadm (here the ipvs alert, through the
// daemon to the ldirectord instance).
func TestMonLVSSeed(t *testing.T) {
	if _, err := os.Stat("/usr/lib/mon/mon.d/http.monitor"); err != nil {
		t.Fatal("Debian's mon is not installed (make deps installs it): ", err)
	}
	l := needLab(t)
	alerts := filepath.Join(t.TempDir(), "alerts.log")
	res := fmt.Sprintf(`[[group]]
name = "lvs"
node = "n1"
resources = [
  { type = "IPaddr", interval = "200ms", params = { ip = %q, cidr_netmask = "24", nic = "eth0", arp_count = "3", arp_interval = "20ms" } },
  { type = "ldirectord", params = { config = "lvs" }, interval = "500ms" },
  { type = "mon", params = { config = "mon" }, interval = "500ms" },
]
`, lab.VIP)
	lvs := fmt.Sprintf(`backend = "auto"
[[virtual]]
address = "%s:80"
scheduler = "wlc"
checktype = "on"
  [[virtual.real]]
  address = "%s:80"
  weight = 5
  [[virtual.real]]
  address = "%s:80"
  weight = 5
`, lab.VIP, lab.RealIP1, lab.RealIP2)
	// http.monitor (Perl, forked per run) gets 5 s: a stopped real
	// refuses at once, so detection is no slower, and a loaded machine
	// does not make a healthy real look down.
	var mon strings.Builder
	for i, ip := range []string{lab.RealIP1, lab.RealIP2} {
		ipvs := fmt.Sprintf("ipvs -P tcp -V %s:80 -R %s -W 5 -F gate", lab.VIP, ip)
		fmt.Fprintf(&mon, `[[watch]]
group = "rs%d"
  [[watch.service]]
  name = "http"
  interval = "0.2s"
  monitor = "http.monitor -p 80 -u /.testpage -t 5"
    [[watch.service.period]]
    alert = [%q, "file.alert %s", "vigil"]
    upalert = [%q, "file.alert %s", "vigil"]
    alertevery = "1m"
`, i+1, ipvs, alerts, ipvs, alerts)
	}
	mon.WriteString(fmt.Sprintf("[hostgroup]\nrs1 = [%q]\nrs2 = [%q]\n", lab.RealIP1, lab.RealIP2))
	// mon's "vigil" alert hands its alerts to the daemon's routes too.
	routed := filepath.Join(t.TempDir(), "routed.log")
	route := fmt.Sprintf("[[alert]]\nevents = [\"service\"]\nsend = [\"file.alert %s\"]\n", routed)
	c := &lab.Cluster{Name: "montest", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef", Extra: route,
		Resources: res, Files: map[string]string{"lvs.toml": lvs, "mon.toml": mon.String()}, Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	nodes := l.Trio(vigilBin, c, false, nil)
	client := l.AddClient()
	rs1 := l.AddWebServer("rs1", lab.RealIP1)
	l.AddWebServer("rs2", lab.RealIP2)
	real1, real2 := lab.RealIP1+":80", lab.RealIP2+":80"

	table := func(what string, want map[string]string) {
		t.Helper()
		st, err := nodes["n1"].WaitStatus(15*time.Second, func(s *api.Status) bool {
			tab, _ := lvsTable(s, "ldirectord_lvs")
			for k, v := range want {
				if tab[k] != v {
					return false
				}
			}
			return true
		})
		if err != nil {
			_, text := lvsTable(st, "ldirectord_lvs")
			_, montext := lvsTable(st, "mon_mon")
			t.Fatalf("%s: %v\n%s\n%s", what, err, text, montext)
		}
	}
	table("start", map[string]string{real1: "5 up", real2: "5 up"})

	rs1.Stop()
	table("rs1 taken out by mon's alert", map[string]string{real1: "- disabled", real2: "5 up"})
	for range 6 {
		if body, err := l.Get(client, lab.VIP+":80", "/", time.Second); err != nil || body != "rs2" {
			t.Fatalf("with rs1 out, got %q %v", body, err)
		}
	}
	rs1.Start()
	table("rs1 put back by mon's upalert", map[string]string{real1: "5 up", real2: "5 up"})

	// The table flips on the ipvs alert, which mon runs before file.alert:
	// wait for file.alert to have written the recovery too.
	log, err := lab.WaitFile(alerts, 5*time.Second, func(s string) bool {
		return strings.Contains(s, "failure rs1 http ") && strings.Contains(s, "\nup rs1 http ")
	})
	if err != nil || strings.Contains(log, " rs2 ") {
		t.Errorf("file.alert log: %v\n%s", err, log)
	}
	if log, err := lab.WaitFile(routed, 5*time.Second, func(s string) bool {
		return strings.HasPrefix(s, "failure rs1 http ") && strings.Contains(s, "\nup rs1 http ")
	}); err != nil {
		t.Errorf("mon alerts through the daemon's routes: %v\n%s", err, log)
	}
	st, _ := nodes["n1"].Client.Status(context.Background())
	_, montext := lvsTable(st, "mon_mon")
	if !strings.Contains(montext, "rs1:http") || !strings.Contains(montext, "up via") {
		t.Errorf("mon status:\n%s", montext)
	}
	t.Logf("mon status on n1:\n%s", montext)
}
