package daemon

import (
	"context"
	"sync"

	"github.com/vigil-ha/vigil/cluster/consensus"
	"github.com/vigil-ha/vigil/cluster/membership"
)

// raftGate holds Raft's dials to a peer that membership declared dead and
// lets them through the moment a heartbeat from it arrives. hashicorp/raft
// backs off exponentially from a peer whose RPCs keep failing (up to about
// ten seconds between tries), so without the gate a director returning
// after a crash would wait that long to rejoin: a dial that waits for the
// peer does not count as a failure until the transport's timeout. A dial
// in flight when the peer is heard again (begun before it was declared
// dead, its links down) starts over rather than wait out its connect.
type raftGate struct {
	tracker *membership.Tracker
	byAddr  map[string]string // Raft address → node

	mu   sync.Mutex
	back map[string]chan struct{} // node → closed when it is next heard after a death or restart
	dead map[string]bool
}

func newRaftGate(t *membership.Tracker, peers []consensus.Peer) *raftGate {
	g := &raftGate{tracker: t, byAddr: map[string]string{}, back: map[string]chan struct{}{}, dead: map[string]bool{}}
	for _, p := range peers {
		g.byAddr[p.Address] = p.Name
	}
	return g
}

// wait implements consensus.Options.PeerWait.
func (g *raftGate) wait(addr string) (<-chan struct{}, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	node, ok := g.byAddr[addr]
	if !ok {
		return nil, false
	}
	ch := g.back[node]
	if ch == nil {
		ch = make(chan struct{})
		g.back[node] = ch
	}
	return ch, g.dead[node]
}

func (g *raftGate) run(ctx context.Context) error {
	events, cancel := g.tracker.Subscribe(64)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			g.mu.Lock()
			for n, ch := range g.back {
				close(ch)
				delete(g.back, n)
			}
			clear(g.dead)
			g.mu.Unlock()
			return nil
		case ev := <-events:
			g.note(ev)
		}
	}
}

// note takes in a membership event: a death holds the peer's dials, its
// return (heard again, or restarted) lets them through and starts those
// in flight over.
func (g *raftGate) note(ev membership.Event) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case ev.Kind == membership.NodeDead:
		g.dead[ev.Node] = true
	case ev.Kind == membership.NodeRestarted || ev.Kind == membership.NodeUp && g.dead[ev.Node]:
		if ch := g.back[ev.Node]; ch != nil {
			close(ch)
			delete(g.back, ev.Node)
		}
		delete(g.dead, ev.Node)
	}
}
