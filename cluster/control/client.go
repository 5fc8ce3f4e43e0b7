package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/cluster/membership"
)

// ErrUnreachable means no daemon answered on the socket.
var ErrUnreachable = errors.New("daemon unreachable")

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
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("control %s: %s", p, resp.Status)
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
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.path, err)
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
		return nil, fmt.Errorf("control status: %w", err)
	}
	if s.Placement == nil {
		s.Placement = Placement(&s) // a daemon of an older build
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
