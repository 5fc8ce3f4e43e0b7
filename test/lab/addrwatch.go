package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// AddrEvent is one change of a watched address in a director's namespace.
type AddrEvent struct {
	At   time.Time
	Node string
	Addr netip.Addr
	Up   bool
	// Resync marks a change found by a full dump after the event stream
	// was lost (its time is the dump's, not the kernel's).
	Resync bool
}

// AddrWatcher follows a set of addresses in directors' namespaces through
// netlink address events, so it sees every change when the kernel makes it:
// no sampling interval to miss a short overlap, and no dump per sample
// (which, with a thousand VIPs, would itself load the machine). It records
// every change and every instant at which two directors whose links are up
// hold the same address.
type AddrWatcher struct {
	watched map[netip.Addr]bool

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	held    map[string]map[netip.Addr]bool
	down    map[string]bool
	log     []AddrEvent
	dual    []string
	unsure  []string
	// checking counts suspects not yet checked against the kernel: a
	// report waits for them, or it could miss a dual holder whose
	// address changes were already counted.
	checking int
	resyncs  int
	err      error

	// handles answer "does node hold a now?" when the event streams
	// suggest a second holder; one lock each, as a handle's socket is
	// not safe for concurrent requests.
	handles map[string]*nsHandle

	stop chan struct{}
	wg   sync.WaitGroup
}

type nsHandle struct {
	mu sync.Mutex
	h  *netlink.Handle
	ns netns.NsHandle
}

// suspect is a possible second holder found by the event streams: to
// confirm against the kernel.
type suspect struct {
	at           time.Time
	addr         netip.Addr
	node, holder string
	back         bool // node came back up holding it
}

// watchBuffer is the event socket's receive buffer: a failover of 1,000
// VIPs is a burst of 1,000 messages, which must not overflow it.
const watchBuffer = 16 << 20

// StartAddrWatcher watches addrs in the given director namespaces until
// the test ends. It returns once every namespace's current addresses are
// known.
func (l *Lab) StartAddrWatcher(addrs []netip.Addr, nodes ...string) *AddrWatcher {
	l.t.Helper()
	w := &AddrWatcher{watched: map[netip.Addr]bool{}, changed: make(chan struct{}),
		held: map[string]map[netip.Addr]bool{}, down: map[string]bool{}, stop: make(chan struct{}),
		handles: map[string]*nsHandle{}}
	for _, a := range addrs {
		w.watched[a.Unmap()] = true
	}
	l.t.Cleanup(w.Stop)
	for _, n := range nodes {
		w.held[n] = map[netip.Addr]bool{}
		ns, err := netns.GetFromPath("/run/netns/" + l.NS(n))
		if err != nil {
			l.t.Fatalf("lab: %v", err)
		}
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			ns.Close()
			l.t.Fatalf("lab: netlink in %s: %v", n, err)
		}
		w.handles[n] = &nsHandle{h: h, ns: ns}
	}
	for _, n := range nodes {
		ch, done, err := w.subscribe(n, false)
		if err != nil {
			l.t.Fatalf("lab: watch addresses in %s: %v", n, err)
		}
		w.wg.Add(1)
		go w.follow(n, ch, done)
	}
	return w
}

// holds asks the kernel whether node has a configured now.
func (w *AddrWatcher) holds(node string, a netip.Addr) (bool, error) {
	nh := w.handles[node]
	nh.mu.Lock()
	defer nh.mu.Unlock()
	addrs, err := nh.h.AddrList(nil, unix.AF_INET)
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		addrs, err = nh.h.AddrList(nil, unix.AF_INET)
	}
	if err != nil {
		return false, err
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
			return true, nil
		}
	}
	return false, nil
}

