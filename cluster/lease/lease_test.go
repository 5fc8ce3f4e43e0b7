package lease

import (
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/heartbeat"
)

const L = 100 * time.Millisecond

var base = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

// world is three trackers (a, b, c) sharing an "FSM": who is online and
// what each has applied.
type world struct {
	online  map[string]bool
	applied map[string]uint64
	overrun map[string]time.Duration
	tr      map[string]*Tracker
	seq     map[string]uint64
}

func newWorld() *world {
	w := &world{online: map[string]bool{"a": true, "b": true, "c": true}, applied: map[string]uint64{}, overrun: map[string]time.Duration{}, tr: map[string]*Tracker{}, seq: map[string]uint64{}}
	for _, n := range []string{"a", "b", "c"} {
		w.tr[n] = New(Options{Self: n, Incarnation: 1, Lease: L, StopBudget: L / 4, Margin: 10 * time.Millisecond,
			Voters:  func() []string { return []string{"a", "b", "c"} },
			Online:  func(node string) bool { return w.online[node] },
			Applied: func() uint64 { return w.applied[n] },
			Overrun: func() time.Duration { return w.overrun[n] }})
	}
	return w
}

// beat sends one heartbeat from → to, leaving at sent and arriving at recv.
func (w *world) beat(from, to string, sent, recv time.Time) {
	w.seq[from]++
	m := &heartbeat.Message{Node: from, Incarnation: 1, Seq: w.seq[from]}
	w.tr[from].Decorate(m, sent)
	if to != "" {
		w.tr[to].Heard(m, recv)
	}
}

func TestLeaseNeedsAQuorumOfEchoes(t *testing.T) {
	w := newWorld()
	a := w.tr["a"]
	if !a.Expiry(at(0)).IsZero() || a.Holds(at(0)) {
		t.Fatal("a lease before any echo")
	}
	renewals := 0
	if !a.OnRenew(func() {
		renewals++
		// Called with no lock held: the lease can be read from here.
		a.HoldUntil(at(6))
	}) {
		t.Fatal("OnRenew: the hook is not called every beat")
	}
	w.beat("a", "b", at(0), at(1)) // b hears a's beat 1
	if renewals != 1 {
		t.Fatalf("the hook ran %d times after a's beat, want once", renewals)
	}
	w.beat("b", "a", at(5), at(6)) // b echoes it back
	if renewals != 2 {
		t.Fatalf("an echo renewed the lease and the hook ran %d times in all, want 2", renewals)
	}
	if got := a.Expiry(at(6)); !got.Equal(at(0).Add(L)) {
		t.Fatalf("expiry %v, want send time + lease %v", got, at(0).Add(L))
	}
	if !a.Holds(at(74)) || a.Holds(at(76)) {
		t.Error("a must stop a stop budget (25ms) before expiry")
	}
	// b learns from the replicated state that a is offline: its next
	// beats renew nothing.
	w.online["a"] = false
	w.beat("a", "b", at(20), at(21))
	w.beat("b", "a", at(25), at(26))
	if got := a.Expiry(at(26)); !got.Equal(at(0).Add(L)) {
		t.Errorf("an offline node's lease was renewed: %v", got)
	}
}

