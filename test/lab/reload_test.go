package lab_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/test/lab"
)

// servedBy counts the answers after the first since, by server.
func servedBy(c *lab.Client, since int) map[string]int {
	by := map[string]int{}
	for _, a := range c.Answers()[since:] {
		if a.Err == nil {
			by[a.By]++
		}
	}
	return by
}

// waitServedBy waits until n answers after the first since came from
// server.
func waitServedBy(t *testing.T, c *lab.Client, since int, server string, n int) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, fmt.Sprintf("%d answers from %s (answers by server)", n, server), func() (map[string]int, bool) {
		by := servedBy(c, since)
		return by, by[server] >= n
	})
}

// Live reload under traffic: a client requests the VIP back to back while
// the configuration changes. An invalid configuration and one changing
// the heartbeat timing are refused and change nothing; `vigil reload` on
// the standby director (whose files alone were edited) adds a real server
// on the active director through Raft; SIGHUP to the active director
// removes one and reweighs the other. Not one request fails, the VIP
// never moves or restarts, no heartbeat link misses a beat.
func TestReloadUnderTraffic(t *testing.T) {
	l := needLab(t)
	www := func(reals ...string) string {
		s := fmt.Sprintf("checkinterval = \"200ms\"\nchecktimeout = \"500ms\"\nbackend = \"auto\"\n[[virtual]]\naddress = \"%s:80\"\nscheduler = \"wlc\"\n", lab.VIP)
		for _, r := range reals {
			s += r
		}
		return s
	}
	real := func(ip string, weight int) string {
		return fmt.Sprintf("  [[virtual.real]]\n  address = \"%s:80\"\n  forward = \"gate\"\n  weight = %d\n", ip, weight)
	}
	c := &lab.Cluster{Name: "reloadtest", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef",
		Extra:     "metrics_listen = \":9470\"\n",
		Resources: lab.LVSResources(), Files: map[string]string{"www.toml": www(real(lab.RealIP1, 5))},
		Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	nodes := l.Trio(vigilBin, c, false, nil)
	client := l.AddClient()
	l.AddWebServer("rs1", lab.RealIP1)
	l.AddWebServer("rs2", lab.RealIP2)
	real1, real2 := lab.RealIP1+":80", lab.RealIP2+":80"

	table := func(what string, want map[string]string) *api.Status {
		t.Helper()
		st, err := nodes["n1"].WaitStatus(15*time.Second, func(s *api.Status) bool {
			tab, _ := lvsTable(s)
			if len(tab) != len(want) {
				return false
			}
			for k, v := range want {
				if tab[k] != v {
					return false
				}
			}
			return true
		})
		if err != nil {
			_, text := lvsTable(st)
			t.Fatalf("%s: %v\n%s", what, err, text)
		}
		return st
	}
	st := table("start", map[string]string{real1: "5 up"})
	version := st.Core.State.GroupsVersion
	tr := l.StartClient(client, 0, 2*time.Second)
	waitServedBy(t, tr, 0, "rs1", 20)
	// What the nodes logged while the cluster came up is not the reloads'
	// doing (on a loaded machine a node started last may be "never heard
	// within initdead" by the first): only what they log once every node
	// sees the others up counts.
	logFrom := map[string]int64{}
	for name, n := range nodes {
		var peers []string
		for other := range nodes {
			if other != name {
				peers = append(peers, other)
			}
		}
		if _, err := n.WaitStatus(15*time.Second, allUp(peers...)); err != nil {
			t.Fatalf("%s does not see every peer up: %v", name, err)
		}
		fi, err := os.Stat(n.Proc.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		logFrom[name] = fi.Size()
	}

	reload := func(n *lab.Node) (string, error) {
		out, err := exec.Command(vigilBin, "reload", "-s", n.Socket).CombinedOutput()
		return string(out), err
	}
	write := func(n *lab.Node, name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(n.Dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unchanged := func(what string) {
		t.Helper()
		st, err := nodes["n1"].Client.Status(context.Background())
		if err != nil || st.Core.State.GroupsVersion != version || st.Core.State.GroupsGeneration != 0 {
			t.Fatalf("%s changed the cluster: %v", what, err)
		}
	}

	// Invalid: an unknown key. Refused with file, line and key.
	n2 := nodes["n2"]
	good, _ := os.ReadFile(filepath.Join(n2.Dir, "www.toml"))
	write(n2, "www.toml", www(real(lab.RealIP1, 5)+"  wieght = 3\n"))
	out, err := reload(n2)
	if err == nil || !strings.Contains(out, "www.toml:11") || !strings.Contains(out, "wieght") || !strings.Contains(out, "nothing changed") {
		t.Fatalf("invalid config: %v\n%s", err, out)
	}
	t.Logf("refused:\n%s", out)
	unchanged("an invalid configuration")

	// A timing change needs a restart: refused, naming the key.
	ha, _ := os.ReadFile(filepath.Join(n2.Dir, "ha.toml"))
	write(n2, "www.toml", string(good))
	write(n2, "ha.toml", strings.Replace(string(ha), "keepalive = \"20ms\"", "keepalive = \"30ms\"", 1))
	if out, err := reload(n2); err == nil || !strings.Contains(out, "ha.toml: keepalive") {
		t.Fatalf("keepalive change: %v\n%s", err, out)
	}
	unchanged("a keepalive change")
	write(n2, "ha.toml", string(ha))

	// A parameter only its plugin judges (issue 22): IPaddr's Validate
	// refuses the arp_count, at the resource's line, before anything runs.
	res, _ := os.ReadFile(filepath.Join(n2.Dir, "resources.toml"))
	write(n2, "resources.toml", strings.Replace(string(res), `arp_count = "3"`, `arp_count = "three"`, 1))
	if out, err := reload(n2); err == nil || !strings.Contains(out, "resources.toml:5: group[0].resources[0]") ||
		!strings.Contains(out, "arp_count") || !strings.Contains(out, "nothing changed") {
		t.Fatalf("a bad arp_count: %v\n%s", err, out)
	}
	unchanged("a parameter its plugin refuses")
	write(n2, "resources.toml", string(res))

	// Only n2's files change; n1, the active director, applies them.
	mark := len(tr.Answers())
	write(n2, "www.toml", www(real(lab.RealIP1, 5), real(lab.RealIP2, 5)))
	if out, err := reload(n2); err != nil {
		t.Fatalf("reload on n2: %v\n%s", err, out)
	}
	table("rs2 added by vigil reload on n2", map[string]string{real1: "5 up", real2: "5 up"})
	waitServedBy(t, tr, mark, "rs2", 20)

	// SIGHUP to n1 with its own files edited: rs1 out, rs2 reweighed.
	write(nodes["n1"], "www.toml", www(real(lab.RealIP2, 3)))
	nodes["n1"].Proc.Signal(syscall.SIGHUP)
	st = table("rs1 removed by SIGHUP on n1", map[string]string{real2: "3 up"})
	removed := time.Now()
	mark = len(tr.Answers())
	waitServedBy(t, tr, mark, "rs2", 20)
	// Only requests begun after the table showed the removal: one begun
	// before may complete, through rs1, after it (failed in a loaded run).
	late := map[string]int{}
	for _, a := range tr.Answers()[mark:] {
		if a.Err == nil && a.At.After(removed) {
			late[a.By]++
		}
	}
	if late["rs1"] > 0 {
		t.Errorf("rs1 still answers requests begun after its removal: %v", late)
	}
	ok, failed := 0, []string{}
	for _, a := range tr.Stop() {
		if a.Err != nil {
			failed = append(failed, a.At.Format("15:04:05.000")+" "+a.Err.Error())
		} else {
			ok++
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed during the reloads: %q", len(failed), ok+len(failed), failed)
	}
	if st.Core.State.GroupsGeneration != 2 {
		t.Errorf("group definitions at generation %d, want 2 (two reloads)", st.Core.State.GroupsGeneration)
	}
	// No failover, no restart of the VIP, no heartbeat missed.
	if d := st.Core.State.Decisions; len(d) != 1 || d[0].To != "n1" {
		t.Errorf("placement decisions %+v, want only the first", d)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		b, _ := os.ReadFile(nodes[n].Proc.LogPath)
		for _, bad := range []string{"node-dead", "link-dead", "stopping group", "lease lost"} {
			if strings.Contains(string(b[min(int(logFrom[n]), len(b)):]), bad) {
				t.Errorf("%s logged %q during the reloads", n, bad)
			}
		}
		if n == "n1" && strings.Count(string(b), "VIP added") != 1 {
			t.Errorf("n1 added the VIP %d times", strings.Count(string(b), "VIP added"))
		}
	}
	t.Logf("%d requests, none failed, across two rejected and two applied reloads", ok)

	// The Prometheus endpoint of the active director, scraped from the
	// client, tells the same story.
	body, err := l.Get(client, "10.77.1.1:9470", "/metrics", 2*time.Second)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	svc := fmt.Sprintf(`real="%s",resource="ldirectord_www",service="TCP %s:80"`, real2, lab.VIP)
	for series, check := range map[string]func(float64) bool{
		`vigil_ldirectord_real_up{` + svc + `}`:                                                               func(v float64) bool { return v == 1 },
		`vigil_ldirectord_real_weight{` + svc + `}`:                                                           func(v float64) bool { return v == 3 },
		`vigil_ipvs_connections_total{` + svc + `}`:                                                           func(v float64) bool { return v > 0 },
		`vigil_group_owner{group="lvs",node="n1"}`:                                                            func(v float64) bool { return v == 1 },
		`vigil_link_up{link="ucast:eth0",peer="n2"}`:                                                          func(v float64) bool { return v == 1 },
		`vigil_heartbeat_packets_sent_total{link="bcast:eth1"}`:                                               func(v float64) bool { return v > 0 },
		`vigil_raft_apply_duration_seconds_count`:                                                             func(v float64) bool { return v > 0 },
		`vigil_resource_operations_total{group="lvs",op="reload",resource="ldirectord_www",result="SUCCESS"}`: func(v float64) bool { return v == 2 },
		`vigil_group_moves_total`:                                                                             func(v float64) bool { return v == 0 },
	} {
		v, found := metricValue(body, series)
		if !found || !check(v) {
			t.Errorf("metric %s = %v (found %v)", series, v, found)
		}
	}
}

// metricValue finds one series in Prometheus' text format.
func metricValue(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			return v, err == nil
		}
	}
	return 0, false
}
