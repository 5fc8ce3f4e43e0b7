package lab_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/control"
	"github.com/vigil-ha/vigil/test/lab"
)

// lvsTable returns the reals node's ldirectord instance has programmed
// (address → weight) and their health as its status shows them.
func lvsTable(st *api.Status, resource ...string) (map[string]string, string) {
	id := "ldirectord_www"
	if len(resource) > 0 {
		id = resource[0]
	}
	for _, in := range st.Inspections {
		if in.Resource == id {
			got := map[string]string{}
			for _, line := range strings.Split(in.Text, "\n") {
				f := strings.Fields(line)
				if len(f) >= 7 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
					got[f[1]] = f[3] + " " + f[6]
				}
			}
			return got, in.Text
		}
	}
	return nil, ""
}

// The seed's setup, `IPaddr::VIP ldirectord::www`, on a director pair with
// a witness, through the userspace director (this kernel has no IPVS):
// the client sees wlc spread requests over both real servers; a dead real
// leaves the table within checkinterval × failurecount + checktimeout and
// comes back when it recovers; with both down the sorry server answers;
// the standby director's checks are warm, and after a crash of the active
// one the survivor serves at once.
//
// Every node routes its events to Debian mon's file.alert ([[alert]] in
// ha.toml): the real-server transitions come from the active director
// only, the node death and the failover once for the cluster (from the
// Raft leader), the dead links from each node that lost one.
func TestLVSSeed(t *testing.T) {
	l := needLab(t)
	events, links := filepath.Join(l.Dir, "events.alerts"), filepath.Join(l.Dir, "links.alerts")
	routes := fmt.Sprintf("[[alert]]\nevents = [\"node\", \"failover\", \"realserver\"]\nsend = [\"file.alert %s\"]\n"+
		"[[alert]]\nevents = [\"link\"]\nupalert = false\nsend = [\"file.alert %s\"]\n", events, links)
	c := &lab.Cluster{Name: "lvstest", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef", Extra: routes,
		Resources: lab.LVSResources(), Files: map[string]string{"www.toml": lab.WWW()}, Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	nodes := l.Trio(vigilBin, c, false, nil)
	client := l.AddClient()
	rs1 := l.AddWebServer("rs1", lab.RealIP1)
	rs2 := l.AddWebServer("rs2", lab.RealIP2)
	l.AddWebServer("sorry", lab.SorryIP)
	vip := lab.VIP + ":80"
	real1, real2, sorry := lab.RealIP1+":80", lab.RealIP2+":80", lab.SorryIP+":80"

	// waitServed polls the client's view until n requests in a row are
	// answered only by the servers in want; it returns how long that took.
	waitServed := func(what string, n int, want ...string) time.Duration {
		t.Helper()
		start := time.Now()
		run := 0
		for run < n {
			body, err := l.Get(client, vip, "/", time.Second)
			if err == nil && contains(want, body) {
				run++
			} else {
				run = 0
			}
			if time.Since(start) > 30*time.Second {
				var text string
				if st, err := nodes["n1"].Client.Status(context.Background()); err == nil {
					_, text = lvsTable(st)
				}
				t.Fatalf("%s: last answer %q (%v), want only %v; n1:\n%s", what, body, err, want, text)
			}
		}
		return time.Since(start)
	}

	waitServed("start", 4, "rs1", "rs2")
	// The table fills as soon as ldirectord started, the group's report
	// reaches the replicated state a commit later (later still when the
	// leadership is on its way to the witness): wait for both, as
	// `status -1` below reads the report.
	st, err := nodes["n1"].WaitStatus(10*time.Second, func(s *api.Status) bool {
		tab, _ := lvsTable(s)
		return tab[real1] == "5 up" && tab[real2] == "5 up" && groupOn(s, "lvs") == "n1"
	})
	if err != nil {
		_, text := lvsTable(st)
		t.Fatalf("n1's table: %v\n%s", err, text)
	}
	_, text := lvsTable(st)
	if !strings.Contains(text, "userspace backend (the kernel has no IPVS") || !strings.Contains(text, "TCP  "+vip+" wlc") {
		t.Errorf("status does not say which backend and why:\n%s", text)
	}
	t.Logf("n1 status:\n%s", text)
	if line, code := control.OneLine(st); code != control.NagiosOK {
		t.Errorf("vigil status -1 on a healthy cluster: %d %s", code, line)
	}

	// wlc over equal weights: a stream of short connections alternates.
	got := map[string]int{}
	for range 20 {
		body, err := l.Get(client, vip, "/", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got[body]++
	}
	if got["rs1"] < 8 || got["rs2"] < 8 {
		t.Errorf("20 requests spread %v, want about 10 each", got)
	}

	// The standby checks too: its table is empty, its health warm.
	if _, err := nodes["n2"].WaitStatus(5*time.Second, func(s *api.Status) bool {
		tab, text := lvsTable(s)
		return strings.Contains(text, "standby") && tab[real1] == "- up" && tab[real2] == "- up"
	}); err != nil {
		t.Errorf("n2 (standby) has no warm health state: %v", err)
	}

	// Real-server alerts: the reals may have failed while the director
	// started (the web servers start after it); once those are told and
	// recovered, every failure below is followed by its recovery.
	settled := func(what string) string {
		t.Helper()
		log, err := lab.WaitFile(events, 5*time.Second, func(s string) bool {
			s = "\n" + s
			return strings.Count(s, "\nfailure ldirectord_www ") == strings.Count(s, "\nup ldirectord_www ")
		})
		if err != nil {
			t.Fatalf("%s: real-server alerts without recovery: %v\n%s", what, err, log)
		}
		return log
	}
	mark := len(settled("start"))

	// A dead real leaves the table within checkinterval × failurecount +
	// checktimeout (2 × 200ms + 10% jitter, + 500ms); the client never
	// notices, as the director hands a refused connection to the other.
	killed := time.Now()
	rs1.Stop()
	if _, err := nodes["n1"].WaitStatus(5*time.Second, func(s *api.Status) bool {
		tab, _ := lvsTable(s)
		return tab[real1] == "- down"
	}); err != nil {
		t.Fatalf("rs1 not taken out: %v", err)
	}
	took := time.Since(killed)
	t.Logf("rs1 out of the table %v after it died", took.Round(time.Millisecond))
	if bound := 2*220*time.Millisecond + 500*time.Millisecond + 500*time.Millisecond; took > bound {
		t.Errorf("removal took %v, more than checkinterval × failurecount + checktimeout (+500ms for status polling) = %v", took, bound)
	}
	waitServed("rs1 down", 6, "rs2")
	rsDown := "failure ldirectord_www http " + real1
	if log, err := lab.WaitFile(events, 5*time.Second, func(s string) bool { return strings.Contains(s, rsDown) }); err != nil {
		t.Errorf("no real-server alert %q: %v\n%s", rsDown, err, log)
	}

	rs1.Start()
	waitServed("rs1 back", 1, "rs1")
	rs1.Stop()
	rs2.Stop()
	waitServed("all down", 3, "sorry")
	st, _ = nodes["n1"].WaitStatus(5*time.Second, func(s *api.Status) bool {
		tab, _ := lvsTable(s)
		return strings.HasPrefix(tab[sorry], "1 ")
	})
	if tab, text := lvsTable(st); !strings.HasPrefix(tab[sorry], "1 ") {
		t.Errorf("fallback not in the table:\n%s", text)
	}
	rs1.Start()
	rs2.Start()
	waitServed("recovered", 4, "rs1", "rs2")
	// Told before the crash below, which would lose alerts queued on n1.
	settled("recovered")

	// Crash the active director: the survivor takes the VIP and directs
	// with the health it already knows.
	l.Crash(nodes["n1"])
	took = waitServed("after crash of n1", 4, "rs1", "rs2")
	t.Logf("served through n2 %v after n1's crash", took.Round(time.Millisecond))
	st, err = nodes["n2"].WaitStatus(5*time.Second, func(s *api.Status) bool {
		tab, text := lvsTable(s)
		return strings.Contains(text, "active") && tab[real1] == "5 up" && tab[real2] == "5 up"
	})
	if err != nil {
		_, text := lvsTable(st)
		t.Fatalf("n2 after takeover: %v\n%s", err, text)
	}
	if line, code := control.OneLine(st); code != control.NagiosWarning || !strings.Contains(line, "node n1 offline") || !strings.Contains(line, "1/1 groups running") {
		t.Errorf("vigil status -1 after the crash: %d %s", code, line)
	}

	// The alerts of the whole run, each exactly once.
	log, err := lab.WaitFile(events, 10*time.Second, func(s string) bool {
		return strings.Contains(s, "failure lvstest node ") && strings.Contains(s, "failure lvs failover ")
	})
	if err != nil {
		t.Fatalf("no node/failover alert: %v\n%s", err, log)
	}
	var heads []string
	for _, line := range strings.Split(log[mark:], "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[0] == "failure" || f[0] == "up") {
			heads = append(heads, f[0]+" "+f[1]+" "+f[2]+" "+f[3])
		}
	}
	count := func(prefix string) (n int) {
		for _, h := range heads {
			if strings.HasPrefix(h, prefix) {
				n++
			}
		}
		return n
	}
	for prefix, want := range map[string]int{
		"failure ldirectord_www http " + real1: 2, // rs1 killed, and again before "all down"
		"up ldirectord_www http " + real1:      2,
		"failure ldirectord_www http " + real2: 1,
		"up ldirectord_www http " + real2:      1,
		"failure lvstest node":                 1,
		"failure lvs failover":                 1,
	} {
		if got := count(prefix); got != want {
			t.Errorf("%d alerts %q, want %d; alerts:\n%s", got, prefix, want, strings.Join(heads, "\n"))
		}
	}
	t.Logf("alerts:\n%s", strings.Join(heads, "\n"))
	if !strings.Contains(log, "node n1 offline") || !strings.Contains(log, "group lvs moved from n1 to n2") {
		t.Errorf("alert summaries:\n%s", log)
	}
	if log, err := lab.WaitFile(links, 5*time.Second, func(s string) bool {
		return strings.Contains(s, "from n2 to n1 down") && strings.Contains(s, "from n3 to n1 down")
	}); err != nil {
		t.Errorf("each survivor tells of its dead links to n1: %v\n%s", err, log)
	}

	var out strings.Builder
	st.ShowStats = true
	control.Render(&out, st)
	if !strings.Contains(out.String(), "InPkts") || !strings.Contains(out.String(), fmt.Sprintf("-> %s", real1)) {
		t.Errorf("--stats view:\n%s", out.String())
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
