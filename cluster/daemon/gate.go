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
// peer does not count as a failure until the transport's timeout.
type raftGate struct {
	tracker *membership.Tracker
	byAddr  map[string]string // Raft address → node

	mu   sync.Mutex
	dead map[string]chan struct{} // node → closed when it is heard again
}

func newRaftGate(t *membership.Tracker, peers []consensus.Peer) *raftGate {
	g := &raftGate{tracker: t, byAddr: map[string]string{}, dead: map[string]chan struct{}{}}
	for _, p := range peers {
		g.byAddr[p.Address] = p.Name
	}
	return g
}

// wait implements consensus.Options.PeerWait.
func (g *raftGate) wait(addr string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dead[g.byAddr[addr]]
}

func (g *raftGate) run(ctx context.Context) error {
	events, cancel := g.tracker.Subscribe(64)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			g.mu.Lock()
			for n, ch := range g.dead {
				close(ch)
				delete(g.dead, n)
			}
			g.mu.Unlock()
			return nil
		case ev := <-events:
			g.mu.Lock()
			switch ch := g.dead[ev.Node]; {
			case ev.Kind == membership.NodeDead && ch == nil:
				g.dead[ev.Node] = make(chan struct{})
			case (ev.Kind == membership.NodeUp || ev.Kind == membership.NodeRestarted) && ch != nil:
				close(ch)
				delete(g.dead, ev.Node)
			}
			g.mu.Unlock()
		}
	}
}
