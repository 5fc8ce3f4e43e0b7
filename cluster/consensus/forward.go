package consensus

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Forwarding: what only the leader can do (a command, a voter change) and
// the join probe travel over one long-lived TLS connection per peer
// (kind connMux), many requests in flight at once. A frame is a 4-byte
// length, an 8-byte request id and that many bytes of JSON; the reply
// carries the request's id. A handshake per command cost a third of a
// director's CPU during a failover of a few hundred groups.
const (
	connMux byte = 'M'
	// muxAck answers connMux: an older node closes the connection
	// instead, and the client falls back to one request per connection.
	muxAck byte = 'M'

	frameHeader = 12
	// muxInflight bounds the requests a server runs at once for one
	// connection; the next frame is read once one of them is done.
	muxInflight = 64
	// forwardIdle closes a client connection nobody used this long.
	forwardIdle = 30 * time.Second
	// serverIdle drops a server connection whose client went silent
	// (a crashed peer); its client closes it after forwardIdle anyway.
	serverIdle = 2 * time.Minute
	// defaultForwardTimeout applies when the request names none.
	defaultForwardTimeout = 5 * time.Second
)

var (
	errMalformed = errors.New("malformed forwarding frame")
	// errConnLost fails requests whose connection broke before their
	// reply came: they may be sent again, to the same leader (which
	// answers a repeated request id from memory) or the next.
	errConnLost = errors.New("forwarding connection lost")
	errTooLarge = errors.New("forwarded request too large")
	// errLegacy marks a peer that does not multiplex (an older version).
	errLegacy = errors.New("peer serves one request per connection")
)

