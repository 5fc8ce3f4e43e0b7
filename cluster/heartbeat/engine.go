package heartbeat

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Observer receives every authenticated heartbeat and keeps the timeouts.
type Observer interface {
	// Heard returns Accepted or the reason the packet is dropped.
	Heard(link string, m *Message, at time.Time) DropReason
	// Check applies timeouts as of now and returns the next instant it
	// must be called at (zero: nothing pending).
	Check(now time.Time) time.Time
}

// LinkCounters is a snapshot of one medium's traffic.
type LinkCounters struct {
	Link       string            `json:"link"`
	Sent       uint64            `json:"sent"`
	SendErrors uint64            `json:"send_errors"`
	Received   uint64            `json:"received"` // accepted from peers
	Own        uint64            `json:"own"`      // our own broadcasts looped back past the socket filter (none with it)
	Dropped    map[string]uint64 `json:"dropped,omitempty"`
}

type linkStats struct {
	sent, sendErrors, received, own atomic.Uint64
	dropped                         [numDropReasons]atomic.Uint64
}

// EngineConfig configures an Engine.
type EngineConfig struct {
	Codec       *Codec
	Node        string
	Incarnation uint64
	Keepalive   time.Duration
	Media       []Medium
	Observer    Observer
	View        func() []ViewEntry // the sender's view, carried in each beat
	// Decorate, when set, adds to each beat just before it is sent (the
	// lease echoes and applied index) and learns its sequence and time.
	Decorate func(m *Message, now time.Time)
	// RTPriority, 1..99, runs the engine's thread under SCHED_FIFO at that
	// priority (0: the normal scheduler).
	RTPriority int
	Log        *slog.Logger
}

// Engine beats on every medium every keepalive, feeds what it hears to the
// Observer and runs its timeouts.
//
// It sleeps until something is due — the next beat or the next membership
// deadline (and at least every maxPoll) — or a packet arrives, and then
// drains every medium without blocking. Packets are read as they arrive:
// an echo read only at the next beat came up to a keepalive late, which
// the lease cannot afford at VRRP's detection time (deadtime 3.5 beats,
// lease 3, timing.SteadyLeaseBeats), and a voter's report that a dead
// node is offline is what a failover waits for. Packets carry the kernel's arrival time, so a late
// drain does not make a peer look late. The loop sleeps on one epoll set
// of the media and an eventfd (BeatNow), parked in the runtime's
// netpoller (poller): a goroutine per socket made every wake-up several
// hand-offs between runtime threads, and a thread blocked in a ppoll of
// its own kept the runtime's sysmon awake.
type Engine struct {
	cfg   EngineConfig
	stats []*linkStats
	seq   uint64
	pkt   []byte
	logRL rateLimiter

	beatNow atomic.Bool // send a beat at the next wake
	wakeMu  sync.Mutex  // guards wakeFd against Run closing it
	wakeFd  int         // eventfd; -1 when Run is not running
	poll    *poller     // nil: sleep without waking early
	fds     []int
	rt      bool // on a real-time thread of its own: sleeps in ppoll
	pfds    []unix.PollFd
	// due marks the media to read at the next wake: those the sleep saw
	// readable, those left with a backlog, and those it cannot watch.
	// Reading every medium on every wake cost a failed recvmsg per idle
	// medium per packet that arrived on another.
	due   []bool
	ready []int // (ppoll's, kept to allocate nothing per wake)
}

// maxPoll bounds how long a heartbeat may wait unread at slow beat rates,
// so that a peer coming up is seen promptly (a variable for tests).
var maxPoll = 100 * time.Millisecond

// NewEngine returns an engine; Run starts it.
func NewEngine(cfg EngineConfig) *Engine {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	e := &Engine{cfg: cfg, stats: make([]*linkStats, len(cfg.Media)), pkt: make([]byte, 0, MaxPacket), wakeFd: -1}
	for i := range e.stats {
		e.stats[i] = &linkStats{}
	}
	return e
}

