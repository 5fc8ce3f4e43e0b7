package lab_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/test/lab"
)

// benchLab builds nodes n1..nN on one bridge, heartbeating by unicast and
// broadcast, and returns a function that starts node i.
func benchLab(b *testing.B, nodes int, ka, dt time.Duration) func(i int) *lab.Node {
	if why := lab.Available(); why != "" {
		b.Skip(why)
	}
	l := lab.New(b)
	l.AddNS("sw")
	l.Bridge("sw", "br0")
	c := &lab.Cluster{Name: "bench", Keepalive: ka, Deadtime: dt, Initdead: 10 * time.Second, Secret: "bench-secret-0123456789abcdef"}
	for i := 1; i <= nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		c.Nodes = append(c.Nodes, lab.NodeSpec{Name: name, Address: fmt.Sprintf("10.78.0.%d", i)})
		l.AddNS(name)
		l.Wire(name, "eth0", "sw", "br0", fmt.Sprintf("10.78.0.%d/24", i))
	}
	media := "[[ucast]]\nport = 6940\n\n[[bcast]]\ninterface = \"eth0\"\nport = 6941\n"
	return func(i int) *lab.Node {
		name := fmt.Sprintf("n%d", i)
		return l.StartDaemon(vigilBin, name, name, l.WriteConfig(c, name, media, ""))
	}
}

// BenchmarkDetection measures how long after a kill -9 a peer is declared
// dead: from the kill to the timestamp of the observer's node-dead event.
// One op is one kill: run with -benchtime=Nx.
func BenchmarkDetection(b *testing.B) {
	for _, tc := range []struct{ ka, dt time.Duration }{
		{10 * time.Millisecond, 50 * time.Millisecond},
		{100 * time.Millisecond, 500 * time.Millisecond},
	} {
		b.Run(fmt.Sprintf("keepalive=%s/deadtime=%s", tc.ka, tc.dt), func(b *testing.B) {
			start := benchLab(b, 2, tc.ka, tc.dt)
			evs := events(b, start(1))
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				victim := start(2)
				waitEvent(b, evs, membership.NodeUp, "n2", "", 30*time.Second)
				// Kill at a random phase of the heartbeat cycle, as a
				// real crash would.
				time.Sleep(3*tc.ka + rand.N(tc.ka))
				killed := time.Now()
				victim.Proc.Kill()
				dead, _ := waitEvent(b, evs, membership.NodeDead, "n2", "", 30*time.Second)
				lat = append(lat, dead.Time.Sub(killed))
			}
			reportLatencies(b, lat, 99)
		})
	}
}

// BenchmarkIdle measures one daemon's CPU time and memory while it
// heartbeats with three peers at keepalive 10 ms over two media, for a
// window of VIGIL_BENCH_WINDOW (default 30s). Run with -benchtime=1x.
func BenchmarkIdle(b *testing.B) {
	window := 30 * time.Second
	if v := os.Getenv("VIGIL_BENCH_WINDOW"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			window = d
		}
	}
	start := benchLab(b, 4, 10*time.Millisecond, 50*time.Millisecond)
	nodes := []*lab.Node{start(1), start(2), start(3), start(4)}
	if _, err := nodes[0].WaitStatus(10*time.Second, func(st *api.Status) bool {
		for _, p := range []string{"n2", "n3", "n4"} {
			if n := lab.Peer(st, p); n == nil || n.State != "up" {
				return false
			}
		}
		return true
	}); err != nil {
		b.Fatal(err)
	}
	pid := nodes[0].Proc.Cmd.Process.Pid
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "vigil" {
		b.Fatalf("pid %d is %q, not the daemon", pid, comm)
	}
	var cpu float64
	for i := 0; i < b.N; i++ {
		before := cpuSeconds(b, pid)
		time.Sleep(window) // the measurement window itself
		cpu += cpuSeconds(b, pid) - before
	}
	st, err := nodes[0].Client.Status(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []string{"n2", "n3", "n4"} {
		if lab.Peer(st, p).State != "up" {
			b.Fatalf("%s went down during the window", p)
		}
	}
	b.ReportMetric(cpu/float64(b.N)*float64(30*time.Second)/float64(window), "cpu-s/30s")
	b.ReportMetric(statusKB(b, pid, "VmRSS")/1024, "rss-MB")
	b.ReportMetric(statusKB(b, pid, "VmHWM")/1024, "peak-rss-MB")
}

// cpuSeconds reads utime+stime of pid from /proc.
func cpuSeconds(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	stt, _ := strconv.ParseFloat(f[12], 64)
	return (ut + stt) / 100
}

