package mon

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/resources/mon/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const monD, alertD = "/usr/lib/mon/mon.d", "/usr/lib/mon/alert.d"

// needMon fails (not skips) without Debian's mon: `make deps` installs it
// and these tests are what proves its scripts run unchanged.
func needMon(t *testing.T) {
	t.Helper()
	for _, p := range []string{monD + "/tcp.monitor", monD + "/http.monitor", alertD + "/file.alert", alertD + "/mail.alert"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s missing: install Debian's mon package (make deps does)", p)
		}
	}
}

func instance(t testing.TB, src string) *spec.Instance {
	t.Helper()
	var in spec.Instance
	if _, err := toml.Decode(src, &in); err != nil {
		t.Fatal(err)
	}
	var errs []string
	in.Normalize(func(k, m string) { errs = append(errs, k+": "+m) })
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return &in
}

// switchable is a loopback TCP port that can be closed and reopened.
type switchable struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
}

func newSwitchable(t *testing.T, h http.Handler) *switchable {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &switchable{t: t, addr: l.Addr().String()}
	s.serve(l, h)
	t.Cleanup(s.stop)
	return s
}

func (s *switchable) serve(l net.Listener, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv, s.done = &http.Server{Handler: h}, make(chan struct{})
	go func(srv *http.Server, done chan struct{}) { _ = srv.Serve(l); close(done) }(s.srv, s.done)
}

func (s *switchable) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		<-s.done
		s.srv = nil
	}
}

func (s *switchable) start(h http.Handler) {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(l, h)
}

func (s *switchable) port() string { _, p, _ := net.SplitHostPort(s.addr); return p }

// eventually polls cond (something another goroutine or process
// changes) until it holds, failing with its last word after timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, last)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable, not waiting for time to pass
	}
}

// waitFile polls path until it contains every string in want.
func waitFile(t *testing.T, path string, timeout time.Duration, want ...string) string {
	t.Helper()
	var b []byte
	eventually(t, timeout, func() (bool, string) {
		b, _ = os.ReadFile(path)
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				return false, fmt.Sprintf("%s: %q, want all of %q", path, b, want)
			}
		}
		return true, ""
	})
	return string(b)
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "test page") })

// Debian's tcp.monitor and http.monitor run unchanged under the scheduler
// against loopback servers; failures and recoveries reach Debian's
// file.alert with mon's argv, stdin and environment.
func TestRealMonScripts(t *testing.T) {
	needMon(t)
	tcpSrv := newSwitchable(t, okHandler)
	var broken atomic.Bool
	httpSrv := newSwitchable(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "test page")
	}))
	dir := t.TempDir()
	e := NewEngine(instance(t, fmt.Sprintf(`
[hostgroup]
web = ["127.0.0.1"]
[[watch]]
group = "web"
  [[watch.service]]
  name = "tcp"
  description = "web front ends"
  interval = "0.2s"
  monitor = "tcp.monitor -p %s -t 2"
    [[watch.service.period]]
    alert = ["file.alert -d %s alerts.log"]
    upalert = ["file.alert -d %s alerts.log"]
    alertevery = "1h"
  [[watch.service]]
  name = "http"
  interval = "0.2s"
  monitor = "http.monitor -p %s -u /.testpage -t 2"
    [[watch.service.period]]
    alert = ["file.alert -d %s http.log"]
    upalert = ["file.alert -d %s http.log"]
    alertevery = "1h"
`, tcpSrv.port(), dir, dir, httpSrv.port(), dir, dir)), Options{})
	defer e.Close()

	tcpSrv.stop()
	waitFile(t, filepath.Join(dir, "alerts.log"), 10*time.Second,
		"failure web tcp ", ") 127.0.0.1\nDESCR=web front ends\nOPSTATUS=0\n\n127.0.0.1 could not connect: Connection refused\n.\n")
	tcpSrv.start(okHandler)
	log := waitFile(t, filepath.Join(dir, "alerts.log"), 10*time.Second, "\nup web tcp ")
	// alertevery 1h: one failure alert however many failed runs; the
	// upalert carries the last failing output (LEGACY §4.3).
	if n := strings.Count(log, "failure web tcp"); n != 1 {
		t.Errorf("%d failure alerts, want 1 (alertevery):\n%s", n, log)
	}
	_, up, _ := strings.Cut(log, "\nup web tcp ")
	if !strings.Contains(up, "OPSTATUS=1\n\n127.0.0.1 could not connect") {
		t.Errorf("upalert:\n%s", up)
	}

	broken.Store(true)
	waitFile(t, filepath.Join(dir, "http.log"), 10*time.Second, "failure web http ", "HOST 127.0.0.1: HTTP response code failure")
	broken.Store(false)
	waitFile(t, filepath.Join(dir, "http.log"), 10*time.Second, "\nup web http ")
	st := Text(e.Status(), time.Now())
	if !strings.Contains(st, "web:tcp") || !strings.Contains(st, "up via file.alert") {
		t.Errorf("status:\n%s", st)
	}
}

