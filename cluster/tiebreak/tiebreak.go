// Package tiebreak decides, for a two_node pair (no witness), whether this
// node may hold or take over groups while its peer is silent on every
// link. Heartbeats alone cannot tell a dead peer from cut links; two
// outside witnesses can:
//
//   - ping nodes (a router on the network the clients use): a node that
//     none of them answers is the isolated side — it holds nothing alone
//     and never takes over; one that a ping node answers may;
//   - a fencing plugin: a survivor takes over only after the plugin
//     powered the peer off and confirmed it.
//
// With neither, a survivor never takes over a silent peer's groups (the
// peer keeps them); the operator decides with `vigil takeover`.
package tiebreak

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Fencer is the fencing plugin: the host's Fence handle.
type Fencer interface {
	Off(ctx context.Context, in *pb.FenceRequest) (*pb.FenceResult, error)
	Status(ctx context.Context, in *pb.FenceRequest) (*pb.FenceResult, error)
}

// Options configures a Breaker.
type Options struct {
	PingNodes []string
	// Interval is between echo requests to each ping node: the
	// keepalive (timing.PingInterval), which Takeover relies on.
	Interval time.Duration
	// Lease is how long an answered echo lets this node hold groups
	// without its peer, counted from when the request left.
	Lease time.Duration
	// Settle is how long the ping nodes must have answered without a
	// gap longer than Lease before this node may take over: a deadtime.
	// A node that was cut off itself hears its ping nodes again at the
	// moment its links come back, perhaps before its peer's next
	// heartbeat, while the peer still counts as silent; its gap in the
	// answers shows it was the isolated side.
	Settle time.Duration
	// Fence is the fencing plugin, nil if none.
	Fence        Fencer
	FenceName    string
	FenceParams  map[string]string
	FenceTimeout time.Duration
	// FenceDelay is how long a node that runs no group waits before it
	// fences, so that in a race the node running the groups wins.
	FenceDelay time.Duration
	Log        *slog.Logger
}

// ErrNoTieBreaker means nothing can tell a dead peer from cut links.
var ErrNoTieBreaker = errors.New("no tie-breaker configured (ping_nodes, [fence]): a silent peer may still run its groups")

// Breaker is safe for concurrent use.
type Breaker struct {
	opt Options

	mu        sync.Mutex
	answered  map[string]time.Time // ping node → send time of its latest answered echo
	last      time.Time            // send time of the latest answered echo of any
	since     time.Time            // send time of the first answer after the latest gap
	answers   chan struct{}        // closed (and replaced) at every answer
	lastFence FenceRecord
}

// FenceRecord is the outcome of the latest fencing. It is the control
// API's wire type, defined in package api.
type FenceRecord = api.FenceRecord

// New returns a breaker; Run sends the pings.
func New(opt Options) *Breaker {
	return &Breaker{opt: opt, answered: map[string]time.Time{}, answers: make(chan struct{})}
}

// Configured reports whether anything can break a tie.
func (b *Breaker) Configured() bool { return len(b.opt.PingNodes) > 0 || b.opt.Fence != nil }

// AloneUntil is until when this node may hold its groups without its
// peer's confirmation: always (now + lease) without ping nodes — the
// fencing plugin, if any, is what keeps a silent peer from taking them —
// and with ping nodes the send time of the latest answered echo plus
// the lease.
func (b *Breaker) AloneUntil(now time.Time) time.Time {
	if len(b.opt.PingNodes) == 0 {
		return now.Add(b.opt.Lease)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		return b.last
	}
	return b.last.Add(b.opt.Lease)
}

