package monitors_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/monitors"
)

// benchServerEnv makes the test binary a loopback web server listening on
// the address in the variable, so that a benchmark's allocations and CPU
// are the checker's alone.
const benchServerEnv = "VIGIL_MONITORS_BENCH_SERVER"

func init() {
	if addr := os.Getenv(benchServerEnv); addr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/.testpage", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "test page") })
		_ = http.ListenAndServe(addr, mux)
		os.Exit(0)
	}
}

func benchServer(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the child listens on it; nothing else takes it meanwhile on a test host
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), benchServerEnv+"="+addr)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if i > 200 {
			b.Fatal("bench server did not start")
		}
		time.Sleep(10 * time.Millisecond) // waiting for another process to listen
	}
}

// BenchmarkCheck is one check at a time against a web server in another
// process: allocations and CPU (user+system, as cpu-µs/op) are the
// checker's. A check opens a new connection each time, as ldirectord's.
func BenchmarkCheck(b *testing.B) {
	addr := benchServer(b)
	for _, c := range []monitors.Check{
		monitors.TCP{Addr: addr},
		monitors.HTTP{Addr: addr, Path: "/.testpage", Receive: regexp.MustCompile("test page")},
	} {
		b.Run(c.String()[:4], func(b *testing.B) {
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				r := c.Check(ctx)
				cancel()
				if !r.OK {
					b.Fatal(r.Summary)
				}
			}
			b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
