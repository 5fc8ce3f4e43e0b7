package director

import (
	"bufio"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

var (
	vip  = netip.MustParseAddrPort("10.0.0.3:80")
	vip2 = netip.MustParseAddrPort("10.0.0.3:443")
	r1   = netip.MustParseAddrPort("192.168.6.2:80")
	r2   = netip.MustParseAddrPort("192.168.6.3:80")
	r3   = netip.MustParseAddrPort("192.168.6.4:80")
	k80  = Key{Proto: TCP, Addr: vip}
	k443 = Key{Proto: TCP, Addr: vip2}
)

func svc(k Key, sched string, dests ...Dest) *Service {
	s := &Service{Key: k, Scheduler: sched, Dests: map[netip.AddrPort]Dest{}}
	for _, d := range dests {
		s.Dests[d.Addr] = d
	}
	return s
}

func gate(a netip.AddrPort, w int) Dest { return Dest{Addr: a, Forward: Gate, Weight: w} }

func opStrings(ops []Op) []string {
	out := []string{}
	for _, o := range ops {
		out = append(out, o.String())
	}
	return out
}

func TestDiff(t *testing.T) {
	base := Table{k80: svc(k80, "wlc", gate(r1, 5), gate(r2, 5))}
	cases := []struct {
		name  string
		have  Table
		want  Table
		scope map[Key]bool
		ops   []string
	}{
		{"empty to seed", Table{}, base, nil, []string{
			"add service TCP  10.0.0.3:80 wlc", "add real TCP  10.0.0.3:80 -> 192.168.6.2:80 gate weight 5",
			"add real TCP  10.0.0.3:80 -> 192.168.6.3:80 gate weight 5"}},
		{"no change", base, base.Clone(), nil, []string{}},
		{"one weight", base, Table{k80: svc(k80, "wlc", gate(r1, 5), gate(r2, 0))}, nil, []string{
			"edit real TCP  10.0.0.3:80 -> 192.168.6.3:80 gate weight 0"}},
		{"one real out, one in", base, Table{k80: svc(k80, "wlc", gate(r1, 5), gate(r3, 1))}, nil, []string{
			"add real TCP  10.0.0.3:80 -> 192.168.6.4:80 gate weight 1", "delete real TCP  10.0.0.3:80 -> 192.168.6.3:80"}},
		{"forwarding method", base, Table{k80: svc(k80, "wlc", gate(r1, 5), Dest{Addr: r2, Forward: Masq, Weight: 5})}, nil, []string{
			"edit real TCP  10.0.0.3:80 -> 192.168.6.3:80 masq weight 5"}},
		{"scheduler edited in place", base, Table{k80: svc(k80, "rr", gate(r1, 5), gate(r2, 5))}, nil, []string{
			"edit service TCP  10.0.0.3:80 rr"}},
		{"persistence", base, Table{k80: &Service{Key: k80, Scheduler: "wlc", Persistent: 300, Netmask: 24, Dests: base[k80].Dests}}, nil, []string{
			"edit service TCP  10.0.0.3:80 wlc persistent 300"}},
		{"foreign service left alone", Table{k80: base[k80], k443: svc(k443, "rr", gate(r1, 1))}, base, nil, []string{}},
		{"owned service removed", Table{k80: base[k80], k443: svc(k443, "rr", gate(r1, 1))}, base, map[Key]bool{k80: true, k443: true}, []string{
			"delete service TCP  10.0.0.3:443"}},
		{"all removed", base, Table{}, map[Key]bool{k80: true}, []string{"delete service TCP  10.0.0.3:80"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := opStrings(Diff(tc.have, tc.want, tc.scope))
			if !reflect.DeepEqual(got, tc.ops) {
				t.Fatalf("got  %q\nwant %q", got, tc.ops)
			}
		})
	}
}

// fake is a scheduler test node.
type fake struct {
	addr             string
	w                int
	active, inactive int64
	over             bool
	picked           int
}

func (f *fake) weight() int           { return f.w }
func (f *fake) conns() (int64, int64) { return f.active, f.inactive }
func (f *fake) overloaded() bool      { return f.over }
func (f *fake) addrKey() string       { return f.addr }

func nodesOf(fs ...*fake) []node {
	ns := make([]node, len(fs))
	for i, f := range fs {
		ns[i] = f
	}
	return ns
}

func src(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}) }

var dstAddr = netip.MustParseAddr("10.0.0.3")