// The argv, stdin and environment an alert script gets, and the
// environment of a monitor script, recorded by scripts of our own.
func TestScriptConventions(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(dir, "fail")
	// The monitor runs every 0.1 s: it writes what it saw to a temporary
	// file and renames it, so the test never reads one half written.
	script("flaky.monitor", fmt.Sprintf(`env | grep -E '^(MON_|FOO)' | sort > %[1]s/monitor.env.new && mv %[1]s/monitor.env.new %[1]s/monitor.env
echo "$@" > %[1]s/monitor.argv.new && mv %[1]s/monitor.argv.new %[1]s/monitor.argv
if [ -e %[2]s ]; then echo "$2 $1"; echo "detail line"; exit 3; fi
exit 0
`, dir, state))
	script("record.alert", fmt.Sprintf(`n=$(ls %s | grep -c '^alert') 
{ for a in "$@"; do echo "[$a]"; done; echo ---; cat; echo ---; env | grep -E '^(MON_|FOO)' | sort; echo END; } > %s/alert$n
`, dir, dir))
	script("sleepy.monitor", "exec sleep 60\n")
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e := NewEngine(instance(t, fmt.Sprintf(`
mondir = [%q]
alertdir = [%q]
[hostgroup]
pair = ["h1", "*h2", "h3"]
[[watch]]
group = "pair"
  [[watch.service]]
  name = "flaky"
  interval = "0.1s"
  monitor = "flaky.monitor"
  env = { FOO_BAR = "baz qux" }
    [[watch.service.period]]
    alert = ["record.alert one 'two words'"]
    upalert = ["record.alert up"]
    numalerts = 1
  [[watch.service]]
  name = "sleepy"
  interval = "0.1s"
  timeout = "0.3s"
  monitor = "sleepy.monitor"
    [[watch.service.period]]
    alert = ["log"]
`, dir, dir)), Options{})
	defer e.Close()
	first := waitFile(t, filepath.Join(dir, "alert0"), 10*time.Second, "\nEND\n")
	os.Remove(state)
	up := waitFile(t, filepath.Join(dir, "alert1"), 10*time.Second, "\nEND\n")

	// Disabled host *h2 left out; argv as mon 1.3.6 builds it, no -l.
	wantArgv := "[-s]\n[flaky]\n[-g]\n[pair]\n[-h]\n[h1 h3]\n[-t]\n"
	if !strings.HasPrefix(first, wantArgv) || !strings.Contains(first, "]\n[one]\n[two words]\n---\nh3 h1\ndetail line\n---\n") {
		t.Errorf("failure alert:\n%s", first)
	}
	for _, want := range []string{"FOO_BAR=baz qux", "MON_ALERTTYPE=failure", "MON_RETVAL=3", "MON_OPSTATUS=0", "MON_GROUP=pair",
		"MON_SERVICE=flaky", "MON_LAST_SUMMARY=h3 h1"} {
		if !strings.Contains(first, want+"\n") {
			t.Errorf("failure alert lacks %s:\n%s", want, first)
		}
	}
	// The upalert: -u, then its args; stdin is the last failing output.
	if !strings.Contains(up, "[-u]\n[up]\n---\nh3 h1\ndetail line\n---\n") || !strings.Contains(up, "MON_OPSTATUS=1\n") || !strings.Contains(up, "MON_RETVAL=0\n") {
		t.Errorf("upalert:\n%s", up)
	}
	if argv, _ := os.ReadFile(filepath.Join(dir, "monitor.argv")); string(argv) != "h1 h3\n" {
		t.Errorf("monitor argv %q", argv)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "monitor.env"))
	for _, want := range []string{"FOO_BAR=baz qux", "MON_GROUP=pair", "MON_SERVICE=flaky", "MON_LAST_SUCCESS="} {
		if !strings.Contains(string(env), want) {
			t.Errorf("monitor env lacks %s:\n%s", want, env)
		}
	}
	// As mon: no dependency status for a service without a depend line.
	if strings.Contains(string(env), "MON_DEPEND_STATUS") {
		t.Errorf("monitor env has MON_DEPEND_STATUS without a depend:\n%s", env)
	}
	// numalerts 1: exactly one failure alert in the episode.
	if _, err := os.Stat(filepath.Join(dir, "alert2")); err == nil {
		t.Error("more than one failure alert with numalerts 1")
	}
	// The sleeping monitor is killed at its deadline and fails.
	var sl ServiceStatus
	eventually(t, 10*time.Second, func() (bool, string) {
		for _, s := range e.Status() {
			if s.Service == "pair:sleepy" {
				sl = s
			}
		}
		return sl.Runs > 0, "sleepy monitor never finished a run"
	})
	if sl.OK || sl.Summary != "h1 h3" {
		t.Fatalf("sleepy: %+v", sl)
	}
}

