// Package lease decides, from heartbeats alone, whether this node may hold
// resources, and when a node that went offline surely holds none.
//
// The safety argument (also in docs/SAFETY.md):
//
//  1. Every heartbeat carries echoes: for each peer, the sequence number of
//     the latest beat heard from it. A node keeps the send time of its own
//     recent beats; an echo of beat s from voter R renews its lease from R
//     until send(s) + lease. Send times are on the node's own monotonic
//     clock and precede R's receipt, so no clock is compared across nodes.
//  2. A node holds resources only while the lease from enough voters that,
//     counting itself, they form a quorum is valid, minus a stop budget: it
//     stops its groups before the lease runs out.
//  3. A voter echoes a node only while the replicated state says that node
//     is online. Once it applied the entry that took the node offline
//     (index DownIndex), it never renews it again until it is brought back
//     online; its heartbeats report its applied index and, per node, how
//     long ago it last received a beat it renewed from ("age").
//  4. A node may start a group that an offline node may still run only after
//     voters that deny that node a quorum — all but quorum-2 of the others —
//     each reported applied ≥ DownIndex, and lease + margin has passed since
//     the last beat each of them renewed. Any quorum the old owner could
//     use intersects them, so its lease has surely run out.
//
// With deadtime > lease + margin, a crashed node's lease has expired by the
// time it is declared dead, so the wait in 4 costs nothing in the common
// case; it only matters for asymmetric links and flapping.
package lease

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-ha/vigil/cluster/heartbeat"
)

// ring is how many of our own beats we remember: echoes of older beats
// renew nothing (at 10 ms beats that is 10 s).
const ring = 1024

// Options configures a Tracker.
type Options struct {
	Self        string
	Incarnation uint64
	Lease       time.Duration
	// StopBudget is the part of the lease kept for stopping: a node stops
	// its groups when less than this is left.
	StopBudget time.Duration
	// Margin is added to every expiry computed for another node, for clock
	// rate differences (timing.LeaseMargin says why that is all).
	Margin time.Duration
	// Voters returns the current voters (this node included, if it votes).
	Voters func() []string
	// Online says whether the replicated state has node online now.
	Online func(node string) bool
	// Applied returns this node's last applied index.
	Applied func() uint64
	// Overrun, if set, returns how long past the end of its lease this
	// node may still hold resources (releasing them takes longer than
	// StopBudget); it travels in heartbeats, and the others wait that
	// much longer before they take its groups.
	Overrun func() time.Duration
	// Linger is how long past the end of its lease what a node holds
	// may outlive every process of it (the VIPs' kernel address lifetime
	// and its slack; 0: nothing outlives them). It is the cluster's
	// setting: a node waits at least this for any other, whatever that
	// one last said, and says at least this itself.
	Linger time.Duration
	// Alone, if set (two_node pairs), returns until when the tie-breakers
	// let this node keep its groups without a quorum, and since when
	// they have done so without a break (the zero time: always, as
	// without ping nodes). It counts only as a continuation: while the
	// break-free run began before the last expiry this node was granted
	// (by a quorum, or alone). A node that restarts with an old view of
	// who owns what, or whose holding lapsed (its ping nodes silent, or
	// the node itself paused past its lease), holds nothing on its
	// tie-breakers alone until its peer confirms it again — or, as the
	// only voter, until they have answered for AloneSettle while its
	// peer is silent (PeerSilent) or says it is deaf and lapsed (Deaf),
	// the terms on which it took over.
	Alone       func(now time.Time) (until, since time.Time)
	AloneSettle time.Duration
	PeerSilent  func() bool
}

type sent struct {
	seq uint64
	at  time.Time
}

type peer struct {
	// What we hear from it.
	incarnation uint64
	lastSeq     uint64
	renewSeq    uint64    // the latest beat we may echo (it was online then)
	renewAt     time.Time // when we received it
	// What it tells us.
	heardAt  time.Time
	renewsUs time.Time // the send time of our beat it last echoed
	applied  uint64
	overrun  time.Duration // its release overrun, as it last said
	// deafSince is when we received the first of its latest run of
	// beats that say its hold lapsed and that it hears us no more
	// (two_node: docs/SAFETY.md, rule 7); zero when its latest beat
	// does not. Those beats are not renewed: it cannot hear the echo,
	// and its lapse then stays a promise (see Expiry).
	deafSince time.Time
	// withheld: renew nothing from it (a takeover from it is under way).
	withheld bool
	// When it last received a beat it renewed from, per node, on our
	// clock (estimated late, which errs on the safe side).
	lastRenew map[string]time.Time
}