// AloneSince is when the ping nodes' answers began to run without a gap
// longer than the lease (the send time of the first answer after the
// latest gap); the zero time without ping nodes, where nothing breaks.
func (b *Breaker) AloneSince() time.Time {
	if len(b.opt.PingNodes) == 0 {
		return time.Time{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		return time.Now() // never answered: no run has begun
	}
	return b.since
}

// Takeover decides whether this node may take over from its silent peer,
// last heard at heard. holding says whether this node runs any group (it
// fences without the delay). A nil error means yes; the error says why
// not.
//
// With ping nodes, an answer counts only to an echo that left two
// keepalives after the peer was last heard, when its next beat was due
// even if late: the answer proves this node still received then, so the
// silence is the peer's. A node that has lost only its incoming traffic
// (deaf: its peer still hears it and keeps its groups) otherwise took
// over on answers that arrived before it went deaf, while they were
// younger than the lease. Takeover waits for such an answer up to a lease
// past that point (pings go every keepalive, so normally none).
func (b *Breaker) Takeover(ctx context.Context, peer string, heard time.Time, holding bool) error {
	if !b.Configured() {
		return ErrNoTieBreaker
	}
	if len(b.opt.PingNodes) > 0 {
		if err := b.awaitAnswer(ctx, heard.Add(2*b.opt.Interval)); err != nil {
			return err
		}
		now := time.Now()
		if !now.Before(b.AloneUntil(now)) {
			return b.isolated()
		}
		b.mu.Lock()
		steady := now.Sub(b.since)
		b.mu.Unlock()
		if steady < b.opt.Settle {
			return fmt.Errorf("the ping nodes answer again only since %s (less than %s): this node may have been the isolated one", steady.Round(time.Millisecond), b.opt.Settle)
		}
	}
	if b.opt.Fence == nil {
		return nil
	}
	if !holding && b.opt.FenceDelay > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(b.opt.FenceDelay):
		}
	}
	return b.Fence(ctx, peer)
}

func (b *Breaker) isolated() error {
	return fmt.Errorf("no ping node answers (%v): this node may be the isolated one", b.opt.PingNodes)
}

// awaitAnswer waits until a ping node answered an echo sent after after,
// at most a lease past after.
func (b *Breaker) awaitAnswer(ctx context.Context, after time.Time) error {
	deadline := after.Add(b.opt.Lease)
	for {
		b.mu.Lock()
		ok, answers := b.last.After(after), b.answers
		b.mu.Unlock()
		if ok {
			return nil
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			// Not answered by then: this node's own lease from the
			// ping nodes has run out too (it began before after).
			return b.isolated()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-answers:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// Fence powers node off through the fencing plugin and confirms it: only
// a status of OFF counts.
func (b *Breaker) Fence(ctx context.Context, node string) (err error) {
	if b.opt.Fence == nil {
		return errors.New("no [fence] plugin configured")
	}
	defer func() {
		rec := FenceRecord{Node: node, At: time.Now(), Result: "off"}
		if err != nil {
			rec.Result = err.Error()
		}
		b.mu.Lock()
		b.lastFence = rec
		b.mu.Unlock()
	}()
	req := &pb.FenceRequest{Node: node, Params: b.opt.FenceParams, TimeoutMs: b.opt.FenceTimeout.Milliseconds()}
	b.opt.Log.Warn("fencing", "node", node, "plugin", b.opt.FenceName)
	if _, err := b.opt.Fence.Off(ctx, req); err != nil {
		return fmt.Errorf("fence %s off: %w", node, err)
	}
	res, err := b.opt.Fence.Status(ctx, req)
	if err != nil {
		return fmt.Errorf("fence %s status: %w", node, err)
	}
	if res.GetPower() != pb.Power_OFF {
		return fmt.Errorf("fence %s: power is %s after off (%s)", node, res.GetPower(), res.GetDetail())
	}
	b.opt.Log.Warn("fenced: power confirmed off", "node", node, "plugin", b.opt.FenceName, "detail", res.GetDetail())
	return nil
}

// PingStatus is one ping node as `vigil status` shows it. It is the control
// API's wire type, defined in package api.
type PingStatus = api.PingStatus

// Status is the tie-breakers' state. It is the control
// API's wire type, defined in package api.
type Status = api.TieBreakStatus

// PairStatus is the two_node part of `vigil status`. It is the control
// API's wire type, defined in package api.
type PairStatus = api.PairStatus

// Status returns the tie-breakers' state at now.
func (b *Breaker) Status(now time.Time) Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Status{Fence: b.opt.FenceName}
	for _, a := range b.opt.PingNodes {
		at := b.answered[a]
		st.Ping = append(st.Ping, PingStatus{Addr: a, Answered: at, Up: !at.IsZero() && now.Before(at.Add(b.opt.Lease))})
	}
	if !b.lastFence.At.IsZero() {
		f := b.lastFence
		st.LastFence = &f
	}
	return st
}

func (b *Breaker) answer(addr string, sent time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sent.After(b.answered[addr]) {
		b.answered[addr] = sent
	}
	if b.last.IsZero() || sent.After(b.last.Add(b.opt.Lease)) {
		b.since = sent // the first answer after a gap
	}
	if sent.After(b.last) {
		b.last = sent
	}
	close(b.answers)
	b.answers = make(chan struct{})
}
