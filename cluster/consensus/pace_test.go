package consensus

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestPace: the leader runs with Timing.Leading as its heartbeat timeout
// (it beats half as often), the followers with Timing.Heartbeat (they
// campaign as soon as before), and the roles' timeouts follow a change
// of leader.
func TestPace(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	if fast.Leading <= fast.Heartbeat {
		t.Fatalf("Leading %s is not longer than Heartbeat %s", fast.Leading, fast.Heartbeat)
	}
	ms := startCluster(t, 3, fast, testLog(t))
	paced := func(leader *member) error {
		for _, m := range ms {
			want := fast.Heartbeat
			if m == leader {
				want = fast.Leading
			}
			if got := m.node.raft().ReloadableConfig(); got.HeartbeatTimeout != want || got.ElectionTimeout != max(want, fast.Election) {
				return fmt.Errorf("%s (leader %v): heartbeat timeout %s, election timeout %s; want %s", m.node.opt.Self, m == leader, got.HeartbeatTimeout, got.ElectionTimeout, want)
			}
		}
		return nil
	}
	// Reloads follow the state observation at once; a second is far
	// more than a loaded machine needs.
	await := func(leader *member) {
		t.Helper()
		deadline := time.Now().Add(time.Second + 20*fast.Leading)
		for err := paced(leader); err != nil; err = paced(leader) {
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			<-time.After(fast.Heartbeat / 10)
		}
	}
	leader := waitLeader(t, ms)
	await(leader)

	var next *member
	for _, m := range ms {
		if m != leader {
			next = m
		}
	}
	for err := leader.node.TransferLeadership(next.node.opt.Self, next.node.opt.Bind); err != nil; err = leader.node.TransferLeadership(next.node.opt.Self, next.node.opt.Bind) {
		if !leader.node.IsLeader() {
			break // it lost leadership by itself meanwhile
		}
	}
	await(waitLeader(t, ms))
}
