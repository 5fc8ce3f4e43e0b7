package lab_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/test/lab"
)

// BenchmarkVIPFailover is `make bench-failover`: the VIP lab (directors n1
// and n2, witness n3, a client on the same bridge) with a probe client
// that opens a new TCP connection to VIP:80 and makes a small request
// every 10 ms with a 50 ms timeout (VIGIL_PROBE="2ms/10ms" for a finer
// probe). The outage of one event is the time from the first failed probe
// to the first answer after it; 0 when no probe failed. One op is one
// event: run with -benchtime=10x. Kinds:
//
//	crash     kill -9 every process of the active director and set its links down at once
//	graceful  SIGTERM to the active director's daemon
//	move      `vigil move web OTHER`
//	failback  the preferred director (n1) returns, with auto_failback on
//	idle      no event: each node's CPU time (daemon and plugins) over a
//	          window of VIGIL_IDLE_WINDOW (default 10 s), per 30 s, and RSS
func BenchmarkVIPFailover(b *testing.B) {
	every, timeout := probeTiming(b)
	// deadtime is the default (timing.DefaultDeadtime): VRRP's
	// master-down interval, keepalived's detection at the same beat.
	for _, ka := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond} {
		tc := struct{ ka, dt time.Duration }{ka, timing.DefaultDeadtime(ka)}
		for _, kind := range []string{"idle", "crash", "graceful", "move", "failback"} {
			b.Run(fmt.Sprintf("keepalive=%s/deadtime=%s/%s", tc.ka, tc.dt, kind), func(b *testing.B) {
				benchVIP(b, tc.ka, tc.dt, kind, every, timeout)
			})
		}
	}
}

// probeTiming is the probe's interval and timeout: 10 ms and 50 ms, or
// VIGIL_PROBE="EVERY/TIMEOUT".
func probeTiming(b *testing.B) (every, timeout time.Duration) {
	every, timeout = 10*time.Millisecond, 50*time.Millisecond
	if v := os.Getenv("VIGIL_PROBE"); v != "" {
		e, t, _ := strings.Cut(v, "/")
		var err1, err2 error
		every, err1 = time.ParseDuration(e)
		timeout, err2 = time.ParseDuration(t)
		if err1 != nil || err2 != nil {
			b.Fatalf("VIGIL_PROBE=%q: want EVERY/TIMEOUT, like 2ms/10ms", v)
		}
	}
	return every, timeout
}

