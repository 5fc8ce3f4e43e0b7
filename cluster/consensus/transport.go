package consensus

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vigil-ha/vigil/internal/rawconn"
)

// Every connection starts, after the TLS handshake, with one byte saying
// what it carries, so Raft and command forwarding share one port (as
// Consul multiplexes its RPC port).
const (
	connRaft byte = 'R'
	// connForward carries one forwarded request: what nodes before the
	// multiplexed connMux send, still served.
	connForward byte = 'F'
)

// maxForward bounds a forwarded command.
const maxForward = 1 << 20

// layer is raft's StreamLayer over mutually authenticated TLS, and the
// server side of command forwarding.
type layer struct {
	ln       net.Listener
	creds    *Credentials
	log      *slog.Logger
	raftCh   chan net.Conn
	forward  func(ctx context.Context, req request) error
	hasState func() bool                                         // whether this node has a Raft log
	wait     func(addr string) (back <-chan struct{}, dead bool) // Options.PeerWait
	dialTCP  func(ctx context.Context, addr string) (net.Conn, error)
	closed   chan struct{}
	once     sync.Once
	// rejected counts connections that failed the handshake (no or the
	// wrong secret) or sent garbage; rejects logs them, rate-limited.
	rejected atomic.Uint64
	rejects  *rateLog
	// muxAccepted counts forwarding connections served, malformed the
	// ones dropped for a malformed frame.
	muxAccepted atomic.Uint64
	malformed   atomic.Uint64
	fwd         *forwarder
	recent      recentReplies
	legacyOnly  atomic.Bool // tests: serve as a node before connMux did
	wg          sync.WaitGroup

	mu    sync.Mutex
	conns map[*tracked]bool // raft connections: raft's transport never closes accepted ones
	// paused ends while Raft restarts on this layer (RecoverAlone): dials
	// fail at once instead of holding up its shutdown.
	paused context.Context
	pause  context.CancelFunc
}

func newLayer(ln net.Listener, creds *Credentials, log *slog.Logger) *layer {
	l := &layer{ln: ln, creds: creds, log: log, raftCh: make(chan net.Conn), closed: make(chan struct{}), conns: map[*tracked]bool{},
		rejects: newRateLog(log, rejectBurst, rejectEvery),
		dialTCP: func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}}
	l.fwd = &forwarder{l: l, conns: map[string]*fwdConn{}, open: map[*fwdConn]bool{}}
	l.fwd.idle.Store(int64(forwardIdle))
	l.resume()
	return l
}

// start serves the listener; its caller sets the handlers (forward,
// hasState, wait) first: a peer's connection may arrive at once.
func (l *layer) start() {
	l.wg.Add(1)
	go l.serve()
}

func (l *layer) serve() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.log.Error("raft listener failed", "err", err)
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.handle(c)
		}()
	}
}

func (l *layer) handle(c net.Conn) {
	tc := tls.Server(rawconn.Wrap(c), l.creds.Server)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	var kind [1]byte
	if err := tc.Handshake(); err != nil {
		l.reject(c, "tls handshake", err)
		return
	}
	if _, err := io.ReadFull(tc, kind[:]); err != nil {
		l.reject(c, "read connection kind", err)
		return
	}
	_ = tc.SetDeadline(time.Time{})
	switch kind[0] {
	case connRaft:
		tr := &tracked{Conn: tc, l: l}
		l.mu.Lock()
		l.conns[tr] = true
		l.mu.Unlock()
		select {
		case l.raftCh <- tr:
		case <-l.closed:
			tr.Close()
		}
	case connForward:
		l.serveForward(tc)
	case connMux:
		if l.legacyOnly.Load() {
			l.reject(c, "unknown connection kind", fmt.Errorf("%q", kind[0]))
			return
		}
		l.serveMux(tc)
	default:
		l.reject(c, "unknown connection kind", fmt.Errorf("%q", kind[0]))
	}
}

// tracked forgets itself when raft closes it.
type tracked struct {
	net.Conn
	l *layer
}

func (c *tracked) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

func (l *layer) reject(c net.Conn, what string, err error) {
	n := l.rejected.Add(1)
	l.rejects.Warn("raft connection rejected", "remote", c.RemoteAddr().String(), "stage", what, "err", err, "rejected_total", n)
	c.Close()
}

// Accept implements net.Listener for raft.
func (l *layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.raftCh:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *layer) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.ln.Close()
		l.mu.Lock()
		l.pause() // dials under way end
		for c := range l.conns {
			c.Conn.Close()
		}
		l.mu.Unlock()
		l.fwd.closeAll(true)
		l.rejects.Close()
	})
	return nil
}

// Addr implements net.Listener.
func (l *layer) Addr() net.Addr { return l.ln.Addr() }

