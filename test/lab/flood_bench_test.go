package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/timing"
	"github.com/vigil-ha/vigil/test/lab"
)

// BenchmarkHeartbeatStarvation runs a pair with a witness at 100 ms /
// 500 ms, group g on n1, and then, for VIGIL_FAULT_FOR (default 10 s),
// one fault that must cost nothing: a flood of garbage UDP at
// VIGIL_FLOOD_PPS (default 350,000 packets/s) on the owner's heartbeat
// port, or both cores loaded by stress-ng. It reports the lease losses on
// the owner, the false failovers (d1 stopped on n1 or started elsewhere),
// the peers' node-dead verdicts on n1, and the rate the flood reached.
// One op is one run: -benchtime 1x.
func BenchmarkHeartbeatStarvation(b *testing.B) {
	faultFor := envDuration(b, "VIGIL_FAULT_FOR", 10*time.Second)
	pps := 350000
	if v, err := strconv.Atoi(os.Getenv("VIGIL_FLOOD_PPS")); err == nil && v > 0 {
		pps = v
	}
	for _, fault := range []string{"flood", "stress"} {
		b.Run(fault, func(b *testing.B) {
			if fault == "stress" {
				if _, err := exec.LookPath("stress-ng"); err != nil {
					b.Skip("stress-ng is not installed (make bench-starve installs it)")
				}
			}
			for range b.N {
				r := starve(b, fault, faultFor, pps)
				b.ReportMetric(float64(r.leaseLost), "lease-losses")
				b.ReportMetric(float64(r.failovers), "false-failovers")
				b.ReportMetric(float64(r.deadVerdicts), "node-dead")
				if fault == "flood" {
					b.ReportMetric(r.rate, "flood-pkt/s")
					b.ReportMetric(float64(r.reachedDaemon), "flood-pkts-reaching-daemon")
				}
				b.Logf("%s for %s: lease losses %d, false failovers %d, node-dead verdicts on n1 %d, flood %.0f packets/s, %d of them reached the daemon",
					fault, faultFor, r.leaseLost, r.failovers, r.deadVerdicts, r.rate, r.reachedDaemon)
			}
		})
	}
}

type starveResult struct {
	leaseLost, failovers, deadVerdicts int
	rate                               float64
	reachedDaemon                      uint64
}

func starve(b *testing.B, fault string, faultFor time.Duration, pps int) starveResult {
	if why := lab.Available(); why != "" {
		b.Skip(why)
	}
	l := lab.New(b)
	defer l.Close()
	work := b.TempDir()
	// The default deadtime (3.5 beats): the tightest lease the
	// configuration allows by default.
	c := &lab.Cluster{Name: "starve", Keepalive: 100 * time.Millisecond, Deadtime: timing.DefaultDeadtime(100 * time.Millisecond), Secret: "lab-secret-0123456789abcdef",
		Nodes:     []lab.NodeSpec{{Name: "n3", Role: "witness"}},
		Resources: lab.DummyResources(work, "g", "n1", `, interval = "1s"`, "d1")}
	c.Extra = rtPriority()
	nodes := l.Trio(vigilBin, c, false, nil)
	if _, err := nodes["n1"].WaitStatus(30*time.Second, func(s *api.Status) bool { return runningOn(s) == "n1" }); err != nil {
		b.Fatalf("g never ran on n1: %v", err)
	}
	// Only what the nodes log from here on counts.
	from := map[string]int64{}
	for name, n := range nodes {
		_, from[name], _ = lab.LogLines(n.Proc.LogPath, "", 0)
	}
	count := func(node, s string) int {
		lines, _, err := lab.LogLines(nodes[node].Proc.LogPath, s, from[node])
		if err != nil {
			b.Fatal(err)
		}
		return len(lines)
	}
	ops0, _ := lab.ReadJournal(work, "d1")
	var r starveResult
	var dropped0 uint64
	if st, err := nodes["n1"].Client.Status(context.Background()); err == nil {
		dropped0 = droppedAll(st)
	}
	switch fault {
	case "flood":
		l.AddNS("fl")
		l.Wire("fl", "eth0", "sw", "br0", "10.77.1.200/24")
		sent, took := flood(b, l, "fl", "10.77.1.1", 6940, pps, faultFor)
		r.rate = float64(sent) / took.Seconds()
	case "stress":
		l.Start("", "stress-ng", "stress-ng", "--cpu", "2", "--timeout", fmt.Sprintf("%ds", int(faultFor.Seconds()))).Wait()
	}
	// A lease lost near the end shows within a deadtime.
	time.Sleep(2 * c.Deadtime)
	r.leaseLost = count("n1", "lease lost")
	for _, n := range []string{"n2", "n3"} {
		r.deadVerdicts += count(n, `msg=node-dead component=membership node=n1`)
	}
	ops, _ := lab.ReadJournal(work, "d1")
	for _, op := range ops[len(ops0):] {
		if op.Op == "start" || op.Op == "stop" {
			r.failovers++
		}
	}
	if st, err := nodes["n1"].Client.Status(context.Background()); err == nil {
		r.reachedDaemon = droppedAll(st) - dropped0
	}
	return r
}

