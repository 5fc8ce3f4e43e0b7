package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/monitors"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs h on a unix socket in a fresh directory, as the daemon's
// control server listens, and returns a client for it.
func serve(t *testing.T, h http.Handler) (*Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	c := NewClient(sock)
	t.Cleanup(func() {
		c.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	return c, sock
}

// A status is decoded whole; from a daemon that sends no placement (an
// older build) the client derives it, as the daemon would have.
func TestStatusDecodes(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	st := fsm.NewState()
	st.NodeOrder = []string{"n1", "n2"}
	st.Nodes["n1"] = &fsm.Node{Online: true, Files: "v1"}
	st.Nodes["n2"] = &fsm.Node{Online: false, Since: now.Add(-time.Minute), Files: "v0"}
	st.GroupsVersion = "v1"
	st.GroupOrder = []string{"web"}
	st.Groups["web"] = &fsm.Group{Owner: "n2", Reports: map[string]fsm.NodeReport{"n2": {State: "running", Op: "start", Result: "OK"}}}
	sent := Status{Cluster: "lvs", Node: "n1", Now: now, Timing: Timing{Keepalive: "100ms"},
		Nodes:   []NodeStatus{{Name: "n2", Role: "member", PeerStatus: PeerStatus{Node: "n2", State: "dead", Links: []LinkStatus{{Link: "ucast:10.0.0.2", State: "dead"}}}}},
		Groups:  []GroupStatus{{Name: "web", State: "stopped", Resources: []ResourceStatus{{ID: "vip", State: "stopped"}}}},
		Plugins: []PluginStatus{{Kind: "resource", Name: "ipaddr", State: "running", PID: 7}},
		Core:    &ClusterStatus{Leader: "n1", Quorum: 2, State: st, Pair: &PairStatus{Peer: "n2", TieBreak: TieBreakStatus{Ping: []PingStatus{{Addr: "10.0.0.254", Up: true}}}}},
		Alerts:  &AlertStatus{AlertCounts: AlertCounts{Sent: 2}, Recent: []AlertRecord{{Kind: "node", Via: "log"}}},
	}
	c, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != PathStatus {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(sent)
	}))
	got, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Cluster != "lvs" || got.Nodes[0].Links[0].Link != "ucast:10.0.0.2" || got.Plugins[0].PID != 7 ||
		got.Groups[0].Resources[0].ID != "vip" || got.Core.Pair.TieBreak.Ping[0].Addr != "10.0.0.254" || got.Alerts.Sent != 2 {
		t.Errorf("decoded %+v", got)
	}
	if len(got.Placement) != 1 || got.Placement[0].State != "unknown" || got.Placement[0].Nodes[0].State != "offline" ||
		got.Placement[0].Nodes[0].LastKnown != "running" || got.Placement[0].Nodes[0].Last != "start OK" {
		t.Errorf("placement derived from core: %+v", got.Placement)
	}
	if fmt.Sprint(got.FilesDiffer) != "[n2]" {
		t.Errorf("files differ on %v, want [n2]", got.FilesDiffer)
	}
}

func TestStatusErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"not json", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<html>") },
			"sent a status this vigil cannot read (another version?)"},
		{"wrong shape", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"nodes": 3}`) },
			"sent a status this vigil cannot read (another version?)"},
		{"server error", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
			"answered 500 Internal Server Error to /v1/status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, sock := serve(t, tc.h)
			_, err := c.Status(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), sock) {
				t.Fatalf("got %v, want %q naming %s", err, tc.want, sock)
			}
			if errors.Is(err, ErrUnreachable) {
				t.Errorf("%v: a daemon answered, it is not unreachable", err)
			}
		})
	}
}

// A command reaches the server as the same type; a refusal is ErrRefused
// without the prefix said twice; other failures are the daemon's words.
func TestCommand(t *testing.T) {
	got := make(chan Command, 1)
	c, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != PathCommand {
			http.NotFound(w, r)
			return
		}
		var cmd Command
		if err := json.NewDecoder(r.Body).Decode(&cmd); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch cmd.Group {
		case "refused":
			http.Error(w, ErrRefused.Error()+": unknown group \"refused\"", http.StatusConflict)
		case "forwarded":
			// as a follower answers for its leader (consensus.sendForward)
			http.Error(w, ErrRefused.Error()+` (leader 10.77.1.3:7946): `+ErrRefused.Error()+`: no node "nX"`, http.StatusConflict)
		case "down":
			http.Error(w, "no leader: the cluster has no quorum", http.StatusServiceUnavailable)
		default:
			got <- cmd
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	ctx := context.Background()
	alert := monitors.Alert{Type: monitors.AlertFailure, Kind: "service", Group: "g", Service: "http", Hosts: []string{"10.0.0.1"}}
	if err := c.Command(ctx, Command{Op: OpEvent, Group: "g", Event: &alert}); err != nil {
		t.Fatal(err)
	}
	if cmd := <-got; cmd.Op != OpEvent || cmd.Event == nil || cmd.Event.Service != "http" || cmd.Event.Hosts[0] != "10.0.0.1" {
		t.Errorf("server got %+v", cmd)
	}
	err := c.Command(ctx, Command{Op: OpMove, Group: "refused", Node: "n1"})
	if !errors.Is(err, ErrRefused) || err.Error() != ErrRefused.Error()+`: unknown group "refused"` {
		t.Errorf("refusal: %v", err)
	}
	// The reason once, without the hops' prefixes and Raft addresses.
	err = c.Command(ctx, Command{Op: OpMove, Group: "forwarded", Node: "nX"})
	if !errors.Is(err, ErrRefused) || err.Error() != ErrRefused.Error()+`: no node "nX"` {
		t.Errorf("forwarded refusal: %v", err)
	}
	err = c.Command(ctx, Command{Op: OpMove, Group: "down", Node: "n1"})
	if err == nil || err.Error() != "no leader: the cluster has no quorum" || errors.Is(err, ErrRefused) || errors.Is(err, ErrUnreachable) {
		t.Errorf("failure: %v", err)
	}
}

// No daemon: the operator is told what to do, in words, and errors.Is
// finds ErrUnreachable (the CLI's exit code 2).
func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.sock")
	err := NewClient(missing).Command(context.Background(), Command{Op: OpReload})
	want := "daemon not running at " + missing + " (no socket there): " + StartHint
	if !errors.Is(err, ErrUnreachable) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("no socket: %v", err)
	}

	// A socket left by a daemon that stopped: nothing listens on it.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	c := NewClient(stale)
	defer c.Close()
	_, err = c.Status(context.Background())
	if !errors.Is(err, ErrUnreachable) || err.Error() != "daemon not running at "+stale+" (the socket is left from one that stopped): "+StartHint {
		t.Errorf("stale socket: %v", err)
	}

	// Not a socket at all.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = NewClient(file).Status(context.Background())
	if !errors.Is(err, ErrUnreachable) || !strings.HasPrefix(err.Error(), "daemon not running at "+file) && !strings.HasPrefix(err.Error(), "cannot reach the daemon at "+file) {
		t.Errorf("not a socket: %v", err)
	}
}

// hang is a daemon that takes a request and never answers it, until the
// request goes away.
func hang(started chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Read the whole request: only then does the server watch the
		// connection, and cancel r's context when the client drops it.
		_, _ = io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		<-r.Context().Done()
	}
}

// The caller's cancel ends a call at once, and says so: the daemon is not
// blamed. A deadline that passes is the daemon not answering in time.
func TestContext(t *testing.T) {
	started := make(chan struct{}, 1)
	c, sock := serve(t, hang(started))

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.Status(ctx); errc <- err }()
	<-started
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Errorf("cancelled status: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() { errc <- c.Command(ctx, Command{Op: OpReload}) }()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Errorf("cancelled command: %v", err)
	}

	// Only the passing deadline matters here, not its length.
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	go func() { _, err := c.Status(ctx); errc <- err }()
	select {
	case <-started:
	case <-ctx.Done(): // it passed before the request went out
	}
	err = <-errc
	if !errors.Is(err, ErrUnreachable) || err.Error() != "the daemon at "+sock+" did not answer in time: it is busy or hung (its log says more)" {
		t.Errorf("deadline: %v", err)
	}
}

// Events returns once subscribed, delivers the stream in order, skips a
// line it cannot read, and closes the channel when ctx ends.
func TestEvents(t *testing.T) {
	release := make(chan struct{})
	c, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathEvents {
			http.NotFound(w, r)
			return
		}
		fl := w.(http.Flusher)
		io.WriteString(w, `{"kind":"subscribed"}`+"\n")
		fl.Flush()
		<-release
		io.WriteString(w, `{"kind":"node-dead","node":"n2","reason":"deadtime"}`+"\n")
		io.WriteString(w, "not json\n")
		io.WriteString(w, `{"kind":"node-up","node":"n2","link":"ucast:10.0.0.2"}`+"\n")
		fl.Flush()
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	var got []string
	for _, want := range []string{"node-dead n2 ", "node-up n2 ucast:10.0.0.2"} {
		ev := <-ch
		got = append(got, fmt.Sprintf("%s %s %s", ev.Kind, ev.Node, ev.Link))
		if got[len(got)-1] != want {
			t.Errorf("event %q, want %q", got[len(got)-1], want)
		}
	}
	cancel()
	for range ch { // drained until the client's goroutine closes it
	}
}

func TestEventsUnsubscribed(t *testing.T) {
	c, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	if _, err := c.Events(context.Background()); err == nil || !strings.Contains(err.Error(), "no subscription confirmation") {
		t.Errorf("got %v", err)
	}
}
