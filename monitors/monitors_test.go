package monitors_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/monitors"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// run runs c under a fresh deadline and reports how long it took.
func run(c monitors.Check, d time.Duration) (monitors.Result, time.Duration) {
	// start before the deadline's clock does, so that took is never less
	// than d however long the scheduler waits in between
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r := c.Check(ctx)
	return r, time.Since(start)
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// stall accepts connections and answers nothing (or trickles, when
// trickle is set) until the test ends.
func stall(t *testing.T, trickle string) string {
	done := make(chan struct{})
	addr := testutil.ServeTCP(t, func(c net.Conn) {
		for i := 0; i < len(trickle); i++ {
			if _, err := c.Write([]byte{trickle[i]}); err != nil {
				return
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		<-done
	})
	t.Cleanup(func() { close(done) }) // before ServeTCP's stop: cleanups run last first
	return addr
}

func TestTCP(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if r, _ := run(monitors.TCP{Addr: srv.Listener.Addr().String()}, time.Second); !r.OK {
		t.Fatalf("up: %+v", r)
	}
	r, _ := run(monitors.TCP{Addr: closedPort(t)}, time.Second)
	if r.OK || !strings.Contains(r.Summary, "refused") {
		t.Fatalf("down: %+v", r)
	}
}

func TestHTTP(t *testing.T) {
	body := "<html>test page</html>"
	sum := md5.Sum([]byte(body))
	digest := hex.EncodeToString(sum[:])
	mux := http.NewServeMux()
	var lastHost string
	mux.HandleFunc("/.testpage", func(w http.ResponseWriter, r *http.Request) {
		lastHost = r.Host
		fmt.Fprint(w, body)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/.testpage", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/secret", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusUnauthorized) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	addr := srv.Listener.Addr().String()
	re := regexp.MustCompile("test page")
	cases := []struct {
		name string
		c    monitors.HTTP
		ok   bool
		want string
	}{
		{"receive matches", monitors.HTTP{Addr: addr, Path: "/.testpage", Receive: re}, true, "status 200"},
		{"receive is a regex", monitors.HTTP{Addr: addr, Path: "/.testpage", Receive: regexp.MustCompile(`te+st [a-z]age`)}, true, ""},
		{"wrong body", monitors.HTTP{Addr: addr, Path: "/.testpage", Receive: regexp.MustCompile("other page")}, false, "does not match"},
		{"head", monitors.HTTP{Addr: addr, Path: "/.testpage", Method: "HEAD"}, true, ""},
		{"digest", monitors.HTTP{Addr: addr, Path: "/.testpage", Digest: digest}, true, ""},
		{"wrong digest", monitors.HTTP{Addr: addr, Path: "/.testpage", Digest: strings.Repeat("0", 32)}, false, "digest " + digest},
		{"redirect followed", monitors.HTTP{Addr: addr, Path: "/moved", Receive: re}, true, ""},
		{"redirect as status", monitors.HTTP{Addr: addr, Path: "/moved", Status: []monitors.StatusRange{{301, 301}}}, true, "status 301"},
		{"401 is down", monitors.HTTP{Addr: addr, Path: "/secret"}, false, "status 401"},
		{"404 is down", monitors.HTTP{Addr: addr, Path: "/nothing"}, false, "status 404"},
		{"401 accepted when listed", monitors.HTTP{Addr: addr, Path: "/secret", Status: []monitors.StatusRange{{200, 299}, {401, 401}}}, true, ""},
		{"https", monitors.HTTP{Addr: tlsSrv.Listener.Addr().String(), TLS: true, Insecure: true, Path: "/.testpage", Receive: re}, true, ""},
		{"https needs a trusted certificate unless insecure", monitors.HTTP{Addr: tlsSrv.Listener.Addr().String(), TLS: true, Path: "/.testpage"}, false, "certificate"},
		{"https chain-only still needs a trusted chain", monitors.HTTP{Addr: tlsSrv.Listener.Addr().String(), TLS: true, ChainOnly: true, Path: "/.testpage"}, false, "certificate"},
		{"down", monitors.HTTP{Addr: closedPort(t)}, false, "refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := run(tc.c, 2*time.Second)
			if r.OK != tc.ok || !strings.Contains(r.Summary, tc.want) {
				t.Fatalf("%s: %+v, want ok=%v and %q", tc.c, r, tc.ok, tc.want)
			}
		})
	}
	if r, _ := run(monitors.HTTP{Addr: addr, Path: "/.testpage", Host: "www.example.org"}, time.Second); !r.OK || lastHost != "www.example.org" {
		t.Fatalf("virtual host: %+v, server saw Host %q", r, lastHost)
	}
}

// A server that answers slowly, trickles its answer or never answers must
// fail at the one deadline, not at some per-read timeout after it.
func TestDeadlineBoundsWholeExchange(t *testing.T) {
	const deadline = 300 * time.Millisecond
	trickler := stall(t, "HTTP/1.0 200 OK\r\nContent-Length: 5000\r\n\r\n"+strings.Repeat("x", 100))
	silent := stall(t, "")
	smtpTrickle := stall(t, "220-hello\r\n220-still here\r\n220-and here\r\n220-more\r\n220-more\r\n220-more\r\n220-more\r\n220-more\r\n220-more\r\n220-more\r\n220-more\r\n220-more\r\n220-more\r\n220-more\r\n220-more\r\n")
	for _, c := range []monitors.Check{
		monitors.HTTP{Addr: trickler, Receive: regexp.MustCompile("x")},
		monitors.HTTP{Addr: silent},
		monitors.HTTP{Addr: silent, TLS: true, Insecure: true},
		monitors.SMTP{Addr: smtpTrickle},
		monitors.SMTP{Addr: silent},
	} {
		r, took := run(c, deadline)
		if r.OK || !strings.Contains(r.Summary, "timed out") {
			t.Errorf("%s: %+v, want a timeout", c, r)
		}
		if took < deadline || took > deadline+200*time.Millisecond {
			t.Errorf("%s: took %v, want about %v", c, took, deadline)
		}
	}
}

// An unreachable real server (no ARP answer behind the director's link,
// the black hole a dead host is) fails at the deadline.
func TestUnreachable(t *testing.T) {
	ns := nstest.NewNetns(t)
	n := ns.Add("chk")
	ns.Run("ip", "-n", n, "link", "add", "va", "type", "veth", "peer", "name", "vb")
	ns.Run("ip", "-n", n, "addr", "add", "10.99.0.1/24", "dev", "va")
	ns.Run("ip", "-n", n, "link", "set", "va", "up")
	ns.Run("ip", "-n", n, "link", "set", "vb", "up")
	const deadline = 300 * time.Millisecond
	err := nstest.InNS(n, func() error {
		for _, c := range []monitors.Check{
			monitors.TCP{Addr: "10.99.0.7:80"},
			monitors.HTTP{Addr: "10.99.0.7:80"},
			monitors.DNS{Addr: "10.99.0.7:53", Name: "www.example.org"},
			monitors.SMTP{Addr: "10.99.0.7:25"},
			monitors.Ping{Addr: "10.99.0.7"},
		} {
			r, took := run(c, deadline)
			if r.OK || took < deadline-10*time.Millisecond || took > deadline+200*time.Millisecond {
				t.Errorf("%s: %+v after %v, want a failure at %v", c, r, took, deadline)
			}
		}
		// And a host that answers pings does pass.
		if r, _ := run(monitors.Ping{Addr: "10.99.0.1"}, deadline); !r.OK {
			t.Errorf("ping self: %+v", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dnsServer answers A queries for www.example.org with 10.0.0.80 and
// NXDOMAIN for anything else.
func dnsServer(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
				continue
			}
			a := dnsmessage.Message{Header: dnsmessage.Header{ID: q.ID, Response: true}, Questions: q.Questions}
			if q.Questions[0].Name.String() == "www.example.org." && q.Questions[0].Type == dnsmessage.TypeA {
				a.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
					Body:   &dnsmessage.AResource{A: [4]byte{10, 0, 0, 80}},
				}}
			} else {
				a.RCode = dnsmessage.RCodeNameError
			}
			out, _ := a.Pack()
			_, _ = pc.WriteTo(out, from)
		}
	}()
	return pc.LocalAddr().String()
}

func TestDNS(t *testing.T) {
	addr := dnsServer(t)
	cases := []struct {
		c    monitors.DNS
		ok   bool
		want string
	}{
		{monitors.DNS{Addr: addr, Name: "www.example.org"}, true, "1 answers"},
		{monitors.DNS{Addr: addr, Name: "www.example.org", Expect: "10.0.0.80"}, true, "10.0.0.80"},
		{monitors.DNS{Addr: addr, Name: "www.example.org", Expect: "10.0.0.81"}, false, "not among"},
		{monitors.DNS{Addr: addr, Name: "www.example.org", Type: "MX"}, false, "NameError"},
		{monitors.DNS{Addr: addr, Name: "nowhere.example.org"}, false, "NameError"},
	}
	for _, tc := range cases {
		r, _ := run(tc.c, time.Second)
		if r.OK != tc.ok || !strings.Contains(r.Summary, tc.want) {
			t.Errorf("%s: %+v, want ok=%v %q", tc.c, r, tc.ok, tc.want)
		}
	}
	// A closed port answers ICMP port unreachable: a quick failure.
	if r, took := run(monitors.DNS{Addr: closedPort(t), Name: "x"}, time.Second); r.OK || took > 500*time.Millisecond {
		t.Errorf("closed: %+v after %v", r, took)
	}
}

// smtpServer greets with banner and answers HELO with helo.
func smtpServer(t *testing.T, banner, helo string) string {
	return testutil.ServeTCP(t, func(c net.Conn) {
		fmt.Fprint(c, banner)
		br := bufio.NewReader(c)
		if line, _ := br.ReadString('\n'); strings.HasPrefix(line, "HELO ") {
			fmt.Fprint(c, helo)
		}
		_, _ = br.ReadString('\n')
	})
}

func TestSMTP(t *testing.T) {
	for _, tc := range []struct {
		banner, helo string
		ok           bool
		want         string
	}{
		{"220-mx.example.org ESMTP\r\n220 ready\r\n", "250 hello\r\n", true, "250"},
		{"554 go away\r\n", "", false, "554"},
		{"220 ready\r\n", "502 no HELO\r\n", false, "502"},
	} {
		r, _ := run(monitors.SMTP{Addr: smtpServer(t, tc.banner, tc.helo)}, time.Second)
		if r.OK != tc.ok || !strings.Contains(r.Summary, tc.want) {
			t.Errorf("%q: %+v", tc.banner, r)
		}
	}
	if r, _ := run(monitors.SMTP{Addr: closedPort(t)}, time.Second); r.OK {
		t.Errorf("closed: %+v", r)
	}
}

func TestPingLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ping needs a raw socket (root)")
	}
	if r, _ := run(monitors.Ping{Addr: "127.0.0.1"}, time.Second); !r.OK {
		t.Fatalf("%+v", r)
	}
}

func TestExternal(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "check")
	record := filepath.Join(dir, "argv")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
echo "$@" > `+record+`
case "$3" in
  10.0.0.2) echo "all good"; exit 0;;
  slow) sleep 5; exit 0;;
  *) echo "$3 is down"; echo detail; exit 1;;