func TestReleasedAt(t *testing.T) {
	w := newWorld()
	// a is heard by b and c until t=10.
	w.beat("a", "b", at(10), at(10))
	w.beat("a", "c", at(10), at(10))
	// The state takes a offline at index 7; c has applied it, b not yet.
	w.online["a"] = false
	w.applied["c"] = 7
	for len(w.tr["b"].Reported()) > 0 {
		<-w.tr["b"].Reported()
	}
	w.beat("c", "b", at(50), at(50)) // c: applied 7, last renewed a 40ms before
	select {
	case <-w.tr["b"].Reported():
	default:
		t.Fatal("c said it applied more and b's waiters were not told")
	}
	w.beat("c", "b", at(51), at(51))
	select {
	case <-w.tr["b"].Reported():
		t.Fatal("told of a report that applied nothing more")
	default:
	}
	if _, ok := w.tr["b"].ReleasedAt("a", 7); ok {
		t.Fatal("released before b itself applied the entry")
	}
	w.applied["b"] = 7
	got, ok := w.tr["b"].ReleasedAt("a", 7)
	// Both b and c last renewed a at t=10: released at 10 + L + margin.
	if want := at(10).Add(L + 10*time.Millisecond); !ok || !got.Equal(want) {
		t.Fatalf("released at %v (%v), want %v", got, ok, want)
	}
	// a said it needs 70ms more than its stop budget to release what it
	// holds: it is released that much later.
	w.overrun["a"] = 70 * time.Millisecond
	w.online["a"] = true
	w.beat("a", "b", at(60), at(60))
	w.online["a"] = false
	if got, _ := w.tr["b"].ReleasedAt("a", 7); !got.Equal(at(60).Add(L + 80*time.Millisecond)) {
		t.Fatalf("with a's overrun: released at %v, want %v", got, at(60).Add(L+80*time.Millisecond))
	}
	// The cluster's linger (an address lifetime) is a floor for what any
	// node waits, whatever the other said, and what each says.
	w.tr["b"].opt.Linger = 200 * time.Millisecond
	if got, _ := w.tr["b"].ReleasedAt("a", 7); !got.Equal(at(60).Add(L + 210*time.Millisecond)) {
		t.Fatalf("with the linger: released at %v, want %v", got, at(60).Add(L+210*time.Millisecond))
	}
	m := &heartbeat.Message{Node: "b", Incarnation: 1, Seq: 99}
	w.tr["b"].Decorate(m, at(70))
	if m.OverrunUS != 200_000 {
		t.Fatalf("b says an overrun of %dµs, want its linger", m.OverrunUS)
	}
	// A node nobody ever renewed is released at once.
	if got, ok := w.tr["b"].ReleasedAt("zz", 1); !ok || !got.IsZero() {
		t.Errorf("non-voter: %v %v", got, ok)
	}
}

// TestAlone: a two_node node holds past its quorum lease only while the
// tie-breakers allow it without a break since it was last granted a
// lease, and never less than the quorum gives.
func TestAlone(t *testing.T) {
	var aloneUntil, aloneSince time.Time
	peerSilent := false
	voters := []string{"a", "b"}
	tr := New(Options{Self: "a", Incarnation: 1, Lease: L, StopBudget: L / 4,
		Voters:      func() []string { return voters },
		Online:      func(string) bool { return true },
		Applied:     func() uint64 { return 0 },
		Alone:       func(time.Time) (time.Time, time.Time) { return aloneUntil, aloneSince },
		AloneSettle: 5 * L,
		PeerSilent:  func() bool { return peerSilent }})
	if tr.Holds(at(0)) {
		t.Fatal("holds with neither the peer nor a tie-breaker")
	}
	aloneUntil = at(500)
	if tr.Holds(at(10)) {
		t.Fatal("holds on the tie-breakers before any quorum confirmed it (a restart with an old view)")
	}
	// b echoes a's beat sent at 50: the quorum lease runs to 150.
	m := &heartbeat.Message{Node: "a", Incarnation: 1, Seq: 1}
	tr.Decorate(m, at(50))
	tr.Heard(&heartbeat.Message{Node: "b", Incarnation: 1, Seq: 1, Echo: []heartbeat.Echo{{Node: "a", Incarnation: 1, Seq: 1}}}, at(51))
	aloneUntil = at(100)
	if got := tr.Expiry(at(60)); !got.Equal(at(150)) {
		t.Fatalf("expiry %v, want the quorum's at 150ms", got.Sub(base))
	}
	// b falls silent: the tie-breakers keep a holding past the quorum.
	aloneUntil = at(500)
	if !tr.Holds(at(400)) || tr.Holds(at(480)) {
		t.Fatal("alone: must hold until the tie-breakers' time less the stop budget")
	}
	// a was paused past its lease: when it runs again its ping nodes
	// answer at once, but their run began after its holding lapsed.
	aloneUntil, aloneSince = at(2100), at(2000)
	if tr.Holds(at(2010)) {
		t.Fatal("holds again on the tie-breakers after its holding lapsed (a pause)")
	}
	// a took over as the only voter, its run of answers unbroken since
	// before its last grant (set here as it stood at 500): it holds
	// only while the tie-breakers allow, not forever as a cluster of
	// one would.
	voters = []string{"a"}
	aloneSince, aloneUntil, tr.held = at(0), at(600), at(500)
	if !tr.Holds(at(520)) || tr.Holds(at(580)) || tr.Holds(at(5000)) {
		t.Fatal("the only voter of a pair must hold until the tie-breakers' time less the stop budget")
	}
	// After a break, the only voter holds again once the answers have
	// run for AloneSettle while its peer is silent — not while the
	// peer is heard (it may have taken over meanwhile).
	aloneSince, aloneUntil = at(3000), at(3700)
	if tr.Holds(at(3600)) {
		t.Fatal("the only voter holds again with its peer heard")
	}
	peerSilent = true
	if tr.Holds(at(3400)) {
		t.Fatal("the only voter holds again before the answers settled")
	}
	if !tr.Holds(at(3600)) {
		t.Fatal("the only voter, answers settled and peer silent, does not hold again")
	}
}

