package ipaddr

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Params is one VIP as resources.toml describes it. The names follow
// ocf:heartbeat:IPaddr2 where it has one, so operators find their knobs.
type Params struct {
	IP        netip.Addr
	Bits      int    // prefix length; 0 = take it from the subnet found on the interface
	NIC       string // "" = the interface whose subnet holds IP
	Label     string // full label, "eth0:0"; IPv4 only
	Broadcast netip.Addr

	Announce Announce
	// Handover: after a stop, forward what still reaches this node for
	// the VIP to its next holder for this long (IPv4; 0 = off).
	Handover time.Duration
}

// Announce is how a VIP is announced after it is added.
type Announce struct {
	Count    int           // frames per burst (each kind: request and reply, or one NA)
	Interval time.Duration // between frames of a burst
	Repeat   time.Duration // a second burst this long after the first; 0 = none
	Refresh  time.Duration // then one frame every Refresh while held; 0 = none
}

// DefaultAnnounce sends the first frame at once, as failover needs, then
// four more 200 ms apart (IPaddr2's arp_count/arp_interval), and a second
// burst after 2 s for hosts that were busy or whose link just came up.
var DefaultAnnounce = Announce{Count: 5, Interval: 200 * time.Millisecond, Repeat: 2 * time.Second}

// maxHandover bounds the hand-over: the plugin waits for it when it
// exits, and the host kills a plugin that takes two seconds to.
const maxHandover = 1500 * time.Millisecond

var paramNames = []string{"ip", "cidr_netmask", "nic", "label", "broadcast",
	"arp_count", "arp_interval", "arp_repeat", "arp_refresh", "handover"}

// Parse reads and checks an instance's parameters.
func Parse(in map[string]string) (Params, error) {
	for k := range in {
		if !slices.Contains(paramNames, k) {
			return Params{}, fmt.Errorf("unknown parameter %q (known: %s)", k, strings.Join(paramNames, ", "))
		}
	}
	var p Params
	var err error
	if p.IP, err = netip.ParseAddr(in["ip"]); err != nil {
		return p, fmt.Errorf("ip %q: not an IP address", in["ip"])
	}
	p.IP = p.IP.Unmap()
	if p.IP.Zone() != "" || p.IP.IsUnspecified() || p.IP.IsMulticast() || p.IP.IsLoopback() {
		return p, fmt.Errorf("ip %s: not usable as a floating address", p.IP)
	}
	if m := in["cidr_netmask"]; m != "" {
		if p.Bits, err = strconv.Atoi(m); err != nil || p.Bits < 1 || p.Bits > p.IP.BitLen() {
			return p, fmt.Errorf("cidr_netmask %q: want a prefix length 1..%d", m, p.IP.BitLen())
		}
	}
	p.NIC, p.Label = in["nic"], in["label"]
	// heartbeat's IPaddr took "eth0:0" as the nic: the alias label.
	if nic, alias, ok := strings.Cut(p.NIC, ":"); ok {
		if p.Label != "" {
			return p, fmt.Errorf("nic %q carries a label and label is set too", p.NIC)
		}
		p.NIC, p.Label = nic, p.NIC
		if alias == "" {
			return p, fmt.Errorf("nic %q: empty label after ':'", in["nic"])
		}
	}
	if p.NIC != "" && !validIfName(p.NIC) {
		return p, fmt.Errorf("nic %q: not an interface name", p.NIC)
	}
	if p.Label != "" {
		if !p.IP.Is4() {
			return p, fmt.Errorf("label %q: labels exist only for IPv4 addresses", p.Label)
		}
		if !strings.Contains(p.Label, ":") {
			if p.NIC == "" {
				return p, fmt.Errorf("label %q: give it as NIC:LABEL or set nic", p.Label)
			}
			p.Label = p.NIC + ":" + p.Label
		}
		if nic, _, _ := strings.Cut(p.Label, ":"); p.NIC != "" && nic != p.NIC || len(p.Label) > 15 {
			return p, fmt.Errorf("label %q: must be NIC:SUFFIX on nic %q and at most 15 bytes (the kernel's limit)", p.Label, p.NIC)
		}
		if p.NIC == "" {
			p.NIC, _, _ = strings.Cut(p.Label, ":")
		}
	}
	if b := in["broadcast"]; b != "" {
		if p.Broadcast, err = netip.ParseAddr(b); err != nil || !p.Broadcast.Is4() || !p.IP.Is4() {
			return p, fmt.Errorf("broadcast %q: want an IPv4 address, for an IPv4 ip", b)
		}
	}
	p.Announce = DefaultAnnounce
	if v := in["arp_count"]; v != "" {
		if p.Announce.Count, err = strconv.Atoi(v); err != nil || p.Announce.Count < 0 || p.Announce.Count > 100 {
			return p, fmt.Errorf("arp_count %q: want 0..100", v)
		}
	}
	for _, d := range []struct {
		key string
		dst *time.Duration
		min time.Duration
	}{
		{"arp_interval", &p.Announce.Interval, time.Millisecond},
		{"arp_repeat", &p.Announce.Repeat, 0},
		{"arp_refresh", &p.Announce.Refresh, 0},
	} {
		v := in[d.key]
		if v == "" {
			continue
		}
		x, err := parseDuration(v)
		if err != nil || x < d.min || x > time.Hour {
			return p, fmt.Errorf("%s %q: want a duration between %s and 1h (\"200ms\")", d.key, v, d.min)
		}
		*d.dst = x
	}
	if r := p.Announce.Refresh; r > 0 && r < p.Announce.Interval {
		return p, fmt.Errorf("arp_refresh %s is shorter than arp_interval %s", r, p.Announce.Interval)
	}
	if v := in["handover"]; v != "" {
		if p.Handover, err = parseDuration(v); err != nil || p.Handover < 0 || p.Handover > maxHandover {
			return p, fmt.Errorf("handover %q: want a duration up to %s (\"1s\")", v, maxHandover)
		}
		if p.Handover > 0 && !p.IP.Is4() {
			return p, fmt.Errorf("handover %q: IPv4 only (IPv6 forwarding changes how the host takes router advertisements)", v)
		}
	}
	return p, nil
}

// parseDuration takes Go durations and, like IPaddr2's arp_interval, a
// bare number of milliseconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Millisecond, nil
	}
	return time.ParseDuration(s)
}

func validIfName(s string) bool {
	return s != "" && len(s) <= 15 && !strings.ContainsAny(s, "/: \t\n\x00")
}
