package ldirectord

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// fakeCheck answers from a script of results and counts its calls.
type fakeCheck struct {
	name  string
	ok    []bool
	calls int
}

func (f *fakeCheck) String() string { return f.name }

func (f *fakeCheck) Check(context.Context) monitors.Result {
	ok := f.ok[min(f.calls, len(f.ok)-1)]
	f.calls++
	return monitors.Result{OK: ok, Summary: f.name}
}

// ldirectord's checktype=N: negotiate first, then N connects, then
// negotiate; a failed connect is followed by a negotiate at once, a
// failed negotiate by another.
func TestCombinedCheck(t *testing.T) {
	neg := &fakeCheck{name: "negotiate", ok: []bool{false, true, true, true}}
	conn := &fakeCheck{name: "connect", ok: []bool{true, true, false, true}}
	c := &combined{negotiate: neg, connect: conn, connects: 2, negotiateTimeout: 1e9, connectTimeout: 1e9, done: startCombined}
	var got []string
	for range 9 {
		got = append(got, c.Check(context.Background()).Summary)
	}
	want := "negotiate negotiate connect connect negotiate connect negotiate connect connect"
	if strings.Join(got, " ") != want {
		t.Fatalf("sequence %v\nwant %s", got, want)
	}
}

// A real's checkport (its own port, when ipvsadm programs the virtual's)
// is where its checks go, unless the virtual sets one.
func TestRealCheckPort(t *testing.T) {
	in := instance(t, "[[virtual]]\naddress = \"10.0.0.1:80\"\nchecktype = \"connect\"\n[[virtual.real]]\naddress = \"10.0.0.2:80\"\ncheckport = 8080\n")
	v := &in.Virtual[0]
	if p := probeFor(v, &v.Real[0], map[string]*regexp.Regexp{}); !strings.Contains(p.check.String(), "10.0.0.2:8080") {
		t.Fatalf("check %s, want port 8080", p.check)
	}
	v.CheckPort = 9090
	if p := probeFor(v, &v.Real[0], map[string]*regexp.Regexp{}); !strings.Contains(p.check.String(), "10.0.0.2:9090") {
		t.Fatalf("check %s, want the virtual's 9090", p.check)
	}
}

// tableBackend keeps a table in memory (a fake director for logic
// tests; the real backends have their own tests).
type tableBackend struct {
	mu sync.Mutex
	t  director.Table
}

func (b *tableBackend) Name() string { return "table" }
func (b *tableBackend) Read() (director.Table, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.t.Clone(), nil
}
func (b *tableBackend) Apply(ops []director.Op) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, op := range ops {
		switch op.Kind {
		case director.AddService, director.EditService:
			s := op.Service
			s.Dests = map[netip.AddrPort]director.Dest{}
			if old := b.t[s.Key]; old != nil {
				s.Dests = old.Dests
			}
			b.t[s.Key] = &s
		case director.DelService:
			delete(b.t, op.Service.Key)
		case director.AddDest, director.EditDest:
			b.t[op.Service.Key].Dests[op.Dest.Addr] = op.Dest
		case director.DelDest:
			delete(b.t[op.Service.Key].Dests, op.Dest.Addr)
		}
	}
	return nil
}
func (b *tableBackend) Stats() (map[director.Key]director.ServiceStats, error) { return nil, nil }
func (b *tableBackend) Close() error                                           { return nil }

// cleanstop = false (ldirectord's cleanstop=no) leaves that virtual and
// its reals programmed when the instance stops; the others go.
func TestEngineCleanStop(t *testing.T) {
	b := &tableBackend{t: director.Table{}}
	e := NewEngine(Options{Open: func(string, *slog.Logger) (director.Backend, error) { return b, nil }})
	defer e.Close()
	e.Configure(instance(t, `checktype = "on"
[[virtual]]
address = "10.0.0.1:80"
checktype = "on"
cleanstop = false
  [[virtual.real]]
  address = "10.0.0.2:80"
[[virtual]]
address = "10.0.0.11:80"
checktype = "on"
  [[virtual.real]]
  address = "10.0.0.12:80"
`))
	if err := e.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if have, _ := b.Read(); len(have) != 2 {
		t.Fatalf("active: %d services, want 2", len(have))
	}
	if err := e.Deactivate(); err != nil {
		t.Fatal(err)
	}
	have, _ := b.Read()
	kept := have[director.Key{Proto: director.TCP, Addr: netip.MustParseAddrPort("10.0.0.1:80")}]
	if len(have) != 1 || kept == nil || len(kept.Dests) != 1 {
		t.Fatalf("after stop: %v, want only 10.0.0.1:80 with its real", have.Keys())
	}
}

// maintenancedir: a real is out, unchecked, while DIR/IP:PORT or DIR/IP
// exists, and back at the next check after the file goes.
func TestEngineMaintenanceDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "10.0.0.2:80")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b := &tableBackend{t: director.Table{}}
	e := NewEngine(Options{Open: func(string, *slog.Logger) (director.Backend, error) { return b, nil }})
	defer e.Close()
	e.Configure(instance(t, fmt.Sprintf(`maintenancedir = %q
checkinterval = "50ms"
[[virtual]]
address = "10.0.0.1:80"
checktype = "on"
  [[virtual.real]]
  address = "10.0.0.2:80"
  [[virtual.real]]
  address = "10.0.0.3:80"
`, dir)))
	if err := e.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	key := director.Key{Proto: director.TCP, Addr: netip.MustParseAddrPort("10.0.0.1:80")}
	reals := func() int { have, _ := b.Read(); return len(have[key].Dests) }
	if n := reals(); n != 1 {
		t.Fatalf("with the maintenance file: %d reals, want 1", n)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(100 * 50 * time.Millisecond) // 100 check intervals
	for reals() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the real did not come back after its maintenance file went")
		}
		time.Sleep(10 * time.Millisecond) // polling the table, not waiting for time to pass
	}
}

// A real that answers keeps the fallback out even at a configured weight
// of 0 (ldirectord's rule): only a quiesced, failed real counts as down.
func TestEngineWeightZeroKeepsFallbackOut(t *testing.T) {
	b := &tableBackend{t: director.Table{}}
	e := NewEngine(Options{Open: func(string, *slog.Logger) (director.Backend, error) { return b, nil }})
	defer e.Close()
	e.Configure(instance(t, `[[virtual]]
address = "10.0.0.1:80"
checktype = "on"
fallback = "127.0.0.1:80"
  [[virtual.real]]
  address = "10.0.0.2:80"
  weight = 0
`))
	if err := e.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	have, _ := b.Read()
	s := have[director.Key{Proto: director.TCP, Addr: netip.MustParseAddrPort("10.0.0.1:80")}]
	if d, ok := s.Dests[netip.MustParseAddrPort("10.0.0.2:80")]; !ok || d.Weight != 0 || len(s.Dests) != 1 {
		t.Fatalf("table %v, want only the weight-0 real", s.SortedDests())
	}
}