// confirm checks suspected second holders against the kernel. Each
// namespace's events come on its own socket, so a hand-over (the old
// holder deletes, then the new one adds) may be read in the wrong order:
// a suspect is a dual holder when both still hold the address when asked
// (the earlier holder first, so both held it at that instant: the new
// holder has since its add); otherwise the overlap, if any, was shorter
// than the check, and it is counted apart as unresolved.
func (w *AddrWatcher) confirm(sus []suspect) {
	for _, s := range sus {
		h1, err1 := w.holds(s.holder, s.addr)
		h2, err2 := w.holds(s.node, s.addr)
		what := fmt.Sprintf("%s: %s on %s and %s", s.at.Format(time.StampMicro), s.addr, s.node, s.holder)
		if s.back {
			what = fmt.Sprintf("%s: %s on %s (back up) and %s", s.at.Format(time.StampMicro), s.addr, s.node, s.holder)
		}
		w.mu.Lock()
		w.checking--
		switch {
		case err1 != nil || err2 != nil:
			if w.err == nil {
				w.err = errors.Join(err1, err2)
			}
			w.unsure = append(w.unsure, what)
		case h1 && h2:
			w.dual = append(w.dual, fmt.Sprintf("%s (both still held it %s later)", what, time.Since(s.at).Round(time.Microsecond)))
		default:
			w.unsure = append(w.unsure, what)
		}
		w.notifyLocked()
		w.mu.Unlock()
	}
}

// notifyLocked wakes whoever waits for a change.
func (w *AddrWatcher) notifyLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// subscribe opens the event stream of namespace ns, then dumps its
// addresses and takes the dump as the current state: a change made
// between the two shows up in both, and applying it twice is harmless.
func (w *AddrWatcher) subscribe(node string, resync bool) (chan netlink.AddrUpdate, chan struct{}, error) {
	nh := w.handles[node]
	ch := make(chan netlink.AddrUpdate, 1<<16)
	done := make(chan struct{})
	err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
		Namespace:              &nh.ns,
		ReceiveBufferSize:      watchBuffer,
		ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			if strings.HasPrefix(err.Error(), "Receive failed") {
				return // the stream ended: follow resyncs (or we stopped)
			}
			w.fail(fmt.Errorf("%s: %w", node, err))
		},
	})
	if err != nil {
		close(done)
		return nil, nil, err
	}
	nh.mu.Lock()
	addrs, err := nh.h.AddrList(nil, unix.AF_INET)
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		// An interrupted dump may lack addresses: take it again.
		addrs, err = nh.h.AddrList(nil, unix.AF_INET)
	}
	nh.mu.Unlock()
	if err != nil {
		close(done)
		return nil, nil, err
	}
	now := time.Now()
	present := map[netip.Addr]bool{}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && w.watched[ip.Unmap()] {
			present[ip.Unmap()] = true
		}
	}
	var sus []suspect
	w.mu.Lock()
	for a := range w.held[node] {
		if !present[a] {
			w.setLocked(now, node, a, false, resync)
		}
	}
	for a := range present {
		sus = append(sus, w.setLocked(now, node, a, true, resync)...)
	}
	w.mu.Unlock()
	w.confirm(sus)
	return ch, done, nil
}

// follow applies node's events until Stop; when the kernel drops events
// (the socket overflowed), it subscribes again and counts a resync.
func (w *AddrWatcher) follow(node string, ch chan netlink.AddrUpdate, done chan struct{}) {
	defer w.wg.Done()
	for {
		stopped := false
		for !stopped {
			select {
			case u, ok := <-ch:
				if !ok {
					stopped = true
					break
				}
				if u.LinkAddress.IP.To4() == nil {
					continue
				}
				ip, ok := netip.AddrFromSlice(u.LinkAddress.IP.To4())
				if !ok || !w.watched[ip] {
					continue
				}
				w.mu.Lock()
				sus := w.setLocked(time.Now(), node, ip, u.NewAddr, false)
				w.mu.Unlock()
				w.confirm(sus)
			case <-w.stop:
				close(done)
				for range ch { // the library closes ch once its socket is closed
				}
				return
			}
		}
		close(done)
		select {
		case <-w.stop:
			return
		default:
		}
		w.mu.Lock()
		w.resyncs++
		w.mu.Unlock()
		var err error
		if ch, done, err = w.subscribe(node, true); err != nil {
			w.fail(fmt.Errorf("%s: subscribe again: %w", node, err))
			return
		}
	}
}

