package director

import (
	"net/netip"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// What a stateless service's NAT reals need: a rewrite to the service's
// address where that is the only one it can be, a drop where it cannot
// be told (several services, a firewall mark, IPv6, SCTP), nothing for
// direct routing or a portless real.
func TestStrayRepliesOf(t *testing.T) {
	svc := func(k Key, dests ...Dest) *Service {
		s := &Service{Key: k, Dests: map[netip.AddrPort]Dest{}}
		for _, d := range dests {
			s.Dests[d.Addr] = d
		}
		return s
	}
	www := Key{Proto: TCP, Addr: ap("10.0.0.3:80")}
	got := StrayRepliesOf(svc(www,
		Dest{Addr: ap("10.1.0.12:8080"), Forward: Masq},
		Dest{Addr: ap("10.1.0.11:80"), Forward: Masq},
		Dest{Addr: ap("10.1.0.13:80"), Forward: Gate}))
	want := []StrayReply{
		{L4: unix.IPPROTO_TCP, Real: ap("10.1.0.11:80"), Virtual: ap("10.0.0.3:80")},
		{L4: unix.IPPROTO_TCP, Real: ap("10.1.0.12:8080"), Virtual: ap("10.0.0.3:80")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tcp service: %v, want %v", got, want)
	}
	got = StrayRepliesOf(svc(Key{Proto: FWM, FWMark: 7},
		Dest{Addr: ap("10.1.0.11:443"), Forward: Masq},
		Dest{Addr: ap("10.1.0.12:0"), Forward: Masq}))
	want = []StrayReply{
		{L4: unix.IPPROTO_TCP, Real: ap("10.1.0.11:443")},
		{L4: unix.IPPROTO_UDP, Real: ap("10.1.0.11:443")},
		{L4: unix.IPPROTO_SCTP, Real: ap("10.1.0.11:443")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fwmark service: %v, want %v", got, want)
	}
	got = StrayRepliesOf(svc(Key{Proto: UDP, Addr: ap("[2001:db8::3]:53")}, Dest{Addr: ap("[2001:db8:1::11]:53"), Forward: Masq}))
	want = []StrayReply{{L4: unix.IPPROTO_UDP, Real: ap("[2001:db8:1::11]:53")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ipv6 service: %v, want %v", got, want)
	}

	// One real behind two virtual addresses: its reply could be either's.
	r := ap("10.1.0.11:80")
	merged := SortStrayReplies([]StrayReply{
		{L4: unix.IPPROTO_TCP, Real: r, Virtual: ap("10.0.0.4:80")},
		{L4: unix.IPPROTO_UDP, Real: r, Virtual: ap("10.0.0.3:80")},
		{L4: unix.IPPROTO_TCP, Real: r, Virtual: ap("10.0.0.3:80")},
		{L4: unix.IPPROTO_UDP, Real: r, Virtual: ap("10.0.0.3:80")}, // the same service twice
	})
	want = []StrayReply{
		{L4: unix.IPPROTO_TCP, Real: r},
		{L4: unix.IPPROTO_UDP, Real: r, Virtual: ap("10.0.0.3:80")},
	}
	if !reflect.DeepEqual(merged, want) {
		t.Errorf("merged: %v, want %v", merged, want)
	}
}

// A rule reads back as the entry it was written from.
func TestStrayReplyRule(t *testing.T) {
	for _, d := range []StrayReply{
		{L4: unix.IPPROTO_TCP, Real: ap("10.1.0.11:80"), Virtual: ap("10.0.0.3:8080")},
		{L4: unix.IPPROTO_UDP, Real: ap("10.1.0.11:53"), Virtual: ap("10.0.0.3:53")},
		{L4: unix.IPPROTO_SCTP, Real: ap("10.1.0.11:80")},
		{L4: unix.IPPROTO_TCP, Real: ap("[2001:db8:1::11]:80")},
	} {
		got, _, ok := parseStray(strayExprs(d))
		if !ok || got != d {
			t.Errorf("%v reads back as %v (%v)", d, got, ok)
		}
	}
	if _, _, ok := parseStray(strayExprs(StrayReply{L4: unix.IPPROTO_TCP, Real: ap("10.1.0.11:80")})[:3]); ok {
		t.Error("a rule cut short reads back")
	}
}
