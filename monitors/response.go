package monitors

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
)

// exchangeBuf is the scratch of one HTTP check, pooled so that a check
// allocates no request, reader or body buffer of its own.
type exchangeBuf struct {
	req  []byte
	r    *bufio.Reader
	line []byte // a header line longer than r's buffer
	body []byte
}

var exchangeBufs = sync.Pool{New: func() any { return &exchangeBuf{r: bufio.NewReaderSize(nil, 2048)} }}

// release returns b to the pool, but not a body or line grown large: one
// odd real server must not pin a megabyte per pooled buffer.
func (b *exchangeBuf) release() {
	b.r.Reset(nil)
	if cap(b.body) > 64<<10 {
		b.body = nil
	}
	if cap(b.line) > 64<<10 {
		b.line = nil
	}
	exchangeBufs.Put(b)
}

const maxHeaderLine = 1 << 20

var errLineTooLong = errors.New("response header line too long")

// readLine returns the next line without its CRLF or LF, valid until the
// next read.
func (b *exchangeBuf) readLine() ([]byte, error) {
	line, err := b.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		b.line = append(b.line[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = b.r.ReadSlice('\n')
			b.line = append(b.line, line...)
			if len(b.line) > maxHeaderLine {
				return nil, errLineTooLong
			}
		}
		line = b.line
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, nil
}

// readResponse reads an HTTP/1.x response from b.r: the status code, the
// Location header and, when limit >= 0, at most limit bytes of the body
// into b.body. The body is framed as RFC 9112 §6.3 says: none for HEAD,
// 1xx, 204 and 304; chunked; Content-Length; else up to EOF.
func (b *exchangeBuf) readResponse(head bool, limit int64) (code int, loc string, err error) {
	b.body = b.body[:0]
	line, err := b.readLine()
	if err != nil {
		return 0, "", err
	}
	proto, rest, _ := bytes.Cut(line, []byte(" "))
	if !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return 0, "", fmt.Errorf("malformed HTTP status line %q", line)
	}
	for _, d := range rest[:3] {
		if d < '0' || d > '9' {
			return 0, "", fmt.Errorf("malformed HTTP status line %q", line)
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return 0, "", fmt.Errorf("malformed HTTP status code %d", code)
	}
	length, chunked := int64(-1), false
	for {
		line, err := b.readLine()
		if err != nil {
			return 0, "", err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // obsolete line folding: nothing read here spans lines
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, "", fmt.Errorf("malformed HTTP header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Location")):
			if loc == "" {
				loc = string(value)
			}
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (length >= 0 && n != length) {
				return 0, "", fmt.Errorf("bad Content-Length %q", value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// As net/http: chunked alone (a check asks for no coding).
			if chunked || !bytes.EqualFold(value, []byte("chunked")) {
				return 0, "", fmt.Errorf("unsupported transfer encoding %q", value)
			}
			chunked = true
		}
	}
	if limit < 0 || head || code < 200 || code == 204 || code == 304 {
		return code, loc, nil
	}
	var src io.Reader = b.r
	switch {
	case chunked:
		src, length = httputil.NewChunkedReader(b.r), -1
	case length == 0:
		return code, loc, nil
	}
	b.body, err = readBody(b.body, src, length, limit)
	return code, loc, err
}

// readBody appends to dst what r holds, up to limit bytes; length >= 0 is
// the declared length, and fewer bytes before EOF is an error, as
// net/http's body reader says.
func readBody(dst []byte, r io.Reader, length, limit int64) ([]byte, error) {
	n := limit
	if length >= 0 && length < n {
		n = length
	}
	for int64(len(dst)) < n {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		end := int64(cap(dst))
		if end > n {
			end = n
		}
		k, err := r.Read(dst[len(dst):end])
		dst = dst[:len(dst)+k]
		if err == io.EOF {
			if length >= 0 && int64(len(dst)) < n {
				return dst, io.ErrUnexpectedEOF
			}
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// statusSummaries are the "status 200" summaries, made once.
var statusSummaries = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = "status " + strconv.Itoa(i)
	}
	return s
}()

func statusSummary(code int) string {
	if code >= 100 && code < len(statusSummaries) {
		return statusSummaries[code]
	}
	return "status " + strconv.Itoa(code)
}

// tlsConfigs holds one client configuration per server name and mode,
// shared by every check (a tls.Config is safe for concurrent use once
// made, and these never change); past maxTLSConfigs names a check makes
// its own.
var (
	tlsConfigs  sync.Map // tlsKey → *tls.Config
	tlsConfigsN atomic.Int64
)

const maxTLSConfigs = 1 << 14

type tlsKey struct {
	name                string
	insecure, chainOnly bool
}

func tlsConfig(name string, insecure, chainOnly bool) *tls.Config {
	k := tlsKey{name, insecure, chainOnly}
	if c, ok := tlsConfigs.Load(k); ok {
		return c.(*tls.Config)
	}
	c := &tls.Config{ServerName: name, InsecureSkipVerify: insecure} //nolint:gosec // health checks of real servers, as keepalived does
	if !insecure && chainOnly {
		// Go checks the chain and the name together; skip both and
		// check the chain alone, as ldirectord's LWP does.
		c.InsecureSkipVerify = true
		c.VerifyConnection = verifyChain
	}
	if tlsConfigsN.Load() >= maxTLSConfigs {
		return c
	}
	if prev, loaded := tlsConfigs.LoadOrStore(k, c); loaded {
		return prev.(*tls.Config)
	}
	tlsConfigsN.Add(1)
	return c
}

// verifyChain checks the peer's certificate chain against the system's
// CAs, ignoring the host name.
func verifyChain(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Intermediates: inter})
	return err
}