func (w *AddrWatcher) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// setLocked records that node holds (up) or no longer holds a, if that is
// a change, and returns the other reachable holders to confirm.
func (w *AddrWatcher) setLocked(at time.Time, node string, a netip.Addr, up, resync bool) []suspect {
	if w.held[node][a] == up {
		return nil
	}
	var sus []suspect
	if up {
		w.held[node][a] = true
		if !w.down[node] {
			for other, h := range w.held {
				if other != node && h[a] && !w.down[other] {
					sus = append(sus, suspect{at: at, addr: a, node: node, holder: other})
				}
			}
		}
	} else {
		delete(w.held[node], a)
	}
	w.log = append(w.log, AddrEvent{At: at, Node: node, Addr: a, Up: up, Resync: resync})
	w.checking += len(sus)
	w.notifyLocked()
	return sus
}

// SetDown marks a node's links as down (a crashed or cut-off director
// holds nothing anyone can reach) or up again; coming back up while
// holding an address another live director holds counts as a dual holder.
func (w *AddrWatcher) SetDown(node string, down bool) {
	var sus []suspect
	w.mu.Lock()
	w.down[node] = down
	now := time.Now()
	for a := range w.held[node] {
		for other, h := range w.held {
			if !down && other != node && h[a] && !w.down[other] {
				sus = append(sus, suspect{at: now, addr: a, node: node, holder: other, back: true})
			}
		}
	}
	w.checking += len(sus)
	w.mu.Unlock()
	w.confirm(sus)
}

// Held returns how many watched addresses each node holds.
func (w *AddrWatcher) Held() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.heldLocked()
}

func (w *AddrWatcher) heldLocked() map[string]int {
	out := map[string]int{}
	for n, h := range w.held {
		out[n] = len(h)
	}
	return out
}

// Wait waits until cond holds on the numbers of addresses each node holds,
// re-checking on every change, and returns the last numbers.
func (w *AddrWatcher) Wait(timeout time.Duration, cond func(held map[string]int) bool) (map[string]int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		held, changed := w.heldLocked(), w.changed
		w.mu.Unlock()
		if cond(held) {
			return held, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return held, fmt.Errorf("addresses held %v: condition not met within %s", held, timeout)
		}
	}
}

// FirstUp returns, for each address node took up after since, the time of
// the first time it did.
func (w *AddrWatcher) FirstUp(node string, since time.Time) map[netip.Addr]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[netip.Addr]time.Time{}
	for _, e := range w.log {
		if e.Node == node && e.Up && e.At.After(since) {
			if _, seen := out[e.Addr]; !seen {
				out[e.Addr] = e.At
			}
		}
	}
	return out
}

// Events returns the changes after since, in order.
func (w *AddrWatcher) Events(since time.Time) []AddrEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.log), func(i int) bool { return w.log[i].At.After(since) })
	return append([]AddrEvent(nil), w.log[i:]...)
}

// WatchReport is what an AddrWatcher saw.
type WatchReport struct {
	Changes int      // address changes seen
	Dual    []string // instants at which two live directors held an address
	// Unresolved are second holders the event streams suggested but the
	// kernel no longer showed when asked: a hand-over read out of order,
	// or an overlap shorter than the check.
	Unresolved []string
	// Resyncs counts event streams lost (socket overflow) and rebuilt
	// from a dump: a short overlap meanwhile could be missed.
	Resyncs int
	Err     error
}

// Report returns what the watcher saw so far, once every suspected second
// holder seen so far has been checked against the kernel.
func (w *AddrWatcher) Report() WatchReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	for deadline := time.Now().Add(time.Minute); w.checking > 0 && time.Now().Before(deadline); {
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
		}
		w.mu.Lock()
	}
	return WatchReport{Changes: len(w.log), Dual: append([]string(nil), w.dual...),
		Unresolved: append([]string(nil), w.unsure...), Resyncs: w.resyncs, Err: w.err}
}

// Stop ends watching and waits for the watchers to finish.
func (w *AddrWatcher) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for n, nh := range w.handles {
		nh.h.Close()
		nh.ns.Close()
		delete(w.handles, n)
	}
}