// Tracker is safe for concurrent use.
type Tracker struct {
	opt   Options
	mu    sync.Mutex
	sent  [ring]sent
	peers map[string]*peer
	held  time.Time // the latest expiry this node was granted (Alone's continuity)
	// lapsedAt is when this node (a pair's, not its only voter) was
	// last found holding no lease, zero once renewed since: from then
	// on it says so in its beats, and holds nothing on its tie-breakers
	// alone until its peer renews a beat it sent from that instant on.
	lapsedAt time.Time
	onRenew  atomic.Pointer[func()]
	reported chan struct{}
}

// New returns a tracker.
func New(opt Options) *Tracker {
	return &Tracker{opt: opt, peers: map[string]*peer{}, reported: make(chan struct{}, 1)}
}

// Reported is signalled when a peer said it applied more of the log:
// ReleasedAt may have become true.
func (t *Tracker) Reported() <-chan struct{} { return t.reported }

// OnRenew has f called whenever a peer's echo may have moved this node's
// lease, and after every beat this node sends (nil: nothing is called),
// so that whoever hands the lease on (to the resource plugins) does so at
// once, and looks every keepalive whether it moved otherwise (the voters
// changed; a two_node pair's tie-breakers) on the beat's own wake-up. f
// runs on the heartbeat's goroutine, with no lock of the tracker held: it
// must not block. (A channel woke a goroutine of its own for every echo,
// and that goroutine a timer every keepalive: at a 10 ms beat, a third
// of an idle director's wake-ups.) It reports true: f is called every
// beat.
func (t *Tracker) OnRenew(f func()) (everyBeat bool) {
	if f == nil {
		t.onRenew.Store(nil)
		return true
	}
	t.onRenew.Store(&f)
	return true
}

func (t *Tracker) renewed() {
	if f := t.onRenew.Load(); f != nil {
		(*f)()
	}
}

func (t *Tracker) peer(name string) *peer {
	p := t.peers[name]
	if p == nil {
		p = &peer{lastRenew: map[string]time.Time{}}
		t.peers[name] = p
	}
	return p
}

// Decorate is the heartbeat engine's hook: it remembers when beat m.Seq
// left and adds the echoes and applied index; then it calls the OnRenew
// hook.
func (t *Tracker) Decorate(m *heartbeat.Message, now time.Time) {
	t.decorate(m, now)
	t.renewed()
}

func (t *Tracker) decorate(m *heartbeat.Message, now time.Time) {
	applied := t.opt.Applied()
	if t.opt.Alone != nil {
		t.Expiry(now) // sets lapsedAt if the hold lapsed by now
	}
	over := t.opt.Linger
	if t.opt.Overrun != nil {
		over = max(over, t.opt.Overrun())
	}
	m.OverrunUS = uint32(min(over.Microseconds(), 1<<32-1))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent[m.Seq%ring] = sent{seq: m.Seq, at: now}
	m.Applied = applied
	m.Lapsed = !t.lapsedAt.IsZero()
	for _, name := range t.opt.Voters() {
		if name == t.opt.Self {
			continue
		}
		p := t.peer(name)
		e := heartbeat.Echo{Node: name, Incarnation: p.incarnation, AgeUS: heartbeat.MaxAge}
		if !p.renewAt.IsZero() {
			e.AgeUS = uint32(min(int64(heartbeat.MaxAge-1), now.Sub(p.renewAt).Microseconds()))
		}
		if t.opt.Online(name) {
			e.Seq = p.renewSeq
		}
		m.Echo = append(m.Echo, e)
	}
}

// Heard takes an accepted heartbeat received at at.
func (t *Tracker) Heard(m *heartbeat.Message, at time.Time) {
	if t.heard(m, at) {
		t.renewed()
	}
}

