package director

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// realServer answers each TCP line with its name; "hold" keeps the
// connection open until the test ends. It also echoes UDP datagrams
// prefixed with its name.
func realServer(t *testing.T, ip string) (netip.AddrPort, func() int) {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	pc, err := net.ListenPacket("udp", ap.String())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	accepted := 0
	var wg sync.WaitGroup
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(ip+":"+string(buf[:n])), from)
		}
	}()
	testutil.Serve(t, l, func(c net.Conn) {
		mu.Lock()
		accepted++
		mu.Unlock()
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", ip, line)
		}
	})
	return ap, func() int { mu.Lock(); defer mu.Unlock(); return accepted }
}

func ask(t *testing.T, c net.Conn, q string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "%s\n", q)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("ask %q: %v", q, err)
	}
	name, _, _ := strings.Cut(line, " ")
	return name
}

func dialVIP(t *testing.T, k Key, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", k.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustApply(t testing.TB, b Backend, want Table, scope map[Key]bool) []Op {
	t.Helper()
	have, err := b.Read()
	if err != nil {
		t.Fatal(err)
	}
	ops := Diff(have, want, scope)
	if err := b.Apply(ops); err != nil {
		t.Fatal(err)
	}
	return ops
}

func TestUserspaceTCP(t *testing.T) {
	a, _ := realServer(t, "127.0.0.2")
	b, bAccepted := realServer(t, "127.0.0.3")
	u := NewUserspace(UserspaceOptions{})
	defer u.Close()
	k := Key{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.10:18080")}
	want := Table{k: svc(k, "wrr", Dest{Addr: a, Forward: Masq, Weight: 1}, Dest{Addr: b, Forward: Masq, Weight: 3})}
	mustApply(t, u, want, nil)
	if ops := mustApply(t, u, want, nil); len(ops) != 0 {
		t.Fatalf("second reconcile changed %v", ops)
	}
	got := map[string]int{}
	for range 40 {
		c := dialVIP(t, k, "127.0.0.1")
		got[ask(t, c, "hi")]++
		c.Close()
	}
	if got["127.0.0.2"] != 10 || got["127.0.0.3"] != 30 {
		t.Fatalf("wrr 1:3 over 40 connections: %v", got)
	}

	// A long-lived connection to b survives b's weight going to 0 and a's
	// real being edited; new connections all go to a.
	long := dialVIP(t, k, "127.0.0.1")
	defer long.Close()
	for ask(t, long, "which") != "127.0.0.3" {
		long.Close()
		long = dialVIP(t, k, "127.0.0.1")
	}
	want[k].Dests[b] = Dest{Addr: b, Forward: Masq, Weight: 0}
	ops := mustApply(t, u, want, nil)
	if len(ops) != 1 || ops[0].Kind != EditDest {
		t.Fatalf("drain is one edit, got %v", ops)
	}
	before := bAccepted()
	for range 10 {
		c := dialVIP(t, k, "127.0.0.1")
		if n := ask(t, c, "hi"); n != "127.0.0.2" {
			t.Fatalf("weight 0 real got a new connection (%s)", n)
		}
		c.Close()
	}
	if bAccepted() != before {
		t.Fatal("weight 0 real accepted a new connection")
	}
	if ask(t, long, "still there") != "127.0.0.3" {
		t.Fatal("draining connection broke")
	}
	// Connections the client closed count as active until the relay has
	// seen both halves end: wait for those to drain, leaving the long one.
	st := statsWhen(u, func(st map[Key]ServiceStats) bool { return st[k].Dests[b.String()].Active <= 1 })
	if d := st[k].Dests[b.String()]; d.Active != 1 || st[k].Conns < 50 {
		t.Fatalf("stats: %+v", st[k])
	}
	// Deleting the real keeps the established connection too.
	delete(want[k].Dests, b)
	mustApply(t, u, want, nil)
	if ask(t, long, "after delete") != "127.0.0.3" {
		t.Fatal("connection to a deleted real broke")
	}
}

func TestUserspacePersistence(t *testing.T) {
	a, _ := realServer(t, "127.0.0.2")
	b, _ := realServer(t, "127.0.0.3")
	u := NewUserspace(UserspaceOptions{})
	defer u.Close()
	k := Key{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.10:18081")}
	s := svc(k, "rr", Dest{Addr: a, Forward: Masq, Weight: 1}, Dest{Addr: b, Forward: Masq, Weight: 1})
	s.Persistent, s.Netmask = 300, 32
	mustApply(t, u, Table{k: s}, nil)
	for _, client := range []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"} {
		first := ""
		for range 5 {
			c := dialVIP(t, k, client)
			n := ask(t, c, "hi")
			c.Close()
			if first == "" {
				first = n
			} else if n != first {
				t.Fatalf("client %s moved from %s to %s despite persistence", client, first, n)
			}
		}
	}
}

func TestUserspaceUDPAndRefusal(t *testing.T) {
	a, _ := realServer(t, "127.0.0.2")
	u := NewUserspace(UserspaceOptions{UDPIdle: 200 * time.Millisecond})
	defer u.Close()
	k := Key{Proto: UDP, Addr: netip.MustParseAddrPort("127.0.0.10:18053")}
	mustApply(t, u, Table{k: svc(k, "rr", Dest{Addr: a, Forward: Masq, Weight: 1})}, nil)
	c, err := net.Dial("udp", k.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	for i := range 3 {
		fmt.Fprintf(c, "q%d", i)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != fmt.Sprintf("127.0.0.2:q%d", i) {
			t.Fatalf("udp answer %q %v", buf[:n], err)
		}
	}
	// A packet is counted just after it left, each way, so the client
	// may read the reply first, and the reply may leave before the query
	// that caused it is counted (a loaded CI run saw 2 queries, 3 replies).
	st := statsWhen(u, func(st map[Key]ServiceStats) bool { return st[k].InPkts >= 3 && st[k].OutPkts >= 3 })
	if st[k].Conns != 1 || st[k].InPkts != 3 || st[k].OutPkts != 3 || st[k].Dests[a.String()].Inactive != 1 {
		t.Fatalf("udp stats %+v", st[k])
	}

	// A TCP service whose first pick refuses goes to the other real.
	dead := netip.MustParseAddrPort("127.0.0.9:1")
	kt := Key{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.10:18082")}
	mustApply(t, u, Table{kt: svc(kt, "rr", Dest{Addr: dead, Forward: Masq, Weight: 1}, Dest{Addr: a, Forward: Masq, Weight: 1})}, nil)
	for range 4 {
		cc := dialVIP(t, kt, "127.0.0.1")
		if n := ask(t, cc, "x"); n != "127.0.0.2" {
			t.Fatalf("got %s", n)
		}
		cc.Close()
	}
	// No usable real: the connection is closed at once.
	mustApply(t, u, Table{kt: svc(kt, "rr", Dest{Addr: a, Forward: Masq, Weight: 0})}, map[Key]bool{kt: true})
	cc := dialVIP(t, kt, "127.0.0.1")
	_ = cc.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(cc); err != nil {
		t.Fatalf("want a clean close, got %v", err)
	}
	cc.Close()
}

// Close ends established connections and leaves no goroutine behind
// (goleak checks at exit).
func TestUserspaceCloseEndsConnections(t *testing.T) {
	a, _ := realServer(t, "127.0.0.2")
	u := NewUserspace(UserspaceOptions{})
	k := Key{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.10:18083")}
	mustApply(t, u, Table{k: svc(k, "rr", Dest{Addr: a, Forward: Masq, Weight: 1})}, nil)
	c := dialVIP(t, k, "127.0.0.1")
	defer c.Close()
	ask(t, c, "x")
	u.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("want EOF after Close, got %v", err)
	}
	if err := u.Apply(nil); err == nil {
		t.Fatal("apply after close succeeded")
	}
}

// statsWhen polls the proxy's counters until cond holds, for at most 5 s,
// and returns the last ones.
func statsWhen(u *UserspaceDirector, cond func(map[Key]ServiceStats) bool) map[Key]ServiceStats {
	st, _ := u.Stats()
	for deadline := time.Now().Add(5 * time.Second); !cond(st) && time.Now().Before(deadline); st, _ = u.Stats() {
		time.Sleep(time.Millisecond) // polling the proxy's counters
	}
	return st
}
