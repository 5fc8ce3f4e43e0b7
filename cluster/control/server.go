// Package control is the daemon's side of the control API (JSON over
// HTTP on a root-only unix socket, its types and client in package api)
// and the crm_mon-like rendering of status that the CLI prints.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/api"
)

// Backend is what the server needs from the daemon.
type Backend interface {
	Status() api.Status
	Subscribe(buf int) (<-chan api.Event, func())
	// Command carries out an operator's command through the cluster.
	Command(ctx context.Context, c api.Command) error
}

// Serve runs the control API on l (from Listen) until ctx ends, then
// removes the socket. Every connection's peer credentials are checked, so
// only root (or the daemon's own user) can use it.
func Serve(ctx context.Context, l net.Listener, b Backend, log *slog.Logger) error {
	path := l.Addr().String()
	defer os.Remove(path)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b.Status())
	})
	mux.HandleFunc("GET "+api.PathEvents, func(w http.ResponseWriter, r *http.Request) { streamEvents(w, r, b) })
	mux.HandleFunc("POST "+api.PathCommand, func(w http.ResponseWriter, r *http.Request) {
		var c api.Command
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&c); err != nil {
			http.Error(w, "bad command: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := b.Command(r.Context(), c); err != nil {
			code := http.StatusServiceUnavailable
			if errors.Is(err, api.ErrRefused) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// A refused user is answered in words, not with a closed connection
	// its client can only report as EOF.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if uid, refused := r.Context().Value(refusedKey{}).(uint32); refused {
			http.Error(w, fmt.Sprintf("the daemon at %s takes status and commands from root and its own user only, not uid %d: run this as root", path, uid), http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: handler, BaseContext: func(net.Listener) context.Context { return ctx }, ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if rc, ok := c.(refusedConn); ok {
				return context.WithValue(ctx, refusedKey{}, rc.uid)
			}
			return ctx
		}}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(&credListener{Listener: l, uid: uint32(os.Geteuid()), log: log}) }()
	select {
	case err := <-errc:
		return fmt.Errorf("control socket %s: %w", path, err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

// streamEvents writes membership events as JSON lines. The first line
// ({"kind":"subscribed"}) tells the client it will see every later event.
func streamEvents(w http.ResponseWriter, r *http.Request, b Backend) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, cancel := b.Subscribe(1024)
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	_ = enc.Encode(map[string]string{"kind": "subscribed"})
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if enc.Encode(ev) != nil {
				return
			}
			fl.Flush()
		}
	}
}

// Listen opens the control socket at path, mode 0600, replacing a stale
// socket left by a killed daemon but refusing to take over a live one.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket; refusing to replace it (check control_socket in ha.toml)", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another daemon is already listening", path)
		}
		_ = os.Remove(path) // stale, left by a daemon that was killed
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

// credListener refuses connections from anyone but root and the daemon's
// own user, whatever the socket file's mode: one whose credentials cannot
// be read is closed; another user's is marked (refusedConn), and every
// request on it is answered 403 with the reason.
type credListener struct {
	net.Listener
	uid uint32
	log *slog.Logger
}

// refusedConn is a connection of a user the socket does not serve.
type refusedConn struct {
	net.Conn
	uid uint32
}

// refusedKey holds a refused connection's uid in its requests' context.
type refusedKey struct{}

func (l *credListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && (uid == 0 || uid == l.uid) {
			return c, nil
		}
		l.log.Warn("control connection refused", "uid", uid, "err", err)
		if err == nil {
			return refusedConn{Conn: c, uid: uid}, nil
		}
		c.Close()
	}
}

func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, errors.New("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}