// Weighted schedulers hand out new connections in proportion to weight.
func TestSchedulerDistribution(t *testing.T) {
	for _, name := range []string{"rr", "wrr", "sh", "mh"} {
		t.Run(name, func(t *testing.T) {
			a, b, c, z := &fake{addr: "a", w: 1}, &fake{addr: "b", w: 2}, &fake{addr: "c", w: 5}, &fake{addr: "z", w: 0}
			ns := nodesOf(a, b, c, z)
			s := newScheduler(name)
			s.reset(ns)
			const picks = 8000
			for i := range picks {
				n := s.pick(ns, src(i), dstAddr)
				if n == nil {
					t.Fatal("no pick")
				}
				n.(*fake).picked++
			}
			if z.picked != 0 {
				t.Fatalf("weight 0 picked %d times", z.picked)
			}
			want := map[*fake]float64{a: 1.0 / 8, b: 2.0 / 8, c: 5.0 / 8}
			if name == "rr" {
				want = map[*fake]float64{a: 1.0 / 3, b: 1.0 / 3, c: 1.0 / 3}
			}
			tol := 0.001
			if name == "sh" || name == "mh" {
				tol = 0.05 // hashing: proportional on average
			}
			for f, share := range want {
				if got := float64(f.picked) / picks; math.Abs(got-share) > tol {
					t.Errorf("%s got %.3f of picks, want %.3f", f.addr, got, share)
				}
			}
		})
	}
}

// The wrr sequence is the kernel's: weights 4,3,2 give a a b a b c a b c.
func TestWRRSequence(t *testing.T) {
	a, b, c := &fake{addr: "a", w: 4}, &fake{addr: "b", w: 3}, &fake{addr: "c", w: 2}
	ns := nodesOf(a, b, c)
	s := newScheduler("wrr")
	s.reset(ns)
	var seq []string
	for range 9 {
		seq = append(seq, s.pick(ns, src(0), dstAddr).addrKey())
	}
	if got := strings.Join(seq, " "); got != "a a b a b c a b c" {
		t.Fatalf("got %s", got)
	}
}

func TestLeastConnection(t *testing.T) {
	cases := []struct {
		sched string
		nodes []*fake
		want  string
	}{
		{"lc", []*fake{{addr: "a", w: 1, active: 3}, {addr: "b", w: 1, active: 1}, {addr: "c", w: 1, active: 2}}, "b"},
		{"lc", []*fake{{addr: "a", w: 1, active: 1}, {addr: "b", w: 9, active: 1, inactive: 5}}, "a"},                     // inactive counts 1/256
		{"lc", []*fake{{addr: "a", w: 0, active: 0}, {addr: "b", w: 1, active: 5}}, "b"},                                  // weight 0 never
		{"lc", []*fake{{addr: "a", w: 1, active: 0, over: true}, {addr: "b", w: 1, active: 5}}, "b"},                      // overloaded never
		{"wlc", []*fake{{addr: "a", w: 1, active: 2}, {addr: "b", w: 5, active: 6}}, "b"},                                 // 2/1 > 6/5
		{"wlc", []*fake{{addr: "a", w: 1, active: 1}, {addr: "b", w: 5, active: 6}}, "a"},                                 // 1/1 < 6/5
		{"sed", []*fake{{addr: "a", w: 1, active: 0}, {addr: "b", w: 5, active: 3}}, "b"},                                 // (0+1)/1 > (3+1)/5
		{"sed", []*fake{{addr: "a", w: 1, active: 0}, {addr: "b", w: 5, active: 5}}, "a"},                                 // 1/1 < 6/5
		{"nq", []*fake{{addr: "a", w: 5, active: 1}, {addr: "b", w: 1, active: 0}}, "b"},                                  // idle first
		{"nq", []*fake{{addr: "a", w: 5, active: 1}, {addr: "b", w: 1, active: 1}}, "a"},                                  // else sed
		{"lblc", []*fake{{addr: "a", w: 1, active: 4}, {addr: "b", w: 1, active: 2}}, "b"},                                // first: wlc
		{"lblcr", []*fake{{addr: "a", w: 1, active: 0}, {addr: "b", w: 1, active: 2}, {addr: "c", w: 1, active: 1}}, "a"}, // first: wlc
		{"wlc", []*fake{{addr: "a", w: 0, active: 0}, {addr: "b", w: 0, active: 0}}, ""},                                  // nothing usable
		{"rr", []*fake{{addr: "a", w: 0}, {addr: "b", w: 0}}, ""},                                                         // nothing usable
		{"sh", []*fake{{addr: "a", w: 0}}, ""},                                                                            // nothing usable
		{"mh", []*fake{{addr: "a", w: 0}}, ""},                                                                            // nothing usable
		{"wrr", []*fake{{addr: "a", w: 0}}, ""},                                                                           // nothing usable
		{"lblc", []*fake{{addr: "a", w: 0}}, ""},                                                                          // nothing usable
	}
	for _, tc := range cases {
		ns := nodesOf(tc.nodes...)
		s := newScheduler(tc.sched)
		s.reset(ns)
		got := ""
		if n := s.pick(ns, src(1), dstAddr); n != nil {
			got = n.addrKey()
		}
		if got != tc.want {
			t.Errorf("%s %+v: picked %q, want %q", tc.sched, tc.nodes, got, tc.want)
		}
	}
}

