package consensus

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// A Raft dial in flight when the peer is heard again after a death (its
// connect begun while the peer's links were down, waiting out SYN
// retransmits) starts over and reaches the peer as it is now; a dial to
// a peer declared dead waits until it is heard.
func TestDialStartsOverWhenPeerReturns(t *testing.T) {
	leakCheck(t)
	creds, err := NewCredentials("test", "dial", []byte("a secret of the cluster"))
	if err != nil {
		t.Fatal(err)
	}
	layerOn := func() *layer {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l := newLayer(ln, creds, testutil.Logger(t))
		l.start()
		t.Cleanup(func() { l.Close(); l.wg.Wait() })
		return l
	}
	peer, self := layerOn(), layerOn()
	go func() {
		for {
			c, err := peer.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	for _, tc := range []struct {
		name string
		dead bool
	}{{"in flight", false}, {"declared dead", true}} {
		t.Run(tc.name, func(t *testing.T) {
			back := make(chan struct{})
			var returned atomic.Bool
			self.wait = func(string) (<-chan struct{}, bool) {
				if returned.Load() {
					return make(chan struct{}), false // a new one, for the next return
				}
				return back, tc.dead
			}
			var attempts atomic.Int32
			hung := make(chan struct{})
			self.dialTCP = func(ctx context.Context, addr string) (net.Conn, error) {
				if attempts.Add(1) == 1 && !tc.dead {
					close(hung) // a connect to a peer whose links are down
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			}
			type result struct {
				c   net.Conn
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := self.Dial(raft.ServerAddress(peer.Addr().String()), time.Minute)
				done <- result{c, err}
			}()
			if !tc.dead {
				<-hung
			}
			returned.Store(true)
			close(back) // the peer is heard again
			r := <-done
			if r.err != nil {
				t.Fatalf("dial: %v (%d attempts)", r.err, attempts.Load())
			}
			r.c.Close()
			want := int32(2)
			if tc.dead {
				want = 1 // waited, then dialled once
			}
			if n := attempts.Load(); n != want {
				t.Errorf("%d connect attempts, want %d", n, want)
			}
		})
	}
}
