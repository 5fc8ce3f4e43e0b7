package director

import (
	"hash/fnv"
	"net/netip"
	"sort"
)

// Schedulers lists the scheduling algorithms both backends implement, with
// the kernel's names.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh"}

// ValidScheduler reports whether name is one of Schedulers.
func ValidScheduler(name string) bool {
	for _, s := range Schedulers {
		if s == name {
			return true
		}
	}
	return false
}

// node is what a scheduler sees of one real server.
type node interface {
	weight() int
	// active and inactive connections, as IPVS counts them.
	conns() (active, inactive int64)
	overloaded() bool
	addrKey() string
}

// scheduler picks a real server for a new connection. reset is called
// whenever the set of real servers or a weight changes; both run under
// the service's lock.
type scheduler interface {
	reset(nodes []node)
	pick(nodes []node, src, dst netip.Addr) node
}

func newScheduler(name string) scheduler {
	switch name {
	case "rr":
		return &rr{}
	case "wrr":
		return &wrr{}
	case "lc":
		return leastConn{overhead: lcOverhead, weighted: false}
	case "wlc":
		return leastConn{overhead: lcOverhead, weighted: true}
	case "sed":
		return leastConn{overhead: sedOverhead, weighted: true}
	case "nq":
		return leastConn{overhead: sedOverhead, weighted: true, idleFirst: true}
	case "sh":
		return &hashed{bySource: true}
	case "dh":
		return &hashed{}
	case "mh":
		return &maglev{}
	case "lblc":
		return &lblc{}
	case "lblcr":
		return &lblc{replicated: true}
	}
	return nil
}

// usable is IPVS's test for a new connection: weight above zero and not
// over its upper threshold.
func usable(n node) bool { return n.weight() > 0 && !n.overloaded() }

// rr: round robin over usable servers.
type rr struct{ last int }

func (s *rr) reset([]node) {}

func (s *rr) pick(nodes []node, _, _ netip.Addr) node {
	for i := 1; i <= len(nodes); i++ {
		j := (s.last + i) % len(nodes)
		if usable(nodes[j]) {
			s.last = j
			return nodes[j]
		}
	}
	return nil
}

// wrr: the kernel's interleaved weighted round robin (ip_vs_wrr.c): the
// current weight steps down by the weights' gcd, and a server is picked
// while its weight is at least the current weight.
type wrr struct {
	i, cw int
}

func (s *wrr) reset([]node) { s.i, s.cw = -1, 0 }