// With one voter left (a pair's survivor and the witness), a lease that
// its echoes renew holds steadily only if, after the stop budget, it
// outlasts the interval between two echoes plus an echo's age
// (timing.SteadyLeaseBeats): at 2.5 beats it lapses once a beat when the
// voter beats late in ours; at 3 it does not.
func TestLeaseSteadyWithOneVoter(t *testing.T) {
	const ka, net = 100 * time.Millisecond, 100 * time.Microsecond
	for _, tc := range []struct {
		lease  time.Duration
		steady bool
	}{{250 * time.Millisecond, false}, {300 * time.Millisecond, true}} {
		mk := func(self string) *Tracker {
			return New(Options{Self: self, Incarnation: 1, Lease: tc.lease, StopBudget: tc.lease / 4, Margin: ka,
				Voters:  func() []string { return []string{"a", "b", "c"} }, // c is gone
				Online:  func(string) bool { return true },
				Applied: func() uint64 { return 0 }})
		}
		a, b := mk("a"), mk("b")
		lapses := 0
		for k := range 20 {
			sent := at(0).Add(time.Duration(k) * ka)
			ma := &heartbeat.Message{Node: "a", Incarnation: 1, Seq: uint64(k + 1)}
			a.Decorate(ma, sent)
			b.Heard(ma, sent.Add(net))
			// b beats 95 ms into a's beat, echoing a's latest.
			mb := &heartbeat.Message{Node: "b", Incarnation: 1, Seq: uint64(k + 1)}
			b.Decorate(mb, sent.Add(95*time.Millisecond))
			arrives := sent.Add(95*time.Millisecond + net)
			if k > 0 && !a.Holds(arrives.Add(-time.Nanosecond)) {
				lapses++
			}
			a.Heard(mb, arrives)
		}
		if steady := lapses == 0; steady != tc.steady {
			t.Errorf("lease %s with one voter echoing late: lapsed %d times in 19 beats, want steady %v", tc.lease, lapses, tc.steady)
		}
	}
}

// pairOf is a two_node pair's trackers, a and b, with tie-breakers that
// the test sets for a.
type pairOf struct {
	tr                map[string]*Tracker
	seq               map[string]uint64
	aloneUntil, since time.Time
}

func newPair() *pairOf {
	p := &pairOf{tr: map[string]*Tracker{}, seq: map[string]uint64{}}
	for _, n := range []string{"a", "b"} {
		p.tr[n] = New(Options{Self: n, Incarnation: 1, Lease: L, StopBudget: L / 4, Margin: 10 * time.Millisecond,
			Voters:      func() []string { return []string{"a", "b"} },
			Online:      func(string) bool { return true },
			Applied:     func() uint64 { return 0 },
			Overrun:     func() time.Duration { return 30 * time.Millisecond },
			Alone:       func(time.Time) (time.Time, time.Time) { return p.aloneUntil, p.since },
			AloneSettle: 5 * L})
	}
	return p
}

