package plugins

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/plugins/pb"
)

// EnvLeaseFD names the file descriptor of the lease page in a resource
// plugin's environment.
const EnvLeaseFD = "VIGIL_LEASE_FD"

// LeasePage is the node's lease (pb.Lease) in a memory page the daemon
// shares with its resource plugins: the daemon writes every renewal
// there, and a plugin reads it when its release instant comes (and
// before it acquires). A renewal then costs a few memory stores instead
// of a Hold call per plugin; Hold is still what carries a lease that
// moved earlier (lost), at once.
//
// The page is a sequence lock over three words: version (odd while a
// write is in progress), seq, release_at_ns, lifetime_ns. One writer.
type LeasePage struct {
	f   *os.File
	mem []byte
}

// NewLeasePage creates a page (an anonymous memfd) holding no lease.
func NewLeasePage() (*LeasePage, error) {
	fd, err := unix.MemfdCreate("vigil-lease", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("lease page: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "vigil-lease")
	if err := f.Truncate(int64(os.Getpagesize())); err != nil {
		f.Close()
		return nil, fmt.Errorf("lease page: %w", err)
	}
	return mapLeasePage(f)
}

// LeasePageFromEnv maps the page the daemon passed (EnvLeaseFD); nil
// when it passed none (an older daemon, or a plugin run outside one).
func LeasePageFromEnv() (*LeasePage, error) {
	v := os.Getenv(EnvLeaseFD)
	if v == "" {
		return nil, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("lease page: %s=%q is not a file descriptor", EnvLeaseFD, v)
	}
	unix.CloseOnExec(fd) // scripts the plugin runs need not see it
	return mapLeasePage(os.NewFile(uintptr(fd), "vigil-lease"))
}

func mapLeasePage(f *os.File) (*LeasePage, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lease page: mmap: %w", err)
	}
	return &LeasePage{f: f, mem: mem}, nil
}

// File is the page's file, to pass to a plugin process (exec.Cmd's
// ExtraFiles); it stays the page's.
func (p *LeasePage) File() *os.File { return p.f }

func (p *LeasePage) word(i int) *uint64 {
	return (*uint64)(unsafe.Pointer(&p.mem[i*8]))
}

// Store writes le (the daemon, the only writer).
func (p *LeasePage) Store(le *pb.Lease) {
	ver := p.word(0)
	v := atomic.LoadUint64(ver)
	atomic.StoreUint64(ver, v+1)
	atomic.StoreUint64(p.word(1), le.GetSeq())
	atomic.StoreUint64(p.word(2), uint64(le.GetReleaseAtNs()))
	atomic.StoreUint64(p.word(3), uint64(le.GetLifetimeNs()))
	atomic.StoreUint64(ver, v+2)
}

// Load reads the lease; nil while none was stored, or while a write
// stays unfinished (the daemon died in the middle of one: the plugin
// then goes by the lease it already has, which runs out).
func (p *LeasePage) Load() *pb.Lease {
	for range 1000 {
		v := atomic.LoadUint64(p.word(0))
		if v&1 == 1 {
			runtime.Gosched() // a write in progress: a few stores long
			continue
		}
		le := &pb.Lease{
			Seq:         atomic.LoadUint64(p.word(1)),
			ReleaseAtNs: int64(atomic.LoadUint64(p.word(2))),
			LifetimeNs:  int64(atomic.LoadUint64(p.word(3))),
		}
		if atomic.LoadUint64(p.word(0)) != v {
			continue
		}
		if le.Seq == 0 {
			return nil
		}
		return le
	}
	return nil
}

// Close unmaps the page and closes its file.
func (p *LeasePage) Close() error {
	err := unix.Munmap(p.mem)
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	return err
}
