// Package ipaddr is the built-in IPaddr resource: the floating VIP. Start
// adds the address with netlink and announces it (gratuitous ARP for IPv4,
// unsolicited neighbour advertisements for IPv6); stop removes exactly that
// address; monitor fails when it is gone.
//
// Parameters (ocf:heartbeat:IPaddr2's names where it has one):
//
//	ip            the address (IPv4 or IPv6)
//	cidr_netmask  prefix length (default: the subnet's on the interface, else /32 or /128)
//	nic           interface (default: the one whose subnet holds ip); "eth0:0" sets the label too
//	label         IPv4 alias label, "eth0:0" or just "0"
//	broadcast     IPv4 broadcast (default: computed)
//	arp_count     announcements per burst (default 5; 0 = none)
//	arp_interval  between them (default 200ms; a bare number is milliseconds)
//	arp_repeat    a second burst this long after the first (default 2s; 0 = none)
//	arp_refresh   one announcement this often while held (default 0 = off)
//	handover      after a stop, forward what still arrives for the VIP to
//	              its next holder this long (IPv4; default 0 = off; handover.go)
//
// With ha.toml's address_lifetime (pb.Lease.lifetime_ns) the VIP gets
// that kernel lifetime and the plugin extends it while the node holds
// its lease (Keep), so that the kernel removes it if every Vigil process
// of the node is killed.
//
// The plugin process is long-lived and serves every IPaddr instance of the
// node, so it keeps, once for all of them:
//   - a view of the namespace's links and addresses fed by an rtnetlink
//     subscription (view.go): an operation looks one address up instead
//     of listing every address of the host, and a dump the kernel marks
//     interrupted is repeated, never reported;
//   - one announcer (announce.go) that sends every VIP's bursts and
//     refresh after start returns, paced so that the first announcement
//     of each of many VIPs started together goes out within the first
//     interval; stop ends them.
//
// Kernel errors are ERR_GENERIC (the cluster retries or moves the group);
// ERR_INSTALLED is kept for a node that has no place for the VIP.
package ipaddr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

// writers is how many address changes run at once: the kernel takes them
// one at a time anyway, but none waits behind a slow reply.
const writers = 4

// IPaddr implements the resource kind. One value serves every IPaddr
// instance of the node (the plugin process is shared), so it keeps one
// view of the namespace's addresses and one announcer for all of them.
type IPaddr struct {
	sdk.BaseResource
	log *slog.Logger
	ann *announcer
	fwd *forwarder

	mu    sync.Mutex
	views map[nsID]*view
	held  map[string]heldVIP // started and not stopped: what Release gives up
	// pinned is the namespace every call acts in once the first has read
	// it (ForProcess); zero: each call reads its thread's.
	pinned nsID
	pin    bool
}

// ReleaseTime estimates how long Release would take now: every held VIP
// at the measured cost of one deletion (the kernel takes them one at a
// time, even in a batch), and a millisecond for the rest (sdk.Releaser).
func (r *IPaddr) ReleaseTime() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.held) == 0 {
		return 0
	}
	var cost time.Duration
	for _, v := range r.views {
		cost = max(cost, v.deleteCostNow())
	}
	if cost == 0 {
		cost = deleteCostStart
	}
	return time.Duration(len(r.held))*cost + time.Millisecond
}

// heldVIP is a VIP this process added for an instance.
type heldVIP struct {
	ip netip.Addr
	ns nsID
	// added is the address as Start added it (zero when found by a
	// monitor): a release deletes it even when the view lacks it.
	added addrEntry
	// life is the kernel lifetime it was last given (pb.Lease's), -1
	// when not known (found by a monitor), and extended when.
	life     time.Duration
	extended time.Time
}

var _ sdk.Keeper = (*IPaddr)(nil)