// beat sends one beat from → to (to "": lost) with from's view of to.
func (p *pairOf) beat(from, to string, view heartbeat.PeerState, sent, recv time.Time) *heartbeat.Message {
	p.seq[from]++
	m := &heartbeat.Message{Node: from, Incarnation: 1, Seq: p.seq[from]}
	other := map[string]string{"a": "b", "b": "a"}[from]
	m.View = []heartbeat.ViewEntry{{Node: other, State: view}}
	p.tr[from].Decorate(m, sent)
	if to != "" {
		p.tr[to].Heard(m, recv)
	}
	return m
}

// TestLapsedIsAPromise: a pair's node whose hold lapsed says so in its
// beats, and holds nothing on its tie-breakers alone — not on a late
// ping answer, not on an echo of a beat sent before — until its peer
// renews a beat it sent after the lapse.
func TestLapsedIsAPromise(t *testing.T) {
	p := newPair()
	a := p.tr["a"]
	p.since, p.aloneUntil = at(0), at(300)
	if m := p.beat("a", "b", heartbeat.StateUp, at(50), at(51)); m.Lapsed != true {
		t.Fatal("a node never granted a lease does not say it lapsed")
	}
	p.beat("b", "a", heartbeat.StateUp, at(60), at(61)) // echoes a's beat of 50: lease to 150
	if m := p.beat("a", "b", heartbeat.StateUp, at(70), at(71)); m.Lapsed {
		t.Fatal("says lapsed while holding")
	}
	// a goes deaf: the tie-breakers carry it to 300, then it lapses.
	if !a.Holds(at(200)) {
		t.Fatal("does not hold on its tie-breakers as a continuation")
	}
	if m := p.beat("a", "b", heartbeat.StateUp, at(310), at(311)); !m.Lapsed {
		t.Fatal("does not say its hold lapsed")
	}
	// A ping answer to an echo sent at 290 arrives late: before, a held
	// again until 390 (its run of answers unbroken since before 300).
	p.aloneUntil = at(390)
	if a.Holds(at(320)) {
		t.Fatal("holds again on a late ping answer after it said it lapsed")
	}
	// b's echo of a's beat of 70 (sent before the lapse) arrives late.
	p.seq["b"]++
	late := &heartbeat.Message{Node: "b", Incarnation: 1, Seq: p.seq["b"], Echo: []heartbeat.Echo{{Node: "a", Incarnation: 1, Seq: 2}}}
	a.Heard(late, at(315))
	if a.Holds(at(325)) {
		t.Fatal("an echo of a beat sent before the lapse lets it hold again")
	}
	if m := p.beat("a", "b", heartbeat.StateUp, at(330), at(331)); !m.Lapsed {
		t.Fatal("an old echo ended the lapse")
	}
	// Heard again: b renews a beat that said "lapsed" (a hears b, so
	// b renews it) and a holds again, its tie-breakers too.
	p.beat("b", "a", heartbeat.StateUp, at(340), at(341))
	if !a.Holds(at(345)) {
		t.Fatal("renewed by its peer after the lapse, it does not hold")
	}
	if m := p.beat("a", "b", heartbeat.StateUp, at(350), at(351)); m.Lapsed {
		t.Fatal("still says lapsed once renewed")
	}
}

