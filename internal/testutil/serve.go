package testutil

import (
	"net"
	"sync"
	"testing"
)

// Serve hands every connection l accepts to handle, each in a goroutine
// of its own, and closes the connection when handle returns. stop (also
// run when the test ends; once is enough) closes l and every connection
// still open, so that a handler blocked on its connection returns, and
// waits for the handlers: nothing outlives the test. t is any test (a
// testing.TB, the lab's own TB).
func Serve(t interface{ Cleanup(func()) }, l net.Listener, handle func(net.Conn)) (stop func()) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		conns   = map[net.Conn]bool{}
		stopped bool // under mu: a connection accepted as stop ran is closed at once
		once    sync.Once
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if stopped {
				mu.Unlock()
				c.Close()
				continue
			}
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	stop = func() {
		once.Do(func() {
			l.Close()
			mu.Lock()
			stopped = true
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// ServeTCP listens on a free port of 127.0.0.1, Serves it with handle
// and returns its address.
func ServeTCP(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, l, handle)
	return l.Addr().String()
}
