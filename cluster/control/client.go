package control

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

	"github.com/vigil-ha/vigil/cluster/membership"
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

// Client talks to a daemon's control socket.
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

func (c *Client) get(ctx context.Context, p string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://vigil"+p, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("the daemon at %s answered %s to %s", c.path, resp.Status, p)
	}
	return resp, nil
}

// Command sends an operator's command; the daemon returns once the cluster
// committed it.
func (c *Client) Command(ctx context.Context, cmd Command) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	body, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://vigil/v1/command", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(msg))
	if resp.StatusCode == http.StatusConflict {
		return fmt.Errorf("%w: %s", ErrRefused, strings.TrimPrefix(text, ErrRefused.Error()+": "))
	}
	return errors.New(text)
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.get(ctx, "/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
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
func (c *Client) Events(ctx context.Context) (<-chan membership.Event, error) {
	resp, err := c.get(ctx, "/v1/events")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		resp.Body.Close()
		return nil, fmt.Errorf("control events: no subscription confirmation: %v", sc.Err())
	}
	ch := make(chan membership.Event, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		for sc.Scan() {
			var ev membership.Event
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
