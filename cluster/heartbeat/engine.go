package heartbeat

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Observer receives every authenticated heartbeat and decides whether it is
// fresh. It returns Accepted or the reason the packet is dropped.
type Observer interface {
	Heard(link string, m *Message, at time.Time) DropReason
}

// LinkCounters is a snapshot of one medium's traffic.
type LinkCounters struct {
	Link       string            `json:"link"`
	Sent       uint64            `json:"sent"`
	SendErrors uint64            `json:"send_errors"`
	SendSkips  uint64            `json:"send_skipped"` // previous beat still in flight
	Received   uint64            `json:"received"`     // accepted from peers
	Own        uint64            `json:"own"`          // our own broadcasts looped back
	Dropped    map[string]uint64 `json:"dropped,omitempty"`
}

type linkStats struct {
	sent, sendErrors, sendSkips, received, own atomic.Uint64
	dropped                                    [numDropReasons]atomic.Uint64
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
	Log         *slog.Logger
}

// Engine beats on every medium every keepalive and feeds what it hears to
// the Observer.
type Engine struct {
	cfg   EngineConfig
	stats []*linkStats
	seq   uint64
	logRL rateLimiter
}

// NewEngine returns an engine; Run starts it.
func NewEngine(cfg EngineConfig) *Engine {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	e := &Engine{cfg: cfg, stats: make([]*linkStats, len(cfg.Media))}
	for i := range e.stats {
		e.stats[i] = &linkStats{}
	}
	return e
}

// Run beats and listens until ctx is cancelled, then closes every medium
// and returns once all its goroutines have ended.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	queues := make([]chan []byte, len(e.cfg.Media))
	for i, m := range e.cfg.Media {
		queues[i] = make(chan []byte, 1)
		wg.Add(2)
		go func() { defer wg.Done(); e.receive(ctx, m, e.stats[i]) }()
		go func() { defer wg.Done(); e.send(ctx, m, e.stats[i], queues[i]) }()
	}
	tick := time.NewTicker(e.cfg.Keepalive)
	defer func() {
		tick.Stop()
		for _, m := range e.cfg.Media {
			m.Close()
		}
		wg.Wait()
	}()
	for {
		e.beat(queues)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (e *Engine) beat(queues []chan []byte) {
	e.seq++
	m := Message{Node: e.cfg.Node, Incarnation: e.cfg.Incarnation, Seq: e.seq}
	if e.cfg.View != nil {
		m.View = e.cfg.View()
	}
	pkt, err := e.cfg.Codec.Append(make([]byte, 0, 256), &m)
	if err != nil {
		e.cfg.Log.Error("cannot encode heartbeat", "err", err)
		return
	}
	for i, q := range queues {
		select {
		case q <- pkt:
		default:
			// The medium is still sending the previous beat (a slow or
			// stuck serial line): replace it, a fresher beat is worth more.
			select {
			case <-q:
				e.stats[i].sendSkips.Add(1)
			default:
			}
			select {
			case q <- pkt:
			default:
			}
		}
	}
}

func (e *Engine) send(ctx context.Context, m Medium, st *linkStats, q <-chan []byte) {
	for {
		select {
		case <-ctx.Done():
			return
		case pkt := <-q:
			if err := m.Send(pkt); err != nil {
				st.sendErrors.Add(1)
				if e.logRL.allow(m.Name()+"/send", 10*time.Second) {
					e.cfg.Log.Warn("heartbeat send failed", "link", m.Name(), "err", err)
				}
				continue
			}
			st.sent.Add(1)
		}
	}
}

func (e *Engine) receive(ctx context.Context, m Medium, st *linkStats) {
	buf := make([]byte, 2*MaxPacket)
	for {
		n, err := m.Receive(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, ErrBadFrame) {
				e.dropped(m.Name(), st, DropMalformed, err)
				continue
			}
			if e.logRL.allow(m.Name()+"/recv", 10*time.Second) {
				e.cfg.Log.Warn("heartbeat receive failed", "link", m.Name(), "err", err)
			}
			// A serial line with nothing attached fails at once, every
			// time: wait a beat instead of spinning.
			select {
			case <-ctx.Done():
				return
			case <-time.After(e.cfg.Keepalive):
			}
			continue
		}
		at := time.Now()
		msg, err := e.cfg.Codec.Decode(buf[:n])
		if err != nil {
			var de *DecodeError
			r := DropMalformed
			if errors.As(err, &de) {
				r = de.Reason
			}
			e.dropped(m.Name(), st, r, err)
			continue
		}
		if msg.Node == e.cfg.Node {
			if msg.Incarnation == e.cfg.Incarnation {
				st.own.Add(1)
			} else {
				e.dropped(m.Name(), st, DropDuplicateSelf, errors.New("another daemon uses this node's name"))
			}
			continue
		}
		if r := e.cfg.Observer.Heard(m.Name(), msg, at); r != Accepted {
			e.dropped(m.Name(), st, r, errors.New("from "+msg.Node))
			continue
		}
		st.received.Add(1)
	}
}

func (e *Engine) dropped(link string, st *linkStats, r DropReason, err error) {
	st.dropped[r].Add(1)
	if e.logRL.allow(link+"/"+r.String(), 10*time.Second) {
		e.cfg.Log.Warn("heartbeat dropped", "link", link, "reason", r.String(), "detail", err.Error(),
			"total", st.dropped[r].Load())
	}
}

// Counters returns a snapshot of every link's traffic.
func (e *Engine) Counters() []LinkCounters {
	out := make([]LinkCounters, len(e.cfg.Media))
	for i, m := range e.cfg.Media {
		st := e.stats[i]
		c := LinkCounters{Link: m.Name(), Sent: st.sent.Load(), SendErrors: st.sendErrors.Load(),
			SendSkips: st.sendSkips.Load(), Received: st.received.Load(), Own: st.own.Load()}
		for _, r := range DropReasons() {
			if v := st.dropped[r].Load(); v > 0 {
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
