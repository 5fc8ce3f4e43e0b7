package daemon

import (
	"testing"

	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/membership"
)

// The gate holds dials to a dead peer until it is heard again, and tells
// dials in flight when a peer comes back from a death or a restart — not
// when a live peer is merely heard.
func TestRaftGate(t *testing.T) {
	g := newRaftGate(nil, []consensus.Peer{{Name: "n2", Address: "10.0.0.2:7946"}})
	isClosed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	if ch, dead := g.wait("10.9.9.9:7946"); ch != nil || dead {
		t.Fatal("an address of no peer is waited for")
	}
	inFlight, dead := g.wait("10.0.0.2:7946")
	if dead {
		t.Fatal("a live peer is dead")
	}
	g.note(membership.Event{Kind: membership.NodeUp, Node: "n2"})
	if isClosed(inFlight) {
		t.Fatal("a live peer heard again restarts the dials in flight")
	}
	g.note(membership.Event{Kind: membership.NodeDead, Node: "n2"})
	held, dead := g.wait("10.0.0.2:7946")
	if !dead || held != inFlight {
		t.Fatalf("dead peer: dead %v, same channel %v", dead, held == inFlight)
	}
	g.note(membership.Event{Kind: membership.NodeUp, Node: "n2"})
	if !isClosed(held) {
		t.Fatal("a dead peer heard again does not let its dials through")
	}
	next, dead := g.wait("10.0.0.2:7946")
	if dead || isClosed(next) {
		t.Fatal("after its return the peer is dead, or its next return already happened")
	}
	g.note(membership.Event{Kind: membership.NodeRestarted, Node: "n2"})
	if !isClosed(next) {
		t.Fatal("a restart does not start the dials in flight over")
	}
}
