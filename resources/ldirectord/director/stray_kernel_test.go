package director

import (
	"maps"
	"os"
	"testing"

	"github.com/vigil-ha/vigil/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestKernelStrayReplies writes stateless mode's table in a namespace,
// replaces it with a smaller one and deletes it, reading each back from
// the kernel. (What the rules do to traffic, the ldirectord package's
// connection-survival test shows.) Run by test/ipvsvm.
func TestKernelStrayReplies(t *testing.T) {
	if _, err := os.Stat(procIPVS); err != nil {
		t.Skip("kernel has no IPVS here; test/ipvsvm runs this test in a VM that has it")
	}
	ns := nstest.NewNetns(t).Add("d")
	in := func(f func() error) {
		t.Helper()
		if err := nstest.InNS(ns, f); err != nil {
			t.Fatal(err)
		}
	}
	read := func() (m map[StrayReply]uint64) {
		t.Helper()
		in(func() (err error) { m, err = StrayReplies(); return err })
		return m
	}
	if m := read(); m != nil {
		t.Fatalf("a fresh namespace has drops: %v", m)
	}
	all := []StrayReply{
		{L4: unix.IPPROTO_TCP, Real: ap("10.1.0.11:80"), Virtual: ap("10.0.0.3:80")},
		{L4: unix.IPPROTO_UDP, Real: ap("10.1.0.11:53"), Virtual: ap("10.0.0.3:53")},
		{L4: unix.IPPROTO_SCTP, Real: ap("10.1.0.12:80")},
		{L4: unix.IPPROTO_TCP, Real: ap("[2001:db8:1::11]:80")},
	}
	for _, ds := range [][]StrayReply{all, all[1:2], nil} {
		in(func() error { return SetStrayReplies(ds) })
		want := map[StrayReply]uint64{}
		for _, d := range ds {
			want[d] = 0
		}
		if got := read(); !maps.Equal(got, want) || (len(ds) == 0) != (got == nil) {
			t.Fatalf("wrote %v, read back %v", ds, got)
		}
	}
}
