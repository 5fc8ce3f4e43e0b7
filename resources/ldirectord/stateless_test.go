package ldirectord

import (
	"net/netip"
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
