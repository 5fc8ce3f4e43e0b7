package ipaddr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// placement is where a VIP goes: the link and the exact address.
type placement struct {
	link   linkInfo
	prefix netip.Prefix
}

// errPlacement says this node has no place for the VIP (no such
// interface, no subnet holding it): node-local, another node may.
type errPlacement struct{ error }

// resolve decides where p's VIP belongs: the named interface, or the one
// whose subnet holds the VIP (the longest such prefix); the prefix length
// is the configured one, else that subnet's, else a host route.
func resolve(ctx context.Context, v *view, p Params) (placement, error) {
	var at placement
	var err error
	if e := v.with(ctx, func() { at, err = resolveNow(v, p) }); e != nil {
		return placement{}, e
	}
	var ep errPlacement
	if errors.As(err, &ep) {
		// The interface or subnet may be just out of the view's reach:
		// catch up with the kernel before saying this node cannot.
		if err := v.sync(ctx); err != nil {
			return placement{}, err
		}
		if e := v.with(ctx, func() { at, err = resolveNow(v, p) }); e != nil {
			return placement{}, e
		}
	}
	return at, err
}

// resolveNow resolves from the view as it is; v.mu is held.
func resolveNow(v *view, p Params) (placement, error) {
	index, bits, found := v.subnet(p.IP, p.NIC)
	var link linkInfo
	var ok bool
	switch {
	case p.NIC != "":
		if link, ok = v.linkByName(p.NIC); !ok {
			return placement{}, errPlacement{fmt.Errorf("interface %s: not found", p.NIC)}
		}
	case found:
		if link, ok = v.linkByIndex(index); !ok {
			return placement{}, errPlacement{fmt.Errorf("link %d: not found", index)}
		}
	default:
		return placement{}, errPlacement{fmt.Errorf("no interface has a subnet holding %s: set nic", p.IP)}
	}
	if p.Bits != 0 {
		bits = p.Bits
	}
	if bits <= 0 {
		bits = p.IP.BitLen()
	}
	return placement{link: link, prefix: netip.PrefixFrom(p.IP, bits)}, nil
}

// lookup returns where ip is configured, from the view as it is.
func lookup(ctx context.Context, v *view, ip netip.Addr) ([]addrEntry, error) {
	var es []addrEntry
	err := v.with(ctx, func() { es = v.lookup(ip) })
	return es, err
}

// find returns where ip is configured, as the kernel has it now: the
// view first catches up with every change made before the call (a
// barrier, no dump), and for IPv6, whose notification of a new address
// may lag behind the add, an address it lacks is asked for.
func find(ctx context.Context, v *view, ip netip.Addr) ([]addrEntry, error) {
	if err := v.sync(ctx); err != nil {
		return nil, err
	}
	if es, err := lookup(ctx, v, ip); err != nil || len(es) > 0 || ip.Is4() {
		return es, err
	}
	return getAddr6(ip)
}

// seen returns where ip is configured as the view has it, if anywhere,
// else as the kernel has it now (find). A recurring monitor's question:
// the view follows the kernel's notifications within milliseconds, and
// the next monitor is seconds away, so a VIP deleted in the last of
// those milliseconds is found by the next one; a VIP found missing is
// the verdict that starts a recovery, and that one is always the
// kernel's. Each barrier of find cost a monitor a send and a wake-up;
// a thousand VIPs monitored every 10 s were a hundred of each a second.
func seen(ctx context.Context, v *view, ip netip.Addr) ([]addrEntry, error) {
	if es, err := lookup(ctx, v, ip); err != nil || len(es) > 0 {
		return es, err
	}
	return find(ctx, v, ip)
}

// getAddr6 asks the kernel for one IPv6 address (RTM_GETADDR without a
// dump, which IPv4 does not have), on a socket of the caller's namespace.
func getAddr6(ip netip.Addr) ([]addrEntry, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETADDR, 0)
	req.AddData(nl.NewIfAddrmsg(unix.AF_INET6))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip.AsSlice()))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR)
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", ip, err)
	}
	var out []addrEntry
	for _, m := range msgs {
		if e, ok := parseAddr(m); ok && e.ip == ip {
			out = append(out, e)
		}
	}
	return out, nil
}

