package ipaddr_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/resources/ipaddr"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]string
		want func(ipaddr.Params) bool
		err  string
	}{
		{"bare", map[string]string{"ip": "10.0.0.3"}, func(p ipaddr.Params) bool {
			return p.IP.String() == "10.0.0.3" && p.Bits == 0 && p.NIC == "" && p.Announce == ipaddr.DefaultAnnounce
		}, ""},
		{"full", map[string]string{"ip": "10.0.0.3", "cidr_netmask": "24", "nic": "eth0", "broadcast": "10.0.0.255", "label": "vip"},
			func(p ipaddr.Params) bool {
				return p.Bits == 24 && p.NIC == "eth0" && p.Label == "eth0:vip" && p.Broadcast.String() == "10.0.0.255"
			}, ""},
		{"heartbeat nic:label", map[string]string{"ip": "10.0.0.3", "nic": "eth0:0"}, func(p ipaddr.Params) bool {
			return p.NIC == "eth0" && p.Label == "eth0:0"
		}, ""},
		{"label gives nic", map[string]string{"ip": "10.0.0.3", "label": "eth1:web"}, func(p ipaddr.Params) bool {
			return p.NIC == "eth1" && p.Label == "eth1:web"
		}, ""},
		{"ipv6", map[string]string{"ip": "fd00::3", "cidr_netmask": "64"}, func(p ipaddr.Params) bool { return p.IP.Is6() && p.Bits == 64 }, ""},
		{"announce knobs", map[string]string{"ip": "10.0.0.3", "arp_count": "3", "arp_interval": "50", "arp_repeat": "0", "arp_refresh": "30s"},
			func(p ipaddr.Params) bool {
				return p.Announce == ipaddr.Announce{Count: 3, Interval: 50 * time.Millisecond, Refresh: 30 * time.Second}
			}, ""},
		{"unknown key", map[string]string{"ip": "10.0.0.3", "iflabel": "x"}, nil, `unknown parameter "iflabel"`},
		{"no ip", map[string]string{}, nil, "not an IP address"},
		{"bad ip", map[string]string{"ip": "10.0.0.300"}, nil, "not an IP address"},
		{"multicast", map[string]string{"ip": "224.0.0.1"}, nil, "not usable"},
		{"mask too long", map[string]string{"ip": "10.0.0.3", "cidr_netmask": "33"}, nil, "1..32"},
		{"v6 label", map[string]string{"ip": "fd00::3", "label": "eth0:1"}, nil, "only for IPv4"},
		{"label on other nic", map[string]string{"ip": "10.0.0.3", "nic": "eth0", "label": "eth1:0"}, nil, "NIC:SUFFIX"},
		{"label too long", map[string]string{"ip": "10.0.0.3", "nic": "eth0", "label": "averyverylonglabel"}, nil, "15 bytes"},
		{"v6 broadcast", map[string]string{"ip": "fd00::3", "broadcast": "10.0.0.255"}, nil, "IPv4"},
		{"bad count", map[string]string{"ip": "10.0.0.3", "arp_count": "-1"}, nil, "arp_count"},
		{"bad interval", map[string]string{"ip": "10.0.0.3", "arp_interval": "0s"}, nil, "arp_interval"},
		{"refresh below interval", map[string]string{"ip": "10.0.0.3", "arp_refresh": "10ms"}, nil, "shorter than arp_interval"},
		{"bad nic", map[string]string{"ip": "10.0.0.3", "nic": "eth 0"}, nil, "not an interface name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ipaddr.Parse(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(p) {
				t.Fatalf("got %+v", p)
			}
		})
	}
}