func statusKB(b *testing.B, pid int, key string) float64 {
	v, err := lab.ProcKB(pid, "status", key)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkFailover measures, in the three-node lab, the time from a
// crash of the group's owner (kill -9 and both links cut at once) to the
// successful start of the group's first resource on another node, as the
// Dummy journal records it. One op is one crash: run with -benchtime=20x.
// "witness" runs a director pair plus a witness (n3), where the Raft
// leader sits on the witness; "three" runs three members.
func BenchmarkFailover(b *testing.B) {
	for _, tc := range []struct{ ka, dt time.Duration }{
		{10 * time.Millisecond, 50 * time.Millisecond},
		{100 * time.Millisecond, 500 * time.Millisecond},
	} {
		for _, topo := range []string{"witness", "three", "two_node"} {
			b.Run(fmt.Sprintf("keepalive=%s/deadtime=%s/%s", tc.ka, tc.dt, topo), func(b *testing.B) {
				benchFailover(b, tc.ka, tc.dt, topo)
			})
		}
	}
}

func benchFailover(b *testing.B, ka, dt time.Duration, topo string) {
	if why := lab.Available(); why != "" {
		b.Skip(why)
	}
	l := lab.New(b)
	work := b.TempDir()
	c := &lab.Cluster{Name: "failover", Keepalive: ka, Deadtime: dt, Secret: "bench-secret-0123456789abcdef",
		Resources: lab.DummyResources(work, "g", "n1", `, interval = "1s"`, "d1")}
	members := []string{"n1", "n2", "n3"}
	witness := topo == "witness"
	if witness {
		c.Nodes = []lab.NodeSpec{{Name: "n3", Role: "witness"}}
		members = []string{"n1", "n2"}
	}
	observer := "n3"
	var nodes map[string]*lab.Node
	if topo == "two_node" {
		c.Extra = "two_node = true\nping_nodes = [\"" + lab.PingNode + "\"]\n"
		members, observer = []string{"n1", "n2"}, "n2"
		nodes = l.Pair(vigilBin, c)
	} else {
		nodes = l.Trio(vigilBin, c, false, nil)
	}
	owner := "n1"
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		if _, err := nodes[observer].WaitStatus(30*time.Second, func(s *api.Status) bool {
			if runningOn(s) != owner || !s.Core.HoldsLease || witness && s.Core.Leader != "n3" {
				return false // with a witness, the steady state has the leader there
			}
			if p := s.Core.Pair; p != nil && (len(s.Core.Voters) != 2 || len(p.TieBreak.Ping) == 0 || !p.TieBreak.Ping[0].Up) {
				return false // a pair has merged again and reaches its ping node
			}
			for _, n := range s.Core.State.Nodes {
				if !n.Online {
					return false
				}
			}
			return true
		}); err != nil {
			b.Fatalf("run %d: %v", i, err)
		}
		before, _ := lab.ReadJournal(work, "d1")
		time.Sleep(rand.N(ka)) // a random phase of the heartbeat cycle
		crash := time.Now()
		nodes[owner].Proc.Kill()
		l.Isolate(owner, true)
		var started lab.Op
		deadline := time.Now().Add(30 * time.Second)
		for started.Node == "" {
			ops, _ := lab.ReadJournal(work, "d1")
			for _, o := range ops[min(len(before), len(ops)):] {
				if o.Op == "start" && o.Result == "success" && o.Node != owner {
					started = o
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("run %d: no start after the crash of %s", i, owner)
			}
			time.Sleep(time.Millisecond) // polling the journal file
		}
		lat = append(lat, started.Time.Sub(crash))
		b.Logf("run %d: crashed %s, %s started d1 after %s", i, owner, started.Node, started.Time.Sub(crash).Round(time.Millisecond))
		if started.Time.Sub(crash) > 3*dt {
			// An outlier: what the new owner did meanwhile.
			if log, err := os.ReadFile(nodes[started.Node].Proc.LogPath); err == nil {
				fmt.Fprintf(os.Stderr, "slow run %d, log of %s:\n%s\n", i, started.Node, logSince(string(log), crash))
			}
		}
		l.Isolate(owner, false)
		l.Restart(vigilBin, nodes[owner])
		if witness {
			owner = started.Node
		} else {
			// The observer must not be the next victim.
			owner = started.Node
			for _, m := range members {
				if m != owner {
					observer = m
				}
			}
		}
	}
	reportLatencies(b, lat, 95)
}

// reportLatencies reports the minimum, median, pct-th percentile and
// maximum of lat (sorted in place), in milliseconds.
func reportLatencies(b *testing.B, lat []time.Duration, pct int) {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[0]), "min-ms")
	b.ReportMetric(ms(lat[len(lat)/2]), "median-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*pct/100)]), fmt.Sprintf("p%d-ms", pct))
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

// logSince returns the non-debug lines of a daemon log from t on.
func logSince(log string, t time.Time) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		ts, _, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if ok && err == nil && !at.Before(t) && !strings.Contains(line, "level=DEBUG") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