// add configures the VIP, with the kernel lifetime life (0: permanent);
// it reports whether the address was already there (then it is left as
// it is, but for its lifetime: a second start is not a failure).
func add(ctx context.Context, v *view, p Params, at placement, life time.Duration) (already bool, err error) {
	var other string
	var there addrEntry
	check := func() {
		already, other = false, ""
		for _, e := range v.lookup(p.IP) {
			if e.link == at.link.index {
				already, there = true, e
				return
			}
			other = v.linkName(e.link)
		}
	}
	if err := v.with(ctx, check); err != nil {
		return false, err
	}
	if already || other != "" {
		// Believed only as the kernel has it now (it may have gone).
		if err := v.sync(ctx); err != nil {
			return false, err
		}
		if err := v.with(ctx, check); err != nil {
			return false, err
		}
	}
	if already {
		// As it is (its prefix may differ from the one configured).
		return true, v.write(func(w addrWriter) error { return extend(w, there, life) })
	}
	if other != "" {
		return false, fmt.Errorf("%s is already configured on %s, not %s", p.IP, other, at.link.name)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.IP.AsSlice(), Mask: net.CIDRMask(at.prefix.Bits(), p.IP.BitLen())},
		Label: p.Label, LinkIndex: at.link.index}
	if p.Broadcast.IsValid() {
		a.Broadcast = p.Broadcast.AsSlice()
	}
	if p.IP.Is6() {
		// Duplicate address detection would hold the address tentative
		// (unusable) for a second or more after a failover; the cluster
		// already guarantees that no other director holds it.
		a.Flags = unix.IFA_F_NODAD
	}
	a.ValidLft, a.PreferedLft = lifetimeSeconds(life), lifetimeSeconds(life)
	err = v.addBatched(a, addrEntry{ip: p.IP, bits: at.prefix.Bits(), link: at.link.index})
	if errors.Is(err, unix.EEXIST) {
		// Added by someone else since the check: Keep gives it the
		// lifetime once the view has it.
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("add %s to %s: %w", at.prefix, at.link.name, err)
	}
	return false, nil
}

// remove deletes the VIP from wherever it is configured and touches
// nothing else. Deleting a primary IPv4 address normally deletes the
// secondaries of its subnet with it, so when the VIP is a primary with
// secondaries, promote_secondaries is switched on for that interface
// first and note says so.
func remove(ctx context.Context, v *view, ip netip.Addr) (removed bool, note string, err error) {
	es, err := find(ctx, v, ip)
	if err != nil {
		return false, "", err
	}
	for _, e := range es {
		if e.own && ip.Is4() {
			// Whether it is a primary is known from the kernel only.
			if err := v.sync(ctx); err != nil {
				return false, note, err
			}
			if es, err = lookup(ctx, v, ip); err != nil {
				return false, note, err
			}
			break
		}
	}
	for _, e := range es {
		var name string
		var others int
		if err := v.with(ctx, func() { name, others = v.linkName(e.link), v.others(e) }); err != nil {
			return removed, note, err
		}
		if ip.Is4() && e.flags&unix.IFA_F_SECONDARY == 0 && !e.peer && others > 0 {
			if err := v.write(func(w addrWriter) error { return w.PromoteSecondaries(e.link) }); err != nil {
				return removed, note, fmt.Errorf("%s is the primary address of its subnet on %s with %d secondaries, and promote_secondaries cannot be set: %w", ip, name, others, err)
			}
			note = fmt.Sprintf("set promote_secondaries on %s so that its %d other addresses survive", name, others)
		}
		a := e.netlinkAddr()
		err := v.write(func(w addrWriter) error { return timedDel(v, w, a) })
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return removed, note, fmt.Errorf("delete %s from %s: %w", ip, name, err)
		}
		v.own(e, false)
		removed = true
	}
	return removed, note, nil
}

