package ldirectord

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchServerEnv makes the test binary a loopback web server (port in the
// variable) so that the benchmarks' CPU figures are the checker's alone.
// It answers every request with the test page from a canned response:
// at 10,000 connections a second a full net/http server on the other core
// would be what limits the rate, not the checker measured.
const benchServerEnv = "VIGIL_BENCH_SERVER"

func init() {
	port := os.Getenv(benchServerEnv)
	if port == "" {
		return
	}
	l, err := net.Listen("tcp", "0.0.0.0:"+port)
	if err != nil {
		os.Exit(1)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntest page")
	for {
		c, err := l.Accept()
		if err != nil {
			continue // out of descriptors for a moment: the clients retry
		}
		go func() {
			defer c.Close()
			var buf [1024]byte
			for n := 0; n < len(buf); {
				k, err := c.Read(buf[n:])
				n += k
				if err != nil || bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
					break
				}
			}
			_, _ = c.Write(resp)
		}()
	}
}

func benchServer(b *testing.B, port string) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), benchServerEnv+"="+port)
	if err := startOffCore(cmd); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return
		}
		if i > 200 {
			b.Fatal("bench server did not start")
		}
		time.Sleep(10 * time.Millisecond) // waiting for another process to listen
	}
}

// startOffCore starts cmd on the CPUs this process is not pinned to (when
// the benchmark runs under taskset -c 0, the web server gets the other
// cores), so that the server does not eat the one core being measured. A
// child inherits the affinity of the thread that forks it, so the mask is
// widened on a locked thread for the fork only.
func startOffCore(cmd *exec.Cmd) error {
	var mine, others unix.CPUSet
	if unix.SchedGetaffinity(0, &mine) != nil {
		return cmd.Start()
	}
	for i := range len(others) * 64 {
		if !mine.IsSet(i) {
			others.Set(i) // the kernel keeps the online ones
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.SchedSetaffinity(0, &others); err != nil {
		return cmd.Start() // no other CPU online: share this one
	}
	err := cmd.Start()
	_ = unix.SchedSetaffinity(0, &mine)
	return err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCheckEngine runs an engine (as on a standby director: checks
// only) over N real servers at checkinterval 1s for a 5 s window, and
// reports checks per second, the share of the wanted rate achieved (N
// reals at 1 s: N checks a second is 100 %) and the checker's CPU per
// check. Run it on one core as the issue measures it:
//
//	go test -c -o /tmp/ld.test ./resources/ldirectord/
//	GOMAXPROCS=1 taskset -c 0 /tmp/ld.test -test.run '^$' -test.bench CheckEngine -test.benchtime 1x The reals
//
// are distinct 127.x.y.z addresses served by one server in another
// process.
func BenchmarkCheckEngine(b *testing.B) {
	for _, tc := range []struct {
		kind string
		n    int
	}{{"connect", 1000}, {"connect", 10000}, {"http", 1000}, {"http", 10000}} {
		b.Run(fmt.Sprintf("%s-%d", tc.kind, tc.n), func(b *testing.B) {
			port := "18099"
			benchServer(b, port)
			var src strings.Builder
			fmt.Fprintf(&src, "checkinterval = 1\nchecktimeout = 3\n[[virtual]]\naddress = \"10.0.0.3:%s\"\n", port)
			if tc.kind == "connect" {
				src.WriteString("checktype = \"connect\"\n")
			} else {
				src.WriteString("service = \"http\"\nrequest = \"/.testpage\"\nreceive = \"test page\"\n")
			}
			for i := range tc.n {
				fmt.Fprintf(&src, "[[virtual.real]]\naddress = \"127.%d.%d.%d:%s\"\nforward = \"masq\"\n", 1+i>>16, (i>>8)&255, i&255, port)
			}
			in := instance(b, src.String())
			for range b.N {
				e := NewEngine(Options{})
				e.Configure(in)
				time.Sleep(2500 * time.Millisecond) // let the first burst and the spread second checks pass: measure the steady state
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				c0, n0, t0 := cpuTime(), e.checks.Load(), time.Now()
				time.Sleep(5 * time.Second)
				cpu, n, wall := cpuTime()-c0, e.checks.Load()-n0, time.Since(t0)
				gs := runtime.NumGoroutine()
				runtime.ReadMemStats(&m1)
				down := 0
				for _, s := range e.Status().Services {
					for _, r := range s.Reals {
						if r.Health != "up" {
							down++
						}
					}
				}
				e.Close()
				b.ReportMetric(float64(n)/wall.Seconds(), "checks/s")
				b.ReportMetric(100*float64(n)/wall.Seconds()/float64(tc.n), "rate-%")
				b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/check")
				b.ReportMetric(float64(down), "not-up")
				b.ReportMetric(float64(gs), "goroutines")
				b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(n), "allocs/check")
				b.ReportMetric(float64(m1.NumGC-m0.NumGC), "GCs")
			}
		})
	}
}
