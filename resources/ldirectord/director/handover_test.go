package director

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// persistentService is a persistent rr service over reals a and b.
func persistentService(k Key, a, b netip.AddrPort) *Service {
	s := svc(k, "rr", Dest{Addr: a, Forward: Masq, Weight: 1}, Dest{Addr: b, Forward: Masq, Weight: 1})
	s.Persistent, s.Netmask = 300, 32
	return s
}

// Templates exported by one director and imported by the next send every
// client to the real it had; without them the next director's scheduler
// would send some elsewhere.
func TestPersistenceHandover(t *testing.T) {
	a, _ := realServer(t, "127.0.0.2")
	b, _ := realServer(t, "127.0.0.3")
	k := Key{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.10:18082")}
	clients := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"}

	old := NewUserspace(UserspaceOptions{})
	mustApply(t, old, Table{k: persistentService(k, a, b)}, nil)
	// A first client shifts rr, so that a fresh director would answer
	// the others differently.
	c := dialVIP(t, k, "127.0.0.20")
	ask(t, c, "hi")
	c.Close()
	had := map[string]string{}
	for _, cl := range clients {
		c := dialVIP(t, k, cl)
		had[cl] = ask(t, c, "hi")
		c.Close()
	}
	blob, gen, changed := old.ExportPersistence(0, 0)
	if !changed || len(blob) == 0 {
		t.Fatalf("first export: changed %v, %d bytes", changed, len(blob))
	}
	if again, gen2, changed := old.ExportPersistence(gen, 0); changed || again != nil || gen2 != gen {
		t.Fatalf("unchanged table exported again: changed %v gen %d→%d", changed, gen, gen2)
	}
	old.Close()

	// The control: a director without the templates.
	fresh := NewUserspace(UserspaceOptions{})
	mustApply(t, fresh, Table{k: persistentService(k, a, b)}, nil)
	moved := 0
	for _, cl := range clients {
		c := dialVIP(t, k, cl)
		if ask(t, c, "hi") != had[cl] {
			moved++
		}
		c.Close()
	}
	fresh.Close()
	if moved == 0 {
		t.Fatal("the control moved no client: the test proves nothing")
	}

	next := NewUserspace(UserspaceOptions{})
	defer next.Close()
	mustApply(t, next, Table{k: persistentService(k, a, b)}, nil)
	n, err := next.ImportPersistence(blob)
	if err != nil || n != len(clients)+1 {
		t.Fatalf("import: %d templates, %v; want %d", n, err, len(clients)+1)
	}
	for _, cl := range clients {
		for range 3 {
			c := dialVIP(t, k, cl)
			if got := ask(t, c, "hi"); got != had[cl] {
				t.Fatalf("client %s reached %s after the hand-over, had %s", cl, got, had[cl])
			}
			c.Close()
		}
	}
	// Its own templates are not overwritten by an older blob.
	if n, err := next.ImportPersistence(blob); err != nil || n != 0 {
		t.Fatalf("second import took %d templates (%v), want 0: the live ones are newer", n, err)
	}
	// What it exports is what it holds, with times capped by the timeout.
	svcs, ents, err := decodeExport(t, next)
	if err != nil || len(svcs) != 1 || len(ents) != len(clients)+1 {
		t.Fatalf("re-export: %d services, %d templates, %v", len(svcs), len(ents), err)
	}
	for _, e := range ents {
		if e.ms > 300_000 {
			t.Fatalf("template with %dms left, more than the 300s timeout", e.ms)
		}
	}
}

func decodeExport(t *testing.T, u *UserspaceDirector) ([]pservice, []pentry, error) {
	t.Helper()
	blob, _, changed := u.ExportPersistence(0, 0)
	if !changed {
		t.Fatal("export with generation 0 said unchanged")
	}
	return DecodePersistence(blob)
}

// A change of the table, or the expiry of an exported template, makes the
// next export a change; templates of unknown services or reals and
// garbage are not taken.
func TestPersistenceExportChanges(t *testing.T) {
	a, _ := realServer(t, "127.0.0.2")
	b, _ := realServer(t, "127.0.0.3")
	k := Key{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.10:18083")}
	u := NewUserspace(UserspaceOptions{})
	defer u.Close()
	s := persistentService(k, a, b)
	mustApply(t, u, Table{k: s}, nil)
	_, gen, _ := u.ExportPersistence(0, 0)
	c := dialVIP(t, k, "127.0.0.21")
	ask(t, c, "hi")
	c.Close()
	blob, gen2, changed := u.ExportPersistence(gen, 0)
	if !changed || gen2 == gen {
		t.Fatalf("a new template: changed %v, gen %d→%d", changed, gen, gen2)
	}

	// A known client's new connection refreshes its template, which is
	// no change: a busy service with steady clients exports nothing.
	c = dialVIP(t, k, "127.0.0.21")
	ask(t, c, "hi")
	c.Close()
	if again, g, changed := u.ExportPersistence(gen2, 0); changed || again != nil || g != gen2 {
		t.Fatalf("a refresh exported again: changed %v, gen %d→%d", changed, gen2, g)
	}

	// An expired template is left out of the next export (a 1s timeout;
	// decodeExport asks from generation 0, so it always exports).
	s1 := persistentService(k, a, b)
	s1.Persistent = 1
	mustApply(t, u, Table{k: s1}, nil) // a new timeout forgets the templates
	c = dialVIP(t, k, "127.0.0.21")
	ask(t, c, "hi")
	c.Close()
	_, ents, _ := decodeExport(t, u)
	if len(ents) != 1 {
		t.Fatalf("templates exported: %d, want 1", len(ents))
	}
	expired := testutil.Eventually(t, 3*time.Second, "the template expires", func() ([]pentry, bool) {
		_, ents, _ := decodeExport(t, u)
		return ents, !slices.ContainsFunc(ents, func(e pentry) bool { return e.client == netip.MustParseAddr("127.0.0.21") })
	})
	for _, e := range expired {
		if e.ms > 1000 {
			t.Fatalf("template with %dms left of a 1s timeout", e.ms)
		}
	}

	// A real removed from the service: its templates are skipped.
	s2 := persistentService(k, a, b)
	delete(s2.Dests, b)
	delete(s2.Dests, a)
	s2.Dests[netip.MustParseAddrPort("127.0.0.4:1")] = Dest{Addr: netip.MustParseAddrPort("127.0.0.4:1"), Forward: Masq, Weight: 1}
	mustApply(t, u, Table{k: s2}, nil)
	if n, err := u.ImportPersistence(blob); err != nil || n != 0 {
		t.Fatalf("templates for reals not in the service: took %d, %v", n, err)
	}

	for _, bad := range [][]byte{nil, []byte("VPT"), []byte("VPT\x02\x00"), append(bytes.Clone(blob), 0), blob[:len(blob)-1],
		[]byte("VPT\x01\xff\xff\xff\xff\x0f"), make([]byte, MaxPersistence+1)} {
		if n, err := u.ImportPersistence(bad); err == nil || n != 0 || !errors.Is(err, errPersistence) {
			t.Errorf("garbage %q: took %d, err %v", bad[:min(len(bad), 16)], n, err)
		}
	}
}

// Over the size limit, the templates closest to expiry are dropped.
func TestPersistenceExportLimit(t *testing.T) {
	u := NewUserspace(UserspaceOptions{})
	defer u.Close()
	k := Key{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.10:18084")}
	real := netip.MustParseAddrPort("127.0.0.2:80")
	s := svc(k, "rr", Dest{Addr: real, Forward: Masq, Weight: 1})
	s.Persistent, s.Netmask = 300, 32
	mustApply(t, u, Table{k: s}, nil)
	now := time.Now()
	u.mu.Lock()
	us := u.services[k]
	for i := range 5000 {
		client := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		us.persist[client] = persistEntry{dest: us.dests[0], expires: now.Add(time.Minute + time.Duration(i)*10*time.Millisecond)}
	}
	u.mu.Unlock()
	blob, _, _ := u.ExportPersistence(0, 4096)
	// The export counts what is left from its own clock: as much less
	// as has passed since now (a loaded run took tens of ms).
	passed := uint64(time.Since(now).Milliseconds()) + 1
	_, ents, err := DecodePersistence(blob)
	if err != nil || len(blob) > 4096 || len(ents) < 100 {
		t.Fatalf("limited export: %d bytes, %d templates, %v", len(blob), len(ents), err)
	}
	for _, e := range ents {
		if e.ms+passed < 60_000+uint64(5000-len(ents)-1)*10 {
			t.Fatalf("kept a template with %dms left (%dms after the templates were made) while dropping longer ones", e.ms, passed)
		}
	}
	full, _, _ := u.ExportPersistence(0, 0)
	if _, ents, err := DecodePersistence(full); err != nil || len(full) > MaxPersistence || len(ents) != 5000 {
		t.Fatalf("full export: %d bytes, %d templates, %v", len(full), len(ents), err)
	}
}

func FuzzDecodePersistence(f *testing.F) {
	svcs := []pservice{{key: Key{Proto: TCP, Addr: netip.MustParseAddrPort("10.0.0.3:80")},
		dests: []netip.AddrPort{netip.MustParseAddrPort("10.0.1.1:80"), netip.MustParseAddrPort("[fd00::1]:80")}}}
	f.Add(encodePersistence(svcs, []pentry{{client: netip.MustParseAddr("10.9.9.9"), dest: 1, ms: 1234}}))
	f.Add(encodePersistence(nil, nil))
	f.Add([]byte("VPT\x01\x01\x03\x04"))
	f.Fuzz(func(t *testing.T, b []byte) {
		svcs, ents, err := DecodePersistence(b)
		if err != nil {
			return
		}
		for _, e := range ents {
			if e.svc >= len(svcs) || e.dest >= len(svcs[e.svc].dests) {
				t.Fatalf("decoded an out-of-range template %+v", e)
			}
		}
		// What decodes encodes to a canonical form that round-trips
		// (the input may pad its numbers or map IPv4 into IPv6).
		again := encodePersistence(svcs, ents)
		s2, e2, err := DecodePersistence(again)
		if err != nil {
			t.Fatalf("re-encoded table does not decode: %v", err)
		}
		if third := encodePersistence(s2, e2); !bytes.Equal(third, again) {
			t.Fatalf("round trip differs:\n%x\n%x", again, third)
		}
	})
}