// heard is Heard under the lock; it reports whether the beat renewed
// this node's lease.
func (t *Tracker) heard(m *heartbeat.Message, at time.Time) (renewed bool) {
	online := t.opt.Online(m.Node)
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peer(m.Node)
	switch {
	case m.Incarnation < p.incarnation:
		return false
	case m.Incarnation > p.incarnation:
		p.incarnation, p.lastSeq, p.renewSeq = m.Incarnation, 0, 0
	}
	if m.Seq <= p.lastSeq {
		return false // the same beat over another medium
	}
	p.lastSeq = m.Seq
	deaf := m.Lapsed && saysDead(m.View, t.opt.Self)
	switch {
	case !deaf:
		p.deafSince = time.Time{}
	case p.deafSince.IsZero():
		p.deafSince = at
	}
	if online && !deaf && !p.withheld {
		p.renewSeq, p.renewAt = m.Seq, at
	}
	if m.Applied > p.applied {
		select {
		case t.reported <- struct{}{}:
		default:
		}
	}
	p.heardAt, p.applied = at, m.Applied
	p.overrun = time.Duration(m.OverrunUS) * time.Microsecond
	for _, e := range m.Echo {
		if e.Node == t.opt.Self {
			if e.Incarnation == t.opt.Incarnation && e.Seq != 0 {
				if s := t.sent[e.Seq%ring]; s.seq == e.Seq && s.at.After(p.renewsUs) {
					p.renewsUs, renewed = s.at, true
				}
			}
			continue
		}
		if e.AgeUS == heartbeat.MaxAge {
			p.lastRenew[e.Node] = time.Time{}
		} else {
			p.lastRenew[e.Node] = at.Add(-time.Duration(e.AgeUS) * time.Microsecond)
		}
	}
	return renewed
}

// saysDead reports whether view has node dead (silent to its sender for
// deadtime); "init" (not heard since a restart) is no evidence.
func saysDead(view []heartbeat.ViewEntry, node string) bool {
	for _, v := range view {
		if v.Node == node {
			return v.State == heartbeat.StateDead
		}
	}
	return false
}

// Deaf reports whether node's latest beats, since it was received at
// since, say that its hold lapsed and that it hears this node no more
// (two_node). released is when what it held is surely gone: its lapse
// (no later than since), and the last lease this node gave it (the last
// beat renewed, before since, plus lease and margin), each plus its
// overrun. It holds nothing again unless this node renews a beat it
// sends later, which Withhold prevents.
func (t *Tracker) Deaf(node string) (since, released time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[node]
	if p == nil || p.deafSince.IsZero() {
		return time.Time{}, time.Time{}, false
	}
	released = p.deafSince
	if !p.renewAt.IsZero() {
		released = later(released, p.renewAt.Add(t.opt.Lease+t.opt.Margin))
	}
	return p.deafSince, released.Add(t.overrunLocked(node)), true
}

// peerDeafLocked reports whether a peer's latest beats say it is deaf
// and its hold lapsed (Deaf).
func (t *Tracker) peerDeafLocked() bool {
	for name, p := range t.peers {
		if name != t.opt.Self && !p.deafSince.IsZero() {
			return true
		}
	}
	return false
}

