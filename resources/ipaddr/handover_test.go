package ipaddr_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/resources/ipaddr"
)

// A VIP stopped with handover keeps its node forwarding: a datagram a
// client sends to the VIP after the stop, its ARP cache still pointing at
// the old holder, reaches the next holder once that one has the VIP, and
// the interface forwards as before once the hand-over is over.
func TestHandover(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	nn := nstest.NewNetns(t)
	sw, old, next, client := nn.Add("sw"), nn.Add("old"), nn.Add("next"), nn.Add("cl")
	nn.Run("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	nn.Run("ip", "-n", sw, "link", "set", "br0", "up")
	for i, ns := range []string{old, next, client} {
		port := "p" + string(rune('0'+i))
		nn.Run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", sw)
		nn.Run("ip", "-n", sw, "link", "set", port, "master", "br0", "up")
		nn.Run("ip", "-n", ns, "addr", "add", "10.89.0."+string(rune('1'+i))+"/24", "dev", "eth0")
		nn.Run("ip", "-n", ns, "link", "set", "eth0", "up")
	}
	forwarding := func() string {
		return strings.TrimSpace(nn.Run("ip", "netns", "exec", old, "cat", "/proc/sys/net/ipv4/conf/eth0/forwarding"))
	}
	const vip, window = "10.89.0.50", 1500 * time.Millisecond
	r := ipaddr.New(slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	t.Cleanup(func() { _ = nstest.InNS(old, func() error { r.Close(); return nil }) })
	in := &pb.Instance{Id: "vip", Type: "IPaddr", Params: map[string]string{"ip": vip, "arp_count": "1", "arp_repeat": "0", "handover": window.String()}}
	// The client learns the holder's MAC from its own traffic: an
	// existing neighbour entry is what a gratuitous ARP corrects.
	send := func(msg string) {
		t.Helper()
		if err := nstest.InNS(client, func() error {
			c, err := net.Dial("udp4", vip+":9999")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(msg))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	op := func(f func(context.Context, *pb.Instance) (*pb.Result, error)) {
		t.Helper()
		var res *pb.Result
		if err := nstest.InNS(old, func() (err error) { res, err = f(context.Background(), in); return err }); err != nil || res.Code != pb.Code_SUCCESS {
			t.Fatalf("%v %v", res, err)
		}
	}
	var pc net.PacketConn
	if err := nstest.InNS(next, func() (err error) { pc, err = net.ListenPacket("udp4", ":9999"); return err }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Twice: the second time the old holder still has a neighbour entry
	// for the VIP from the first, naming the next holder, which does not
	// have the VIP yet when the datagram comes.
	for round := 1; round <= 2; round++ {
		op(r.Start)
		send("to the holder") // the old holder has no listener: dropped there
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("round %d: the client to resolve the VIP (its neighbour entry)", round), func() (string, bool) {
			out := strings.TrimSpace(nn.Run("ip", "-n", client, "neigh", "show", vip))
			return out, strings.Contains(out, "lladdr")
		})
		if forwarding() != "0" {
			t.Fatalf("round %d: the old holder forwards before the hand-over", round)
		}
		op(r.Stop)
		if got := forwarding(); got != "1" {
			t.Fatalf("round %d: forwarding %q during the hand-over", round, got)
		}
		msg := fmt.Sprintf("round %d, in the gap", round)
		send(msg)
		nn.Run("ip", "-n", next, "addr", "add", vip+"/24", "dev", "eth0")
		// The old holder asks who has the VIP again within a second
		// (IPaddr's gratuitous ARP would answer it at once); the
		// datagram waits in its neighbour queue meanwhile.
		pc.SetReadDeadline(time.Now().Add(window + 5*time.Second))
		buf := make([]byte, 64)
		n, _, err := pc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("round %d: the next holder got %q, %v: the datagram sent in the gap was lost", round, buf[:n], err)
		}
		testutil.Eventually(t, window+10*time.Second, fmt.Sprintf("round %d: forwarding restored after the hand-over (the sysctl)", round), func() (string, bool) {
			f := forwarding()
			return f, f == "0"
		})
		nn.Run("ip", "-n", next, "addr", "del", vip+"/24", "dev", "eth0")
	}
}

func TestHandoverParams(t *testing.T) {
	if _, err := ipaddr.Parse(map[string]string{"ip": "fd00::3", "handover": "1s"}); err == nil || !strings.Contains(err.Error(), "IPv4 only") {
		t.Errorf("IPv6 handover: %v", err)
	}
	if _, err := ipaddr.Parse(map[string]string{"ip": "10.0.0.3", "handover": "1m"}); err == nil {
		t.Error("a minute-long handover accepted")
	}
	if p, err := ipaddr.Parse(map[string]string{"ip": "10.0.0.3", "handover": "1s"}); err != nil || p.Handover != time.Second {
		t.Errorf("handover 1s: %+v %v", p, err)
	}
}