// Run beats and listens until ctx is cancelled, then closes every medium.
func (e *Engine) Run(ctx context.Context) error {
	defer func() {
		for _, m := range e.cfg.Media {
			m.Close()
		}
	}()
	if e.cfg.RTPriority > 0 {
		runtime.LockOSThread()
		if e.rt = e.realtime(); !e.rt {
			defer runtime.UnlockOSThread()
		} // else the thread is not handed back to the runtime: it ends with Run
	}
	e.filter()
	if err := e.openWake(); err != nil {
		e.cfg.Log.Warn("no early wake-ups: beats and reads keep their schedule", "err", err)
	}
	defer e.closeWake()
	retry := make([]time.Time, len(e.cfg.Media)) // media resting after a read error
	e.due = make([]bool, len(e.cfg.Media))
	e.markDue(true, nil)
	nextBeat := time.Now()
	for ctx.Err() == nil {
		now := time.Now()
		wall := now.UnixNano()
		backlog := false
		for i, m := range e.cfg.Media {
			if !retry[i].IsZero() {
				if now.Before(retry[i]) {
					continue
				}
				retry[i], e.due[i] = time.Time{}, true
			}
			if !e.due[i] {
				continue
			}
			more, err := e.drain(i, now, wall)
			e.due[i] = more
			backlog = backlog || more
			if err != nil {
				// A serial line with nothing attached fails at once, every
				// time: let it rest instead of retrying on every wake.
				retry[i] = now.Add(max(time.Second, e.cfg.Keepalive))
				if e.logRL.allow(m.Name()+"/recv", 10*time.Second) {
					e.cfg.Log.Warn("heartbeat receive failed; retrying", "link", m.Name(), "err", err)
				}
			}
		}
		wake := now.Add(min(e.cfg.Keepalive, maxPoll))
		if next := e.cfg.Observer.Check(now); !next.IsZero() && next.Before(wake) {
			wake = next
		}
		if !now.Before(nextBeat) {
			if late := now.Sub(nextBeat); late > e.cfg.Keepalive && e.logRL.allow("stalled", 10*time.Second) {
				// Peers see this node's silence as if it were dead: say
				// why, here, where it happened.
				e.cfg.Log.Warn("heartbeat sent late: this node's heartbeat thread did not run in time", "late", late.Round(time.Millisecond), "keepalive", e.cfg.Keepalive)
			}
			e.beatNow.Store(false)
			e.beat(now)
			if nextBeat = nextBeat.Add(e.cfg.Keepalive); nextBeat.Before(now) {
				nextBeat = now.Add(e.cfg.Keepalive) // we were stalled: do not burst
			}
		} else if e.beatNow.Swap(false) {
			e.beat(now) // out of schedule; the schedule stays
		}
		if nextBeat.Before(wake) {
			wake = nextBeat
		}
		if backlog {
			// More is queued than one batch: read on at once, having
			// beaten and checked deadlines on time in between.
			continue
		}
		// Cancellation is noticed at the next wake, at most maxPoll away.
		e.sleep(wake.Sub(now), retry)
	}
	return nil
}

// BeatNow has the engine send a beat at once, besides its schedule.
func (e *Engine) BeatNow() {
	e.beatNow.Store(true)
	e.wake()
}

func (e *Engine) openWake() error {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return err
	}
	p, err := newPoller(fd)
	if err != nil {
		unix.Close(fd)
		return err
	}
	e.poll = p
	e.wakeMu.Lock()
	e.wakeFd = fd
	e.wakeMu.Unlock()
	return nil
}

func (e *Engine) closeWake() {
	e.wakeMu.Lock()
	defer e.wakeMu.Unlock()
	if e.wakeFd >= 0 {
		e.poll.close()
		unix.Close(e.wakeFd)
		e.wakeFd = -1
	}
}

