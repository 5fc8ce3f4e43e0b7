package ipaddr

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Hooks for the namespace tests in package ipaddr_test.

func (r *IPaddr) eachView(f func(v *view)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.views {
		f(v)
	}
}

// ViewCounters sums the views' resyncs and interrupted dumps.
func (r *IPaddr) ViewCounters() (resyncs, interrupted uint64) {
	r.eachView(func(v *view) {
		resyncs += v.resyncs.Load()
		interrupted += v.interrupted.Load()
	})
	return resyncs, interrupted
}

// ViewLoads sums the views' completed loads.
func (r *IPaddr) ViewLoads() (n uint64) {
	r.eachView(func(v *view) { n += v.loads.Load() })
	return n
}

// ForceResync has every view reload as after an overrun.
func (r *IPaddr) ForceResync() { r.eachView(func(v *view) { v.overrun("forced resync (test)") }) }

// StallViews shrinks the views' subscription buffers to the minimum and
// stops them reading until the returned function is called: changes made
// meanwhile overrun the subscription.
func (r *IPaddr) StallViews() (resume func()) {
	var vs []*view
	r.eachView(func(v *view) {
		_ = unix.SetsockoptInt(v.sock.GetFd(), unix.SOL_SOCKET, unix.SO_RCVBUF, 0)
		v.mu.Lock()
		vs = append(vs, v)
	})
	return func() {
		for _, v := range vs {
			v.mu.Unlock()
		}
	}
}

// BreakViews closes the views' subscription sockets behind their back,
// as if the subscription failed, and waits until they notice.
func (r *IPaddr) BreakViews() {
	r.eachView(func(v *view) {
		v.fd.mu.Lock()
		v.fd.closed = true
		v.sock.Close()
		v.fd.mu.Unlock()
		<-v.done
	})
}

// ForgetInView drops ip from every view, as if its notification had not
// arrived yet (IPv6's lags behind the add under load).
func (r *IPaddr) ForgetInView(ip netip.Addr) {
	r.eachView(func(v *view) {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, e := range v.lookup(ip) {
			v.delAddr(e)
		}
	})
}

// SetDeleteCost sets every view's deletion cost estimate.
func (r *IPaddr) SetDeleteCost(d time.Duration) {
	r.eachView(func(v *view) { v.deleteCost.Store(int64(d)) })
}

// DeleteCost is the largest of the views' deletion cost estimates.
func (r *IPaddr) DeleteCost() (d time.Duration) {
	r.eachView(func(v *view) { d = max(d, v.deleteCostNow()) })
	return d
}