// New returns the resource, logging to log, for callers that switch
// threads between network namespaces (tests): each call acts in its
// thread's namespace, which it reads (a stat of /proc/thread-self/ns/net).
func New(log *slog.Logger) *IPaddr {
	return &IPaddr{log: log, ann: newAnnouncer(log, openWire), fwd: newForwarder(), views: map[nsID]*view{}, held: map[string]heldVIP{}}
}

// ForProcess returns the resource of a plugin process, logging to log
// (sdk.Log()): the process lives in one namespace and none of its threads
// switches, so every call acts in the one the first call found. A stat per
// operation — a hundred a second with a thousand VIPs monitored every
// 10 s, each a Go system call that wakes the runtime's sysmon thread — was
// about a third of the idle plugin's CPU (bench-scale).
func ForProcess(log *slog.Logger) *IPaddr {
	r := New(log)
	r.pin = true
	return r
}

func params(in *pb.Instance) (Params, *pb.Result) {
	p, err := Parse(in.GetParams())
	if err != nil {
		return p, sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err)
	}
	return p, nil
}

// view returns the view of the caller's network namespace (the plugin
// runs in the node's; tests switch threads into theirs), opening it on
// first use or when its subscription broke.
func (r *IPaddr) view(ctx context.Context) (*view, nsID, error) {
	var err error
	r.mu.Lock()
	ns := r.pinned
	if ns == (nsID{}) {
		r.mu.Unlock() // (a system call: not under the lock)
		if ns, err = currentNS(); err != nil {
			return nil, ns, err
		}
		r.mu.Lock()
		if r.pin {
			r.pinned = ns
		}
	}
	v := r.views[ns]
	if v != nil && v.dead.Load() {
		v.close()
		v = nil
	}
	if v == nil {
		if v, err = openView(r.log, writers); err != nil {
			r.mu.Unlock()
			return nil, ns, err
		}
		r.views[ns] = v
	}
	r.mu.Unlock()
	return v, ns, v.await(ctx)
}

// transient is the result for a kernel error that may pass: the cluster
// retries or recovers the group (ERR_GENERIC), it does not ban the node.
func transient(err error) *pb.Result {
	return sdk.Fail(pb.Code_ERR_GENERIC, "%v", err)
}

// announce (re)starts announcing instance id on link. Failing to
// announce is logged, not returned: the address is up and the kernel
// answers for it, so a missing announcement only slows caches down.
func (r *IPaddr) announce(id string, p Params, ns nsID, link linkInfo) {
	if err := r.ann.start(id, p.IP, ns, link.iface(), p.Announce); err != nil {
		r.log.Warn("cannot announce the VIP", "id", id, "err", err)
	}
}

func (r *IPaddr) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	p, res := params(in)
	if res != nil {
		return res, nil
	}
	v, ns, err := r.view(ctx)
	if err != nil {
		return transient(err), nil
	}
	at, err := resolve(ctx, v, p)
	if ep := (errPlacement{}); errors.As(err, &ep) {
		// Node-local: this node cannot hold the VIP, another may.
		return sdk.Fail(pb.Code_ERR_INSTALLED, "%v", err), nil
	} else if err != nil {
		return transient(err), nil
	}
	life, t0 := time.Duration(in.GetLease().GetLifetimeNs()), time.Now()
	already, err := add(ctx, v, p, at, life)
	if err != nil {
		return transient(err), nil
	}
	what := "added"
	if already {
		what = "already present"
	}
	r.log.Info("VIP "+what, "id", in.GetId(), "address", at.prefix.String(), "interface", at.link.name, "label", p.Label)
	h := heldVIP{ip: p.IP, ns: ns, life: life, extended: t0, added: addrEntry{ip: p.IP, bits: at.prefix.Bits(), link: at.link.index}}
	if already {
		h.life = -1 // another may have added it meanwhile: Keep sees to it
	}
	r.mu.Lock()
	r.held[in.GetId()] = h
	r.mu.Unlock()
	r.announce(in.GetId(), p, ns, at.link)
	return &pb.Result{Code: pb.Code_SUCCESS, Output: fmt.Sprintf("%s %s on %s", at.prefix, what, at.link.name)}, nil
}

