package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/timing"
)

// BenchmarkForwardApply measures commands forwarded from a follower to
// the leader by many goroutines at once (a failover pass's claims and
// reports): b.N applies spread over 50 goroutines (and one, for the latency alone) on one follower of a
// three-node cluster over TLS on loopback. Reported: applies per second,
// median and p95 latency of one apply, Raft entries per apply, coalesced
// barriers and forwarding connections dialled in all. barrier=each is the
// leader issuing one barrier per apply, as before they were coalesced.
func BenchmarkForwardApply(b *testing.B) {
	for _, tc := range []struct {
		ka, dt      time.Duration
		workers     int
		barrierEach bool
	}{
		{100 * time.Millisecond, 500 * time.Millisecond, 1, false},
		{100 * time.Millisecond, 500 * time.Millisecond, 50, false},
		{100 * time.Millisecond, 500 * time.Millisecond, 50, true},
	} {
		barrier := "coalesced"
		if tc.barrierEach {
			barrier = "each"
		}
		b.Run(fmt.Sprintf("keepalive=%s/deadtime=%s/goroutines=%d/barrier=%s", tc.ka, tc.dt, tc.workers, barrier), func(b *testing.B) {
			quiet := func(string) *slog.Logger { return slog.New(slog.DiscardHandler) }
			ms := startCluster(b, 3, TimingFor(timing.Timing{Keepalive: tc.ka, Deadtime: tc.dt}), quiet)
			leader := waitLeader(b, ms)
			follower := ms[0]
			if follower == leader {
				follower = ms[1]
			}
			leader.node.barrierEach = tc.barrierEach
			for _, m := range ms {
				m.node.boot.Wait() // its probes are done
			}
			cmd, _ := fsm.Encode(fsm.TypeNodeState, fsm.NodeState{Node: "n1"})
			// One forwarded apply first, so that the timed part does not
			// include the follower learning its leader.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := follower.node.Apply(ctx, cmd); err != nil && !errors.Is(err, ErrRefused) {
				b.Fatal(err)
			}
			workers := tc.workers
			lat := make([]time.Duration, b.N)
			var next sync.Mutex
			i := 0
			errs := make(chan error, workers)
			var wg sync.WaitGroup
			dials0, barriers0, index0 := follower.node.Forwarding().Dialled, leader.node.barriers.count.Load(), leader.node.raft().LastIndex()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			start := time.Now()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						next.Lock()
						k := i
						i++
						next.Unlock()
						if k >= b.N {
							return
						}
						t0 := time.Now()
						if err := follower.node.Apply(ctx, cmd); err != nil && !errors.Is(err, ErrRefused) {
							errs <- err
							return
						}
						lat[k] = time.Since(t0)
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			cpu := cpuTime(b) - cpu0
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			slices.Sort(lat)
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "applies/s")
			b.ReportMetric(us(lat[len(lat)/2]), "median-µs")
			b.ReportMetric(us(lat[len(lat)*95/100]), "p95-µs")
			// CPU of the whole process (the three nodes) per apply.
			b.ReportMetric(us(cpu)/float64(b.N), "cpu-µs/op")
			// Entries per apply: 1 is the command alone, 2 a barrier each.
			b.ReportMetric(float64(leader.node.raft().LastIndex()-index0)/float64(b.N), "entries/op")
			b.ReportMetric(float64(leader.node.barriers.count.Load()-barriers0), "barriers")
			b.ReportMetric(float64(follower.node.Forwarding().Dialled-dials0), "dials")
		})
	}
}

// cpuTime is the user and system CPU time of this process.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
