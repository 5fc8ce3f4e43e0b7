package lab_test

import (
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/test/lab"
)

// Issue 24 item 3: the userspace director cannot carry live connections
// to another director, but its persistence templates go with the group.
// Sixteen clients (addresses of their own) are pinned, eight to each real
// (the other real down while they first come, so a fresh rr director
// would send half of them elsewhere); the owner replicates its templates
// through Raft; after a crash of the owner (every process killed, links
// down) each client reaches the same real through the survivor.
func TestLVSPersistenceFailover(t *testing.T) {
	l := needLab(t)
	c := &lab.Cluster{Name: "persisttest", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef",
		Resources: lab.LVSResources(), Files: map[string]string{"www.toml": testutil.PersistentWWW(lab.VIP+":80", lab.RealIP1+":80", lab.RealIP2+":80")}, Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	nodes := l.Trio(vigilBin, c, false, nil)
	client := l.AddClient()
	rs := map[string]*lab.WebServer{"rs1": l.AddWebServer("rs1", lab.RealIP1), "rs2": l.AddWebServer("rs2", lab.RealIP2)}
	real := map[string]string{"rs1": lab.RealIP1 + ":80", "rs2": lab.RealIP2 + ":80"}
	vip := lab.VIP + ":80"
	var clients []string
	for i := range 16 {
		ip := fmt.Sprintf("10.77.1.%d", 111+i)
		if out, err := exec.Command("ip", "-n", l.NS(client), "addr", "add", ip+"/24", "dev", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("client address %s: %v %s", ip, err, out)
		}
		clients = append(clients, ip)
	}
	get := func(from string) (string, error) {
		var conn net.Conn
		if err := l.InNS(client, func() (err error) {
			d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			conn, err = d.Dial("tcp", vip)
			return err
		}); err != nil {
			return "", err
		}
		return testutil.HTTPGet(conn, vip, "/", time.Second)
	}
	// health waits until node's table (or, on a standby, its checks)
	// says want of each real.
	health := func(node string, want map[string]string) {
		t.Helper()
		st, err := nodes[node].WaitStatus(10*time.Second, func(s *api.Status) bool {
			tab, _ := lvsTable(s)
			for r, w := range want {
				if tab[real[r]] != w {
					return false
				}
			}
			return true
		})
		if err != nil {
			_, text := lvsTable(st)
			t.Fatalf("%s: want %v: %v\n%s", node, want, err, text)
		}
	}
	if _, err := nodes["n1"].WaitStatus(20*time.Second, func(s *api.Status) bool { return groupOn(s, "lvs") == "n1" }); err != nil {
		t.Fatalf("lvs not running on n1: %v", err)
	}
	health("n1", map[string]string{"rs1": "1 up", "rs2": "1 up"})

	// Pin clients 0-7 to rs1 while rs2 is down, 8-15 to rs2 while rs1 is.
	pinned := map[string]string{}
	for _, phase := range []struct{ down, up string }{{"rs2", "rs1"}, {"rs1", "rs2"}} {
		rs[phase.down].Stop()
		health("n1", map[string]string{phase.down: "0 down", phase.up: "1 up"})
		half := clients[:8]
		if phase.up == "rs2" {
			half = clients[8:]
		}
		for _, cl := range half {
			by, err := get(cl)
			if err != nil || by != phase.up {
				t.Fatalf("client %s with %s down: %q %v", cl, phase.down, by, err)
			}
			pinned[cl] = by
		}
		rs[phase.down].Start()
		health("n1", map[string]string{"rs1": "1 up", "rs2": "1 up"})
	}
	// Both up: persistence keeps each client where it was.
	for _, cl := range clients {
		if by, err := get(cl); err != nil || by != pinned[cl] {
			t.Fatalf("client %s through n1: %q %v, pinned to %s", cl, by, err, pinned[cl])
		}
	}
	// The standby's checks know both reals are up.
	health("n2", map[string]string{"rs1": "- up", "rs2": "- up"})

	// Wait until the replicated templates hold every pinned client: a
	// template that appears is a change, exported within a second or so
	// (a known client's later request only refreshes its template, which
	// is not replicated).
	st, err := nodes["n1"].WaitStatus(10*time.Second, func(s *api.Status) bool {
		g := group(s, "lvs")
		return g != nil && g.Handover["ldirectord_www"].Size >= 16*9
	})
	if err != nil {
		t.Fatalf("templates not replicated: %v", err)
	}
	h := group(st, "lvs").Handover["ldirectord_www"]
	t.Logf("replicated persistence templates: %d bytes at entry %d (from %s)", h.Size, h.Index, h.Node)
	if h.Size < 16*9 || h.Node != "n1" {
		t.Fatalf("replicated state %+v is too small for 16 templates", h)
	}

	crash := l.Crash(nodes["n1"])
	if _, err := nodes["n2"].WaitStatus(20*time.Second, func(s *api.Status) bool { return groupOn(s, "lvs") == "n2" }); err != nil {
		t.Fatalf("lvs not running on n2 after the crash: %v", err)
	}
	took := time.Since(crash)
	same := 0
	for _, cl := range clients {
		var by string
		start := time.Now()
		for {
			by, err = get(cl)
			if err == nil || time.Since(start) > 10*time.Second {
				break
			}
		}
		if err != nil {
			t.Fatalf("client %s after the failover: %v", cl, err)
		}
		if by == pinned[cl] {
			same++
		} else {
			t.Errorf("client %s reached %s after the failover, pinned to %s", cl, by, pinned[cl])
		}
	}
	t.Logf("after the crash of n1 (group on n2 %v later): %d of %d persistent clients reached the same real server", took.Round(time.Millisecond), same, len(clients))
}