func (r *IPaddr) Stop(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	p, res := params(in)
	if res != nil {
		return res, nil
	}
	// Silence the announcements before the address goes.
	r.ann.stop(in.GetId())
	v, ns, err := r.view(ctx)
	if err != nil {
		return transient(err), nil
	}
	if p.Handover > 0 {
		// Forward from before the address goes: no packet in between.
		r.handOver(ctx, v, ns, in.GetId(), p)
	}
	removed, note, err := remove(ctx, v, p.IP)
	if note != "" {
		r.log.Info(note, "id", in.GetId())
	}
	if err != nil {
		return transient(err), nil
	}
	if removed {
		r.log.Info("VIP removed", "id", in.GetId(), "address", p.IP.String())
	}
	r.mu.Lock()
	delete(r.held, in.GetId())
	r.mu.Unlock()
	return sdk.OK(), nil
}

// Release removes every VIP this process holds, silencing all first, with
// as many deletions in flight as the view has writers: the node's lease
// ran out and the daemon did not stop them in time (sdk.Releaser).
func (r *IPaddr) Release(ctx context.Context) []string {
	r.mu.Lock()
	held, views := r.held, maps.Clone(r.views)
	r.held = map[string]heldVIP{}
	r.mu.Unlock()
	// The pace the next estimate takes is the whole release's.
	for _, v := range views {
		defer v.holdRun()()
	}
	ids := slices.Sorted(maps.Keys(held))
	for _, id := range ids {
		r.ann.stop(id)
	}
	// One barrier for all: the view then has every address added so far.
	for _, v := range views {
		if err := v.sync(ctx); err != nil {
			r.log.Error("releasing: the address view cannot catch up; deleting what it has", "err", err)
		}
	}
	// What deleting takes nothing else with (releasable) goes in
	// batches, one request to the kernel each; any other VIP on its own
	// (remove). Up to writers of them at once.
	failed := func(id string, ip netip.Addr, err error) {
		r.log.Error("cannot release the VIP", "id", id, "address", ip.String(), "err", err)
	}
	type gone struct {
		id string
		e  addrEntry
	}
	fast := map[*view][]gone{}
	var jobs []func()
	for _, id := range ids {
		h, v := held[id], views[held[id].ns]
		if v == nil {
			continue // its namespace's view closed: nothing added through it remains known
		}
		var es []addrEntry
		var slow bool
		if err := v.with(ctx, func() { es, slow = v.releasable(h.ip, h.added) }); err != nil {
			failed(id, h.ip, err)
			continue
		}
		for _, e := range es {
			fast[v] = append(fast[v], gone{id, e})
		}
		if slow {
			jobs = append(jobs, func() {
				if _, _, err := remove(ctx, v, h.ip); err != nil {
					failed(id, h.ip, err)
				}
			})
		}
	}
	for v, gs := range fast {
		for chunk := range slices.Chunk(gs, nlBatch) {
			jobs = append(jobs, func() {
				es := make([]addrEntry, len(chunk))
				for i, g := range chunk {
					es[i] = g.e
				}
				for i, err := range deleteAll(v, es) {
					if err != nil {
						failed(chunk[i].id, chunk[i].e.ip, err)
					}
				}
			})
		}
	}
	sem := make(chan struct{}, writers)
	var wg sync.WaitGroup
	for _, job := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			job()
		})
	}
	wg.Wait()
	return ids
}

