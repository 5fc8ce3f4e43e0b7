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
//
// The plugin process is long-lived, so the bursts and the refresh run in it
// after start returns, and stop ends them.
package ipaddr

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

// IPaddr implements the resource kind.
type IPaddr struct {
	sdk.BaseResource
	log *slog.Logger

	mu      sync.Mutex
	held    map[string]*announcer // by instance id
	closing sync.WaitGroup        // announcers closing after a stop
}

// New returns the resource, logging to log (sdk.Log() in the plugin).
func New(log *slog.Logger) *IPaddr {
	return &IPaddr{log: log, held: map[string]*announcer{}}
}

func params(in *pb.Instance) (Params, *pb.Result) {
	p, err := Parse(in.GetParams())
	if err != nil {
		return p, sdk.Fail(pb.Code_ERR_CONFIGURED, "%v", err)
	}
	return p, nil
}

// announce (re)starts the announcer of instance id. Failing to announce
// is logged, not returned: the address is up and the kernel answers for
// it, so a missing announcement only slows caches down.
func (r *IPaddr) announce(id string, p Params, ifindex int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.held[id]; old != nil {
		old.stop()
		delete(r.held, id)
	}
	ifi, err := net.InterfaceByIndex(ifindex)
	if err == nil {
		var a *announcer
		if a, err = startAnnouncer(p.IP, ifi, p.Announce, r.log.With("id", id)); err == nil {
			r.held[id] = a
			return
		}
	}
	r.log.Warn("cannot announce the VIP", "id", id, "err", err)
}

func (r *IPaddr) announcer(id string) *announcer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[id]
}

func (r *IPaddr) Start(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	p, res := params(in)
	if res != nil {
		return res, nil
	}
	at, err := resolve(p)
	if err != nil {
		// Node-local: this node cannot hold the VIP, another may.
		return sdk.Fail(pb.Code_ERR_INSTALLED, "%v", err), nil
	}
	already, err := add(p, at)
	if err != nil {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%v", err), nil
	}
	what := "added"
	if already {
		what = "already present"
	}
	r.log.Info("VIP "+what, "id", in.GetId(), "address", at.prefix.String(), "interface", at.link.Attrs().Name, "label", p.Label)
	r.announce(in.GetId(), p, at.link.Attrs().Index)
	return &pb.Result{Code: pb.Code_SUCCESS, Output: fmt.Sprintf("%s %s on %s", at.prefix, what, at.link.Attrs().Name)}, nil
}

func (r *IPaddr) Stop(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	p, res := params(in)
	if res != nil {
		return res, nil
	}
	r.mu.Lock()
	a := r.held[in.GetId()]
	delete(r.held, in.GetId())
	r.mu.Unlock()
	if a != nil {
		// Silence the announcements before the address goes; closing the
		// socket takes milliseconds, so it happens off the path (the next
		// owner waits for this stop to finish).
		a.halt()
		r.closing.Add(1)
		go func() {
			defer r.closing.Done()
			a.stop()
		}()
	}
	removed, note, err := remove(p.IP)
	if note != "" {
		r.log.Info(note, "id", in.GetId())
	}
	if err != nil {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%v", err), nil
	}
	if removed {
		r.log.Info("VIP removed", "id", in.GetId(), "address", p.IP.String())
	}
	return sdk.OK(), nil
}

func (r *IPaddr) Monitor(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	p, res := params(in)
	if res != nil {
		return res, nil
	}
	link, _, err := find(p.IP)
	if err != nil {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%v", err), nil
	}
	if link == nil {
		return sdk.NotRunning(p.IP.String() + " is not configured on any interface"), nil
	}
	if p.NIC != "" && link.Attrs().Name != p.NIC {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%s is on %s, not on %s", p.IP, link.Attrs().Name, p.NIC), nil
	}
	a := r.announcer(in.GetId())
	if a == nil && in.GetIntervalMs() > 0 {
		// A recurring monitor runs only where the group is held: after a
		// plugin restart, resume announcing. A probe (interval 0) never
		// announces: this node may hold a stale copy it is about to drop.
		r.announce(in.GetId(), p, link.Attrs().Index)
		a = r.announcer(in.GetId())
	}
	out := "on " + link.Attrs().Name
	if a != nil {
		out += "; " + a.stats.String()
	}
	return &pb.Result{Code: pb.Code_SUCCESS, Output: out}, nil
}

// Reload re-announces a held VIP: the cluster calls it when ownership was
// just resolved (a node that may have held or claimed it came back).
func (r *IPaddr) Reload(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	p, res := params(in)
	if res != nil {
		return res, nil
	}
	if a := r.announcer(in.GetId()); a != nil {
		a.reannounce("reload")
		return sdk.OK(), nil
	}
	link, _, err := find(p.IP)
	if err != nil {
		return sdk.Fail(pb.Code_ERR_GENERIC, "%v", err), nil
	}
	if link == nil {
		return sdk.NotRunning(p.IP.String() + " is not configured"), nil
	}
	r.announce(in.GetId(), p, link.Attrs().Index)
	return sdk.OK(), nil
}

func (r *IPaddr) Validate(_ context.Context, in *pb.Instance) (*pb.Result, error) {
	if _, res := params(in); res != nil {
		return res, nil
	}
	return sdk.OK(), nil
}

// Close stops every announcer (tests; the plugin process just exits).
func (r *IPaddr) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, a := range r.held {
		a.stop()
		delete(r.held, id)
	}
	r.closing.Wait()
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
		},
		Actions: []*pb.Action{{Name: "start", TimeoutMs: 20000}, {Name: "stop", TimeoutMs: 20000},
			{Name: "monitor", TimeoutMs: 20000, IntervalMs: 10000}, {Name: "reload", TimeoutMs: 20000}}}, nil
}