// droppedAll counts the packets the daemon itself read and refused; what
// the kernel's socket filter dropped ("filtered") never reached it.
func droppedAll(st *api.Status) uint64 {
	var n uint64
	for _, l := range st.Links {
		for reason, v := range l.Dropped {
			if reason != "filtered" {
				n += v
			}
		}
	}
	return n
}

// flood sends garbage UDP datagrams from namespace ns to addr:port at up
// to pps for d, with sendmmsg batches from two threads, and returns how
// many it sent and over what time.
func flood(b *testing.B, l *lab.Lab, ns, addr string, port, pps int, d time.Duration) (uint64, time.Duration) {
	const senders, batch = 2, 64
	var fds []int
	for range senders {
		err := l.InNS(ns, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			sa := &unix.SockaddrInet4{Port: port, Addr: netip.MustParseAddr(addr).As4()}
			if err := unix.Connect(fd, sa); err != nil {
				unix.Close(fd)
				return err
			}
			fds = append(fds, fd)
			return nil
		})
		if err != nil {
			b.Fatalf("flood socket: %v", err)
		}
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	var (
		mu   sync.Mutex
		sent uint64
		wg   sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	perSender := float64(pps) / senders
	for _, fd := range fds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufs := make([][]byte, batch)
			iovs := make([]unix.Iovec, batch)
			msgs := make([]unix.Mmsghdr, batch)
			for i := range bufs {
				bufs[i] = make([]byte, 64)
				bufs[i][0] = byte(i)
				iovs[i].Base = &bufs[i][0]
				iovs[i].SetLen(len(bufs[i]))
				msgs[i].Hdr.Iov = &iovs[i]
				msgs[i].Hdr.SetIovlen(1)
			}
			var n uint64
			for now := time.Now(); now.Before(end); now = time.Now() {
				// Keep to the rate: send only what is due by now.
				due := uint64(perSender * now.Sub(start).Seconds())
				if n >= due {
					time.Sleep(200 * time.Microsecond)
					continue
				}
				k := min(batch, int(due-n))
				r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(k), unix.MSG_DONTWAIT, 0, 0)
				if errno == 0 {
					n += uint64(r)
				}
			}
			mu.Lock()
			sent += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return sent, time.Since(start)
}

// rtPriority is the ha.toml line VIGIL_RT_PRIORITY asks for (heartbeat
// threads under SCHED_FIFO at that priority), or none.
func rtPriority() string {
	if p := os.Getenv("VIGIL_RT_PRIORITY"); p != "" {
		return "rt_priority = " + p + "\n"
	}
	return ""
}
