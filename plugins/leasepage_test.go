package plugins

import (
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/plugins/pb"
)

// A second mapping of the page's file (as a plugin process maps the
// descriptor it inherited) sees what the first stores, and never a lease
// torn between two writes.
func TestLeasePageShared(t *testing.T) {
	w, err := NewLeasePage()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dup, err := dupFile(w.File())
	if err != nil {
		t.Fatal(err)
	}
	r, err := mapLeasePage(dup)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if le := r.Load(); le != nil {
		t.Fatalf("a new page holds %v", le)
	}
	const n = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(1); i <= n; i++ {
			w.Store(&pb.Lease{Seq: i, ReleaseAtNs: int64(i) * 1000, LifetimeNs: int64(i) * 7})
		}
	}()
	var last uint64
	for last < n {
		le := r.Load()
		if le == nil {
			continue
		}
		if le.ReleaseAtNs != int64(le.Seq)*1000 || le.LifetimeNs != int64(le.Seq)*7 {
			t.Fatalf("torn read: %v", le)
		}
		if le.Seq < last {
			t.Fatalf("seq went back from %d to %d", last, le.Seq)
		}
		last = le.Seq
	}
	wg.Wait()
}

// A write left unfinished (the daemon died in it) reads as no lease, not
// as a reader spinning for ever.
func TestLeasePageUnfinishedWrite(t *testing.T) {
	p, err := NewLeasePage()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Store(&pb.Lease{Seq: 1, ReleaseAtNs: 5})
	*p.word(0)++ // a writer stopped half-way
	if le := p.Load(); le != nil {
		t.Fatalf("read %v during an unfinished write", le)
	}
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
