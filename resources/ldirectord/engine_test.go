package ldirectord

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/resources/ldirectord/director"
	"github.com/vigil-ha/vigil/resources/ldirectord/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// web is a real server on ip:port serving /.testpage; it can be stopped
// and started again on the same address.
type web struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	srv  *http.Server
}

func newWeb(t *testing.T, addr string) *web {
	w := &web{t: t, addr: addr}
	w.start()
	t.Cleanup(w.stop)
	return w
}

func (w *web) start() {
	l, err := net.Listen("tcp", w.addr)
	if err != nil {
		w.t.Fatal(err)
	}
	name, _, _ := strings.Cut(w.addr, ":")
	mux := http.NewServeMux()
	mux.HandleFunc("/.testpage", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, "test page") })
	mux.HandleFunc("/", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, name) })
	w.mu.Lock()
	w.srv = &http.Server{Handler: mux}
	srv := w.srv
	w.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

func (w *web) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.srv != nil {
		_ = w.srv.Close()
		w.srv = nil
	}
}

func instance(t testing.TB, src string) spec.Instance {
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
	return in
}

// waitTable waits until the director's table for key holds exactly want
// (address → weight), or fails after d.
func waitTable(t *testing.T, e *Engine, key string, want map[string]int, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		st := e.Status()
		got := map[string]int{}
		for _, s := range st.Services {
			if s.Key != key {
				continue
			}
			for _, r := range s.Reals {
				if r.Weight >= 0 {
					got[r.Addr] = r.Weight
				}
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("table for %s: %v, want %v\n%s", key, got, want, st.Text("t", false))
		}
		time.Sleep(10 * time.Millisecond) // polling an observable, not waiting for time to pass
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

const seed = `
checkinterval = "100ms"
checktimeout = "200ms"
failurecount = 2
backend = "userspace"
[[virtual]]
address = "127.0.0.10:18090"
scheduler = "wlc"
service = "http"
request = "/.testpage"
receive = "test page"
fallback = "127.0.0.9:18090 masq"
  [[virtual.real]]
  address = "127.0.0.2:18090"
  weight = 5
  [[virtual.real]]
  address = "127.0.0.3:18090"
  weight = 5
`

// The seed's ldirectord setup against the userspace director: health
// drives the table, the fallback serves when every real is down, and
// events report each change.
func TestEngineSeed(t *testing.T) {
	a := newWeb(t, "127.0.0.2:18090")
	b := newWeb(t, "127.0.0.3:18090")
	newWeb(t, "127.0.0.9:18090")
	var mu sync.Mutex
	var events []Event
	e := NewEngine(Options{Log: slog.New(slog.DiscardHandler), OnEvent: func(ev Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}})
	defer e.Close()
	e.Configure(instance(t, seed))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	key := "TCP  127.0.0.10:18090"
	both := map[string]int{"127.0.0.2:18090": 5, "127.0.0.3:18090": 5}
	waitTable(t, e, key, both, time.Second)
	seen := map[string]bool{}
	for range 10 {
		seen[get(t, "http://127.0.0.10:18090/")] = true
	}
	if !seen["127.0.0.2"] || !seen["127.0.0.3"] {
		t.Fatalf("wlc over two idle reals reached %v", seen)
	}

	// A dead real leaves within checkinterval × failurecount + checktimeout
	// (plus the 10% jitter).
	a.stop()
	took := waitTable(t, e, key, map[string]int{"127.0.0.3:18090": 5}, 2*time.Second)
	if bound := 2*110*time.Millisecond + 200*time.Millisecond + 100*time.Millisecond; took > bound {
		t.Errorf("removed after %v, bound %v", took, bound)
	}
	for range 5 {
		if got := get(t, "http://127.0.0.10:18090/"); got != "127.0.0.3" {
			t.Fatalf("served by %q with a down", got)
		}
	}
	// Everything down: the fallback answers.
	b.stop()
	waitTable(t, e, key, map[string]int{"127.0.0.9:18090": 1}, 2*time.Second)
	if got := get(t, "http://127.0.0.10:18090/"); got != "127.0.0.9" {
		t.Fatalf("fallback: %q", got)
	}
	// Recovery: back in, fallback out.
	a.start()
	waitTable(t, e, key, map[string]int{"127.0.0.2:18090": 5}, 2*time.Second)
	b.start()
	waitTable(t, e, key, both, 2*time.Second)

	mu.Lock()
	defer mu.Unlock()
	var log []string
	for _, ev := range events {
		log = append(log, ev.Kind+" "+ev.Summary)
	}
	all := strings.Join(log, "\n")
	for _, want := range []string{"realserver real server down: GET: connection refused", "table delete real TCP  127.0.0.10:18090 -> 127.0.0.2:18090",
		"table add real TCP  127.0.0.10:18090 -> 127.0.0.9:18090 masq weight 1", "realserver real server up: status 200",
		"table delete real TCP  127.0.0.10:18090 -> 127.0.0.9:18090"} {
		if !strings.Contains(all, want) {
			t.Errorf("no event %q in\n%s", want, all)
		}
	}
}

// Quiescent reals stay at weight 0; a reload that changes one real's
// weight edits only that entry and keeps a connection to the other open;
// Deactivate removes the services, checks keep running.
func TestEngineQuiescentReloadStop(t *testing.T) {
	a := newWeb(t, "127.0.0.2:18091")
	newWeb(t, "127.0.0.3:18091")
	e := NewEngine(Options{})
	defer e.Close()
	src := strings.NewReplacer("18090", "18091", "failurecount = 2", "failurecount = 1\nquiescent = true").Replace(seed)
	e.Configure(instance(t, src))
	if err := e.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	key := "TCP  127.0.0.10:18091"
	waitTable(t, e, key, map[string]int{"127.0.0.2:18091": 5, "127.0.0.3:18091": 5}, time.Second)
	a.stop()
	waitTable(t, e, key, map[string]int{"127.0.0.2:18091": 0, "127.0.0.3:18091": 5}, 2*time.Second)
	a.start()
	waitTable(t, e, key, map[string]int{"127.0.0.2:18091": 5, "127.0.0.3:18091": 5}, 2*time.Second)

	// A long-lived connection through the director to .3.
	var long net.Conn
	for long == nil {
		c, err := net.Dial("tcp", "127.0.0.10:18091")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		if strings.HasSuffix(string(buf[:n]), "127.0.0.3") {
			long = c
		} else {
			c.Close()
		}
	}
	defer long.Close()
	before := e.applied
	e.Configure(instance(t, strings.Replace(src, "weight = 5\n  [[", "weight = 2\n  [[", 1)))
	waitTable(t, e, key, map[string]int{"127.0.0.2:18091": 2, "127.0.0.3:18091": 5}, time.Second)
	e.mu.Lock()
	changed := e.applied - before
	e.mu.Unlock()
	if changed != 1 {
		t.Errorf("reload applied %d changes, want 1", changed)
	}
	fmt.Fprint(long, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 512)
	_ = long.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := long.Read(buf); err != nil || !strings.HasSuffix(string(buf[:n]), "127.0.0.3") {
		t.Fatalf("long-lived connection after reload: %q %v", buf[:n], err)
	}

	if err := e.Deactivate(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", "127.0.0.10:18091", time.Second); err == nil {
		t.Fatal("service still listening after stop")
	}
	st := e.Status()
	if st.Active || st.Services[0].Reals[0].Health != "up" {
		t.Fatalf("after stop: %+v", st)
	}
}

// A backend that cannot open fails activation with the reason.
func TestEngineBackendError(t *testing.T) {
	e := NewEngine(Options{Open: func(string, *slog.Logger) (director.Backend, error) {
		return nil, fmt.Errorf("no ip_vs")
	}})
	defer e.Close()
	e.Configure(instance(t, "[[virtual]]\naddress = \"127.0.0.10:18092\"\n"))
	if err := e.Activate(context.Background()); err == nil || !strings.Contains(err.Error(), "no ip_vs") {
		t.Fatalf("got %v", err)
	}
}

// SetReal (mon's ipvs alert) takes a healthy real out and puts it back;
// unknown virtuals and reals are errors.
func TestEngineSetReal(t *testing.T) {
	newWeb(t, "127.0.0.2:18092")
	newWeb(t, "127.0.0.3:18092")
	e := NewEngine(Options{})
	defer e.Close()
	e.Configure(instance(t, strings.ReplaceAll(seed, "18090", "18092")))
	if err := e.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	key := "TCP  127.0.0.10:18092"
	waitTable(t, e, key, map[string]int{"127.0.0.2:18092": 5, "127.0.0.3:18092": 5}, time.Second)
	if err := e.SetReal("tcp", "127.0.0.10:18092", "127.0.0.2", false); err != nil {
		t.Fatal(err)
	}
	waitTable(t, e, key, map[string]int{"127.0.0.3:18092": 5}, time.Second)
	if h := e.Status().Services[0].Reals[0].Health; h != "disabled" {
		t.Errorf("status health %q, want disabled", h)
	}
	if err := e.SetReal("TCP", "127.0.0.10:18092", "127.0.0.2:18092", true); err != nil {
		t.Fatal(err)
	}
	waitTable(t, e, key, map[string]int{"127.0.0.2:18092": 5, "127.0.0.3:18092": 5}, time.Second)
	for _, bad := range [][2]string{{"127.0.0.10:1", "127.0.0.2"}, {"127.0.0.10:18092", "127.0.0.9"}, {"nonsense", "x"}} {
		if err := e.SetReal("tcp", bad[0], bad[1], false); err == nil {
			t.Errorf("SetReal %v: no error", bad)
		}
	}
}
