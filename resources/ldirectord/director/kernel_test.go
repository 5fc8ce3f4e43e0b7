package director

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/nstest"
)

// The kernel backend's tests need kernel IPVS. This machine's kernel has
// none: test/ipvsvm boots Debian's kernel in qemu and runs them there (in
// CI, through `make test`).
func needKernel(t testing.TB) *KernelDirector {
	t.Helper()
	if _, err := os.Stat(procIPVS); err != nil {
		t.Skip("kernel has no IPVS here; test/ipvsvm runs these tests in a VM that has it")
	}
	k, err := OpenKernel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k.h.Flush()
		k.Close()
	})
	if err := k.h.Flush(); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKernelReconcile(t *testing.T) {
	k := needKernel(t)
	udp := Key{Proto: UDP, Addr: netip.MustParseAddrPort("10.0.0.3:53")}
	fwm := Key{Proto: FWM, FWMark: 7}
	v6 := Key{Proto: TCP, Addr: netip.MustParseAddrPort("[fd00::3]:80")}
	persist := svc(k443, "sh")
	persist.Persistent, persist.Netmask = 300, 24
	persist.Dests[r1] = Dest{Addr: r1, Forward: Masq, Weight: 3, Upper: 100, Lower: 10}
	want := Table{
		k80:  svc(k80, "wlc", gate(r1, 5), gate(r2, 5)), // the seed
		k443: persist,
		udp:  svc(udp, "rr", Dest{Addr: netip.MustParseAddrPort("192.168.6.2:5353"), Forward: Masq, Weight: 1}),
		fwm:  svc(fwm, "mh", Dest{Addr: netip.MustParseAddrPort("192.168.6.4:0"), Forward: IPIP, Weight: 2}),
		v6:   svc(v6, "lblcr", Dest{Addr: netip.MustParseAddrPort("[fd00::10]:80"), Forward: Gate, Weight: 1}),
	}
	want[fwm].MHPort = true // read back from the service's flags below
	if ops := mustApply(t, k, want, nil); len(ops) != 5+6 {
		t.Fatalf("first apply: %d ops: %v", len(ops), ops)
	}
	have, err := k.Read()
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(have, want, nil); len(d) != 0 {
		t.Fatalf("read back differs by %v\nhave %s", d, dump(have))
	}
	if ops := mustApply(t, k, want, nil); len(ops) != 0 {
		t.Fatalf("second reconcile changed %v", ops)
	}
	// Every scheduler the userspace director has, the kernel has too.
	for i, s := range Schedulers {
		key := Key{Proto: TCP, Addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.1.1"), uint16(1000+i))}
		if err := k.Apply([]Op{{Kind: AddService, Service: Service{Key: key, Scheduler: s}}}); err != nil {
			t.Errorf("scheduler %s: %v", s, err)
		}
		_ = k.Apply([]Op{{Kind: DelService, Service: Service{Key: key}}})
	}
	// One edit each: weight, forwarding, scheduler, persistence, mh's flags.
	want[k80].Dests[r2] = gate(r2, 0)
	want[udp].Scheduler = "wrr"
	want[k443].Persistent = 60
	want[fwm].MHFallback = true
	ops := mustApply(t, k, want, nil)
	if got := opStrings(ops); len(got) != 4 {
		t.Fatalf("edits: %q", got)
	}
	// The kernel holds IP_VS_SVC_F_SCHED_MH_PORT | _FALLBACK (0x10|0x08).
	svcs, err := k.h.GetServices()
	if err != nil {
		t.Fatal(err)
	}
	for _, ks := range svcs {
		if ks.FWMark == 7 && ks.Flags&0x18 != 0x18 {
			t.Errorf("fwmark 7 flags %#x, want mh-port and mh-fallback", ks.Flags)
		}
	}
	delete(want, fwm)
	delete(want[k80].Dests, r1)
	ops = mustApply(t, k, want, map[Key]bool{fwm: true, k80: true})
	if got := opStrings(ops); len(got) != 2 || !strings.HasPrefix(got[0], "delete real") || !strings.HasPrefix(got[1], "delete service FWM  7") {
		t.Fatalf("deletes: %q", got)
	}
	have, _ = k.Read()
	if d := Diff(have, want, map[Key]bool{fwm: true}); len(d) != 0 {
		t.Fatalf("after edits the kernel differs by %v\n%s", d, dump(have))
	}
	if _, err := k.Stats(); err != nil {
		t.Fatal(err)
	}
}

// Real traffic through kernel IPVS NAT: a client namespace reaches the VIP
// on the director (this VM's root namespace), rr spreads connections over
// two real-server namespaces, and weight 0 takes one out of rotation.
func TestKernelTraffic(t *testing.T) {
	k := needKernel(t)
	ns := nstest.NewNetns(t)
	client := ns.Add("client")
	run := func(args ...string) { ns.Run(append([]string{"ip"}, args...)...) }
	run("link", "add", "dc", "type", "veth", "peer", "name", "eth0", "netns", client)
	run("addr", "add", "10.99.1.1/24", "dev", "dc")
	run("link", "set", "dc", "up")
	run("-n", client, "addr", "add", "10.99.1.100/24", "dev", "eth0")
	run("-n", client, "link", "set", "eth0", "up")
	var reals []netip.AddrPort
	for i, name := range []string{"r1", "r2"} {
		n := ns.Add(name)
		dev := "d" + name
		run("link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", n)
		run("addr", "add", fmt.Sprintf("10.99.%d.1/24", i+2), "dev", dev)
		run("link", "set", dev, "up")
		run("-n", n, "addr", "add", fmt.Sprintf("10.99.%d.2/24", i+2), "dev", "eth0")
		run("-n", n, "link", "set", "eth0", "up")
		run("-n", n, "route", "add", "default", "via", fmt.Sprintf("10.99.%d.1", i+2))
		var ln net.Listener
		if err := nstest.InNS(n, func() (err error) {
			ln, err = net.Listen("tcp", ":8080")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
		reals = append(reals, netip.MustParseAddrPort(fmt.Sprintf("10.99.%d.2:8080", i+2)))
	}
	vipKey := Key{Proto: TCP, Addr: netip.MustParseAddrPort("10.99.1.1:80")}
	want := Table{vipKey: svc(vipKey, "rr", Dest{Addr: reals[0], Forward: Masq, Weight: 1}, Dest{Addr: reals[1], Forward: Masq, Weight: 1})}
	mustApply(t, k, want, nil)
	get := func() string {
		t.Helper()
		var conn net.Conn
		if err := nstest.InNS(client, func() (err error) {
			conn, err = net.DialTimeout("tcp", vipKey.Addr.String(), 3*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(conn, "GET / HTTP/1.0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := make([]byte, 16)
		n, _ := resp.Body.Read(b)
		return string(b[:n])
	}
	got := map[string]int{}
	for range 6 {
		got[get()]++
	}
	if got["r1"] != 3 || got["r2"] != 3 {
		t.Fatalf("rr over 6 connections through kernel NAT: %v", got)
	}
	want[vipKey].Dests[reals[0]] = Dest{Addr: reals[0], Forward: Masq, Weight: 0}
	mustApply(t, k, want, nil)
	for range 4 {
		if s := get(); s != "r2" {
			t.Fatalf("weight-0 real got a new connection (%s)", s)
		}
	}
	// The kernel's counters lag seconds behind; connection counts do not.
	st, _ := k.Stats()
	var conns int64
	for _, d := range st[vipKey].Dests {
		conns += d.Active + d.Inactive
	}
	if conns != 10 {
		t.Errorf("stats count %d connections, want 10: %+v", conns, st[vipKey])
	}
}

// seedTable is n services × 2 NAT reals.
func bigTable(n int) Table {
	t := Table{}
	for i := range n {
		key := Key{Proto: TCP, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 80)}
		t[key] = svc(key, "wlc",
			Dest{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 80), Forward: Masq, Weight: 1},
			Dest{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}), 80), Forward: Masq, Weight: 1})
	}
	return t
}

// BenchmarkKernelReconcile: apply 10,000 services × 2 reals into an empty
// kernel table, a no-op reconcile of the same, and `ipvsadm -R` of the
// same rules (when ipvsadm is in the VM). Run by test/ipvsvm.
func BenchmarkKernelReconcile(b *testing.B) {
	k := needKernel(b)
	const n = 10000
	want := bigTable(n)
	var rules strings.Builder
	for _, key := range want.Keys() {
		fmt.Fprintf(&rules, "-A -t %s -s wlc\n", key.Addr)
		for _, d := range want[key].SortedDests() {
			fmt.Fprintf(&rules, "-a -t %s -r %s -m -w 1\n", key.Addr, d.Addr)
		}
	}
	for range b.N {
		_ = k.h.Flush()
		start := time.Now()
		if ops := mustApply(b, k, want, nil); len(ops) != 3*n {
			b.Fatalf("%d ops", len(ops))
		}
		full := time.Since(start)
		start = time.Now()
		if ops := mustApply(b, k, want, nil); len(ops) != 0 {
			b.Fatalf("no-op reconcile changed %d", len(ops))
		}
		noop := time.Since(start)
		b.ReportMetric(full.Seconds(), "apply-s")
		b.ReportMetric(noop.Seconds(), "noop-s")
		if _, err := exec.LookPath("ipvsadm"); err == nil {
			_ = k.h.Flush()
			cmd := exec.Command("ipvsadm", "-R")
			cmd.Stdin = strings.NewReader(rules.String())
			start = time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("ipvsadm -R: %v %s", err, out)
			}
			b.ReportMetric(time.Since(start).Seconds(), "ipvsadm-R-s")
		}
	}
}