// smtpSink is a minimal SMTP server that keeps every message.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	msgs []string
}

func newSMTPSink(t *testing.T) *smtpSink {
	s := &smtpSink{}
	s.addr = testutil.ServeTCP(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprint(c, "220 sink ESMTP\r\n")
		var data strings.Builder
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if inData {
				if line == ".\r\n" || line == ".\n" {
					inData = false
					s.mu.Lock()
					s.msgs = append(s.msgs, data.String())
					s.mu.Unlock()
					data.Reset()
					fmt.Fprint(c, "250 queued\r\n")
				} else {
					data.WriteString(line)
				}
				continue
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "DATA"):
				inData = true
				fmt.Fprint(c, "354 go ahead\r\n")
			case strings.HasPrefix(cmd, "QUIT"):
				fmt.Fprint(c, "221 bye\r\n")
				return
			case strings.HasPrefix(cmd, "EHLO"):
				fmt.Fprint(c, "250-sink\r\n250 8BITMIME\r\n")
			default:
				fmt.Fprint(c, "250 ok\r\n")
			}
		}
	})
	return s
}

func (s *smtpSink) wait(t *testing.T, n int) []string {
	t.Helper()
	var msgs []string
	eventually(t, 10*time.Second, func() (bool, string) {
		s.mu.Lock()
		msgs = append([]string(nil), s.msgs...)
		s.mu.Unlock()
		return len(msgs) >= n, fmt.Sprintf("%d mails, want %d: %q", len(msgs), n, msgs)
	})
	return msgs
}

