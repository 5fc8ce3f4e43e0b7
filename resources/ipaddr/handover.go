package ipaddr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// handOver starts forwarding, for p.Handover, what still reaches this
// node for p's VIP (in namespace ns) to its next holder; failing to is
// logged, not returned: the stop goes on.
func (r *IPaddr) handOver(ctx context.Context, v *view, ns nsID, id string, p Params) {
	_, link, ok, err := placed(ctx, v, p, find)
	if err != nil || !ok {
		return
	}
	// A neighbour entry for the VIP left from an earlier hand-over names
	// the holder before: forwarded there, the packets would be dropped.
	// Resolved afresh, they wait for the next holder's announcement.
	if err := netlink.NeighDel(&netlink.Neigh{LinkIndex: link.index, IP: p.IP.AsSlice()}); err != nil && !errors.Is(err, unix.ENOENT) {
		r.log.Warn("hand-over: cannot forget the VIP's old neighbour entry", "id", id, "err", err)
	}
	if err := r.fwd.hold(ns, link.name, p.Handover); err != nil {
		r.log.Warn("no hand-over: packets reaching this node for the VIP before its next holder announces it are dropped", "id", id, "err", err)
		return
	}
	r.log.Info("hand-over: forwarding what still arrives for the VIP to its next holder", "id", id, "interface", link.name, "for", p.Handover)
}

// forwarder keeps an interface forwarding IPv4 for a while after a VIP
// left it (the handover parameter): a client whose ARP cache still points
// here sends the VIP's packets here until the next holder's gratuitous
// ARP reaches it, and a planned move's gap (stop, report, claim, start:
// a few milliseconds) would drop them — a SYN then waits a second for its
// retransmission. Forwarded, they wait in the kernel's neighbour queue
// until the next holder answers for the VIP, then go to it. Nothing here
// holds the VIP meanwhile: the node routes, it does not answer.
type forwarder struct {
	mu     sync.Mutex
	ifaces map[string]*forwarding // by namespace and interface
}

type forwarding struct {
	f     *os.File // the interface's forwarding sysctl, opened in its namespace
	was   []byte   // its value before the first hold
	until time.Time
	timer *time.Timer
}

func newForwarder() *forwarder { return &forwarder{ifaces: map[string]*forwarding{}} }

// hold switches forwarding on for iface, in the calling thread's
// namespace (ns), for d; holds of the same interface end with the last.
func (fw *forwarder) hold(ns nsID, iface string, d time.Duration) error {
	key := fmt.Sprintf("%d:%d/%s", ns.dev, ns.ino, iface)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	h := fw.ifaces[key]
	if h == nil {
		// Opened here, the file stays bound to this namespace: the
		// restore runs on another thread.
		f, err := os.OpenFile("/proc/sys/net/ipv4/conf/"+iface+"/forwarding", os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("hand-over forwarding on %s: %w", iface, err)
		}
		was := make([]byte, 8)
		n, err := f.ReadAt(was, 0)
		if n == 0 {
			f.Close()
			return fmt.Errorf("hand-over forwarding on %s: read: %w", iface, err)
		}
		was = bytes.TrimSpace(was[:n])
		if !bytes.Equal(was, []byte("1")) {
			if _, err := f.WriteAt([]byte("1"), 0); err != nil {
				f.Close()
				return fmt.Errorf("hand-over forwarding on %s: %w", iface, err)
			}
		}
		h = &forwarding{f: f, was: was}
		fw.ifaces[key] = h
	}
	if until := time.Now().Add(d); until.After(h.until) {
		h.until = until
		if h.timer != nil {
			h.timer.Stop()
		}
		h.timer = time.AfterFunc(d, func() { fw.expire(key, h) })
	}
	return nil
}

// expire ends a hold once its time is up: the interface forwards as it
// did before.
func (fw *forwarder) expire(key string, h *forwarding) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.ifaces[key] != h || time.Now().Before(h.until) {
		return
	}
	fw.restoreLocked(key, h)
}

func (fw *forwarder) restoreLocked(key string, h *forwarding) {
	if !bytes.Equal(h.was, []byte("1")) {
		_, _ = h.f.WriteAt(h.was, 0)
	}
	h.f.Close()
	if h.timer != nil {
		h.timer.Stop()
	}
	delete(fw.ifaces, key)
}

// wait blocks until every hold has run out, at most max, then restores
// what is left: the plugin is exiting.
func (fw *forwarder) wait(max time.Duration) {
	deadline := time.Now().Add(max)
	for {
		fw.mu.Lock()
		var last time.Time
		for _, h := range fw.ifaces {
			if h.until.After(last) {
				last = h.until
			}
		}
		if len(fw.ifaces) == 0 || !time.Now().Before(deadline) || !time.Now().Before(last) {
			for key, h := range fw.ifaces {
				fw.restoreLocked(key, h)
			}
			fw.mu.Unlock()
			return
		}
		fw.mu.Unlock()
		time.Sleep(min(time.Until(last), time.Until(deadline)))
	}
}
