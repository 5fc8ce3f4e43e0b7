package mon

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchServerEnv makes the test binary a TCP server that accepts and
// closes (port in the variable), so the scheduler's CPU is measured alone.
const benchServerEnv = "VIGIL_MON_BENCH_SERVER"

func init() {
	if port := os.Getenv(benchServerEnv); port != "" {
		l, err := net.Listen("tcp", "0.0.0.0:"+port)
		if err != nil {
			os.Exit(1)
		}
		for {
			c, err := l.Accept()
			if err == nil {
				c.Close()
			}
		}
	}
}

func cpuTimes() (self, children time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return self, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScheduler runs 1,000 hosts (distinct 127.x.y.z addresses, one
// listening process) at interval 1s for a 5 s window and reports the CPU
// per second of wall time (own and of child processes) and host checks
// per second: the built-in tcp monitor as one service over 1,000 hosts and
// as 1,000 one-host services, and Debian's tcp.monitor as 1,000 one-host
// services — mon 1.3.6's cost, a Perl process per service run.
func BenchmarkScheduler(b *testing.B) {
	const port = "18199"
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), benchServerEnv+"="+port)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			b.Fatal("bench server did not start")
		}
		time.Sleep(10 * time.Millisecond) // waiting for another process to listen
	}
	host := func(i int) string { return fmt.Sprintf("127.1.%d.%d", i/250, 1+i%250) }
	for _, tc := range []struct {
		name, monitor string
		perService    bool
	}{
		{"builtin-tcp/1-service-1000-hosts", "tcp -p " + port, false},
		{"builtin-tcp/1000-services", "tcp -p " + port, true},
		{"debian-tcp.monitor/1000-services", "tcp.monitor -p " + port + " -t 5", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if strings.HasPrefix(tc.monitor, "tcp.monitor") {
				if _, err := os.Stat(monD + "/tcp.monitor"); err != nil {
					b.Skip("Debian's mon is not installed")
				}
			}
			var src strings.Builder
			period := "    [[watch.service.period]]\n    alert = [\"log\"]\n"
			if tc.perService {
				for i := range 1000 {
					fmt.Fprintf(&src, "[[watch]]\ngroup = %q\n  [[watch.service]]\n  name = \"tcp\"\n  interval = \"1s\"\n  timeout = \"5s\"\n  monitor = %q\n%s", host(i), tc.monitor, period)
				}
			} else {
				src.WriteString("[hostgroup]\nall = [")
				for i := range 1000 {
					fmt.Fprintf(&src, "%q,", host(i))
				}
				fmt.Fprintf(&src, "]\n[[watch]]\ngroup = \"all\"\n  [[watch.service]]\n  name = \"tcp\"\n  interval = \"1s\"\n  monitor = %q\n%s", tc.monitor, period)
			}
			in := instance(b, src.String())
			for range b.N {
				e := NewEngine(in, Options{})
				time.Sleep(1500 * time.Millisecond) // past the first runs: measure the steady state
				s0, c0 := cpuTimes()
				r0, t0 := e.Runs(), time.Now()
				time.Sleep(5 * time.Second)
				s1, c1 := cpuTimes()
				runs, wall := e.Runs()-r0, time.Since(t0)
				failing := 0
				for _, st := range e.Status() {
					if !st.OK {
						failing++
					}
				}
				e.Close()
				hosts := float64(runs)
				if !tc.perService {
					hosts *= 1000
				}
				b.ReportMetric(hosts/wall.Seconds(), "host-checks/s")
				b.ReportMetric(float64((s1-s0).Milliseconds())/wall.Seconds(), "self-cpu-ms/s")
				b.ReportMetric(float64((c1-c0).Milliseconds())/wall.Seconds(), "child-cpu-ms/s")
				b.ReportMetric(float64(failing), "failing-services")
			}
		})
	}
}