// Debian's mail.alert (through /usr/lib/sendmail, which msmtp provides;
// msmtp reads the relay from $HOME/.msmtprc, HOME set as a service
// variable) and the built-in mail alert both reach a local SMTP sink.
func TestMailAlerts(t *testing.T) {
	needMon(t)
	if target, _ := filepath.EvalSymlinks("/usr/lib/sendmail"); !strings.HasSuffix(target, "msmtp") {
		t.Skipf("/usr/lib/sendmail is %q, not msmtp (make deps installs msmtp-mta where no MTA is present)", target)
	}
	sink := newSMTPSink(t)
	home := t.TempDir()
	host, port, _ := net.SplitHostPort(sink.addr)
	rc := fmt.Sprintf("account default\nhost %s\nport %s\nfrom mon@test.invalid\nauth off\ntls off\n", host, port)
	if err := os.WriteFile(filepath.Join(home, ".msmtprc"), []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	e := NewEngine(instance(t, fmt.Sprintf(`
smtp_relay = %q
mail_from = "vigil@test.invalid"
[[watch]]
group = "127.0.0.1"
  [[watch.service]]
  name = "smtp-down"
  interval = "0.1s"
  monitor = "tcp -p 1"
  env = { HOME = %q }
    [[watch.service.period]]
    alert = ["mail.alert ops@test.invalid", "mail ops@test.invalid"]
    numalerts = 1
`, sink.addr, home)), Options{})
	defer e.Close()
	msgs := sink.wait(t, 2)
	var script, builtin string
	for _, m := range msgs {
		if strings.Contains(m, "X-Mailer: vigil") {
			builtin = m
		} else {
			script = m
		}
	}
	for name, m := range map[string]string{"mail.alert": script, "built-in mail": builtin} {
		if !strings.Contains(m, "Subject: ALERT 127.0.0.1/smtp-down: 127.0.0.1 (") || !strings.Contains(m, "To: ops@test.invalid") ||
			!strings.Contains(m, "127.0.0.1 connect: connection refused") {
			t.Errorf("%s:\n%s", name, m)
		}
	}
}

// A custom monitor plugin and a custom alert plugin, the SDK's examples
// built as a third party would, run from plugin_dir.
func TestPluginMonitorAndAlert(t *testing.T) {
	plugins := t.TempDir()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, name := range []string{"portcheck", "filealert"} {
		if out, err := exec.Command(goBin, "build", "-o", filepath.Join(plugins, name), "../../plugins/sdk/examples/"+name).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	srv := newSwitchable(t, okHandler)
	out := filepath.Join(t.TempDir(), "events.jsonl")
	pr := &pluginRunner{host.Lazy{Dir: plugins, Log: slog.New(slog.DiscardHandler)}}
	defer pr.Close()
	e := NewEngine(instance(t, fmt.Sprintf(`
[[watch]]
group = "127.0.0.1"
  [[watch.service]]
  name = "port"
  interval = "0.1s"
  monitor = "plugin:portcheck"
  params = { port = %q }
    [[watch.service.period]]
    alert = ["plugin:filealert file=%s"]
    upalert = ["plugin:filealert file=%s"]
    alertevery = "1h"
`, srv.port(), out, out)), Options{Plugins: pr})
	defer e.Close()
	srv.stop()
	waitFile(t, out, 20*time.Second, `"subject":"127.0.0.1/port"`, `"severity":2`, `"summary":"127.0.0.1"`)
	srv.start(okHandler)
	waitFile(t, out, 20*time.Second, `"up":true`)
}

// The ipvs alert hands each failed real to the daemon ("real" command),
// back in on the upalert; -R picks one real.
func TestIPVSAlert(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	ctl := func(_ context.Context, resource, command string, args []string) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, resource+" "+command+" "+strings.Join(args, " "))
		return nil
	}
	srv := newSwitchable(t, okHandler)
	e := NewEngine(instance(t, fmt.Sprintf(`
[hostgroup]
reals = ["127.0.0.1"]
[[watch]]
group = "reals"
  [[watch.service]]
  name = "http"
  interval = "0.1s"
  monitor = "http -p %s -m 'test page'"
    [[watch.service.period]]
    alert = ["ipvs -P tcp -V 10.0.0.3:80", "ipvs -I ldirectord_www -V 10.0.0.3:80 -R 192.168.6.2 -W 5 -F gate"]
    upalert = ["ipvs -P tcp -V 10.0.0.3:80"]
    numalerts = 1
`, srv.port())), Options{Control: ctl})
	defer e.Close()
	wait := func(n int) []string {
		var c []string
		eventually(t, 10*time.Second, func() (bool, string) {
			mu.Lock()
			c = append([]string(nil), calls...)
			mu.Unlock()
			return len(c) >= n, fmt.Sprintf("calls %q, want %d", c, n)
		})
		return c
	}
	srv.stop()
	got := wait(2)
	srv.start(okHandler)
	got = wait(3)
	want := map[string]bool{" real tcp 10.0.0.3:80 127.0.0.1 down": true, "ldirectord_www real tcp 10.0.0.3:80 192.168.6.2 down": true}
	if !want[got[0]] || !want[got[1]] || got[0] == got[1] || got[2] != " real tcp 10.0.0.3:80 127.0.0.1 up" {
		t.Fatalf("calls %q", got)
	}
}