// Hash schedulers send one key to one server every time, and moving a
// server out moves only its own keys (mh) or keys falling back (sh).
func TestHashStability(t *testing.T) {
	for _, name := range []string{"sh", "dh", "mh", "lblc", "lblcr"} {
		t.Run(name, func(t *testing.T) {
			fs := []*fake{{addr: "a", w: 1}, {addr: "b", w: 1}, {addr: "c", w: 1}, {addr: "d", w: 1}}
			ns := nodesOf(fs...)
			s := newScheduler(name)
			s.reset(ns)
			first := map[int]string{}
			for i := range 500 {
				key := src(i)
				d := dstAddr
				if name == "dh" || strings.HasPrefix(name, "lblc") {
					key, d = dstAddr, src(i)
				}
				for range 3 {
					n := s.pick(ns, key, d)
					if prev, ok := first[i]; ok && prev != n.addrKey() {
						t.Fatalf("key %d moved from %s to %s", i, prev, n.addrKey())
					}
					first[i] = n.addrKey()
				}
			}
			if name != "mh" {
				return
			}
			fs[1].w = 0 // b out
			s.reset(ns)
			for i := range 500 {
				n := s.pick(ns, src(i), dstAddr)
				if first[i] != "b" && n.addrKey() != first[i] {
					t.Fatalf("key %d on %s moved to %s when b left", i, first[i], n.addrKey())
				}
				if n.addrKey() == "b" {
					t.Fatal("b still picked")
				}
			}
		})
	}
}

func TestParseProcIPVS(t *testing.T) {
	const proc = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A000003:0050 wlc persistent 300 FFFFFF00
  -> C0A80603:0050      Route   5      0          0         
  -> C0A80602:0050      Masq    0      2          1         
UDP  [fd00::3]:0035 rr 
  -> [fd00::10]:0035      Tunnel  1      0          0         
FWM  00000007 sh 
`
	tab, err := ParseProcIPVS(bufio.NewReader(strings.NewReader(proc)))
	if err != nil {
		t.Fatal(err)
	}
	want := Table{
		k80: {Key: k80, Scheduler: "wlc", Persistent: 300, Netmask: 24, Dests: map[netip.AddrPort]Dest{
			r2: gate(r2, 5), r1: {Addr: r1, Forward: Masq, Weight: 0}}},
		{Proto: UDP, Addr: netip.MustParseAddrPort("[fd00::3]:53")}: {Key: Key{Proto: UDP, Addr: netip.MustParseAddrPort("[fd00::3]:53")}, Scheduler: "rr",
			Dests: map[netip.AddrPort]Dest{netip.MustParseAddrPort("[fd00::10]:53"): {Addr: netip.MustParseAddrPort("[fd00::10]:53"), Forward: IPIP, Weight: 1}}},
		{Proto: FWM, FWMark: 7}: {Key: Key{Proto: FWM, FWMark: 7}, Scheduler: "sh", Dests: map[netip.AddrPort]Dest{}},
	}
	if !reflect.DeepEqual(tab, want) {
		t.Fatalf("got %s\nwant %s", dump(tab), dump(want))
	}
	for _, bad := range []string{"  -> 0A000001:0050 Route 1 0 0\n", "XYZ  0A000003:0050 rr\n", "TCP  0A0003:0050 rr\n", "TCP  0A000003:0050 rr\n  -> 0A000001:0050 Bogus 1 0 0\n"} {
		if _, err := ParseProcIPVS(bufio.NewReader(strings.NewReader("h\nh\nh\n" + bad))); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func dump(t Table) string {
	var b strings.Builder
	for _, k := range t.Keys() {
		s := t[k]
		fmt.Fprintf(&b, "%s %s p%d/%d\n", k, s.Scheduler, s.Persistent, s.Netmask)
		for _, d := range s.SortedDests() {
			fmt.Fprintf(&b, "  %+v\n", d)
		}
	}
	return b.String()
}

func FuzzParseProcIPVS(f *testing.F) {
	f.Add("h\nh\nh\nTCP  0A000003:0050 wlc persistent 300 FFFFFF00\n  -> C0A80603:0050      Route   5      0          0\n")
	f.Add("h\nh\nh\nFWM  00000007 sh\n  -> [fd00::10]:0035      Tunnel  1      0          0\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseProcIPVS(bufio.NewReader(strings.NewReader(s)))
	})
}
