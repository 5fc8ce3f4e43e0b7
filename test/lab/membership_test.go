package lab_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/test/lab"
)

var vigilBin string

func TestMain(m *testing.M) {
	if why := lab.Available(); why != "" {
		fmt.Println("lab tests skipped:", why)
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "vigil-lab-bin")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	vigilBin, err = lab.BuildVigil(dir)
	if err != nil {
		fmt.Println(err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		// Every client, watcher and log pump of the lab ended with its test.
		if err := goleak.Find(); err != nil {
			fmt.Println("goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func needLab(t *testing.T) *lab.Lab {
	t.Helper()
	if why := lab.Available(); why != "" {
		t.Skip(why)
	}
	return lab.New(t)
}

const (
	keepalive = 50 * time.Millisecond
	deadtime  = 400 * time.Millisecond
)

func threeNodes(t *testing.T, l *lab.Lab, serial bool, secrets map[string]string) map[string]*lab.Node {
	t.Helper()
	c := &lab.Cluster{Name: "labtest", Keepalive: keepalive, Deadtime: deadtime, Initdead: 3 * time.Second, Secret: "lab-secret-0123456789abcdef"}
	return l.Trio(vigilBin, c, serial, secrets)
}

func events(t testing.TB, n *lab.Node) <-chan membership.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := n.Client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// waitEvent returns the first event matching kind and node, failing the
// test after timeout. Events it passes over are returned too, so callers
// can assert what did not happen.
func waitEvent(t testing.TB, ch <-chan membership.Event, kind membership.EventKind, node, link string, timeout time.Duration) (membership.Event, []membership.Event) {
	t.Helper()
	var seen []membership.Event
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event stream closed waiting for %s %s", kind, node)
			}
			if ev.Kind == kind && ev.Node == node && (link == "" || strings.HasPrefix(ev.Link, link)) {
				return ev, seen
			}
			seen = append(seen, ev)
		case <-deadline:
			t.Fatalf("no %s %s %s within %s; saw %+v", kind, node, link, timeout, seen)
		}
	}
}

func allUp(peers ...string) func(*api.Status) bool {
	return func(st *api.Status) bool {
		for _, p := range peers {
			if n := lab.Peer(st, p); n == nil || n.State != "up" {
				return false
			}
		}
		return true
	}
}

// TestThreeNodeMembership is the foundation's core promise: nodes find each
// other over every medium at once, a peer whose UDP path is cut stays alive
// over the serial cable, and a killed node is declared dead within
// deadtime + one keepalive.
func TestThreeNodeMembership(t *testing.T) {
	l := needLab(t)
	nodes := threeNodes(t, l, true, nil)
	n1, n2, n3 := nodes["n1"], nodes["n2"], nodes["n3"]

	// Everyone sees everyone, link by link.
	st, err := n1.WaitStatus(10*time.Second, func(st *api.Status) bool {
		return allUp("n2", "n3")(st) && lab.LinkState(st, "n2", "ucast") == "up" && lab.LinkState(st, "n2", "bcast") == "up" &&
			lab.LinkState(st, "n2", "serial") == "up" && lab.LinkState(st, "n3", "ucast") == "up" && lab.LinkState(st, "n3", "bcast") == "up"
	})
	if err != nil {
		t.Fatalf("%v\n%+v", err, st)
	}
	for _, n := range []*lab.Node{n2, n3} {
		if _, err := n.WaitStatus(10*time.Second, allUp("n1")); err != nil {
			t.Fatal(err)
		}
	}

	// Cut n2's UDP paths: n1 keeps it alive over serial, n3 loses it.
	ev1, ev3 := events(t, n1), events(t, n3)
	l.LinkSet("n2", "eth0", "down")
	l.LinkSet("n2", "eth1", "down")
	waitEvent(t, ev1, membership.LinkDead, "n2", "ucast", 5*time.Second)
	waitEvent(t, ev1, membership.LinkDead, "n2", "bcast", 5*time.Second)
	waitEvent(t, ev3, membership.NodeDead, "n2", "", 5*time.Second)
	// Let well over a deadtime pass, measured by serial heartbeats arriving
	// on n1, then check n2 never died there.
	base := serialReceived(st, "n2")
	st, err = n1.WaitStatus(10*time.Second, func(st *api.Status) bool {
		return serialReceived(st, "n2") > base+uint64(3*deadtime/keepalive)
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := lab.Peer(st, "n2"); p.State != "up" || lab.LinkState(st, "n2", "ucast") != "dead" || lab.LinkState(st, "n2", "serial") != "up" {
		t.Fatalf("n1's view of n2 after UDP cut: %+v", p)
	}
	drainNoDeath(t, ev1, "n2")

	// Restore UDP: the links come back.
	l.LinkSet("n2", "eth0", "up")
	l.LinkSet("n2", "eth1", "up")
	waitEvent(t, ev1, membership.LinkUp, "n2", "ucast", 5*time.Second)
	waitEvent(t, ev3, membership.NodeUp, "n2", "", 5*time.Second)

	// kill -9 n3: dead on n1 within deadtime + one keepalive.
	killed := time.Now()
	n3.Proc.Kill()
	ev, _ := waitEvent(t, ev1, membership.NodeDead, "n3", "", 5*time.Second)
	lat := ev.Time.Sub(killed)
	t.Logf("n3 killed; n1 declared it dead after %s (deadtime %s, keepalive %s): %s", lat.Round(time.Millisecond), deadtime, keepalive, ev.Reason)
	if lat > deadtime+keepalive || lat < deadtime-2*keepalive {
		t.Errorf("detection after %s, want within [deadtime-2×keepalive, deadtime+keepalive] = [%s, %s]", lat, deadtime-2*keepalive, deadtime+keepalive)
	}
	if _, err := n2.WaitStatus(5*time.Second, func(st *api.Status) bool { return lab.Peer(st, "n3").State == "dead" }); err != nil {
		t.Fatal(err)
	}
}

func serialReceived(st *api.Status, peer string) uint64 {
	if p := lab.Peer(st, peer); p != nil {
		for _, l := range p.Links {
			if strings.HasPrefix(l.Link, "serial") {
				return l.Received
			}
		}
	}
	return 0
}

func drainNoDeath(t *testing.T, ch <-chan membership.Event, node string) {
	t.Helper()
	for {
		select {
		case ev := <-ch:
			if ev.Kind == membership.NodeDead && ev.Node == node {
				t.Fatalf("%s was declared dead although the serial link carried its heartbeats: %+v", node, ev)
			}
		default:
			return
		}
	}
}

// TestWrongSecret: a node with another secret is never a member; its
// packets are counted as bad_mac on every link.
func TestWrongSecret(t *testing.T) {
	l := needLab(t)
	nodes := threeNodes(t, l, false, map[string]string{"n3": "not-the-cluster-secret-at-all"})
	n1 := nodes["n1"]
	ev1 := events(t, n1)
	st, err := n1.WaitStatus(10*time.Second, func(st *api.Status) bool {
		return allUp("n2")(st) && lab.Dropped(st, "bad_mac") >= 40
	})
	if err != nil {
		t.Fatal(err)
	}
	p3 := lab.Peer(st, "n3")
	if p3.State == "up" {
		t.Fatalf("n3 with a wrong secret is seen as a member: %+v", p3)
	}
	for _, lk := range p3.Links {
		if lk.Received != 0 {
			t.Errorf("heartbeats from n3 accepted on %s: %d", lk.Link, lk.Received)
		}
	}
	for _, lk := range st.Links {
		if lk.Dropped["bad_mac"] == 0 {
			t.Errorf("link %s counted no bad_mac drops: %+v", lk.Link, lk)
		}
	}
	// And the other way round: n3 accepts nobody.
	st3, err := nodes["n3"].WaitStatus(10*time.Second, func(st *api.Status) bool { return lab.Dropped(st, "bad_mac") >= 40 })
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"n1", "n2"} {
		if lab.Peer(st3, p).State == "up" {
			t.Errorf("n3 sees %s as up with the wrong secret", p)
		}
	}
	for {
		select {
		case ev := <-ev1:
			if ev.Node == "n3" && (ev.Kind == membership.NodeUp || ev.Kind == membership.LinkUp) {
				t.Fatalf("n1 emitted %+v for the intruder", ev)
			}
		default:
			return
		}
	}
}

// TestHostilePackets throws malformed, foreign, stale and replayed packets
// at a daemon: each is dropped and counted under its reason, and the
// daemon and its membership carry on.
func TestHostilePackets(t *testing.T) {
	l := needLab(t)
	l.AddNS("sw")
	l.Bridge("sw", "br0")
	c := &lab.Cluster{Name: "labtest", Keepalive: keepalive, Deadtime: deadtime, Secret: "lab-secret-0123456789abcdef",
		Nodes: []lab.NodeSpec{{Name: "n1", Address: "10.77.1.1"}, {Name: "n2", Address: "10.77.1.2"}}}
	var nodes []*lab.Node
	for i, name := range []string{"n1", "n2"} {
		l.AddNS(name)
		l.Wire(name, "eth0", "sw", "br0", fmt.Sprintf("10.77.1.%d/24", i+1))
		dir := l.WriteConfig(c, name, "[[ucast]]\nport = 6940\n", "")
		nodes = append(nodes, l.StartDaemon(vigilBin, name, name, dir))
	}
	l.AddNS("evil")
	l.Wire("evil", "eth0", "sw", "br0", "10.77.1.66/24")
	n1 := nodes[0]
	st, err := n1.WaitStatus(10*time.Second, allUp("n2"))
	if err != nil {
		t.Fatal(err)
	}
	inc := lab.Peer(st, "n2").Incarnation

	good, _ := heartbeat.NewCodec("labtest", []byte(c.Secret))
	other, _ := heartbeat.NewCodec("othercluster", []byte(c.Secret))
	mk := func(cd *heartbeat.Codec, m heartbeat.Message) []byte {
		b, err := cd.Append(nil, &m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid := mk(good, heartbeat.Message{Node: "n2", Incarnation: inc, Seq: 1})
	// Malformed packets, other protocols and other clusters' heartbeats
	// never reach the daemon: the socket filter drops them in the kernel,
	// whose drop counter status reports as "filtered". The rest look like
	// this cluster's heartbeats and are refused by the daemon, each for
	// its reason.
	packets := map[string][][]byte{
		"filtered": {{}, {1, 2, 3}, make([]byte, 2000), valid[:30],
			[]byte("GET / HTTP/1.0\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
			mk(other, heartbeat.Message{Node: "n2", Incarnation: 1, Seq: 1})},
		"bad_mac":      {append(append([]byte{}, valid[:len(valid)-1]...), valid[len(valid)-1]^1)},
		"replay":       {valid},
		"stale":        {mk(good, heartbeat.Message{Node: "n2", Incarnation: inc - 1, Seq: 1 << 40})},
		"unknown_node": {mk(good, heartbeat.Message{Node: "mallory", Incarnation: 1, Seq: 1})},
	}
	const rounds = 20
	err = l.InNS("evil", func() error {
		conn, err := net.Dial("udp4", "10.77.1.1:6940")
		if err != nil {
			return err
		}
		defer conn.Close()
		for i := 0; i < rounds; i++ {
			for _, list := range packets {
				for _, p := range list {
					if _, err := conn.Write(p); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err = n1.WaitStatus(10*time.Second, func(st *api.Status) bool {
		for reason, list := range packets {
			if lab.Dropped(st, reason) < uint64(rounds*len(list)) {
				return false
			}
		}
		return true
	})
	if err != nil {
		if st == nil {
			t.Fatal(err)
		}
		t.Fatalf("%v\ncounters: %+v", err, st.Links)
	}
	if p := lab.Peer(st, "n2"); p.State != "up" || p.Incarnation != inc {
		t.Errorf("n2 after the attack: %+v", p)
	}
	if nodes[0].Proc.Exited() {
		t.Fatal("n1 died")
	}
	t.Logf("drop counters after the attack: %+v", st.Links[0].Dropped)
}
