package mon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/monitors"
)

func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// RunOnce takes one step of the schedule: the same argv, environment and
// summary rule as the engine's runs, and what could not run said apart.
func TestRunOnce(t *testing.T) {
	dir := t.TempDir()
	writeExec(t, filepath.Join(dir, "two.monitor"), "echo \"  h2 \"; echo detail; echo err >&2; exit 2\n")
	writeExec(t, filepath.Join(dir, "slow.monitor"), "exec sleep 30\n")
	in := instance(t, fmt.Sprintf(`mondir = [%q]
hostgroup = { web = ["h1", "*h9", "h2"] }
[[watch]]
group = "web"
[[watch.service]]
name = "two"
interval = "1m"
monitor = "two.monitor -x 'a b'"
env = { FOO = "bar" }
period = [{ when = "" }]
[[watch.service]]
name = "slow"
interval = "1m"
timeout = "0.3s"
monitor = "slow.monitor"
period = [{ when = "" }]
[[watch.service]]
name = "gone"
interval = "1m"
monitor = "gone.monitor"
period = [{ when = "" }]
`, dir))
	ctx := context.Background()
	p, err := RunOnce(ctx, in, "web:two", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.OK || p.Exit != 2 || p.Summary != "h2" || p.Detail != "detail\nerr\n" || p.Path != filepath.Join(dir, "two.monitor") ||
		!slices.Equal(p.Argv, []string{"-x", "a b", "h1", "h2"}) || !slices.Contains(p.Env, "FOO=bar") || !slices.Contains(p.Env, "MON_GROUP=web") || p.Err != nil {
		t.Errorf("%+v", p)
	}
	p, err = RunOnce(ctx, in, "web:slow", Options{})
	if err != nil || !errors.Is(p.Err, monitors.ErrKilled) || p.OK {
		t.Errorf("a monitor past its timeout: %v %+v", err, p)
	}
	if _, err := RunOnce(ctx, in, "web:gone", Options{}); !errors.Is(err, monitors.ErrNotFound) {
		t.Errorf("a monitor not in mondir: %v", err)
	}
	if _, err := RunOnce(ctx, in, "web:nope", Options{}); !errors.Is(err, ErrNoService) || !strings.Contains(err.Error(), "web:gone, web:slow, web:two") {
		t.Errorf("an unknown service: %v", err)
	}
}

// SendOnce sends as the engine's send does: mon's argv and environment,
// the output on stdin, exit= selectors; and reports the script's status.
func TestSendOnce(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	writeExec(t, filepath.Join(dir, "rec.alert"), fmt.Sprintf("echo \"$*\" > %[1]s; env | grep ^MON_ALERTTYPE= >> %[1]s; cat >> %[1]s; exit 5\n", rec))
	in := instance(t, fmt.Sprintf(`alertdir = [%q]
hostgroup = { web = ["h1", "h2"] }
[[watch]]
group = "web"
[[watch.service]]
name = "www"
interval = "1m"
monitor = "tcp -p 80"
period = [{ when = "" }]
`, dir))
	ctx := context.Background()
	at := time.Unix(1700000000, 0)
	s, err := SendOnce(ctx, in, "web:www", []string{"exit=1-3", "rec.alert", "x y"}, monitors.AlertUp, at, "h2\n\ndown\n", 0, Options{})
	if err != nil || !s.Sent || s.Exit != 5 || s.Via != "rec.alert" || !slices.Equal(s.Argv, []string{"-s", "www", "-g", "web", "-h", "h1 h2", "-t", "1700000000", "-u", "x y"}) {
		t.Errorf("%v %+v", err, s)
	}
	if b, _ := os.ReadFile(rec); string(b) != "-s www -g web -h h1 h2 -t 1700000000 -u x y\nMON_ALERTTYPE=up\nh2\n\ndown\n" {
		t.Errorf("the alert got %q", b)
	}
	s, err = SendOnce(ctx, in, "web:www", []string{"exit=2-3", "rec.alert"}, monitors.AlertFailure, at, "h2\n", 1, Options{})
	if err != nil || s.Sent || s.Skip != "exit=2-3 does not select exit value 1" {
		t.Errorf("an exit= selector: %v %+v", err, s)
	}
	if _, err := SendOnce(ctx, in, "web:www", []string{"gone.alert"}, monitors.AlertFailure, at, "", 1, Options{}); !errors.Is(err, monitors.ErrNotFound) {
		t.Errorf("an alert not in alertdir: %v", err)
	}
}