// muxRequest is a request on the wire with the time its sender waits.
type muxRequest struct {
	request
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

func (r muxRequest) timeout() time.Duration {
	d := time.Duration(r.TimeoutMS) * time.Millisecond
	if d <= 0 {
		return defaultForwardTimeout
	}
	return min(d, time.Minute) // below serverIdle
}

func writeFrame(w io.Writer, id uint64, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(body) > maxForward {
		return fmt.Errorf("%w: %d bytes, at most %d", errTooLarge, len(body), maxForward)
	}
	buf := make([]byte, frameHeader+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	binary.BigEndian.PutUint64(buf[4:], id)
	copy(buf[frameHeader:], body)
	_, err = w.Write(buf)
	return err
}

// readFrame reads one frame and decodes its JSON into v; a length out of
// bounds or a body that is not v's JSON is errMalformed, as the stream
// cannot be trusted after it.
func readFrame(r io.Reader, v any) (uint64, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n == 0 || n > maxForward {
		return 0, fmt.Errorf("%w: length %d", errMalformed, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return 0, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return binary.BigEndian.Uint64(h[4:]), nil
}

// serveMux serves the requests of one forwarding connection, up to
// muxInflight at once. A malformed frame ends the connection: the
// client's requests on it fail and are sent again on a new one.
func (l *layer) serveMux(tc *tls.Conn) {
	l.muxAccepted.Add(1)
	tr := &tracked{Conn: tc, l: l} // closed with the layer and by stopDials
	l.mu.Lock()
	l.conns[tr] = true
	l.mu.Unlock()
	var (
		wmu  sync.Mutex
		reqs sync.WaitGroup
	)
	sem := make(chan struct{}, muxInflight)
	defer reqs.Wait()
	defer tr.Close()
	if _, err := tc.Write([]byte{muxAck}); err != nil {
		return
	}
	br := bufio.NewReader(tc)
	for {
		_ = tc.SetReadDeadline(time.Now().Add(serverIdle))
		var req muxRequest
		id, err := readFrame(br, &req)
		if err != nil {
			if errors.Is(err, errMalformed) {
				n := l.malformed.Add(1)
				l.rejects.Warn("raft forwarding connection dropped", "remote", tc.RemoteAddr().String(), "err", err, "malformed_total", n)
			}
			return
		}
		select {
		case sem <- struct{}{}:
		case <-l.closed:
			return
		}
		reqs.Add(1)
		go func() {
			defer reqs.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), req.timeout())
			rep := l.answer(ctx, req.request)
			cancel()
			wmu.Lock()
			_ = tc.SetWriteDeadline(time.Now().Add(defaultForwardTimeout))
			err := writeFrame(tc, id, rep)
			wmu.Unlock()
			if err != nil {
				tr.Close() // the reader ends; the client sends again
			}
		}()
	}
}

// answer carries out one forwarded request.
func (l *layer) answer(ctx context.Context, req request) forwardReply {
	if req.Probe {
		return forwardReply{HasState: l.hasState()}
	}
	return l.recent.do(ctx, req.ID, func() forwardReply {
		var rep forwardReply
		if err := l.forward(ctx, req); err != nil {
			rep.Error, rep.Refused, rep.NotApplied = err.Error(), errors.Is(err, ErrRefused), errors.Is(err, errNotApplied)
		}
		return rep
	})
}

// recentReplies remembers the replies to the last requests by id, so a
// request sent again after its connection broke is not applied twice by
// this leader: the second one gets the first one's reply (waiting for it
// if it still runs).
type recentReplies struct {
	mu    sync.Mutex
	byID  map[string]*outcome
	order [recentMax]*outcome // the oldest is dropped for the next
	pos   int
}

const recentMax = 4096

type outcome struct {
	id   string
	done chan struct{}
	rep  forwardReply
}

func (r *recentReplies) do(ctx context.Context, id string, fn func() forwardReply) forwardReply {
	if id == "" {
		return fn()
	}
	r.mu.Lock()
	if r.byID == nil {
		r.byID = map[string]*outcome{}
	}
	if o := r.byID[id]; o != nil {
		r.mu.Unlock()
		select {
		case <-o.done:
			return o.rep
		case <-ctx.Done():
			return forwardReply{Error: fmt.Sprintf("waiting for the same request sent before: %v", ctx.Err())}
		}
	}
	o := &outcome{id: id, done: make(chan struct{})}
	// Only if still its id's: one not applied was forgotten, and the id
	// may since be remembered again with a newer outcome.
	if old := r.order[r.pos]; old != nil && r.byID[old.id] == old {
		delete(r.byID, old.id)
	}
	r.order[r.pos] = o
	r.pos = (r.pos + 1) % recentMax
	r.byID[id] = o
	r.mu.Unlock()
	o.rep = fn()
	if o.rep.NotApplied {
		// Not taken: whoever leads next, this node included, may take it.
		r.mu.Lock()
		if r.byID[id] == o {
			delete(r.byID, id)
		}
		r.mu.Unlock()
	}
	close(o.done)
	return o.rep
}

// forwarder is the client side: one connection per peer address,
// dialled on first use, shared by every request to that peer, closed
// when idle, broken or the layer pauses or closes.
type forwarder struct {
	l      *layer
	idle   atomic.Int64 // time.Duration: forwardIdle, shorter in tests
	mu     sync.Mutex
	conns  map[string]*fwdConn // by address, the one new requests use
	open   map[*fwdConn]bool   // every connection with a reader running
	closed bool
	dials  atomic.Uint64 // connections dialled
	lost   atomic.Uint64 // requests failed by a broken connection
}

type fwdConn struct {
	f     *forwarder
	addr  string
	ready chan struct{} // closed when the dial ended: c or err is set
	c     *tls.Conn
	err   error
	since time.Time // of the dial (errLegacy is retried after idle)

	wmu sync.Mutex

	mu      sync.Mutex
	pending map[uint64]chan muxReply
	next    uint64
	broken  error
	timer   *time.Timer
	used    time.Time
	heard   time.Time // the last reply
}

type muxReply struct {
	rep forwardReply
	err error
}

// get returns the connection to addr, dialling it if there is none.
func (f *forwarder) get(ctx context.Context, addr string) (*fwdConn, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, fmt.Errorf("%w: node closing", errConnLost)
	}
	fc := f.conns[addr]
	if fc != nil && errors.Is(fc.err, errLegacy) && time.Since(fc.since) > time.Duration(f.idle.Load()) {
		fc = nil // the peer may have been upgraded meanwhile
	}
	if fc == nil {
		fc = &fwdConn{f: f, addr: addr, ready: make(chan struct{}), pending: map[uint64]chan muxReply{}, since: time.Now()}
		f.conns[addr] = fc
		f.mu.Unlock()
		fc.dial(ctx)
	} else {
		f.mu.Unlock()
	}
	select {
	case <-fc.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return fc, fc.err
}

// forget drops fc from the pool so that the next request dials anew.
func (f *forwarder) forget(fc *fwdConn) {
	f.mu.Lock()
	if f.conns[fc.addr] == fc {
		delete(f.conns, fc.addr)
	}
	f.mu.Unlock()
}

// openConns returns the connections with a reader running.
func (f *forwarder) openConns() []*fwdConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fwdConn
	for fc := range f.open {
		out = append(out, fc)
	}
	return out
}

func (fc *fwdConn) dial(ctx context.Context) {
	defer close(fc.ready)
	f := fc.f
	f.l.mu.Lock()
	paused := f.l.paused
	f.l.mu.Unlock()
	// The dial ends with the caller's request or when the layer pauses.
	dctx, cancel := context.WithTimeout(ctx, defaultForwardTimeout)
	defer cancel()
	defer context.AfterFunc(paused, cancel)()
	f.dials.Add(1)
	c, err := f.l.dialContext(dctx, fc.addr, defaultForwardTimeout, connMux)
	if err == nil {
		var ack [1]byte
		dl, _ := dctx.Deadline()
		_ = c.SetReadDeadline(dl)
		if _, rerr := io.ReadFull(c, ack[:]); rerr != nil || ack[0] != muxAck {
			c.Close()
			if errors.Is(rerr, io.EOF) {
				err = errLegacy // kept in the pool: the peer is old
			} else {
				err = fmt.Errorf("%w: no answer to the connection kind: %v", errConnLost, rerr)
			}
		} else {
			_ = c.SetReadDeadline(time.Time{})
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil && f.closed {
		c.Close()
		err = fmt.Errorf("%w: node closing", errConnLost)
	}
	if err != nil {
		fc.err = err
		if !errors.Is(err, errLegacy) && f.conns[fc.addr] == fc {
			delete(f.conns, fc.addr)
		}
		return
	}
	fc.c = c
	f.open[fc] = true
	f.l.wg.Add(1) // under f.mu: before Close marks f closed and waits
	go fc.read()
}

// read delivers replies to their requests until the connection breaks.
func (fc *fwdConn) read() {
	defer fc.f.l.wg.Done()
	br := bufio.NewReader(fc.c)
	for {
		var rep forwardReply
		id, err := readFrame(br, &rep)
		if err != nil {
			fc.fail(fmt.Errorf("%w: %w", errConnLost, err))
			return
		}
		fc.mu.Lock()
		fc.heard = time.Now()
		ch := fc.pending[id]
		fc.done(id)
		fc.mu.Unlock()
		if ch != nil {
			ch <- muxReply{rep: rep}
		}
	}
}

// fail breaks the connection and fails every request waiting on it.
func (fc *fwdConn) fail(err error) {
	fc.f.mu.Lock()
	if fc.f.conns[fc.addr] == fc {
		delete(fc.f.conns, fc.addr)
	}
	delete(fc.f.open, fc)
	fc.f.mu.Unlock()
	fc.mu.Lock()
	if fc.broken == nil {
		fc.broken = err
	}
	pending := fc.pending
	fc.pending = nil
	if fc.timer != nil {
		fc.timer.Stop()
	}
	fc.mu.Unlock()
	fc.c.Close()
	fc.f.lost.Add(uint64(len(pending)))
	for _, ch := range pending {
		ch <- muxReply{err: fc.broken}
	}
}

// done forgets request id; with nothing in flight the idle timer runs.
// fc.mu is held.
func (fc *fwdConn) done(id uint64) {
	delete(fc.pending, id)
	if len(fc.pending) > 0 || fc.broken != nil {
		return
	}
	fc.used = time.Now()
	idle := time.Duration(fc.f.idle.Load())
	if fc.timer == nil {
		fc.timer = time.AfterFunc(idle, fc.idleCheck)
	} else {
		fc.timer.Reset(idle)
	}
}

func (fc *fwdConn) idleCheck() {
	fc.mu.Lock()
	idle := len(fc.pending) == 0 && fc.broken == nil && time.Since(fc.used) >= time.Duration(fc.f.idle.Load())
	if idle {
		fc.broken = fmt.Errorf("%w: idle", errConnLost)
	}
	fc.mu.Unlock()
	if idle {
		fc.fail(nil)
	}
}

// register allots an id to a request about to be sent.
func (fc *fwdConn) register() (uint64, chan muxReply, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.broken != nil {
		return 0, nil, fc.broken
	}
	fc.next++
	ch := make(chan muxReply, 1)
	fc.pending[fc.next] = ch
	return fc.next, ch, nil
}

// ask sends req to addr and waits for the reply until ctx ends.
func (f *forwarder) ask(ctx context.Context, addr string, req request) (forwardReply, error) {
	for attempt := 0; ; attempt++ {
		fc, err := f.get(ctx, addr)
		if errors.Is(err, errLegacy) {
			return f.l.askOnce(ctx, addr, req)
		}
		if err != nil {
			return forwardReply{}, err
		}
		id, ch, err := fc.register()
		if err != nil {
			// Broken (or closed as idle) since get returned it: dial anew.
			f.forget(fc)
			if attempt == 0 {
				continue
			}
			return forwardReply{}, err
		}
		return fc.roundTrip(ctx, id, ch, req)
	}
}

func (fc *fwdConn) roundTrip(ctx context.Context, id uint64, ch chan muxReply, req request) (forwardReply, error) {
	dl, _ := ctx.Deadline() // ask's callers always set one
	wire := muxRequest{request: req, TimeoutMS: time.Until(dl).Milliseconds()}
	sent := time.Now()
	fc.wmu.Lock()
	_ = fc.c.SetWriteDeadline(dl)
	err := writeFrame(fc.c, id, wire)
	fc.wmu.Unlock()
	if errors.Is(err, errTooLarge) {
		fc.mu.Lock()
		fc.done(id)
		fc.mu.Unlock()
		return forwardReply{}, err
	}
	if err != nil {
		// A frame written in part leaves the stream unusable.
		fc.fail(fmt.Errorf("%w: %w", errConnLost, err))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The write deadline is the request's: it ran out while
			// writing (a slow handshake on a loaded machine).
			return forwardReply{}, fmt.Errorf("writing the request: %w", context.DeadlineExceeded)
		}
	}
	select {
	case r := <-ch:
		return r.rep, r.err
	case <-ctx.Done():
		fc.mu.Lock()
		if fc.pending != nil {
			fc.done(id)
		}
		// Nothing at all came back while this request waited: the
		// connection may be a black hole (a path lost without a reset),
		// which TCP would notice only after minutes. The next request
		// dials anew.
		silent := fc.heard.Before(sent) && errors.Is(ctx.Err(), context.DeadlineExceeded)
		fc.mu.Unlock()
		if silent {
			fc.fail(fmt.Errorf("%w: no reply within the request's deadline", errConnLost))
		}
		return forwardReply{}, ctx.Err()
	}
}

// closeAll closes every connection; with stop, none is dialled again.
func (f *forwarder) closeAll(stop bool) {
	f.mu.Lock()
	if stop {
		f.closed = true
	}
	clear(f.conns) // dials under way fail on the pause, or see closed
	var open []*fwdConn
	for fc := range f.open {
		open = append(open, fc)
	}
	f.mu.Unlock()
	for _, fc := range open {
		fc.fail(fmt.Errorf("%w: closed", errConnLost))
	}
}
