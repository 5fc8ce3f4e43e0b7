package testutil

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogSink is a slog.Handler that keeps every record, so a test can wait
// for something a daemon or plugin logged instead of sleeping.
type LogSink struct {
	mu      sync.Mutex
	records []slog.Record
	notify  chan struct{}
	attrs   []slog.Attr
	parent  *LogSink
}

// NewLogSink returns an empty sink.
func NewLogSink() *LogSink { return &LogSink{notify: make(chan struct{}, 1)} }

func (s *LogSink) root() *LogSink {
	if s.parent != nil {
		return s.parent
	}
	return s
}

func (s *LogSink) Enabled(context.Context, slog.Level) bool { return true }

func (s *LogSink) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(s.attrs...)
	root := s.root()
	root.mu.Lock()
	root.records = append(root.records, r)
	root.mu.Unlock()
	select {
	case root.notify <- struct{}{}:
	default:
	}
	return nil
}

func (s *LogSink) WithAttrs(as []slog.Attr) slog.Handler {
	return &LogSink{parent: s.root(), attrs: append(append([]slog.Attr{}, s.attrs...), as...)}
}

func (s *LogSink) WithGroup(string) slog.Handler { return s }

// Attrs returns a record's attributes as strings.
func Attrs(r slog.Record) map[string]string {
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	return m
}

// Wait returns the first record whose message contains msg and whose
// attributes include every key=value pair given, failing the test after
// 30 s.
func (s *LogSink) Wait(t testing.TB, msg string, kv ...string) slog.Record {
	t.Helper()
	root := s.root()
	deadline := time.After(30 * time.Second)
	for {
		root.mu.Lock()
		for _, r := range root.records {
			if strings.Contains(r.Message, msg) && matches(r, kv) {
				root.mu.Unlock()
				return r
			}
		}
		root.mu.Unlock()
		select {
		case <-root.notify:
		case <-deadline:
			t.Fatalf("no log record %q %v", msg, kv)
		}
	}
}

func matches(r slog.Record, kv []string) bool {
	a := Attrs(r)
	for i := 0; i+1 < len(kv); i += 2 {
		if a[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}
