package monitors

import (
	"bufio"
	"context"
	"io"
	"net/textproto"
	"time"
)

// SMTP passes when the server greets with 220 and answers HELO with 250
// (keepalived's SMTP_CHECK; ldirectord's negotiate for service smtp).
type SMTP struct {
	Addr string
	Helo string // default "vigil"
}

func (c SMTP) String() string { return "smtp " + c.Addr }

func (c SMTP) Check(ctx context.Context) Result {
	start := time.Now()
	conn, err := dial(ctx, "tcp", c.Addr)
	if err != nil {
		return failed(start, "smtp", err)
	}
	defer conn.Close()
	tp := textproto.NewReader(bufio.NewReader(conn))
	if _, _, err := tp.ReadResponse(220); err != nil {
		return failed(start, "smtp banner", err)
	}
	helo := c.Helo
	if helo == "" {
		helo = "vigil"
	}
	if _, err := io.WriteString(conn, "HELO "+helo+"\r\n"); err != nil {
		return failed(start, "smtp", err)
	}
	if _, _, err := tp.ReadResponse(250); err != nil {
		return failed(start, "smtp HELO", err)
	}
	_, _ = io.WriteString(conn, "QUIT\r\n")
	return passed(start, "smtp 250")
}
