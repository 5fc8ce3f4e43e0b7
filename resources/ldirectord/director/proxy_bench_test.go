package director

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/nstest"
)

// The proxy benchmark runs every party as its own process inside one
// network namespace: the web servers and the userspace director are this
// test binary re-executed (roles chosen by these variables), next to
// Debian's haproxy and wrk.
const (
	benchWebEnv      = "VIGIL_BENCH_WEB"      // addr,addr…: serve / and /bulk
	benchDirectorEnv = "VIGIL_BENCH_DIRECTOR" // vip=real,real…: userspace director
	bulkSize         = 16 << 20
)

func init() {
	if addrs := os.Getenv(benchWebEnv); addrs != "" {
		benchWeb(strings.Split(addrs, ","))
	}
	if spec := os.Getenv(benchDirectorEnv); spec != "" {
		benchDirector(spec)
		os.Exit(0)
	}
}

func benchWeb(addrs []string) {
	small := bytes.Repeat([]byte("x"), 100)
	bulk := bytes.Repeat([]byte("0123456789abcdef"), bulkSize/16)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(small) })
	mux.HandleFunc("/bulk", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(bulk) })
	for _, a := range addrs {
		go func() { _ = http.ListenAndServe(a, mux) }()
	}
	select {}
}

func benchDirector(spec string) {
	vip, reals, _ := strings.Cut(spec, "=")
	k := Key{Proto: TCP, Addr: netip.MustParseAddrPort(vip)}
	s := &Service{Key: k, Scheduler: "rr", Dests: map[netip.AddrPort]Dest{}}
	for _, r := range strings.Split(reals, ",") {
		a := netip.MustParseAddrPort(r)
		s.Dests[a] = Dest{Addr: a, Forward: Masq, Weight: 1}
	}
	u := NewUserspace(UserspaceOptions{})
	if err := u.Apply(Diff(Table{}, Table{k: s}, nil)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = u.Close()
}

// benchProc starts a command inside the namespace and waits until addr
// accepts connections there.
func benchProc(b *testing.B, ns, addr string, env []string, args ...string) *exec.Cmd {
	b.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	for i := 0; ; i++ {
		var err error
		_ = nstest.InNS(ns, func() error {
			var c net.Conn
			if c, err = net.Dial("tcp", addr); err == nil {
				c.Close()
			}
			return nil
		})
		if err == nil {
			return cmd
		}
		if i > 500 {
			b.Fatalf("%s did not listen on %s: %v", args[0], addr, err)
		}
		time.Sleep(10 * time.Millisecond) // waiting for another process to listen
	}
}

// procCPU is a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the whole line.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

var (
	wrkRate     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTransfer = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	wrkErrors   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// BenchmarkProxy compares the userspace director with HAProxy in TCP mode
// (and with no proxy at all) over the same two web servers on loopback,
// driven by wrk: small requests on keep-alive connections, a new
// connection per request, and 16 MiB bodies for bulk throughput. It
// reports wrk's rates and the proxy process's CPU per request.
func BenchmarkProxy(b *testing.B) {
	for _, tool := range []string{"haproxy", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed (make bench-lvs installs it)", tool)
		}
	}
	nets := nstest.NewNetns(b)
	ns := nets.Add("px")
	// Many short connections on loopback: reuse TIME_WAIT ports, widen the
	// range (per namespace, so the host's settings are untouched).
	nets.Run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000")
	reals := []string{"127.0.0.2:8080", "127.0.0.3:8080"}
	benchProc(b, ns, reals[1], []string{benchWebEnv + "=" + strings.Join(reals, ",")}, os.Args[0])
	const vigilVIP, haproxyVIP = "127.0.0.10:80", "127.0.0.11:80"
	director := benchProc(b, ns, vigilVIP, []string{benchDirectorEnv + "=" + vigilVIP + "=" + strings.Join(reals, ",")}, os.Args[0])

	cfg := filepath.Join(b.TempDir(), "haproxy.cfg")
	conf := fmt.Sprintf(`global
  maxconn 8000
defaults
  mode tcp
  timeout connect 3s
  timeout client 60s
  timeout server 60s
listen www
  bind %s
  balance roundrobin
  server rs1 %s
  server rs2 %s
`, haproxyVIP, reals[0], reals[1])
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	haproxy := benchProc(b, ns, haproxyVIP, nil, "haproxy", "-db", "-f", cfg)

	targets := []struct {
		name, addr string
		pid        int
	}{{"direct", reals[0], 0}, {"vigil-userspace", vigilVIP, director.Process.Pid}, {"haproxy-tcp", haproxyVIP, haproxy.Process.Pid}}
	loads := []struct {
		name string
		args []string
		path string
	}{
		{"keepalive", []string{"-t2", "-c64"}, "/"},
		{"conn-per-request", []string{"-t2", "-c64", "-H", "Connection: close"}, "/"},
		{"bulk-16MiB", []string{"-t2", "-c4"}, "/bulk"},
	}
	for _, load := range loads {
		for _, tg := range targets {
			b.Run(load.name+"/"+tg.name, func(b *testing.B) {
				for range b.N {
					cpu0 := procCPU(tg.pid)
					args := append([]string{"netns", "exec", ns, "wrk", "-d5s"}, load.args...)
					out, err := exec.Command("ip", append(args, "http://"+tg.addr+load.path)...).CombinedOutput()
					if err != nil {
						b.Fatalf("wrk: %v\n%s", err, out)
					}
					cpu := procCPU(tg.pid) - cpu0
					m := wrkRate.FindSubmatch(out)
					if m == nil {
						b.Fatalf("no rate in wrk output:\n%s", out)
					}
					if e := wrkErrors.Find(out); e != nil {
						b.Logf("%s %s: %s", load.name, tg.name, e)
					}
					rate, _ := strconv.ParseFloat(string(m[1]), 64)
					b.ReportMetric(rate, "req/s")
					if t := wrkTransfer.FindSubmatch(out); t != nil {
						v, _ := strconv.ParseFloat(string(t[1]), 64)
						scale := map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[string(t[2])]
						b.ReportMetric(v*scale/(1<<20), "MiB/s")
					}
					if tg.pid != 0 && rate > 0 {
						b.ReportMetric(float64(cpu.Microseconds())/(rate*5), "proxy-cpu-µs/req")
					}
				}
			})
		}
	}
}