func (s *wrr) pick(nodes []node, _, _ netip.Addr) node {
	mw, di := 0, 0
	for _, n := range nodes {
		if w := n.weight(); w > 0 {
			mw = max(mw, w)
			di = gcd(di, w)
		}
	}
	if mw == 0 {
		return nil
	}
	if s.cw > mw {
		s.cw = mw
	}
	for range len(nodes) * (mw/di + 1) {
		s.i = (s.i + 1) % len(nodes)
		if s.i == 0 {
			s.cw -= di
			if s.cw <= 0 {
				s.cw = mw
			}
		}
		if n := nodes[s.i]; n.weight() >= s.cw && usable(n) {
			return n
		}
	}
	return nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func lcOverhead(n node) int64 {
	a, i := n.conns()
	return a<<8 + i
}

func sedOverhead(n node) int64 {
	a, _ := n.conns()
	return a + 1
}

// leastConn covers lc, wlc, sed and nq: the usable server with the least
// overhead (per unit of weight when weighted); nq first takes any idle one.
type leastConn struct {
	overhead  func(node) int64
	weighted  bool
	idleFirst bool
}

func (leastConn) reset([]node) {}

func (s leastConn) pick(nodes []node, _, _ netip.Addr) node {
	var best node
	var boh, bw int64
	for _, n := range nodes {
		if !usable(n) {
			continue
		}
		if s.idleFirst {
			if a, _ := n.conns(); a == 0 {
				return n
			}
		}
		oh, w := s.overhead(n), int64(n.weight())
		if !s.weighted {
			w = 1
		}
		if best == nil || oh*bw < boh*w {
			best, boh, bw = n, oh, w
		}
	}
	return best
}

// hashed covers sh and dh: a 256-bucket table filled with the servers of
// positive weight in turn, each taking as many consecutive buckets as its
// weight (the kernel's weighted sh), looked up by a hash of the source or
// destination address. A bucket whose server is unusable falls over to the
// next usable bucket (the kernel's sh-fallback flag), so a key stays put
// while its server lives.
type hashed struct {
	bySource bool
	table    []node
	n        int
}

func (s *hashed) reset(nodes []node) {
	s.n, s.table = len(nodes), nil
	var live []node
	for _, n := range nodes {
		if n.weight() > 0 {
			live = append(live, n)
		}
	}
	if len(live) == 0 {
		return
	}
	s.table = make([]node, 256)
	j, used := 0, 0
	for b := range s.table {
		s.table[b] = live[j]
		used++
		if used >= live[j].weight() {
			j, used = (j+1)%len(live), 0
		}
	}
}

func (s *hashed) pick(nodes []node, src, dst netip.Addr) node {
	if s.n != len(nodes) {
		s.reset(nodes)
	}
	if s.table == nil {
		return nil
	}
	key := dst
	if s.bySource {
		key = src
	}
	b := int(hashAddr(key) % 256)
	for i := range 256 {
		if n := s.table[(b+i)%256]; usable(n) {
			return n
		}
	}
	return nil
}

func hashAddr(a netip.Addr) uint32 {
	h := fnv.New32a()
	b := a.As16()
	_, _ = h.Write(b[:])
	return h.Sum32()
}

func hashString(s string, seed byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte{seed})
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

// maglev is mh: Maglev consistent hashing (Eisenbud et al., 2016) over a
// 4093-entry lookup table, weights giving servers proportionally more
// turns; only usable servers take entries, so a server's removal moves
// only the keys it held.
type maglev struct {
	table []int
	n     int
}

const maglevSize = 4093 // prime

func (s *maglev) reset(nodes []node) {
	s.n = len(nodes)
	s.table = nil
	var live []int
	for i, n := range nodes {
		if usable(n) {
			live = append(live, i)
		}
	}
	if len(live) == 0 {
		return
	}
	// Order by address so the table does not depend on insertion order.
	sort.Slice(live, func(a, b int) bool { return nodes[live[a]].addrKey() < nodes[live[b]].addrKey() })
	offset := make([]uint64, len(live))
	skip := make([]uint64, len(live))
	next := make([]uint64, len(live))
	g := 0
	for k, i := range live {
		key := nodes[i].addrKey()
		offset[k] = hashString(key, 1) % maglevSize
		skip[k] = hashString(key, 2)%(maglevSize-1) + 1
		g = gcd(g, nodes[i].weight())
	}
	s.table = make([]int, maglevSize)
	for i := range s.table {
		s.table[i] = -1
	}
	filled := 0
	for filled < maglevSize {
		for k, i := range live {
			for turn := 0; turn < nodes[i].weight()/g && filled < maglevSize; turn++ {
				for {
					c := (offset[k] + next[k]*skip[k]) % maglevSize
					next[k]++
					if s.table[c] < 0 {
						s.table[c] = i
						filled++
						break
					}
				}
			}
		}
	}
}

func (s *maglev) pick(nodes []node, src, _ netip.Addr) node {
	if s.n != len(nodes) {
		s.reset(nodes)
	}
	if len(s.table) == 0 {
		return nil
	}
	n := nodes[s.table[hashAddr(src)%maglevSize]]
	if !usable(n) {
		return nil
	}
	return n
}

// lblc is locality-based least-connection (and lblcr, its replicated
// form): each destination address sticks to a server (a set of servers)
// chosen by wlc, until that server is unusable or overloaded (more active
// connections than its weight while another is under half its weight).
type lblc struct {
	replicated bool
	sets       map[netip.Addr][]node
}

func (s *lblc) reset([]node) { s.sets = nil }

func (s *lblc) pick(nodes []node, _, dst netip.Addr) node {
	if s.sets == nil {
		s.sets = map[netip.Addr][]node{}
	}
	wlc := leastConn{overhead: lcOverhead, weighted: true}
	set := s.sets[dst]
	var live []node
	for _, n := range set {
		if usable(n) {
			live = append(live, n)
		}
	}
	if cur := wlc.pick(live, dst, dst); cur != nil && !s.busy(cur, nodes) {
		return cur
	}
	n := wlc.pick(nodes, dst, dst)
	if n == nil {
		return nil
	}
	if s.replicated {
		s.sets[dst] = append(live, n)
	} else {
		s.sets[dst] = []node{n}
	}
	return n
}

func (s *lblc) busy(n node, nodes []node) bool {
	if a, _ := n.conns(); a <= int64(n.weight()) {
		return false
	}
	for _, o := range nodes {
		if a, _ := o.conns(); usable(o) && a*2 < int64(o.weight()) {
			return true
		}
	}
	return false
}