// TestDeafPeer: the survivor's side. A peer whose beats say its hold
// lapsed and that it hears us no more is deaf; those beats are not
// renewed, and released is when what it held is surely gone. Neither
// half alone is deafness (an older build never says "lapsed").
func TestDeafPeer(t *testing.T) {
	p := newPair()
	b := p.tr["b"]
	p.beat("a", "b", heartbeat.StateUp, at(100), at(101)) // renewed at 101
	renewed := func() uint64 {
		m := &heartbeat.Message{Node: "b", Incarnation: 1, Seq: 99}
		b.Decorate(m, at(0))
		return m.Echo[0].Seq
	}
	for _, tc := range []struct {
		name   string
		lapsed bool
		view   heartbeat.PeerState
	}{{"lapsed, hears us", true, heartbeat.StateUp}, {"not lapsed, hears us not (older build)", false, heartbeat.StateDead}, {"lapsed, not heard yet", true, heartbeat.StateInit}} {
		p.seq["a"]++
		b.Heard(&heartbeat.Message{Node: "a", Incarnation: 1, Seq: p.seq["a"], Lapsed: tc.lapsed, View: []heartbeat.ViewEntry{{Node: "b", State: tc.view}}}, at(150))
		if _, _, ok := b.Deaf("a"); ok {
			t.Errorf("%s: deaf", tc.name)
		}
		if renewed() != p.seq["a"] {
			t.Errorf("%s: not renewed", tc.name)
		}
	}
	last := p.seq["a"]
	for i, ms := range []int{200, 300} {
		p.seq["a"]++
		b.Heard(&heartbeat.Message{Node: "a", Incarnation: 1, Seq: p.seq["a"], Lapsed: true, OverrunUS: 30_000, View: []heartbeat.ViewEntry{{Node: "b", State: heartbeat.StateDead}}}, at(ms))
		since, released, ok := b.Deaf("a")
		// renewed at 150: 150 + L + margin = 260, + overrun 30.
		if !ok || !since.Equal(at(200)) || !released.Equal(at(290)) {
			t.Fatalf("beat %d: deaf %v since %v released %v", i, ok, since.Sub(base), released.Sub(base))
		}
		if renewed() != last {
			t.Fatalf("beat %d: a deaf, lapsed peer's beat renewed", i)
		}
	}
	// Withheld: not even a beat that hears us again is renewed, and it
	// ends the run.
	b.Withhold("a", true)
	p.seq["a"]++
	b.Heard(&heartbeat.Message{Node: "a", Incarnation: 1, Seq: p.seq["a"], Lapsed: true, View: []heartbeat.ViewEntry{{Node: "b", State: heartbeat.StateUp}}}, at(400))
	if _, _, ok := b.Deaf("a"); ok || renewed() != last {
		t.Fatal("withheld: renewed, or still deaf")
	}
	b.Withhold("a", false)
	p.seq["a"]++
	b.Heard(&heartbeat.Message{Node: "a", Incarnation: 1, Seq: p.seq["a"], Lapsed: true, View: []heartbeat.ViewEntry{{Node: "b", State: heartbeat.StateUp}}}, at(500))
	if renewed() != p.seq["a"] {
		t.Fatal("no longer withheld: not renewed")
	}
}

// A survivor that took over from a deaf peer (rule 7) and whose own
// hold had lapsed before (it was deaf itself a moment earlier) holds
// again once its ping answers settled while that peer is still deaf and
// lapsed — the terms it took over on, as a silent peer is for the
// silent case; not while the peer hears it. (Chaos seed 734082614: both
// nodes deaf one after the other left the survivor the only voter
// holding nothing until its peer healed.)
func TestSoleAfterDeafPeer(t *testing.T) {
	p := newPair()
	b := p.tr["b"]
	voters := []string{"b"}
	b.opt.Voters = func() []string { return voters }
	b.held = at(100) // its last grant, before its own lapse
	p.since, p.aloneUntil = at(1000), at(3000)
	deafBeat := func(ms int, view heartbeat.PeerState) {
		p.seq["a"]++
		b.Heard(&heartbeat.Message{Node: "a", Incarnation: 1, Seq: p.seq["a"], Lapsed: true, View: []heartbeat.ViewEntry{{Node: "b", State: view}}}, at(ms))
	}
	deafBeat(1100, heartbeat.StateUp)
	if b.Holds(at(1550)) {
		t.Fatal("the only voter holds again with its peer heard and not deaf")
	}
	deafBeat(1560, heartbeat.StateDead)
	if !b.Holds(at(1570)) {
		t.Fatal("the only voter, answers settled and its peer deaf and lapsed, does not hold again")
	}
}
