package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
)

// maxLogLine bounds one captured line; a plugin that writes without
// newlines cannot grow the daemon's memory.
const maxLogLine = 16 << 10

// logWriter turns a plugin's stderr into records of the daemon's log.
// JSON lines (the SDK's, or go-plugin's hclog) keep their level, message
// and attributes; anything else is logged as text. It never fails and
// never panics on what a plugin writes.
type logWriter struct {
	log   *slog.Logger
	mu    sync.Mutex
	buf   []byte
	panic bool // a Go panic or fatal error began: the rest is its trace
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) > maxLogLine {
				w.line(w.buf[:maxLogLine])
				w.buf = w.buf[:0]
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.line(w.buf)
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (w *logWriter) line(b []byte) {
	s := strings.TrimRight(string(b), "\r")
	if strings.TrimSpace(s) == "" {
		return
	}
	if level, msg, attrs, ok := parseJSONLine(s); ok {
		w.log.LogAttrs(context.Background(), level, msg, attrs...)
		return
	}
	if strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: ") {
		w.panic = true
	}
	level := slog.LevelInfo
	if w.panic {
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, s)
}

func parseJSONLine(s string) (slog.Level, string, []slog.Attr, bool) {
	if !strings.HasPrefix(s, "{") {
		return 0, "", nil, false
	}
	var m map[string]any
	if json.Unmarshal([]byte(s), &m) != nil {
		return 0, "", nil, false
	}
	msg, ok := firstString(m, "@message", "msg")
	if !ok {
		return 0, "", nil, false
	}
	lv, _ := firstString(m, "@level", "level")
	level := slog.LevelInfo
	switch strings.ToLower(lv) {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	attrs := make([]slog.Attr, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		switch k {
		case "@message", "msg", "@level", "level", "@timestamp", "time", "@module":
			continue
		}
		if s, ok := v.(string); ok {
			attrs = append(attrs, slog.String(k, s))
		} else {
			attrs = append(attrs, slog.String(k, fmt.Sprint(v)))
		}
	}
	return level, msg, attrs, true
}

func firstString(m map[string]any, keys ...string) (string, bool) {
	for _, k := range keys {
		if v, ok := m[k].(string); ok {
			return v, true
		}
	}
	return "", false
}