func benchVIP(b *testing.B, ka, dt time.Duration, kind string, every, timeout time.Duration) {
	if why := lab.Available(); why != "" {
		b.Skip(why)
	}
	l := lab.New(b)
	if kind == "idle" {
		l.LogLevel = "info" // as operators run it
	}
	// handover: a planned hand-over forwards what still reaches the old
	// director to the new one (docs/SAFETY.md).
	c := &lab.Cluster{Name: "vipbench", Keepalive: ka, Deadtime: dt, Secret: "bench-secret-0123456789abcdef",
		Resources: lab.VIPResources(`, handover = "1s"`), Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	if kind == "failback" {
		c.Extra = "auto_failback = true"
	}
	profiles := os.Getenv("VIGIL_IDLE_PROFILE")
	if kind == "idle" && profiles != "" {
		c.Extra = "metrics_listen = \"127.0.0.1:9464\"\nmetrics_pprof = true"
	}
	nodes := l.Trio(vigilBin, c, false, nil)
	client := l.AddClient()
	l.Serve("n1")
	l.Serve("n2")
	sampler := l.StartVIPSampler(time.Millisecond, "n1", "n2")
	probe := l.StartProber(client, every, timeout)
	other := map[string]string{"n1": "n2", "n2": "n1"}

	// steady waits until owner runs web, every node is online, the witness
	// leads, and the client reaches the VIP on owner.
	steady := func(run int, owner string) {
		since := time.Now()
		if _, err := nodes["n3"].WaitStatus(60*time.Second, func(s *api.Status) bool {
			if groupOn(s, "web") != owner || s.Core.Leader != "n3" {
				return false
			}
			for _, n := range s.Core.State.Nodes {
				if !n.Online {
					return false
				}
			}
			return true
		}); err != nil {
			b.Fatalf("run %d: %v", run, err)
		}
		if _, err := probe.WaitAnswer(since, owner, 30*time.Second); err != nil {
			b.Fatalf("run %d: %v", run, err)
		}
	}

	if kind == "idle" {
		steady(0, "n1")
		if profiles != "" {
			done := profileDaemons(b, l, profiles, fmt.Sprintf("%s-", ka), "n1", "n2", "n3")
			defer done()
		}
		reportIdle(b, map[string]*lab.Node{"n1": nodes["n1"], "n2": nodes["n2"], "n3": nodes["n3"]})
		return
	}

	var outages []time.Duration
	var failedProbes []int
	owner := "n1"
	b.ResetTimer()
	for run := 0; run < b.N; run++ {
		b.StopTimer()
		if kind == "failback" {
			// Take the preferred director out and let the group settle on
			// n2; the event is n1's return.
			steady(run, "n1")
			nodes["n1"].Proc.Stop(30 * time.Second)
			if _, err := probe.WaitAnswer(time.Now(), "n2", 30*time.Second); err != nil {
				b.Fatalf("run %d: %v", run, err)
			}
		} else {
			steady(run, owner)
		}
		time.Sleep(rand.N(ka)) // a random phase of the heartbeat cycle
		b.StartTimer()
		t0 := time.Now()
		next := other[owner]
		switch kind {
		case "crash":
			sampler.SetDown(owner, true)
			l.Crash(nodes[owner])
		case "graceful":
			nodes[owner].Proc.Stop(30 * time.Second)
		case "move":
			if err := nodes["n3"].Client.Command(context.Background(), api.Command{Op: "move", Group: "web", Node: next}); err != nil {
				b.Fatalf("run %d: move: %v", run, err)
			}
		case "failback":
			l.Restart(vigilBin, nodes["n1"])
			next = "n1"
		}
		if _, err := probe.WaitAnswer(t0, next, 60*time.Second); err != nil {
			b.Fatalf("run %d: %s: %v", run, kind, err)
		}
		// Let a possibly still failing probe finish before reading.
		time.Sleep(timeout)
		b.StopTimer()
		outage, failed := lab.Outage(probe.Results(), t0)
		outages = append(outages, outage)
		failedProbes = append(failedProbes, failed)
		b.Logf("run %d: %s of %s: outage %s, %d failed probes", run, kind, owner, outage.Round(time.Millisecond), failed)
		for _, r := range probe.Results() {
			if r.At.After(t0) && !r.OK {
				b.Logf("  probe at +%s failed: %s", r.At.Sub(t0).Round(time.Millisecond), r.Err)
			}
		}
		switch kind {
		case "crash":
			l.Reboot(vigilBin, nodes[owner])
			sampler.SetDown(owner, false)
		case "graceful":
			l.Restart(vigilBin, nodes[owner])
		}
		if kind != "failback" {
			owner = next
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportOutages(b, kind, outages, failedProbes, sampler, true)
}

// reportIdle reports each node's CPU time (its process and all its
// descendants: a daemon and its plugins) per 30 s over one window of
// VIGIL_IDLE_WINDOW (default 10 s), as "NODE-cpu-s/30s"; its RSS as
// "NODE-rss-MB" (the processes' sum), "NODE-daemon-rss-MB" (the root
// process alone) and "NODE-pss-MB" (shared pages split: a daemon and its
// plugins run one binary). The window does not depend on b.N.
func reportIdle(b *testing.B, nodes map[string]*lab.Node) {
	window := idleWindow(b)
	before := map[string]lab.ProcSample{}
	for name, n := range nodes {
		before[name] = sampleNode(b, n)
	}
	start := time.Now()
	time.Sleep(window) // the measurement window itself
	elapsed := time.Since(start)
	for name, n := range nodes {
		after := sampleNode(b, n)
		b.ReportMetric(after.CPUSince(before[name])*float64(30*time.Second)/float64(elapsed), name+"-cpu-s/30s")
		b.ReportMetric(float64(after.SwitchesSince(before[name]))/elapsed.Seconds(), name+"-switches/s")
		b.Logf("%s while idle: %s", name, after.Breakdown(before[name], elapsed))
		b.ReportMetric(after.RSS()/(1<<20), name+"-rss-MB")
		b.ReportMetric(after.RootRSS()/(1<<20), name+"-daemon-rss-MB")
		b.ReportMetric(after.PSS()/(1<<20), name+"-pss-MB")
	}
}

// profileDaemons fetches a CPU profile of each node's daemon over the
// idle window (VIGIL_IDLE_WINDOW) into dir/PREFIXNODE.pprof, from the
// metrics listener in the node's namespace; done waits for them.
func profileDaemons(b *testing.B, l *lab.Lab, dir, prefix string, names ...string) (done func()) {
	window := idleWindow(b)
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Dialled here, on the namespace's thread: http.Client would
			// dial on a goroutine of its own, in the host's namespace.
			var conn net.Conn
			err := l.InNS(name, func() (err error) {
				conn, err = net.Dial("tcp", "127.0.0.1:9464")
				return err
			})
			if err == nil {
				client := http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}}
				url := fmt.Sprintf("http://127.0.0.1:9464/debug/pprof/profile?seconds=%d", int(window.Seconds()))
				err = func() error {
					resp, err := client.Get(url)
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					f, err := os.Create(filepath.Join(dir, prefix+name+".pprof"))
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = io.Copy(f, resp.Body)
					return err
				}()
			}
			if err != nil {
				b.Errorf("profile of %s: %v", name, err)
			}
		}()
	}
	return wg.Wait
}

// idleWindow is VIGIL_IDLE_WINDOW, 10 s by default.
func idleWindow(b *testing.B) time.Duration {
	return envDuration(b, "VIGIL_IDLE_WINDOW", 10*time.Second)
}
