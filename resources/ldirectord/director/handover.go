package director

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// The userspace director terminates TCP, so its live connections cannot
// move to another director; its persistence templates (client → real
// affinity) can. The owner exports them as a compact blob the cluster
// replicates, and the next owner imports it before it serves: every client
// with a template reaches the same real server after a failover.
//
// A blob changes only when a template appears, points elsewhere or goes
// (a new client, a real removed, a timeout changed): refreshing a
// template, which every connection of a known client does, changes
// nothing, so a busy service with steady clients replicates nothing. The
// new owner therefore gives each template it takes a whole timeout from
// the import (the old owner's refreshes since its last export are not in
// the blob): a client keeps its real at least as long as it should, and
// a template kept longer only pins a client where it already was. The
// time each had left travels too (as a duration, never a wall-clock
// instant): a cut over the size limit drops those closest to expiry.

// MaxPersistence bounds an exported blob (and an imported one): the
// templates closest to expiry are dropped first to fit.
const MaxPersistence = 64 << 10

// persistMagic starts every blob: the format and its version.
const persistMagic = "VPT\x01"

// pentry is one template as exported.
type pentry struct {
	svc    int // index into the services
	client netip.Addr
	dest   int // index into the service's dests
	ms     uint64
}

// pservice is one service as exported.
type pservice struct {
	key   Key
	dests []netip.AddrPort
}

// ExportPersistence returns the persistence templates of every service as
// a blob of at most limit bytes (MaxPersistence when limit is 0 or more)
// and its generation. When have is the generation of the previous export
// and no template was added, moved or removed since, it returns changed =
// false and no blob, at the cost of a comparison.
func (u *UserspaceDirector) ExportPersistence(have uint64, limit int) (blob []byte, gen uint64, changed bool) {
	if limit <= 0 || limit > MaxPersistence {
		limit = MaxPersistence
	}
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, have, false // its tables are gone, not empty
	}
	gen = u.persistGen.Load()
	if have == gen {
		return nil, gen, false
	}
	var svcs []pservice
	var ents []pentry
	keys := make([]Key, 0, len(u.services))
	for k := range u.services {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b Key) int {
		if a.Less(b) {
			return -1
		}
		return 1
	})
	for _, k := range keys {
		s := u.services[k]
		s.mu.Lock()
		if s.svc.Persistent > 0 && len(s.persist) > 0 {
			ps := pservice{key: k}
			index := make(map[*udest]int, len(s.dests))
			for i, d := range s.dests {
				index[d] = i
				ps.dests = append(ps.dests, d.Addr)
			}
			for client, e := range s.persist {
				di, ok := index[e.dest]
				if !ok || !now.Before(e.expires) {
					continue
				}
				ents = append(ents, pentry{svc: len(svcs), client: client, dest: di, ms: uint64(e.expires.Sub(now).Milliseconds())})
			}
			svcs = append(svcs, ps)
		}
		s.mu.Unlock()
	}
	// Longest-lived first, so that a cut drops those closest to expiry.
	slices.SortFunc(ents, func(a, b pentry) int { return cmp.Compare(b.ms, a.ms) })
	blob = encodePersistence(svcs, ents)
	if len(blob) > limit {
		lo, hi := 0, len(ents) // the longest prefix that fits is in [lo, hi)
		for lo+1 < hi {
			mid := (lo + hi) / 2
			if len(encodePersistence(svcs, ents[:mid])) <= limit {
				lo = mid
			} else {
				hi = mid
			}
		}
		ents = ents[:lo]
		blob = encodePersistence(svcs, ents)
		u.opts.Log.Warn("persistence templates over the hand-over limit: the closest to expiry are not handed over", "limit", limit, "kept", lo)
	}
	return blob, gen, true
}

// ImportPersistence seeds the services' persistence templates from a
// blob ExportPersistence made (on another director). A template is taken
// when its service exists and is persistent, its real server is in the
// service, and this director has no live template of its own for the
// client; it lasts the service's timeout from now. A blob
// that does not decode changes nothing and is an error. It returns the
// templates taken.
func (u *UserspaceDirector) ImportPersistence(blob []byte) (int, error) {
	svcs, ents, err := DecodePersistence(blob)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	taken := 0
	for _, e := range ents {
		ps := svcs[e.svc]
		s := u.services[ps.key]
		if s == nil {
			continue
		}
		s.mu.Lock()
		if s.svc.Persistent > 0 {
			addr := ps.dests[e.dest]
			i := slices.IndexFunc(s.dests, func(d *udest) bool { return d.Addr == addr })
			p, perr := e.client.Prefix(int(s.svc.Netmask))
			old, have := s.persist[p.Addr()]
			if i >= 0 && perr == nil && (!have || !now.Before(old.expires)) {
				s.persist[p.Addr()] = persistEntry{dest: s.dests[i], expires: now.Add(time.Duration(s.svc.Persistent) * time.Second)}
				s.gen.Add(1)
				taken++
			}
		}
		s.mu.Unlock()
	}
	return taken, nil
}