// Withhold stops (on) or resumes renewing node's lease from its beats.
func (t *Tracker) Withhold(node string, on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.peer(node).withheld = on
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// quorum returns the voters and how many votes a majority needs.
func (t *Tracker) quorum() ([]string, int) {
	v := t.opt.Voters()
	return v, len(v)/2 + 1
}

// Expiry returns when this node's lease runs out: the latest time by which
// a quorum (itself included) still renews it, or, in a two_node pair,
// the tie-breakers let it hold alone. The zero time means no lease.
func (t *Tracker) Expiry(now time.Time) time.Time {
	voters := t.opt.Voters()
	exp := t.quorumExpiry(now, voters)
	if t.opt.Alone == nil {
		return exp
	}
	until, since := t.opt.Alone(now)
	sole := len(voters) == 1 && voters[0] == t.opt.Self
	if sole {
		exp = time.Time{} // a quorum of one proves nothing here
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if exp.After(t.held) {
		t.held = exp
	}
	// A lapse is a promise once said (rule 6): only the peer's renewal
	// of a beat sent from then on ends it — a beat that said "lapsed",
	// which the peer renews only if this node hears it (Heard). A late
	// ping answer, or an echo of an older beat, does not.
	if sole || now.Before(exp) && !exp.Add(-t.opt.Lease).Before(t.lapsedAt) {
		t.lapsedAt = time.Time{}
	}
	unbroken := t.lapsedAt.IsZero() && !t.held.IsZero() && !since.After(t.held)
	if sole {
		// A two_node survivor that took over as the only voter: a
		// quorum of one is no evidence it is not the cut-off side, so
		// it holds only while the tie-breakers say so, like a node
		// alone beside its peer (else, cut off or paused later, it
		// held on while the returning peer took over). After a break
		// it holds again on the terms it took over on: its peer silent,
		// or heard but saying it is deaf and its hold lapsed (Deaf: it
		// holds nothing until renewed, and a non-voter is not).
		if !unbroken && now.Sub(since) >= t.opt.AloneSettle && (t.peerDeafLocked() || t.opt.PeerSilent != nil && t.opt.PeerSilent()) {
			unbroken = true
		}
	}
	if unbroken && until.After(exp) {
		exp = until
	}
	if exp.After(t.held) {
		t.held = exp
	}
	if !sole && !now.Before(exp) && t.lapsedAt.IsZero() {
		t.lapsedAt = now
	}
	return exp
}

func (t *Tracker) quorumExpiry(now time.Time, voters []string) time.Time {
	q := len(voters)/2 + 1
	if !slices.Contains(voters, t.opt.Self) {
		return time.Time{}
	}
	if q == 1 {
		return now.Add(t.opt.Lease) // a cluster of one
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var exp []time.Time
	for _, name := range voters {
		if name == t.opt.Self {
			continue
		}
		if p := t.peers[name]; p != nil && !p.renewsUs.IsZero() {
			exp = append(exp, p.renewsUs.Add(t.opt.Lease))
		}
	}
	if len(exp) < q-1 {
		return time.Time{}
	}
	slices.SortFunc(exp, func(a, b time.Time) int { return b.Compare(a) })
	return exp[q-2]
}

// HoldUntil is when this node must have begun stopping its groups: the
// lease expiry less the stop budget. Zero means now.
func (t *Tracker) HoldUntil(now time.Time) time.Time {
	exp := t.Expiry(now)
	if exp.IsZero() {
		return exp
	}
	return exp.Add(-t.opt.StopBudget)
}

// Holds reports whether this node may hold resources at now.
func (t *Tracker) Holds(now time.Time) bool {
	return now.Before(t.HoldUntil(now))
}

// Applied returns the Raft index node last said (in a heartbeat) it had
// applied, 0 if it has said nothing.
func (t *Tracker) Applied(node string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[node]; p != nil {
		return p.applied
	}
	return 0
}

// Overrun is how long past the end of its lease node may still hold
// resources: what it last said, at least the cluster's linger.
func (t *Tracker) Overrun(node string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.overrunLocked(node)
}

func (t *Tracker) overrunLocked(node string) time.Duration {
	over := t.opt.Linger
	if p := t.peers[node]; p != nil {
		over = max(over, p.overrun)
	}
	return over
}

// ReleasedAt returns the time after which node, taken offline by entry
// downIndex, surely holds no lease, and false when not enough voters have
// reported yet. A node that was never renewed is released at once.
func (t *Tracker) ReleasedAt(node string, downIndex uint64) (time.Time, bool) {
	voters, q := t.quorum()
	if !slices.Contains(voters, node) {
		return time.Time{}, true // a non-voter never holds a lease
	}
	applied := t.opt.Applied()
	t.mu.Lock()
	defer t.mu.Unlock()
	// What node said last about its release overrun; its groups started
	// after that beat went through the log, which node had to be
	// renewed for, so a later, larger overrun would have been heard.
	wait := t.opt.Lease + t.opt.Margin + t.overrunLocked(node)
	var others []time.Time
	for _, r := range voters {
		if r == node {
			continue
		}
		var last time.Time
		if r == t.opt.Self {
			if applied < downIndex {
				continue
			}
			if p := t.peers[node]; p != nil {
				last = p.renewAt
			}
		} else {
			p := t.peers[r]
			if p == nil || p.heardAt.IsZero() || p.applied < downIndex {
				continue
			}
			last = p.lastRenew[node]
		}
		if last.IsZero() {
			others = append(others, time.Time{})
		} else {
			others = append(others, last.Add(wait))
		}
	}
	// The node itself plus q-1 others form its quorum: deny it by having
	// all but q-2 of the others on our side.
	need := len(voters) - 1 - (q - 2)
	if len(others) < need {
		return time.Time{}, false
	}
	slices.SortFunc(others, func(a, b time.Time) int { return a.Compare(b) })
	return others[need-1], true
}
