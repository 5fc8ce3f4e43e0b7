package director

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/nstest"
	"golang.org/x/sys/unix"
)

// Kernel timing the sync test waits on (net/netfilter/ipvs/ip_vs_sync.c):
// a master sends a buffered entry within IPVS_SYNC_FLUSH_TIME (2 s) and
// looks at its queue every IPVS_SYNC_CHECK_PERIOD (1 s). The VM runs
// under software emulation, so the test allows ten times that.
const syncDeadline = 10 * (2*time.Second + time.Second)

// openSyncIn opens a sync handle in namespace ns and stops whatever
// daemons it started when the test ends (before the namespace goes).
func openSyncIn(t *testing.T, ns string) *SyncHandle {
	t.Helper()
	var h *SyncHandle
	if err := nstest.InNS(ns, func() (err error) {
		h, err = OpenSync()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), syncDeadline)
		defer cancel()
		for _, s := range []uint32{SyncMaster, SyncBackup} {
			if err := h.Stop(ctx, s); err != nil && !errors.Is(err, unix.ESRCH) {
				t.Errorf("cleanup: %v", err)
			}
		}
		h.Close()
	})
	return h
}

// readIn reads a /proc/net file as namespace ns sees it.
func readIn(t *testing.T, ns, file string) string {
	t.Helper()
	var b []byte
	if err := nstest.InNS(ns, func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/" + file)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKernelSync runs a master sync daemon in one director namespace and
// a backup in another, linked by a veth pair, reads both back with
// GET_DAEMON, and shows a connection the master's IPVS created appearing
// in the backup's connection table through the sync. Run by test/ipvsvm.
func TestKernelSync(t *testing.T) {
	if _, err := os.Stat(procIPVS); err != nil {
		t.Skip("kernel has no IPVS here; test/ipvsvm runs this test in a VM that has it")
	}
	ns := nstest.NewNetns(t)
	m, b, c := ns.Add("m"), ns.Add("b"), ns.Add("c")
	ip := func(args ...string) { ns.Run(append([]string{"ip"}, args...)...) }
	// The sync link between the directors, and a client of the master.
	ip("-n", m, "link", "add", "sync0", "type", "veth", "peer", "name", "sync0", "netns", b)
	ip("-n", m, "addr", "add", "10.77.0.1/24", "dev", "sync0")
	ip("-n", b, "addr", "add", "10.77.0.2/24", "dev", "sync0")
	ip("-n", m, "link", "add", "c0", "type", "veth", "peer", "name", "eth0", "netns", c)
	ip("-n", m, "addr", "add", "10.77.1.1/24", "dev", "c0")
	ip("-n", c, "addr", "add", "10.77.1.2/24", "dev", "eth0")
	for _, l := range [][]string{{m, "sync0"}, {b, "sync0"}, {m, "c0"}, {c, "eth0"}} {
		ip("-n", l[0], "link", "set", l[1], "up")
	}
	hm, hb := openSyncIn(t, m), openSyncIn(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), syncDeadline)
	defer cancel()

	master := SyncDaemon{State: SyncMaster, Interface: "sync0", SyncID: 42, MaxLen: 1400,
		Group: netip.MustParseAddr("239.7.7.7"), Port: 8900, TTL: 2}
	backup := master
	backup.State = SyncBackup
	for _, x := range []struct {
		h *SyncHandle
		d SyncDaemon
	}{{hm, master}, {hb, backup}} {
		if err := x.h.Start(ctx, x.d); err != nil {
			t.Fatal(err)
		}
	}
	if err := hm.Start(ctx, master); !errors.Is(err, unix.EEXIST) {
		t.Errorf("a second master: %v, want EEXIST", err)
	}
	if err := hm.Stop(ctx, SyncBackup); !errors.Is(err, unix.ESRCH) {
		t.Errorf("stopping a backup that does not run: %v, want ESRCH", err)
	}
	for _, x := range []struct {
		h    *SyncHandle
		want SyncDaemon
	}{{hm, master}, {hb, backup}} {
		got, err := x.h.Daemons(ctx)
		if err != nil {
			t.Fatal(err)
		}
		x.want.Role = SyncStateName(x.want.State)
		if len(got) != 1 || got[0] != x.want {
			t.Errorf("GET_DAEMON: %+v, want [%+v]", got, x.want)
		}
	}

	// An established connection through the master's NAT service to a
	// real server: with the default sync_threshold (3 50) the master
	// sends an ESTABLISHED connection at its third incoming packet (SYN,
	// ACK, request), so the client speaks before the check.
	real := ns.Add("r")
	ip("-n", m, "link", "add", "r0", "type", "veth", "peer", "name", "eth0", "netns", real)
	ip("-n", m, "addr", "add", "10.77.2.1/24", "dev", "r0")
	ip("-n", real, "addr", "add", "10.77.2.2/24", "dev", "eth0")
	ip("-n", m, "link", "set", "r0", "up")
	ip("-n", real, "link", "set", "eth0", "up")
	ip("-n", real, "route", "add", "default", "via", "10.77.2.1")
	var ln net.Listener
	if err := nstest.InNS(real, func() (err error) {
		ln, err = net.Listen("tcp", "10.77.2.2:80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); _, _ = io.Copy(conn, conn) }()
		}
	}()
	vipKey := Key{Proto: TCP, Addr: netip.MustParseAddrPort("10.77.1.1:80")}
	dest := Dest{Addr: netip.MustParseAddrPort("10.77.2.2:80"), Forward: Masq, Weight: 1}
	if err := nstest.InNS(m, func() error {
		// The replies of a NAT real are forwarded by the director.
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return err
		}
		k, err := OpenKernel()
		if err != nil {
			return err
		}
		defer k.Close()
		return k.Apply([]Op{{Kind: AddService, Service: Service{Key: vipKey, Scheduler: "rr"}},
			{Kind: AddDest, Service: Service{Key: vipKey}, Dest: dest}})
	}); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	if err := nstest.InNS(c, func() (err error) {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", vipKey.Addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(syncDeadline))
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 5)); err != nil {
		t.Fatalf("no echo through the master's NAT service: %v", err)
	}
	const client = "0A4D0102" // 10.77.1.2 as /proc/net/ip_vs_conn writes it
	waitFor := func(ns, what string) time.Duration {
		start := time.Now()
		for {
			if strings.Contains(readIn(t, ns, "ip_vs_conn"), client) {
				return time.Since(start)
			}
			if ctx.Err() != nil {
				t.Fatalf("no connection from the client in %s's table within %s:\n%s", what, syncDeadline, readIn(t, ns, "ip_vs_conn"))
			}
			time.Sleep(50 * time.Millisecond) // polling /proc; the deadline is ctx's
		}
	}
	waitFor(m, "the master")
	took := waitFor(b, "the backup")
	t.Logf("the backup had the master's connection %s after the master did", took.Round(time.Millisecond))
	t.Logf("backup table:\n%s", readIn(t, b, "ip_vs_conn"))

	// Stopping, backup first while the master still sends (the order of
	// a takeover): each DEL_DAEMON returns promptly (bounded by ctx) and
	// GET_DAEMON is empty after it.
	for _, x := range []struct {
		h     *SyncHandle
		state uint32
	}{{hb, SyncBackup}, {hm, SyncMaster}} {
		start := time.Now()
		if err := x.h.Stop(ctx, x.state); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("DEL_DAEMON %s took %s", SyncStateName(x.state), took.Round(time.Millisecond))
		// The ldirectord engine bounds a whole pass by 5 s; one stop far
		// from that would be the stall an earlier attempt reported.
		if took > time.Second {
			t.Errorf("DEL_DAEMON %s took %s", SyncStateName(x.state), took)
		}
		if got, err := x.h.Daemons(ctx); err != nil || len(got) != 0 {
			t.Errorf("after stop: %v %v", got, err)
		}
	}
}
