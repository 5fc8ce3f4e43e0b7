package testutil

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// Each connection gets its own handler, so one blocked on its client does
// not hold up the next; stop returns although a handler is still blocked
// (its connection is closed under it), and afterwards nothing answers.
func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan struct{})
	stop := Serve(t, l, func(c net.Conn) {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		if line == "block\n" {
			close(blocked)
			_, _ = io.Copy(io.Discard, c) // until stop closes c
			return
		}
		_, _ = io.WriteString(c, "echo "+line)
	})
	addr := l.Addr().String()
	hold, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := io.WriteString(hold, "block\n"); err != nil {
		t.Fatal(err)
	}
	<-blocked
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "hi\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "echo hi\n" {
		t.Fatalf("answer %q, %v", got, err)
	}
	stop()
	stop() // again, as the test's cleanup does
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("still accepting after stop")
	}
}

// ServeTCP serves a port of its own on the loopback.
func TestServeTCP(t *testing.T) {
	addr := ServeTCP(t, func(c net.Conn) { _, _ = io.WriteString(c, "hello\n") })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("answer %q, %v", got, err)
	}
}