// Keep gives every held VIP that is due the kernel lifetime life from
// now (sdk.Keeper): those never given it, and those past half of it.
// Each goes through under, so none is extended once the lease is out or
// while a release runs; a VIP the view no longer has is left to the
// monitor (extending it would add it again).
func (r *IPaddr) Keep(ctx context.Context, life time.Duration, under func(func()) bool) {
	now := time.Now()
	r.mu.Lock()
	type due struct {
		id string
		h  heldVIP
		v  *view
	}
	var todo []due
	for id, h := range r.held {
		if h.life != life || life > 0 && now.Sub(h.extended) >= life/2 {
			todo = append(todo, due{id, h, r.views[h.ns]})
		}
	}
	r.mu.Unlock()
	for _, d := range todo {
		if d.v == nil {
			continue
		}
		es, err := lookup(ctx, d.v, d.h.ip)
		if err == nil && len(es) == 0 {
			// Not in the view: its notification may lag behind the add
			// (IPv6 does under load); ask the kernel rather than skip it
			// and count it extended — a lifetime switched off would
			// otherwise never reach the kernel, which then removes it.
			es, err = find(ctx, d.v, d.h.ip)
		}
		if err != nil {
			r.log.Warn("cannot extend the VIP's lifetime", "id", d.id, "address", d.h.ip.String(), "err", err)
			continue
		}
		t0 := time.Now()
		extended := false
		for _, e := range es {
			if e.peer {
				continue // a point-to-point address is an operator's, and a change without its peer would add another
			}
			if !under(func() { err = d.v.write(func(w addrWriter) error { return extend(w, e, life) }) }) {
				return
			}
			if err != nil {
				r.log.Warn("cannot extend the VIP's lifetime", "id", d.id, "address", d.h.ip.String(), "err", err)
			}
			extended = extended || err == nil
		}
		if extended {
			r.mu.Lock()
			if h, ok := r.held[d.id]; ok && h.ip == d.h.ip && h.ns == d.h.ns {
				h.life, h.extended = life, t0
				r.held[d.id] = h
			}
			r.mu.Unlock()
		}
	}
}

// placed finds the VIP and its link, preferring the configured interface,
// with look: find (as the kernel has it now) or seen.
func placed(ctx context.Context, v *view, p Params, look func(context.Context, *view, netip.Addr) ([]addrEntry, error)) (addrEntry, linkInfo, bool, error) {
	es, err := look(ctx, v, p.IP)
	if err != nil || len(es) == 0 {
		return addrEntry{}, linkInfo{}, false, err
	}
	e, link := es[0], linkInfo{index: es[0].link}
	err = v.with(ctx, func() {
		link.name = v.linkName(e.link)
		for _, o := range es {
			if l, ok := v.linkByIndex(o.link); ok && (l.name == p.NIC || o == es[0]) {
				e, link = o, l
			}
		}
	})
	return e, link, err == nil, err
}

// locate finds p's VIP: the namespace looked in, the interface it is on
// and whether it is there at all; a failure to look is a transient
// result. A recurring monitor (recurring) believes the view when it has
// the VIP (seen).
func (r *IPaddr) locate(ctx context.Context, p Params, recurring bool) (nsID, linkInfo, bool, *pb.Result) {
	v, ns, err := r.view(ctx)
	if err != nil {
		return ns, linkInfo{}, false, transient(err)
	}
	look := find
	if recurring {
		look = seen
	}
	_, link, ok, err := placed(ctx, v, p, look)
	if err != nil {
		return ns, linkInfo{}, false, transient(err)
	}
	return ns, link, ok, nil
}

