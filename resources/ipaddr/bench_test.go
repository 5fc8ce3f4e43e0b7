package ipaddr_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/resources/ipaddr"
)

// benchLab is a namespace with a veth interface carrying `existing`
// addresses besides the host's own, as a director with that many VIPs
// already up looks to the next operation.
func benchLab(b *testing.B, existing int) (string, *ipaddr.IPaddr) {
	b.Helper()
	nn := nstest.NewNetns(b)
	ns := nn.Add("b")
	nn.Run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	nn.Run("ip", "-n", ns, "link", "set", "eth0p", "up")
	nn.Run("ip", "-n", ns, "link", "set", "eth0", "up")
	nn.Run("ip", "-n", ns, "addr", "add", "10.80.0.1/16", "dev", "eth0")
	var batch strings.Builder
	for i := range existing {
		fmt.Fprintf(&batch, "addr add 10.81.%d.%d/16 dev eth0\n", i/250, 1+i%250)
	}
	ipBatch(b, ns, batch.String())
	r := ipaddr.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Cleanup(func() { _ = nstest.InNS(ns, func() error { r.Close(); return nil }) })
	return ns, r
}

// ipBatch feeds commands to `ip -n ns -batch -`.
func ipBatch(tb testing.TB, ns, cmds string) {
	tb.Helper()
	if cmds == "" {
		return
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(cmds)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("ip -batch: %v", err)
	}
}

func benchVIP(i int) map[string]string {
	return map[string]string{"ip": fmt.Sprintf("10.80.%d.%d", 100+i/250%100, 1+i%250), "arp_count": "1", "arp_repeat": "0"}
}

func wantCode(what string, res *pb.Result, err error, want pb.Code) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if res.Code != want {
		return fmt.Errorf("%s: %s %s, want %s", what, res.Code, res.Reason, want)
	}
	return nil
}

// inNS runs the benchmark loop f inside ns (on the benchmark's own
// goroutine a Fatal would not be allowed from there).
func inNS(b *testing.B, ns string, f func() error) {
	b.Helper()
	if err := nstest.InNS(ns, f); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOps measures one start, monitor and stop of a VIP on a node
// that already holds 10, 100 or 1,000 addresses:
//
//	go test -run '^$' -bench BenchmarkOps -benchtime 200x ./resources/ipaddr/
func BenchmarkOps(b *testing.B) {
	for _, existing := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			ns, r := benchLab(b, existing)
			ctx := context.Background()
			inst := func(i int) *pb.Instance {
				return &pb.Instance{Id: fmt.Sprintf("vip%d", i), Type: "IPaddr", Params: benchVIP(i)}
			}
			// startStop starts and stops a VIP b.N times and times only
			// the operation named timed.
			ops := []struct {
				name string
				do   func(context.Context, *pb.Instance) (*pb.Result, error)
			}{{"start", r.Start}, {"stop", r.Stop}}
			startStop := func(b *testing.B, timed string) {
				inNS(b, ns, func() error {
					for i := range b.N {
						for _, op := range ops {
							if op.name != timed {
								b.StopTimer()
							}
							res, err := op.do(ctx, inst(i))
							if err := wantCode(op.name, res, err, pb.Code_SUCCESS); err != nil {
								return err
							}
							b.StartTimer()
						}
					}
					return nil
				})
			}
			b.Run("start", func(b *testing.B) { startStop(b, "start") })
			b.Run("monitor", func(b *testing.B) {
				inNS(b, ns, func() error {
					b.StopTimer()
					res, err := r.Start(ctx, inst(0))
					if err := wantCode("start", res, err, pb.Code_SUCCESS); err != nil {
						return err
					}
					b.StartTimer()
					for range b.N {
						res, err := r.Monitor(ctx, inst(0))
						if err := wantCode("monitor", res, err, pb.Code_SUCCESS); err != nil {
							return err
						}
					}
					b.StopTimer()
					res, err = r.Stop(ctx, inst(0))
					return wantCode("stop", res, err, pb.Code_SUCCESS)
				})
			})
			b.Run("stop", func(b *testing.B) { startStop(b, "stop") })
		})
	}
}

// BenchmarkFailover measures 1,000 VIPs started at once (as the daemon
// does on failover: one start per group, all concurrent), then stopped at
// once. The operations run in a process inside the namespace, as the
// plugin does, not on a thread switched into it per operation (1,000
// threads locked to their goroutines would measure the Go scheduler's
// handoffs between OS threads instead). start-ns and stop-ns are for the
// whole pass of 1,000:
//
//	go test -run '^$' -bench BenchmarkFailover -benchtime 3x ./resources/ipaddr/
func BenchmarkFailover(b *testing.B) {
	ns, _ := benchLab(b, 0)
	var starts, stops time.Duration
	for range b.N {
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestFailoverInNamespace$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "IPADDR_FAILOVER_VIPS=1000")
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		var st, sp time.Duration
		i := strings.Index(string(out), "failover:")
		if i < 0 {
			b.Fatalf("no figures in\n%s", out)
		}
		if _, err := fmt.Sscanf(string(out[i:]), "failover: starts %d stops %d", &st, &sp); err != nil {
			b.Fatalf("%v in\n%s", err, out)
		}
		starts += st
		stops += sp
	}
	b.ReportMetric(float64(starts.Nanoseconds())/float64(b.N), "start-ns/op")
	b.ReportMetric(float64(stops.Nanoseconds())/float64(b.N), "stop-ns/op")
}

