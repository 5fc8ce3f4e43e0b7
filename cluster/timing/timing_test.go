package timing

import (
	"testing"
	"time"
)

// TestDerived pins every derived duration, so that changing a multiple
// fails here first. The configurations are ha.toml's default ratios at a
// 100 ms and a 1 s beat, and at 40 ms and 10 ms beats, where the bounds
// of the clamped values (GatherQuiet, LeaderTick, ...) come
// into play.
func TestDerived(t *testing.T) {
	const ms, us = time.Millisecond, time.Microsecond
	configs := []Timing{
		{Keepalive: 100 * ms, Deadtime: 350 * ms, Lease: 300 * ms},
		{Keepalive: time.Second, Deadtime: 3500 * ms, Lease: 3 * time.Second, AddressLifetime: 3 * time.Second},
		{Keepalive: 40 * ms, Deadtime: 140 * ms, Lease: 120 * ms},
		{Keepalive: 10 * ms, Deadtime: 35 * ms, Lease: 30 * ms},
	}
	for _, tc := range []struct {
		name string
		f    func(Timing) time.Duration
		want [4]time.Duration // one per configuration
	}{
		{"DefaultDeadtime", func(t Timing) time.Duration { return DefaultDeadtime(t.Keepalive) }, [4]time.Duration{350 * ms, 3500 * ms, 140 * ms, 35 * ms}},
		{"DefaultWarntime", func(t Timing) time.Duration { return DefaultWarntime(t.Deadtime) }, [4]time.Duration{175 * ms, 1750 * ms, 70 * ms, 17500 * us}},
		{"DefaultInitdead", func(t Timing) time.Duration { return DefaultInitdead(t.Deadtime) }, [4]time.Duration{700 * ms, 7 * time.Second, 280 * ms, 70 * ms}},
		{"DefaultLease", func(t Timing) time.Duration { return DefaultLease(t.Keepalive, t.Deadtime) }, [4]time.Duration{300 * ms, 3 * time.Second, 120 * ms, 30 * ms}},
		{"DefaultFenceDelay", func(t Timing) time.Duration { return DefaultFenceDelay(t.Deadtime) }, [4]time.Duration{350 * ms, 3500 * ms, 140 * ms, 35 * ms}},
		{"MinDeadtime", Timing.MinDeadtime, [4]time.Duration{300 * ms, 3 * time.Second, 120 * ms, 30 * ms}},
		{"MinLease", Timing.MinLease, [4]time.Duration{200 * ms, 2 * time.Second, 80 * ms, 20 * ms}},
		{"SteadyLease", Timing.SteadyLease, [4]time.Duration{300 * ms, 3 * time.Second, 120 * ms, 30 * ms}},
		{"MaxLease", Timing.MaxLease, [4]time.Duration{300 * ms, 3 * time.Second, 120 * ms, 30 * ms}},
		{"LeaseMargin", Timing.LeaseMargin, [4]time.Duration{50 * ms, 500 * ms, 20 * ms, 5 * ms}},
		{"StopBudget", Timing.StopBudget, [4]time.Duration{75 * ms, 750 * ms, 30 * ms, 7500 * us}},
		{"Linger(1.5s)", func(t Timing) time.Duration { return t.Linger(1500 * ms) }, [4]time.Duration{0, 4500 * ms, 0, 0}},
		{"PingInterval", Timing.PingInterval, [4]time.Duration{100 * ms, time.Second, 40 * ms, 10 * ms}},
		{"PingLease", Timing.PingLease, [4]time.Duration{300 * ms, 3 * time.Second, 120 * ms, 30 * ms}},
		{"PingSettle", Timing.PingSettle, [4]time.Duration{350 * ms, 3500 * ms, 140 * ms, 35 * ms}},
		{"RaftTimeout", Timing.RaftTimeout, [4]time.Duration{500 * ms, 5 * time.Second, 200 * ms, 50 * ms}},
		{"RaftLeaderLease", Timing.RaftLeaderLease, [4]time.Duration{500 * ms, 5 * time.Second, 200 * ms, 50 * ms}},
		{"RaftLeading", Timing.RaftLeading, [4]time.Duration{time.Second, 10 * time.Second, 400 * ms, 100 * ms}},
		{"RaftCommit", Timing.RaftCommit, [4]time.Duration{2 * time.Second, 20 * time.Second, 800 * ms, 200 * ms}},
		{"RaftOpTimeout", Timing.RaftOpTimeout, [4]time.Duration{1400 * ms, 14 * time.Second, time.Second, time.Second}},
		{"RejoinTimeout", Timing.RejoinTimeout, [4]time.Duration{3500 * ms, 35 * time.Second, 1400 * ms, time.Second}},
		{"LeaderTick", Timing.LeaderTick, [4]time.Duration{350 * ms, 3500 * ms, 140 * ms, 50 * ms}},
		{"HandOverInterval", Timing.HandOverInterval, [4]time.Duration{2750 * ms, 18500 * ms, 1700 * ms, 1175 * ms}},
		{"FenceRetry", Timing.FenceRetry, [4]time.Duration{time.Second, 3500 * ms, time.Second, time.Second}},
		{"GatherQuiet", Timing.GatherQuiet, [4]time.Duration{2 * ms, 2 * ms, 800 * us, 500 * us}},
		{"GatherMax", Timing.GatherMax, [4]time.Duration{25 * ms, 250 * ms, 10 * ms, 2500 * us}},
		{"CommitBackoff", Timing.CommitBackoff, [4]time.Duration{100 * ms, time.Second, 40 * ms, 10 * ms}},
		{"Recheck", Timing.Recheck, [4]time.Duration{100 * ms, time.Second, 40 * ms, 10 * ms}},
		{"LeaveTimeout(10s)", func(t Timing) time.Duration { return t.LeaveTimeout(10 * time.Second) }, [4]time.Duration{17 * time.Second, 80 * time.Second, 12800 * ms, 10700 * ms}},
	} {
		for i, c := range configs {
			if got := tc.f(c); got != tc.want[i] {
				t.Errorf("%s at keepalive %s, deadtime %s, lease %s: %s, want %s", tc.name, c.Keepalive, c.Deadtime, c.Lease, got, tc.want[i])
			}
		}
	}
}
