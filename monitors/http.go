package monitors

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// HTTP is ldirectord's negotiate check for http/https and keepalived's
// HTTP_GET/SSL_GET: one request to Addr, redirects followed (as LWP does),
// passing when the final status is in Status (default 2xx) and the body
// matches Receive or hashes to Digest.
//
// It speaks HTTP/1.0-style "Connection: close" by hand over one socket per
// hop rather than through net/http's Transport, and reads the answer with
// a parser of its own (response.go) into pooled buffers: a health check
// opens a fresh connection each time (as ldirectord's: a real that still
// serves an old keep-alive connection but accepts no new ones is down),
// and a check costs little more than that connection's system calls.
type HTTP struct {
	Addr     string // host:port to connect to (the real server)
	TLS      bool
	Method   string // GET (default) or HEAD
	Path     string // request path, "/" by default
	Host     string // Host header; default Addr's host
	Status   []StatusRange
	Receive  *regexp.Regexp // body must match (empty/nil: anything)
	Digest   string         // hex MD5 of the body, as keepalived's genhash prints
	MaxHops  int            // redirects followed; default 10, -1 none
	MaxBody  int64          // bytes of body read; default 1 MiB
	Insecure bool           // skip certificate verification (keepalived's SSL_GET does)
	// ChainOnly verifies the certificate chain against the system's CAs
	// but not the host name: ldirectord 4.12 with Debian 12's LWP
	// (verify_hostname => 0) finds a real with a self-signed
	// certificate down. It applies when Insecure is false.
	ChainOnly bool
	// ConnectTimeout bounds the TCP connect alone (keepalived's
	// connect_timeout); the whole exchange is still bounded by ctx.
	ConnectTimeout time.Duration
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// ParseStatus reads keepalived's status_code forms: "200", "200-299".
func ParseStatus(s string) (StatusRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err := strconv.Atoi(lo)
	b := a
	if err == nil && isRange {
		b, err = strconv.Atoi(hi)
	}
	if err != nil || a < 100 || b > 599 || a > b {
		return StatusRange{}, fmt.Errorf("status %q: want a code 100-599 or a range like 200-299", s)
	}
	return StatusRange{a, b}, nil
}

func (c HTTP) String() string {
	scheme := "http"
	if c.TLS {
		scheme = "https"
	}
	return scheme + " " + c.Addr + c.path()
}

func (c HTTP) path() string {
	if c.Path == "" {
		return "/"
	}
	if !strings.HasPrefix(c.Path, "/") {
		return "/" + c.Path
	}
	return c.Path
}

func (c HTTP) Check(ctx context.Context) Result {
	start := time.Now()
	addr, path := c.Addr, c.path()
	host := c.Host
	if host == "" {
		host, _, _ = net.SplitHostPort(addr)
	}
	hops := c.MaxHops
	if hops == 0 {
		hops = 10
	}
	b := exchangeBufs.Get().(*exchangeBuf)
	defer b.release()
	useTLS := c.TLS
	for hop := 0; ; hop++ {
		code, loc, body, err := c.exchange(ctx, b, addr, useTLS, host, path)
		if err != nil {
			return failed(start, c.method(), err)
		}
		if code >= 300 && code < 400 && loc != "" && hop < hops && !c.accepts(code) {
			next, err := redirect(addr, useTLS, path, loc)
			if err != nil {
				return failed(start, "redirect", err)
			}
			addr, useTLS, path = next.addr, next.tls, next.path
			if next.host != "" {
				host = next.host
			}
			continue
		}
		if !c.accepts(code) {
			return Result{Summary: statusSummary(code), Latency: time.Since(start)}
		}
		if c.Receive != nil && !c.Receive.Match(body) {
			return Result{Summary: fmt.Sprintf("status %d, body does not match %q", code, c.Receive.String()), Latency: time.Since(start)}
		}
		if c.Digest != "" {
			sum := md5.Sum(body)
			if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, c.Digest) {
				return Result{Summary: fmt.Sprintf("status %d, digest %s, want %s", code, got, c.Digest), Latency: time.Since(start)}
			}
		}
		return passed(start, statusSummary(code))
	}
}

func (c HTTP) method() string {
	if c.Method == "" {
		return "GET"
	}
	return strings.ToUpper(c.Method)
}

func (c HTTP) accepts(code int) bool {
	if len(c.Status) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range c.Status {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// exchange sends one request and reads the status, Location and body, all
// before ctx's deadline. The body is b's, valid until b is released.
func (c HTTP) exchange(ctx context.Context, b *exchangeBuf, addr string, useTLS bool, host, path string) (int, string, []byte, error) {
	dctx := ctx
	if c.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, c.ConnectTimeout)
		defer cancel()
	}
	conn, err := dial(dctx, "tcp", addr)
	if err != nil {
		return 0, "", nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline(ctx, 30*time.Second))
	if useTLS {
		name, _, _ := net.SplitHostPort(host + ":0")
		tc := tls.Client(conn, tlsConfig(name, c.Insecure, c.ChainOnly))
		if err := tc.HandshakeContext(ctx); err != nil {
			return 0, "", nil, err
		}
		conn = tc
	}
	method := c.method()
	b.req = append(b.req[:0], method...)
	b.req = append(b.req, ' ')
	b.req = append(b.req, path...)
	b.req = append(b.req, " HTTP/1.1\r\nHost: "...)
	b.req = append(b.req, host...)
	b.req = append(b.req, "\r\nUser-Agent: vigil-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"...)
	if _, err := conn.Write(b.req); err != nil {
		return 0, "", nil, err
	}
	b.r.Reset(conn)
	limit := int64(-1) // the body is not read: the connection closes
	if c.Receive != nil || c.Digest != "" {
		if limit = c.MaxBody; limit == 0 {
			limit = 1 << 20
		}
	}
	code, loc, err := b.readResponse(method == "HEAD", limit)
	if err != nil {
		return 0, "", nil, err
	}
	return code, loc, b.body, nil
}

type hop struct {
	addr, host, path string
	tls              bool
}

// redirect resolves a Location against the current request.
func redirect(addr string, useTLS bool, path, loc string) (hop, error) {
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	base, err := url.Parse(scheme + "://" + addr + path)
	if err != nil {
		return hop{}, err
	}
	u, err := base.Parse(loc)
	if err != nil {
		return hop{}, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return hop{}, fmt.Errorf("location %q: not http", loc)
	}
	h := hop{tls: u.Scheme == "https", path: u.RequestURI()}
	h.addr = u.Host
	if u.Port() == "" {
		port := "80"
		if h.tls {
			port = "443"
		}
		h.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Host != base.Host {
		h.host = u.Host // another site: its own Host header
	}
	return h, nil
}
