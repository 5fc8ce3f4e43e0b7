package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/control"
)

// Options stand anywhere on the line; "--" ends them.
func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		c    string
		json bool
		pos  []string
	}{
		{[]string{"lvs", "lvs2", "-c", "DIR"}, "DIR", false, []string{"lvs", "lvs2"}},
		{[]string{"-c", "DIR", "lvs", "lvs2"}, "DIR", false, []string{"lvs", "lvs2"}},
		{[]string{"lvs", "--json", "lvs2", "-c=DIR"}, "DIR", true, []string{"lvs", "lvs2"}},
		{[]string{"lvs", "--", "-c", "DIR"}, "", false, []string{"lvs", "-c", "DIR"}},
		{[]string{"-c", "--", "lvs", "--json"}, "--", true, []string{"lvs"}}, // "--" as the value of -c
		{[]string{"--json", "--", "--json"}, "", true, []string{"--json"}},   // a bool takes no value
		{nil, "", false, nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c := fs.String("c", "", "")
		j := fs.Bool("json", false, "")
		if err := parseLine(fs, tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if *c != tc.c || *j != tc.json || !slices.Equal(fs.Args(), tc.pos) {
			t.Errorf("%q: -c %q --json %v args %q; want %q %v %q", tc.args, *c, *j, fs.Args(), tc.c, tc.json, tc.pos)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := parseLine(fs, []string{"lvs", "--bogus"}); err == nil || !strings.Contains(err.Error(), "-bogus") {
		t.Errorf("unknown option after an argument: %v", err)
	}
}

// recorder is a daemon's control side that records the commands it gets.
type recorder struct {
	mu   sync.Mutex
	cmds []api.Command
}

func (r *recorder) Status() api.Status {
	return api.Status{Cluster: "lvs", Node: "lvs1", Now: time.Now()}
}
func (r *recorder) Subscribe(int) (<-chan api.Event, func()) {
	return make(chan api.Event), func() {}
}
func (r *recorder) Command(_ context.Context, c api.Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Group == "nope" {
		return api.ErrRefused
	}
	r.cmds = append(r.cmds, c)
	return nil
}

// serveControl runs the real control server on a socket with b behind it.
func serveControl(t *testing.T, b control.Backend) string {
	sock := filepath.Join(t.TempDir(), "vigil.sock")
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.Serve(ctx, l, b, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return sock
}

// Issue 25: `vigil move lvs lvs2 -s SOCK` printed only the usage line;
// --json prints JSON, also when the command fails.
func TestCommandOptionsAnywhere(t *testing.T) {
	rec := &recorder{}
	sock := serveControl(t, rec)
	if code, out, errs := vigil("move", "lvs", "lvs2", "-s", sock); code != exitOK || out != "vigil move lvs lvs2: done\n" {
		t.Fatalf("move with the option last: %d %q %q", code, out, errs)
	}
	if code, out, errs := vigil("standby", "--json", "lvs2", "-s", sock); code != exitOK || !json.Valid([]byte(out)) || !strings.Contains(out, `"command": "standby lvs2"`) {
		t.Fatalf("standby --json: %d %q %q", code, out, errs)
	}
	want := []api.Command{{Op: "move", Group: "lvs", Node: "lvs2"}, {Op: "standby", Node: "lvs2"}}
	if !slices.EqualFunc(rec.cmds, want, func(a, b api.Command) bool { return a.Op == b.Op && a.Group == b.Group && a.Node == b.Node }) {
		t.Errorf("the daemon got %+v, want %+v", rec.cmds, want)
	}
	for _, args := range [][]string{
		{"move", "nope", "lvs2", "--json", "-s", sock},                       // refused by the cluster
		{"move", "lvs", "--json", "-s", sock},                                // usage
		{"move", "lvs", "lvs2", "--json", "--bogus"},                         // unknown option
		{"move", "lvs", "lvs2", "--json", "-s", sock + ".none"},              // no daemon
		{"status", "--json", "-s", filepath.Join(t.TempDir(), "x.sock")},     // no daemon
		{"status", "extra", "--json", "-s", filepath.Join(t.TempDir(), "x")}, // stray argument
	} {
		code, out, errs := vigil(args...)
		var e jsonError
		if code == exitOK || json.Unmarshal([]byte(out), &e) != nil || e.Error == "" || e.Exit != code || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q: want a JSON error object on stdout", args, code, out, errs)
		}
	}
	// status with its options after nothing, and --json: the status.
	if code, out, _ := vigil("status", "--json", "-s", sock); code != exitOK || !strings.Contains(out, `"cluster": "lvs"`) {
		t.Errorf("status --json: %d %q", code, out)
	}
}

// A socket left by a daemon that stopped reads as such, in words, not as
// the HTTP client's "dial unix …: connect: connection refused".
func TestUnreachableWords(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vigil.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	code, _, errs := vigil("unmove", "lvs", "-s", sock)
	if code != exitUnreachable || !strings.Contains(errs, "daemon not running at "+sock+" (the socket is left from one that stopped): start it with") ||
		strings.Contains(errs, "dial") || strings.Contains(errs, "http") {
		t.Errorf("%d %q", code, errs)
	}
}

// parseLine never panics, and what it leaves as arguments is exactly the
// line's non-options: parsing "--" and them again gives them back.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"lvs\x00lvs2\x00-c\x00DIR", "-c\x00--\x00x", "--\x00--json", "a\x00--json=false\x00-s", "-\x00--c=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		if len(args) > 64 {
			return
		}
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("c", "", "")
		fs.Bool("json", false, "")
		if parseLine(fs, args) != nil {
			return
		}
		pos := slices.Clone(fs.Args())
		for _, p := range pos {
			if !slices.Contains(args, p) {
				t.Fatalf("%q: argument %q is not on the line", args, p)
			}
		}
		again := flag.NewFlagSet("t", flag.ContinueOnError)
		if err := parseLine(again, append([]string{"--"}, pos...)); err != nil || !slices.Equal(again.Args(), pos) {
			t.Fatalf("%q: %q parsed again: %q %v", args, pos, again.Args(), err)
		}
	})
}
