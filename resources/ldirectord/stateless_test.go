package ldirectord

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// fakeSysctls is /proc/sys as the engine sees it.
type fakeSysctls struct {
	mu sync.Mutex
	v  map[string]string
}

func (f *fakeSysctls) get(p string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v[p], nil
}

func (f *fakeSysctls) set(p, v string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.v[p] = v
	return nil
}

func (f *fakeSysctls) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "tcp=" + f.v[sloppySysctls[0]] + " sctp=" + f.v[sloppySysctls[1]]
}

const statelessSrc = `
backend = "ipvs"
[[virtual]]
address = "10.0.0.3:80"
scheduler = "mh"
mh_port = true
stateless = true
checktype = "connect"
connecttimeout = "100ms"
checkinterval = 3600
  [[virtual.real]]
  address = "127.0.0.2:80"
  forward = "gate"
  checkport = 1
`

// (The real's check connects to 127.0.0.2:1, which refuses: it is down.)

// The sloppy sysctls are set as soon as a stateless virtual is
// configured (a standby too), put back to what was found when the last
// one goes, set again when one comes back, and put back at close; status
// says so.
func TestStatelessSysctls(t *testing.T) {
	f := &fakeSysctls{v: map[string]string{sloppySysctls[0]: "0", sloppySysctls[1]: "2"}}
	e := NewEngine(Options{GetSysctl: f.get, SetSysctl: f.set, SysctlScope: t.Name()})
	defer e.Close()
	on := instance(t, statelessSrc)
	off := instance(t, strings.Replace(statelessSrc, "stateless = true", "", 1))
	step := func(what string, _ *struct{}, want string, sloppy bool) {
		t.Helper()
		if got := f.String(); got != want {
			t.Fatalf("%s: sysctls %s, want %s", what, got, want)
		}
		st := e.Status()
		if got := st.Stateless != nil && st.Stateless.Sloppy; got != sloppy {
			t.Fatalf("%s: status %+v", what, st.Stateless)
		}
		if st.Stateless != nil && st.Stateless.Error != "" {
			t.Fatalf("%s: %s", what, st.Stateless.Error)
		}
	}
	e.Configure(on)
	step("stateless standby", nil, "tcp=1 sctp=1", true)
	if txt := e.Status().Text("www", false); !strings.Contains(txt, "sloppy_tcp = 1") || !strings.Contains(txt, "mh mh-port stateless") {
		t.Errorf("status text:\n%s", txt)
	}
	e.Configure(off)
	step("no stateless virtual left", nil, "tcp=0 sctp=2", false)
	f.set(sloppySysctls[0], "0") // as found again
	e.Configure(on)
	step("stateless again", nil, "tcp=1 sctp=1", true)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	step("closed", nil, "tcp=0 sctp=2", false)
}

// A stateless virtual keeps a failed real at weight 0 (quiescent or not),
// so that mh's list of reals, and so its lookup table, does not depend
// on the order in which reals failed and came back.
func TestStatelessKeepsFailedReals(t *testing.T) {
	f := &fakeSysctls{v: map[string]string{}}
	e := NewEngine(Options{GetSysctl: f.get, SetSysctl: f.set, SysctlScope: t.Name()})
	defer e.Close()
	for _, stateless := range []bool{true, false} {
		src := statelessSrc
		if !stateless {
			src = strings.Replace(src, "stateless = true", "", 1)
		}
		e.Configure(instance(t, src))
		e.mu.Lock()
		want := e.desired() // the real's first check has not answered: down
		e.mu.Unlock()
		s := want[director.Key{Proto: director.TCP, Addr: netip.MustParseAddrPort("10.0.0.3:80")}]
		if !s.MHPort {
			t.Fatalf("service %+v: no mh-port", s)
		}
		d, kept := s.Dests[netip.MustParseAddrPort("127.0.0.2:80")]
		if kept != stateless || (kept && d.Weight != 0) {
			t.Errorf("stateless %v: down real kept %v weight %d", stateless, kept, d.Weight)
		}
	}
}