// encodePersistence writes the blob:
//
//	magic "VPT\x01"
//	uvarint services; each: proto (1 tcp, 2 udp), addrport,
//	  uvarint dests, each an addrport,
//	  uvarint templates, each: client addr, uvarint dest index, uvarint ms left
//
// where an addr is its length (4 or 16) and bytes, an addrport an addr and
// a big-endian uint16 port.
func encodePersistence(svcs []pservice, ents []pentry) []byte {
	per := make([][]pentry, len(svcs))
	for _, e := range ents {
		per[e.svc] = append(per[e.svc], e)
	}
	b := []byte(persistMagic)
	b = binary.AppendUvarint(b, uint64(len(svcs)))
	for i, s := range svcs {
		proto := byte(1)
		if s.key.Proto == UDP {
			proto = 2
		}
		b = append(b, proto)
		b = appendAddrPort(b, s.key.Addr)
		b = binary.AppendUvarint(b, uint64(len(s.dests)))
		for _, d := range s.dests {
			b = appendAddrPort(b, d)
		}
		b = binary.AppendUvarint(b, uint64(len(per[i])))
		for _, e := range per[i] {
			b = appendAddr(b, e.client)
			b = binary.AppendUvarint(b, uint64(e.dest))
			b = binary.AppendUvarint(b, e.ms)
		}
	}
	return b
}

func appendAddr(b []byte, a netip.Addr) []byte {
	a = a.Unmap()
	s := a.AsSlice()
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	b = appendAddr(b, ap.Addr())
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// errPersistence prefixes every decoding error.
var errPersistence = errors.New("persistence hand-over")

// DecodePersistence parses a blob, refusing anything malformed, oversized
// or with trailing bytes. It never panics and allocates in proportion to
// the blob's length only.
func DecodePersistence(blob []byte) ([]pservice, []pentry, error) {
	if len(blob) > MaxPersistence {
		return nil, nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", errPersistence, len(blob), MaxPersistence)
	}
	if len(blob) < len(persistMagic) || string(blob[:len(persistMagic)]) != persistMagic {
		return nil, nil, fmt.Errorf("%w: not a persistence table of this format", errPersistence)
	}
	r := reader{b: blob[len(persistMagic):]}
	nsvc := r.count()
	var svcs []pservice
	var ents []pentry
	for i := 0; i < nsvc && r.err == nil; i++ {
		var s pservice
		switch r.byte() {
		case 1:
			s.key.Proto = TCP
		case 2:
			s.key.Proto = UDP
		default:
			r.fail("bad protocol")
		}
		s.key.Addr = r.addrPort()
		nd := r.count()
		for j := 0; j < nd && r.err == nil; j++ {
			s.dests = append(s.dests, r.addrPort())
		}
		ne := r.count()
		for j := 0; j < ne && r.err == nil; j++ {
			e := pentry{svc: len(svcs), client: r.addr()}
			d := r.uvarint()
			e.ms = r.uvarint()
			if r.err == nil && d >= uint64(len(s.dests)) {
				r.fail(fmt.Sprintf("template names real %d of %d", d, len(s.dests)))
			}
			e.dest = int(min(d, uint64(len(s.dests))))
			ents = append(ents, e)
		}
		svcs = append(svcs, s)
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail(fmt.Sprintf("%d bytes after the table", len(r.b)))
	}
	if r.err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errPersistence, r.err)
	}
	return svcs, ents, nil
}

// reader reads the blob, remembering the first error (every read after it
// returns zero values).
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a number of items, each at least one byte long: one larger
// than the bytes left is malformed (and would allocate for nothing).
func (r *reader) count() int {
	v := r.uvarint()
	if v > uint64(len(r.b)) {
		r.fail("count past the end")
		return 0
	}
	return int(v)
}

func (r *reader) addr() netip.Addr {
	n := int(r.byte())
	if r.err != nil {
		return netip.Addr{}
	}
	if (n != 4 && n != 16) || len(r.b) < n {
		r.fail("bad address")
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(r.b[:n])
	r.b = r.b[n:]
	return a
}

func (r *reader) addrPort() netip.AddrPort {
	a := r.addr()
	if r.err != nil {
		return netip.AddrPort{}
	}
	if len(r.b) < 2 {
		r.fail("truncated")
		return netip.AddrPort{}
	}
	p := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return netip.AddrPortFrom(a, p)
}
