package monitors

import (
	"context"
	"net"
	"time"
)

// TCP passes when a TCP connection to Addr (host:port) is established.
type TCP struct{ Addr string }

func (c TCP) String() string { return "connect " + c.Addr }

func (c TCP) Check(ctx context.Context) Result {
	start := time.Now()
	conn, err := dial(ctx, "tcp", c.Addr)
	if err != nil {
		return failed(start, "connect", err)
	}
	_ = conn.Close()
	return passed(start, "connected")
}

// dial connects under ctx and arms the connection with ctx's deadline so
// the whole exchange that follows shares it. TCP keep-alive stays off: a
// check's connection lives for one exchange, and turning it on costs four
// setsockopt calls a check.
func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{KeepAlive: -1}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(deadline(ctx, 30*time.Second)); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}