func (r *IPaddr) Monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	p, res := params(in)
	if res != nil {
		return res, nil
	}
	ns, link, ok, res := r.locate(ctx, p, in.GetIntervalMs() > 0)
	if res != nil {
		return res, nil
	}
	if !ok {
		return sdk.NotRunning(p.IP.String() + " is not configured on any interface"), nil
	}
	if p.NIC != "" && link.name != p.NIC {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%s is on %s, not on %s", p.IP, link.name, p.NIC), nil
	}
	// Found here: a release must take it too, even if another process
	// of this plugin added it (a plugin restart) — releasing a copy the
	// node was about to drop anyway is the safe side.
	r.mu.Lock()
	if h, ok := r.held[in.GetId()]; !ok || h.ip != p.IP || h.ns != ns {
		r.held[in.GetId()] = heldVIP{ip: p.IP, ns: ns, life: -1}
	}
	r.mu.Unlock()
	stats, held := r.ann.held(in.GetId())
	if !held && in.GetIntervalMs() > 0 {
		// A recurring monitor runs only where the group is held: after a
		// plugin restart, resume announcing. A probe (interval 0) never
		// announces: this node may hold a stale copy it is about to drop.
		r.announce(in.GetId(), p, ns, link)
		stats, held = r.ann.held(in.GetId())
	}
	out := "on " + link.name
	if held {
		out += "; " + stats.String()
	}
	return &pb.Result{Code: pb.Code_SUCCESS, Output: out}, nil
}

// Reload re-announces a held VIP: the cluster calls it when ownership was
// just resolved (a node that may have held or claimed it came back).
func (r *IPaddr) Reload(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	p, res := params(in)
	if res != nil {
		return res, nil
	}
	if r.ann.reannounce(in.GetId(), "reload") {
		return sdk.OK(), nil
	}
	ns, link, ok, res := r.locate(ctx, p, false)
	if res != nil {
		return res, nil
	}
	if !ok {
		return sdk.NotRunning(p.IP.String() + " is not configured"), nil
	}
	r.announce(in.GetId(), p, ns, link)
	return sdk.OK(), nil
}

func (r *IPaddr) Validate(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if _, res := params(in); res != nil {
		return res, nil
	}
	return sdk.OK(), nil
}

// Drain lets hand-overs in progress finish, then restores forwarding:
// the plugin is about to exit (sdk.Drainer).
func (r *IPaddr) Drain() { r.fwd.wait(maxHandover) }

// Close stops every announcement and subscription and restores
// forwarding at once (tests; the plugin process drains and exits).
func (r *IPaddr) Close() {
	r.fwd.wait(0)
	r.ann.close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for ns, v := range r.views {
		v.close()
		delete(r.views, ns)
	}
}

func (r *IPaddr) MetaData(context.Context, *pb.MetaDataRequest) (*pb.Meta, error) {
	return &pb.Meta{Name: "IPaddr", Version: "1.0", Description: "Floating IP address, announced with gratuitous ARP / unsolicited NA",
		Parameters: []*pb.Parameter{
			{Name: "ip", Type: "string", Required: true, Unique: true, Description: "the address (IPv4 or IPv6)"},
			{Name: "cidr_netmask", Type: "integer", Description: "prefix length; default: the subnet's on the interface, else a host prefix"},
			{Name: "nic", Type: "string", Description: "interface; default: the one whose subnet holds ip"},
			{Name: "label", Type: "string", Description: "IPv4 alias label (eth0:0)"},
			{Name: "broadcast", Type: "string", Description: "IPv4 broadcast; default computed"},
			{Name: "arp_count", Type: "integer", Default: fmt.Sprint(DefaultAnnounce.Count), Description: "announcements per burst"},
			{Name: "arp_interval", Type: "time", Default: DefaultAnnounce.Interval.String(), Description: "between announcements of a burst"},
			{Name: "arp_repeat", Type: "time", Default: DefaultAnnounce.Repeat.String(), Description: "second burst after this delay; 0 = none"},
			{Name: "arp_refresh", Type: "time", Default: "0", Description: "periodic announcement while held; 0 = off"},
			{Name: "handover", Type: "time", Default: "0", Description: "after a stop, forward what still arrives for the VIP to its next holder this long (IPv4); 0 = off"},
		},
		Actions: []*pb.Action{{Name: "start", TimeoutMs: 20000}, {Name: "stop", TimeoutMs: 20000},
			{Name: "monitor", TimeoutMs: 20000, IntervalMs: 10000}, {Name: "reload", TimeoutMs: 20000}}}, nil
}