// Dial implements raft.StreamLayer. A dial to a peer membership declared
// dead waits until it is heard again; a dial in flight when the peer is
// heard again after a death or a restart starts over: begun while the
// peer's links were down, its connect would wait out SYN retransmits
// (a second and more) while the peer is back, and the leader, hearing
// nothing from it meanwhile, may count it gone and step down.
func (l *layer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	paused := l.paused
	l.mu.Unlock()
	for {
		var back <-chan struct{}
		if l.wait != nil {
			var dead bool
			if back, dead = l.wait(string(addr)); dead {
				// Waiting does not count as a failure until the timeout,
				// so hashicorp/raft's backoff does not grow meanwhile.
				t := time.NewTimer(timeout)
				select {
				case <-back:
					t.Stop()
					continue // heard: dial the peer as it is now
				case <-t.C:
				case <-l.closed:
				case <-paused.Done():
				}
				t.Stop()
			}
		}
		c, err := l.dialWhile(paused, string(addr), timeout, back)
		if err != nil {
			if closed(back) && paused.Err() == nil && !closed(l.closed) {
				continue // the peer came back meanwhile: dial it as it is now
			}
			return nil, err
		}
		t := &tracked{Conn: c, l: l}
		l.mu.Lock()
		l.conns[t] = true
		l.mu.Unlock()
		return t, nil
	}
}

// dialWhile dials a Raft connection to addr within timeout, given up
// when back closes.
func (l *layer) dialWhile(ctx context.Context, addr string, timeout time.Duration, back <-chan struct{}) (*tls.Conn, error) {
	if back != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			select {
			case <-back:
				cancel()
			case <-done:
			}
		}()
		defer func() { close(done); cancel() }()
	}
	return l.dialContext(ctx, addr, timeout, connRaft)
}

// closed reports whether ch (not nil) is closed.
func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// stopDials makes dials fail and closes every raft and forwarding
// connection, so that a Raft shutdown is not held up by a dial to, or a
// call on, a dead peer; resume ends it.
func (l *layer) stopDials() {
	l.mu.Lock()
	l.pause()
	for c := range l.conns {
		c.Conn.Close()
		delete(l.conns, c)
	}
	l.mu.Unlock()
	l.fwd.closeAll(false)
}

func (l *layer) resume() {
	l.mu.Lock()
	l.paused, l.pause = context.WithCancel(context.Background())
	l.mu.Unlock()
}

func (l *layer) dialContext(ctx context.Context, addr string, timeout time.Duration, kind byte) (*tls.Conn, error) {
	// tls.Dialer's, but over rawconn (raw reads and writes: no sysmon
	// wake-up per Raft heartbeat); timeout bounds the handshake too.
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	nc, err := l.dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(rawconn.Wrap(nc), l.creds.Client)
	if err := c.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

type forwardReply struct {
	HasState   bool   `json:"has_state,omitempty"` // the answer to a probe
	Error      string `json:"error,omitempty"`
	Refused    bool   `json:"refused,omitempty"`
	NotApplied bool   `json:"not_applied,omitempty"` // send it again to the next leader
}

// serveForward serves one request on a connForward connection.
func (l *layer) serveForward(c *tls.Conn) {
	defer c.Close()
	var req request
	if err := json.NewDecoder(io.LimitReader(c, maxForward)).Decode(&req); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultForwardTimeout)
	defer cancel()
	_ = json.NewEncoder(c).Encode(l.answer(ctx, req))
}

// sendForward sends req to the leader at addr and returns its verdict. A
// request the leader may not have received, or whose reply was lost with
// its connection, is errNotApplied: onLeader sends it again (with the
// same id, which the leader recognises).
func (l *layer) sendForward(ctx context.Context, addr string, req request) error {
	timeout := defaultForwardTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	rep, err := l.ask(ctx, addr, req, timeout)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, errTooLarge) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: forward to leader %s: %w", errNotApplied, addr, err)
		}
		return fmt.Errorf("forward to leader %s: %w", addr, err)
	}
	switch {
	case rep.Refused:
		return fmt.Errorf("%w (leader %s): %s", ErrRefused, addr, rep.Error)
	case rep.NotApplied:
		return fmt.Errorf("%w (leader %s): %s", errNotApplied, addr, rep.Error)
	case rep.Error != "":
		return fmt.Errorf("leader %s: %s", addr, rep.Error)
	}
	return nil
}

// probe asks the node at addr whether it has a Raft log; no answer is no.
func (l *layer) probe(ctx context.Context, addr string, timeout time.Duration) bool {
	rep, err := l.ask(ctx, addr, request{Probe: true}, timeout)
	return err == nil && rep.HasState
}

// ask sends one request over the shared forwarding connection to addr
// and waits for the reply, at most timeout or until ctx ends.
func (l *layer) ask(ctx context.Context, addr string, req request, timeout time.Duration) (forwardReply, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return l.fwd.ask(ctx, addr, req)
}

// askOnce sends one request on a connection of its own, to a node that
// does not multiplex.
func (l *layer) askOnce(ctx context.Context, addr string, req request) (forwardReply, error) {
	var rep forwardReply
	dl, _ := ctx.Deadline()
	c, err := l.dialContext(ctx, addr, time.Until(dl), connForward)
	if err != nil {
		return rep, err
	}
	defer c.Close()
	_ = c.SetDeadline(dl)
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return rep, err
	}
	err = json.NewDecoder(io.LimitReader(c, maxForward)).Decode(&rep)
	return rep, err
}