// TestFailoverInNamespace is BenchmarkFailover's process in the namespace.
func TestFailoverInNamespace(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IPADDR_FAILOVER_VIPS"))
	if n == 0 {
		t.Skip("run by BenchmarkFailover inside its namespace")
	}
	r := ipaddr.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer r.Close()
	ctx := context.Background()
	all := func(op func(context.Context, *pb.Instance) (*pb.Result, error)) time.Duration {
		t0 := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				res, err := op(ctx, &pb.Instance{Id: fmt.Sprintf("vip%d", i), Type: "IPaddr", Params: benchVIP(i)})
				if err := wantCode("op", res, err, pb.Code_SUCCESS); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		return time.Since(t0)
	}
	// The first operation opens the view: not part of a failover.
	if res, err := r.Monitor(ctx, &pb.Instance{Id: "vip0", Type: "IPaddr", Params: benchVIP(0)}); err != nil || res.Code != pb.Code_NOT_RUNNING {
		t.Fatalf("first monitor: %v %v", res, err)
	}
	starts := all(r.Start)
	stops := all(r.Stop)
	fmt.Printf("failover: starts %d stops %d\n", starts.Nanoseconds(), stops.Nanoseconds())
}

// BenchmarkAddressLifetime measures how late past its lifetime the
// kernel removes an address nobody extends — the bound a node's peers
// wait for with address_lifetime (plugins.AddressLifetimeSlack). Each
// round adds 50 addresses with a 1 s lifetime at spread instants and
// times their removal from a netlink subscription. Run it with the
// machine as loaded as production may be: `make bench-lifetime`.
func BenchmarkAddressLifetime(b *testing.B) {
	const n, life = 50, time.Second
	ns, _ := benchLab(b, 0)
	h, err := netns.GetFromName(ns)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	var late []time.Duration
	for range b.N {
		ch, done := make(chan netlink.AddrUpdate, 4*n), make(chan struct{})
		if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{Namespace: &h}); err != nil {
			b.Fatal(err)
		}
		added := map[string]time.Time{}
		var batch strings.Builder
		for i := range n {
			// Spread over one second: the kernel's worker runs at most once
			// a second, so where an expiry falls in its cycle matters.
			time.Sleep(life / n) // the spread is the point, not a wait
			ip := fmt.Sprintf("10.80.200.%d", i+1)
			batch.Reset()
			fmt.Fprintf(&batch, "addr add %s/32 dev eth0 valid_lft 1 preferred_lft 1\n", ip)
			added[ip] = time.Now()
			ipBatch(b, ns, batch.String())
		}
		deadline := time.After(life + 10*time.Second)
		for len(added) > 0 {
			select {
			case u := <-ch:
				if t0, ok := added[u.LinkAddress.IP.String()]; ok && !u.NewAddr {
					late = append(late, time.Since(t0)-life)
					delete(added, u.LinkAddress.IP.String())
				}
			case <-deadline:
				b.Fatalf("%d addresses outlived their lifetime by 10 s", len(added))
			}
		}
		close(done)
	}
	slices.Sort(late)
	b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "late-p50-ms")
	b.ReportMetric(float64(late[len(late)*99/100].Microseconds())/1000, "late-p99-ms")
	b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "late-max-ms")
	b.ReportMetric(float64(late[0].Microseconds())/1000, "late-min-ms")
}

// BenchmarkRelease times Release of n held VIPs (host prefixes, the
// usual VIP), what a node whose lease ran out does and what its peers'
// takeover waits for (ReleaseTime, lease.ReleasedAt), per VIP released;
// est-ns/VIP is the estimate it left for the next one.
//
//	go test -run '^$' -bench BenchmarkRelease -benchtime 5x ./resources/ipaddr/
func BenchmarkRelease(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			ns, r := benchLab(b, 0)
			ctx := context.Background()
			var took time.Duration
			for range b.N {
				inNS(b, ns, func() error {
					for i := range n {
						p := benchVIP(i)
						p["cidr_netmask"] = "32"
						res, err := r.Start(ctx, &pb.Instance{Id: fmt.Sprintf("vip%d", i), Type: "IPaddr", Params: p})
						if err := wantCode("start", res, err, pb.Code_SUCCESS); err != nil {
							return err
						}
					}
					t0 := time.Now()
					ids := r.Release(ctx)
					took += time.Since(t0)
					if len(ids) != n {
						return fmt.Errorf("released %d VIPs, want %d", len(ids), n)
					}
					return nil
				})
			}
			b.ReportMetric(float64(took.Nanoseconds())/float64(b.N*n), "ns/VIP")
			b.ReportMetric(float64(r.DeleteCost().Nanoseconds()), "est-ns/VIP")
		})
	}
}
