package daemon

import (
	"context"

	"github.com/vigil-ha/vigil/cluster/fsm"
)

// beatOnDown calls beat whenever this node applies an entry that takes a
// node offline. The new owner of that node's groups waits until enough
// voters said, in a heartbeat, that they applied it (lease.ReleasedAt);
// saying so at once rather than at the next beat takes up to a
// keepalive off every failover, for one beat more per death.
func beatOnDown(ctx context.Context, f *fsm.FSM, beat func()) error {
	down := map[string]uint64{} // the offline entry last announced, by node
	var seen uint64
	for {
		changed := f.Changed()
		t := f.Since(seen)
		seen = t.To
		if t.All || t.Nodes {
			news := false
			f.Read(func(s *fsm.State) {
				for name, n := range s.Nodes {
					if !n.Online && n.DownIndex > down[name] {
						down[name], news = n.DownIndex, true
					}
				}
			})
			if news {
				beat()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}