// Two instances in one namespace share the sysctls: the first to set
// them keeps the values found, and they go back only when the last
// instance using them is done.
func TestStatelessSharedSysctls(t *testing.T) {
	f := &fakeSysctls{v: map[string]string{sloppySysctls[0]: "0", sloppySysctls[1]: "0"}}
	var es []*Engine
	for range 2 {
		e := NewEngine(Options{GetSysctl: f.get, SetSysctl: f.set, SysctlScope: t.Name()})
		defer e.Close()
		e.Configure(instance(t, statelessSrc))
		es = append(es, e)
	}
	if got := f.String(); got != "tcp=1 sctp=1" {
		t.Fatalf("both on: %s", got)
	}
	if err := es[0].Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.String(); got != "tcp=1 sctp=1" {
		t.Fatalf("the other instance still stateless: %s", got)
	}
	es[1].Configure(instance(t, strings.Replace(statelessSrc, "stateless = true", "", 1)))
	if got := f.String(); got != "tcp=0 sctp=0" {
		t.Fatalf("none left: %s", got)
	}
}

// fakeStray records what the engines write as stateless mode's nftables
// table.
type fakeStray struct {
	mu     sync.Mutex
	writes [][]director.StrayReply
}

func (f *fakeStray) set(ds []director.StrayReply) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, slices.Clone(ds))
	return nil
}

// last is the table as last written, and how many writes there were.
func (f *fakeStray) last() (string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.writes) == 0 {
		return "never written", 0
	}
	var s []string
	for _, d := range f.writes[len(f.writes)-1] {
		s = append(s, d.String())
	}
	return "[" + strings.Join(s, "; ") + "]", len(f.writes)
}

// The replies of a stateless service's NAT reals are rewritten to the
// service's address (or dropped where that is ambiguous) by one table
// per namespace holding every instance's entries, written only when they
// change and deleted with the last instance; a direct-routing stateless
// instance never touches nftables.
func TestStatelessStrayReplies(t *testing.T) {
	sys := &fakeSysctls{v: map[string]string{}}
	f := &fakeStray{}
	opts := Options{GetSysctl: sys.get, SetSysctl: sys.set, SetStrayReplies: f.set, SysctlScope: t.Name()}
	nat := strings.Replace(statelessSrc, `forward = "gate"`, `forward = "masq"`, 1)
	step := func(what, want string, writes int) {
		t.Helper()
		if got, n := f.last(); got != want || n != writes {
			t.Fatalf("%s: table %s after %d writes, want %s after %d", what, got, n, want, writes)
		}
	}
	a := NewEngine(opts)
	defer a.Close()
	a.Configure(instance(t, statelessSrc))
	step("direct routing", "never written", 0)
	a.Configure(instance(t, nat))
	step("nat", "[tcp from 127.0.0.2:80 as 10.0.0.3:80]", 1)
	if txt := a.Status().Text("www", false); !strings.Contains(txt, "(nftables inet vigil_stateless): tcp from 127.0.0.2:80 as 10.0.0.3:80") {
		t.Errorf("status text:\n%s", txt)
	}
	a.Configure(instance(t, nat))
	step("unchanged", "[tcp from 127.0.0.2:80 as 10.0.0.3:80]", 1)

	// Another instance has the same real behind another address: whose
	// reply it is cannot be told, so it is dropped.
	b := NewEngine(opts)
	defer b.Close()
	b.Configure(instance(t, strings.Replace(nat, "10.0.0.3:80", "10.0.0.4:80", 1)))
	step("two instances", "[tcp from 127.0.0.2:80 dropped]", 2)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	step("one left", "[tcp from 127.0.0.2:80 as 10.0.0.4:80]", 3)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	step("none left", "[]", 4)
}