// releasable is how a release deletes ip (v.mu held, the view synced
// once for all of them): the entries that deleting takes nothing else
// with go into the release's batches of deletions (fast); a VIP with any
// other goes through remove, one round trip after another (slow).
func (v *view) releasable(ip netip.Addr, added addrEntry) (fast []addrEntry, slow bool) {
	es := v.lookup(ip)
	if len(es) == 0 && added.ip == ip {
		// Not in the view: the kernel's notification of an IPv6 add can
		// lag behind the barrier that ended our override of it. Delete
		// what we added all the same (EADDRNOTAVAIL: truly gone).
		return []addrEntry{added}, false
	}
	for _, e := range es {
		if !v.alone(e) {
			return nil, true
		}
	}
	return es, false
}

// alone reports whether deleting e takes no other address with it and
// needs nothing but its prefix (v.mu held): a host prefix (/32, /128, the
// usual VIP), any IPv6 address, an IPv4 secondary (the common VIP in the
// subnet of the interface's own address), a primary alone in its subnet.
// Deleting a primary with secondaries deletes them too (remove sets
// promote_secondaries first); the kernel's flags of an address this
// plugin just changed are not known yet, and a point-to-point address is
// named by its peer.
func (v *view) alone(e addrEntry) bool {
	switch {
	case e.bits == e.ip.BitLen():
		return true
	case e.own || e.peer:
		return false
	case e.ip.Is6(), e.flags&unix.IFA_F_SECONDARY != 0:
		return true
	}
	return v.others(e) == 0
}

// deleteAll deletes es (each alone) in one request to the kernel and
// returns each one's result; an address already gone counts as deleted.
func deleteAll(v *view, es []addrEntry) []error {
	as := make([]*netlink.Addr, len(es))
	for i, e := range es {
		as[i] = e.netlinkAddr()
	}
	errs := v.writeAll(len(as), func(w addrWriter) []error { return timedDelAll(v, w, as) })
	var gone []addrEntry
	for i, err := range errs {
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			errs[i] = nil
		}
		if errs[i] == nil {
			gone = append(gone, es[i])
		}
	}
	v.ownAll(gone, false)
	return errs
}

// netlinkAddr is e as netlink names an address to change or delete.
func (e addrEntry) netlinkAddr() *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: e.ip.AsSlice(), Mask: net.CIDRMask(e.bits, e.ip.BitLen())}, LinkIndex: e.link}
}

// timedDel deletes a and folds what the kernel took into the view's
// deletion cost (the release estimate), its own turn only: timed with
// the others' turns it waited for, 1,000 concurrent stops had made the
// estimate four times the real release and the next takeover wait 5 s
// for it. A run of deletions counts by its pace (view.endDelete).
func timedDel(v *view, w addrWriter, a *netlink.Addr) error {
	return timed(v, 1, func() []error { return []error{w.AddrDel(nil, a)} })[0]
}

// timedDelAll is timedDel for a batch: one request of len(as) turns.
func timedDelAll(v *view, w addrWriter, as []*netlink.Addr) []error {
	return timed(v, len(as), func() []error { return w.AddrDelAll(as) })
}

// timed runs del, one request of n deletions, and folds what it took
// into the view's deletion cost.
func timed(v *view, n int, del func() []error) []error {
	ended := v.beginDelete()
	t0 := time.Now()
	errs := del()
	done := 0
	for _, err := range errs {
		if err == nil {
			done++
		}
	}
	v.endDelete(ended, time.Since(t0), n, done)
	return errs
}

// lifetimeSeconds is life as the kernel counts it: whole seconds, rounded
// up; 0 is permanent (no IFA_CACHEINFO is sent).
func lifetimeSeconds(life time.Duration) int {
	if life <= 0 {
		return 0
	}
	return int((life + time.Second - 1) / time.Second)
}

// extend gives the address e, as the kernel has it, the lifetime life
// from now (0: permanent again). The kernel changes nothing else of an
// address it has; one it no longer has, it would add, so callers extend
// only what they just found and only under the node's lease.
func extend(w addrWriter, e addrEntry, life time.Duration) error {
	a := e.netlinkAddr()
	a.ValidLft, a.PreferedLft = lifetimeSeconds(life), lifetimeSeconds(life)
	if e.ip.Is6() {
		a.Flags = unix.IFA_F_NODAD // a change replaces the flags: keep the add's
	}
	if err := w.AddrReplace(nil, a); err != nil {
		return fmt.Errorf("set the lifetime of %s: %w", e.prefix(), err)
	}
	return nil
}
