package host

import (
	"log/slog"
	"sync"
)

// Lazy is a host for the operator's plugins in a directory, started on
// first use: for processes that may never need one (mon's monitor and
// alert plugins, a witness's alert plugins).
type Lazy struct {
	Dir string
	Log *slog.Logger

	mu sync.Mutex
	h  *Host
}

// Get returns the host, starting it on the first call.
func (l *Lazy) Get() (*Host, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h == nil {
		h, err := New(Options{Dir: l.Dir, Log: l.Log.With("component", "plugin")})
		if err != nil {
			return nil, err
		}
		l.h = h
	}
	return l.h, nil
}

// Close stops the host's plugins, if it was started.
func (l *Lazy) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h != nil {
		l.h.Close()
	}
}
