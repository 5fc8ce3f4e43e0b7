package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Timeouts of the client's calls (ctx may end them sooner): a command
// returns once the cluster committed it, which takes an election at worst.
const (
	CommandTimeout = 15 * time.Second
	StatusTimeout  = 5 * time.Second
)

// maxLine bounds one event line and an error body.
const (
	maxLine  = 64 << 10
	maxError = 4096
)

// ErrUnreachable means no daemon answered on the socket.
var ErrUnreachable = errors.New("daemon unreachable")

// unreachableError says in an operator's words why no daemon answered
// (not the HTTP client's "Get http://vigil/v1/status: dial unix …").
type unreachableError struct{ msg string }

func (e *unreachableError) Error() string        { return e.msg }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// StartHint is how an operator starts the daemon.
const StartHint = "start it with 'systemctl start vigil' (vigil-witness on a witness) or 'vigil daemon -c DIR'"

func (c *Client) unreachable(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &unreachableError{fmt.Sprintf("daemon not running at %s (no socket there): %s, or name the right socket with -s or configuration with -c", c.path, StartHint)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &unreachableError{fmt.Sprintf("daemon not running at %s (the socket is left from one that stopped): %s", c.path, StartHint)}
	case errors.Is(err, fs.ErrPermission):
		return &unreachableError{fmt.Sprintf("no permission on the daemon's socket %s: it is root-only, run this as root", c.path)}
	case errors.Is(err, context.DeadlineExceeded):
		return &unreachableError{fmt.Sprintf("the daemon at %s did not answer in time: it is busy or hung (its log says more)", c.path)}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return &unreachableError{fmt.Sprintf("cannot reach the daemon at %s: %v", c.path, err)}
}

// Client talks to a daemon's control socket. It is safe for concurrent
// use.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{path: path, http: &http.Client{Transport: tr}}
}

// Socket is the path of the socket the client talks to.
func (c *Client) Socket() string { return c.path }

// Close drops the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// do sends a request; an answer is returned whatever its status.
func (c *Client) do(ctx context.Context, method, p string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://vigil"+p, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.failed(ctx, p, err)
	}
	return resp, nil
}

// failed explains an error of a call to p: the caller gave up (not the
// daemon's fault, so not said to be), or the daemon did not answer.
func (c *Client) failed(ctx context.Context, p string, err error) error {
	if cerr := ctx.Err(); errors.Is(cerr, context.Canceled) {
		return fmt.Errorf("control %s: %w", p, cerr)
	}
	return c.unreachable(err)
}

func (c *Client) get(ctx context.Context, p string) (*http.Response, error) {
	resp, err := c.do(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxError))
		resp.Body.Close()
		if text := strings.TrimSpace(string(msg)); resp.StatusCode == http.StatusForbidden && text != "" {
			return nil, errors.New(text) // the daemon's words: who it serves
		}
		return nil, fmt.Errorf("the daemon at %s answered %s to %s", c.path, resp.Status, p)
	}
	return resp, nil
}

// Command sends an operator's command; the daemon returns once the cluster
// committed it. A refusal wraps ErrRefused; other errors are the daemon's
// own words.
func (c *Client) Command(ctx context.Context, cmd Command) error {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	body, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, PathCommand, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxError))
	text := strings.TrimSpace(string(msg))
	if resp.StatusCode == http.StatusConflict {
		return fmt.Errorf("%w: %s", ErrRefused, refusal(text))
	}
	if text == "" {
		text = fmt.Sprintf("the daemon at %s answered %s to %s", c.path, resp.Status, cmd.Op)
	}
	return errors.New(text)
}

// refusal is a refusal's reason without the prefixes each hop adds: the
// FSM's "refused: " and, from a follower that forwarded the command,
// "refused (leader HOST:PORT): " (the operator read "refused" three times
// and the leader's Raft address).
func refusal(text string) string {
	for {
		t := strings.TrimPrefix(text, ErrRefused.Error()+": ")
		if rest, ok := strings.CutPrefix(t, ErrRefused.Error()+" (leader "); ok {
			if _, reason, ok := strings.Cut(rest, "): "); ok {
				t = reason
			}
		}
		if t == text {
			return t
		}
		text = t
	}
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, StatusTimeout)
	defer cancel()
	resp, err := c.get(ctx, PathStatus)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		if ctx.Err() != nil {
			return nil, c.failed(ctx, PathStatus, ctx.Err())
		}
		return nil, fmt.Errorf("the daemon at %s sent a status this vigil cannot read (another version?): %w", c.path, err)
	}
	if s.Placement == nil {
		s.Placement, s.FilesDiffer = Placement(&s), FilesDiffer(&s) // a daemon of an older build
	}
	return &s, nil
}

// Events subscribes to membership events. It returns once the daemon has
// confirmed the subscription, so no event after the call is missed; the
// channel closes when ctx ends or the daemon goes away.
func (c *Client) Events(ctx context.Context) (<-chan Event, error) {
	resp, err := c.get(ctx, PathEvents)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	if !sc.Scan() {
		resp.Body.Close()
		return nil, fmt.Errorf("control events: no subscription confirmation: %v", sc.Err())
	}
	ch := make(chan Event, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		for sc.Scan() {
			var ev Event
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
