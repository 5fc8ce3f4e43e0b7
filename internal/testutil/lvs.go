package testutil

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// PersistentWWW is an ldirectord instance (www.toml) for persistence
// tests: one virtual at vip, rr over reals (quiescent, so a dead real
// keeps its templates), 300s templates, checked with /.testpage for
// "test page" every 200ms, on the userspace director.
func PersistentWWW(vip string, reals ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `checkinterval = "200ms"
checktimeout = "500ms"
failurecount = 2
quiescent = true
backend = "userspace"
[[virtual]]
address = %q
scheduler = "rr"
persistent = "300s"
service = "http"
request = "/.testpage"
receive = "test page"
`, vip)
	for _, r := range reals {
		fmt.Fprintf(&b, "  [[virtual.real]]\n  address = %q\n  forward = \"gate\"\n", r)
	}
	return b.String()
}

// HTTPGet sends one request for path over conn (to addr), returns the
// body, trimmed, and closes conn.
func HTTPGet(conn net.Conn, addr, path string, timeout time.Duration) (string, error) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// GetFrom fetches / from addr over a new connection from the source
// address from (a client of its own to a persistent service) and returns
// the body; it fails the test when that does not work.
func GetFrom(t testing.TB, from, addr string) string {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("tcp", addr)
	if err == nil {
		var body string
		if body, err = HTTPGet(conn, addr, "/", 2*time.Second); err == nil {
			return body
		}
	}
	t.Fatalf("GET %s from %s: %v", addr, from, err)
	return ""
}