// wake breaks the engine's sleep (BeatNow).
func (e *Engine) wake() {
	e.wakeMu.Lock()
	defer e.wakeMu.Unlock()
	if e.wakeFd >= 0 {
		rawWrite(e.wakeFd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// sleep waits d, or until woken (BeatNow), or until a medium not resting
// after an error has something to read.
func (e *Engine) sleep(d time.Duration, retry []time.Time) {
	if e.poll == nil { // (only Run sets it)
		time.Sleep(d)
		e.markDue(true, nil)
		return
	}
	e.fds = append(e.fds[:0], e.wakeFd)
	for i, m := range e.cfg.Media {
		if p, ok := m.(polled); ok && retry[i].IsZero() {
			e.fds = append(e.fds, p.Fd())
		}
	}
	if e.rt {
		e.ppoll(d)
		return
	}
	e.poll.watch(e.fds[1:])
	if e.poll.wait(d, e.wakeFd) {
		var b [8]byte
		rawRead(e.wakeFd, b[:])
	}
	e.markDue(false, e.poll.ready)
}

// markDue marks for reading the media whose descriptors are in ready,
// those the engine does not watch, and with all every medium.
func (e *Engine) markDue(all bool, ready []int) {
	for i, m := range e.cfg.Media {
		p, ok := m.(polled)
		e.due[i] = e.due[i] || all || !ok || slices.Contains(ready, p.Fd())
	}
}

// ppoll is sleep on a real-time thread: woken by the kernel itself at
// its priority, where the netpoller would wake it through a thread of
// the normal scheduler — the very delay rt_priority is there to avoid.
func (e *Engine) ppoll(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	e.pfds = e.pfds[:0]
	for _, fd := range e.fds {
		e.pfds = append(e.pfds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	for {
		if _, err := unix.Ppoll(e.pfds, &ts, nil); err != unix.EINTR {
			break
		}
	}
	if e.pfds[0].Revents&unix.POLLIN != 0 {
		var b [8]byte
		rawRead(e.wakeFd, b[:])
	}
	e.ready = e.ready[:0]
	for _, p := range e.pfds[1:] {
		if p.Revents != 0 {
			e.ready = append(e.ready, int(p.Fd))
		}
	}
	e.markDue(false, e.ready)
}

func (e *Engine) beat(now time.Time) {
	e.seq++
	msg := Message{Node: e.cfg.Node, Incarnation: e.cfg.Incarnation, Seq: e.seq}
	if e.cfg.View != nil {
		msg.View = e.cfg.View()
	}
	if e.cfg.Decorate != nil {
		e.cfg.Decorate(&msg, now)
	}
	pkt, err := e.cfg.Codec.Append(e.pkt[:0], &msg)
	if err != nil {
		e.cfg.Log.Error("cannot encode heartbeat", "err", err)
		return
	}
	for i, m := range e.cfg.Media {
		if err := m.Send(pkt); err != nil {
			e.stats[i].sendErrors.Add(1)
			if e.logRL.allow(m.Name()+"/send", 10*time.Second) {
				e.cfg.Log.Warn("heartbeat send failed", "link", m.Name(), "err", err)
			}
			continue
		}
		e.stats[i].sent.Add(1)
	}
}

// drain reads medium i. Arrival times come from the kernel's wall-clock
// stamp, turned into an age and subtracted from now, so comparisons keep
// using the monotonic clock even if the wall clock is stepped.
func (e *Engine) drain(i int, now time.Time, wall int64) (bool, error) {
	m, st := e.cfg.Media[i], e.stats[i]
	bad, more, err := m.Drain(func(pkt []byte, arrived int64) {
		at := now
		if arrived > 0 {
			at = now.Add(-min(max(time.Duration(wall-arrived), 0), 2*maxPoll))
		}
		e.handle(m.Name(), st, pkt, at)
	})
	if bad > 0 {
		st.dropped[DropMalformed].Add(uint64(bad))
		e.logDrop(m.Name(), st, DropMalformed, "undecodable serial frame")
	}
	return more, err
}

// filter has the kernel drop, on every socket medium, what is not a
// heartbeat of this cluster (see Codec.Filter).
func (e *Engine) filter() {
	prog, err := e.cfg.Codec.Filter(e.cfg.Node, e.cfg.Incarnation)
	if err != nil {
		e.cfg.Log.Warn("no heartbeat socket filter", "err", err)
		return
	}
	for _, m := range e.cfg.Media {
		if f, ok := m.(filtered); ok {
			if err := f.Filter(prog); err != nil {
				e.cfg.Log.Warn("no heartbeat socket filter: every packet reaches the daemon", "link", m.Name(), "err", err)
			}
		}
	}
}

// realtime gives the engine's thread (locked to it) a real-time priority
// when configured, as keepalived's vrrp_rt_priority does: on a host whose
// CPUs are busy, heartbeats are then sent and read on time.
func (e *Engine) realtime() bool {
	if e.cfg.RTPriority <= 0 {
		return false
	}
	attr := unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: uint32(e.cfg.RTPriority)}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		e.cfg.Log.Warn("cannot give the heartbeat thread a real-time priority", "priority", e.cfg.RTPriority, "err", err)
		return false
	}
	e.cfg.Log.Info("heartbeat thread runs at real-time priority", "policy", "SCHED_FIFO", "priority", e.cfg.RTPriority)
	return true
}

func (e *Engine) handle(link string, st *linkStats, pkt []byte, at time.Time) {
	msg, err := e.cfg.Codec.Decode(pkt)
	if err != nil {
		r := DropMalformed
		var de *DecodeError
		if errors.As(err, &de) {
			r = de.Reason
		}
		e.drop(link, st, r, err.Error())
		return
	}
	if msg.Node == e.cfg.Node {
		if msg.Incarnation == e.cfg.Incarnation {
			st.own.Add(1)
		} else {
			e.drop(link, st, DropDuplicateSelf, "another daemon uses this node's name")
		}
		return
	}
	if r := e.cfg.Observer.Heard(link, msg, at); r != Accepted {
		e.drop(link, st, r, "from "+msg.Node)
		return
	}
	st.received.Add(1)
}

func (e *Engine) drop(link string, st *linkStats, r DropReason, detail string) {
	st.dropped[r].Add(1)
	e.logDrop(link, st, r, detail)
}

func (e *Engine) logDrop(link string, st *linkStats, r DropReason, detail string) {
	if e.logRL.allow(link+"/"+r.String(), 10*time.Second) {
		e.cfg.Log.Warn("heartbeat dropped", "link", link, "reason", r.String(), "detail", detail, "total", st.dropped[r].Load())
	}
}

// Counters returns a snapshot of every link's traffic.
func (e *Engine) Counters() []LinkCounters {
	out := make([]LinkCounters, len(e.cfg.Media))
	for i, m := range e.cfg.Media {
		st := e.stats[i]
		c := LinkCounters{Link: m.Name(), Sent: st.sent.Load(), SendErrors: st.sendErrors.Load(), Received: st.received.Load(), Own: st.own.Load()}
		for _, r := range DropReasons() {
			v := st.dropped[r].Load()
			if f, ok := m.(filtered); ok && r == DropFiltered {
				// Counted by the kernel, which drops these before the
				// engine sees them.
				v, _ = f.KernelDrops()
			}
			if v > 0 {
				if c.Dropped == nil {
					c.Dropped = map[string]uint64{}
				}
				c.Dropped[r.String()] = v
			}
		}
		out[i] = c
	}
	return out
}

// rateLimiter lets one log line per key through per interval, so a flood of
// bad packets cannot flood the log too.
type rateLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (r *rateLimiter) allow(key string, every time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.last == nil {
		r.last = map[string]time.Time{}
	}
	if t, ok := r.last[key]; ok && now.Sub(t) < every {
		return false
	}
	r.last[key] = now
	return true
}