esac
`), 0o755); err != nil {
		t.Fatal(err)
	}
	r, _ := run(monitors.External{Command: script, Args: []string{"10.0.0.3", "80", "10.0.0.2", "8080"}}, 2*time.Second)
	argv, _ := os.ReadFile(record)
	if !r.OK || r.Summary != "all good" || strings.TrimSpace(string(argv)) != "10.0.0.3 80 10.0.0.2 8080" {
		t.Fatalf("up: %+v argv %q", r, argv)
	}
	r, _ = run(monitors.External{Command: script, Args: []string{"10.0.0.3", "80", "10.0.0.9", "8080"}}, 2*time.Second)
	if r.OK || r.Summary != "10.0.0.9 is down" || r.Detail != "detail" {
		t.Fatalf("down: %+v", r)
	}
	r, took := run(monitors.External{Command: script, Args: []string{"v", "p", "slow", "p"}}, 300*time.Millisecond)
	if r.OK || took > time.Second || !strings.Contains(r.Summary, "killed") {
		t.Fatalf("slow: %+v after %v", r, took)
	}
}

// canned answers every connection with resp, after reading the request
// head, and closes it.
func canned(t *testing.T, resp string) string {
	return testutil.ServeTCP(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		_, _ = io.WriteString(c, resp)
	})
}

// The check reads responses with a parser of its own: each framing of
// the body, and each malformed answer, as net/http would take it.
func TestHTTPResponseFraming(t *testing.T) {
	re := regexp.MustCompile("^test page$")
	long := strings.Repeat("x", 5000) // longer than the reader's buffer
	cases := []struct {
		name string
		resp string
		head bool
		ok   bool
		want string
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ntest page", false, true, "status 200"},
		{"content-length shorter than the body", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntest page", false, false, "does not match"},
		{"body cut short", "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ntest page", false, false, "unexpected EOF"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ntest \r\n4\r\npage\r\n0\r\n\r\n", false, true, "status 200"},
		{"chunked wins over length", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: Chunked\r\n\r\n9\r\ntest page\r\n0\r\n\r\n", false, true, ""},
		{"other codings", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n9\r\ntest page\r\n0\r\n\r\n", false, false, "unsupported transfer encoding"},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\ntest page\r\n0\r\n\r\n", false, false, "GET: "},
		{"until EOF", "HTTP/1.0 200 OK\nServer: bare LF\n\ntest page", false, true, "status 200"},
		{"long header line", "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\nContent-Length: 9\r\n\r\ntest page", false, true, ""},
		{"folded header", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 9\r\n\r\ntest page", false, true, ""},
		{"204 has no body", "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", false, false, "does not match"},
		{"status only", "HTTP/1.1 200\r\nContent-Length: 9\r\n\r\ntest page", false, true, ""},
		{"not http", "SSH-2.0-OpenSSH_9.2\r\n", false, false, "malformed HTTP status line"},
		{"bad code", "HTTP/1.1 2x0 OK\r\n\r\n", false, false, "malformed"},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 8\r\n\r\ntest page", false, false, "bad Content-Length"},
		{"header without colon", "HTTP/1.1 200 OK\r\nnonsense\r\n\r\n", false, false, "malformed HTTP header"},
		{"no head end", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n", false, false, "unexpected EOF"},
		{"head reads no body", "HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n", true, true, "status 200"},
		{"status without receive", "HTTP/1.1 503 Busy\r\nContent-Length: 9\r\n\r\ntest page", false, false, "status 503"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := monitors.HTTP{Addr: canned(t, tc.resp), Receive: re}
			if tc.head {
				c.Method, c.Receive = "HEAD", nil
			}
			r, _ := run(c, 2*time.Second)
			if r.OK != tc.ok || !strings.Contains(r.Summary, tc.want) {
				t.Fatalf("%+v, want ok=%v and %q", r, tc.ok, tc.want)
			}
		})
	}
	// A body past MaxBody is cut there, not an error: the receive string
	// must be within it.
	addr := canned(t, "HTTP/1.1 200 OK\r\n\r\n"+long+"needle")
	if r, _ := run(monitors.HTTP{Addr: addr, Receive: regexp.MustCompile("needle"), MaxBody: 5000}, 2*time.Second); r.OK || !strings.Contains(r.Summary, "does not match") {
		t.Fatalf("needle past MaxBody: %+v", r)
	}
	if r, _ := run(monitors.HTTP{Addr: addr, Receive: regexp.MustCompile("needle")}, 2*time.Second); !r.OK {
		t.Fatalf("needle within MaxBody: %+v", r)
	}
}

// Checks share pooled buffers and TLS configurations: concurrent checks
// of servers with different bodies each see their own answer, whole.
func TestHTTPConcurrentChecksKeepTheirBodies(t *testing.T) {
	small := canned(t, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall")
	body := strings.Repeat("b", 100<<10) // past what the pool keeps
	big := canned(t, "HTTP/1.1 200 OK\r\n\r\n"+body)
	sum := md5.Sum([]byte(body))
	checks := []monitors.HTTP{
		{Addr: small, Receive: regexp.MustCompile(`^small$`)},
		{Addr: big, Digest: hex.EncodeToString(sum[:])},
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				c := checks[i%2]
				if r, _ := run(c, 5*time.Second); !r.OK {
					t.Errorf("%s: %+v", c, r)
					return
				}
			}
		}()
	}
	wg.Wait()
}
