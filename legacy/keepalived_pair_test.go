package legacy

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
)

// kaVRRPConf is one router's file: a vrrp_instance VI_1 on eth0 with
// body's lines, an auth_pass and one VIP.
func kaVRRPConf(body string) []byte {
	return []byte("vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n" + body +
		"\n authentication {\n  auth_type PASS\n  auth_pass s3cr3t-pass\n }\n virtual_ipaddress {\n  10.0.0.3/24\n }\n}\n")
}

// kaPairInput is lvs1's file (mine) of a pair with lvs2, whose file
// (theirs) is given unless nil.
func kaPairInput(mine, theirs []byte) KeepalivedInput {
	in := KeepalivedInput{Path: "lvs1.conf", Data: mine, Node: "lvs1", Peer: "lvs2",
		Addresses: map[string]string{"lvs1": "10.0.0.1", "lvs2": "10.0.0.2"}}
	if theirs != nil {
		in.PeerPath, in.PeerData = "lvs2.conf", theirs
	}
	return in
}

// kaImportOK imports in, fails the test on an error, and loads the result
// as `vigil config check` does.
func kaImportOK(t *testing.T, in KeepalivedInput) (*Keepalived, *config.Config) {
	t.Helper()
	k, err := ImportKeepalived(in)
	if err != nil {
		var b strings.Builder
		k.Write(&b)
		t.Fatalf("%v\n%s", err, b.String())
	}
	return k, checkKeepalived(t, in.Path, k, in.Node)
}

// Timing: keepalive is advert_int; deadtime keepalived's master-down
// interval at the backup's priority (VRRPv2: a skew in seconds; VRRPv3:
// in advert_ints), never below what Vigil's lease needs; VRRPv2 rounds a
// fractional advert_int. With the other router's file both nodes get the
// same deadtime.
func TestKeepalivedTiming(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name           string
		mine, theirs   string
		keepalive      time.Duration
		deadtime       time.Duration
		outcome        Outcome
		note           string
		advertDirectve string
	}{
		{"v2 backup here", "state BACKUP\n priority 100\n advert_int 1", "", time.Second, 3609 * ms, Mapped, "(256 − 100)/256 s", "advert_int 1"},
		{"v2 backup there", "state MASTER\n priority 150\n advert_int 1", "state BACKUP\n priority 50\n advert_int 1", time.Second, 3805 * ms, Mapped, "the other router's priority 50", "advert_int 1"},
		{"v2 default advert", "state BACKUP\n priority 200", "", time.Second, 3500 * ms, Caveat, "deadtime = \"3.5s\"", "advert_int"},
		{"v2 rounds", "state BACKUP\n priority 100\n advert_int 1.4", "", time.Second, 3609 * ms, Caveat, "rounds it to 1", "advert_int 1.4"},
		{"v2 at 3 s", "state BACKUP\n priority 100\n advert_int 3", "", 3 * time.Second, 10500 * ms, Caveat, "takes over after 9.609s", "advert_int 3"},
		{"v3 scales the skew", "state BACKUP\n version 3\n priority 100\n advert_int 0.1", "", 100 * ms, 361 * ms, Mapped, "(256 − 100)/256 × advert_int", "advert_int 0.1"},
		{"v3 master below the lease", "state MASTER\n version 3\n priority 200\n advert_int 0.1", "", 100 * ms, 350 * ms, Caveat, "takes over after 322ms", "advert_int 0.1"},
		{"global v3", "state BACKUP\n priority 100\n advert_int 0.5", "", 500 * ms, 1805 * ms, Mapped, "VRRPv3", "advert_int 0.5"},
		{"shortest advert", "state MASTER\n priority 150\n advert_int 2", "state BACKUP\n priority 100\n advert_int 1", time.Second, 3609 * ms, Mapped, "priority 100", "advert_int 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine := kaVRRPConf(tc.mine)
			if tc.name == "global v3" {
				mine = append([]byte("global_defs {\n vrrp_version 3\n}\n"), mine...)
			}
			var theirs []byte
			if tc.theirs != "" {
				theirs = kaVRRPConf(tc.theirs)
			}
			k, cfg := kaImportOK(t, kaPairInput(mine, theirs))
			ti := cfg.HA.Timing()
			if ti.Keepalive != tc.keepalive || ti.Deadtime != tc.deadtime {
				t.Errorf("keepalive %s deadtime %s, want %s %s\n%s", ti.Keepalive, ti.Deadtime, tc.keepalive, tc.deadtime, k.Files["ha.toml"])
			}
			found := false
			for _, e := range k.Entries {
				if strings.HasPrefix(e.Directive, tc.advertDirectve) && e.Outcome == tc.outcome && strings.Contains(e.Note, tc.note) {
					found = true
				}
			}
			if !found {
				var b strings.Builder
				k.Write(&b)
				t.Errorf("no %s entry on %q saying %q:\n%s", tc.outcome, tc.advertDirectve, tc.note, b.String())
			}
			if theirs != nil {
				// The other node's import, with this file as the peer's.
				in := kaPairInput(theirs, mine)
				in.Node, in.Peer, in.Path, in.PeerPath = "lvs2", "lvs1", "lvs2.conf", "lvs1.conf"
				_, other := kaImportOK(t, in)
				if other.HA.Timing() != ti {
					t.Errorf("the two nodes' timing differs: %+v and %+v", ti, other.HA.Timing())
				}
			}
		})
	}
}

// The preferred node is the router of the higher priority; auto_failback
// is preemption: nopreempt (which keepalived clears on a MASTER) turns it
// off, preempt_delay keeps it on with a caveat.
func TestKeepalivedPriorityPreempt(t *testing.T) {
	for _, tc := range []struct {
		name, mine, theirs string
		node               string
		failback           bool
		directive, note    string
		outcome            Outcome
	}{
		{"master here", "state MASTER\n priority 150", "", "lvs1", true, "vrrp_instance VI_1", "starts as MASTER here", Mapped},
		{"backup here, peer unknown", "state BACKUP\n priority 100", "", "lvs2", true, "vrrp_instance VI_1", "BACKUP here", Caveat},
		{"higher priority there", "state BACKUP\n priority 100", "state MASTER\n priority 150", "lvs2", true, "vrrp_instance VI_1", "priority 150 there, 100 here", Mapped},
		{"higher priority here, both BACKUP", "state BACKUP\n priority 200", "state BACKUP\n priority 100", "lvs1", true, "vrrp_instance VI_1", "priority 200 here, 100 there", Mapped},
		{"equal", "state BACKUP\n priority 100", "state BACKUP\n priority 100", "lvs1", true, "vrrp_instance VI_1", "equal priorities", Caveat},
		{"nopreempt", "state BACKUP\n priority 200\n nopreempt", "state BACKUP\n priority 100\n nopreempt", "lvs1", false, "nopreempt", "auto_failback = false", Mapped},
		{"nopreempt cleared on MASTER", "state MASTER\n priority 200\n nopreempt", "", "lvs1", true, "nopreempt", "keepalived clears it", Caveat},
		{"nopreempt on the backup only", "state BACKUP\n priority 100\n nopreempt", "state MASTER\n priority 200", "lvs2", true, "nopreempt", "the other router, of the higher priority, preempts", Caveat},
		{"preempt_delay", "state BACKUP\n priority 200\n preempt_delay 30", "state BACKUP\n priority 100", "lvs1", true, "preempt_delay", "without keepalived's delay of 30 s", Caveat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var theirs []byte
			if tc.theirs != "" {
				theirs = kaVRRPConf(tc.theirs)
			}
			k, cfg := kaImportOK(t, kaPairInput(kaVRRPConf(tc.mine), theirs))
			if g := cfg.Resources.Groups[0]; g.Node != tc.node || cfg.HA.AutoFailback != tc.failback {
				t.Errorf("group on %s, auto_failback %v; want %s, %v", g.Node, cfg.HA.AutoFailback, tc.node, tc.failback)
			}
			if e := outcome(&k.Report, tc.directive); e.Outcome != tc.outcome || !strings.Contains(e.Note, tc.note) {
				t.Errorf("%s: %s %q, want %s %q", tc.directive, e.Outcome, e.Note, tc.outcome, tc.note)
			}
		})
	}
	// Instances that disagree: one setting for the cluster, false.
	two := append(kaVRRPConf("state MASTER\n priority 200"), []byte("vrrp_instance VI_2 {\n interface eth0\n virtual_router_id 52\n state BACKUP\n priority 200\n nopreempt\n virtual_ipaddress {\n  10.0.0.4/24\n }\n}\n")...)
	k, cfg := kaImportOK(t, kaPairInput(two, nil))
	if cfg.HA.AutoFailback || outcome(&k.Report, "nopreempt").Outcome != Caveat || !strings.Contains(outcome(&k.Report, "nopreempt").Note, "some instances preempt") {
		t.Errorf("mixed preemption: auto_failback %v, %+v", cfg.HA.AutoFailback, outcome(&k.Report, "nopreempt"))
	}
}

// auth_pass becomes the cluster secret — its first 8 characters, as
// keepalived uses — and appears nowhere in the report; routers whose
// passwords differ, a file without one, and a password authkeys cannot
// hold are refused; --authkeys replaces it.
func TestKeepalivedAuth(t *testing.T) {
	k, cfg := kaImportOK(t, kaPairInput(kaVRRPConf("state MASTER"), nil))
	if got := string(k.Files["authkeys"]); got != "auth 1\n1 sha256 s3cr3t-p\n" || string(cfg.Auth.Secret.Bytes()) != "s3cr3t-p" {
		t.Errorf("authkeys %q", got)
	}
	var b strings.Builder
	k.Write(&b)
	if strings.Contains(b.String(), "s3cr3t") {
		t.Errorf("the password is in the report:\n%s", b.String())
	}
	if e := outcome(&k.Report, "auth_pass"); e.Outcome != Caveat || e.Directive != "auth_pass" {
		t.Errorf("auth_pass: %+v", e)
	}

	// The other router's password differs (beyond the 8th character
	// keepalived ignores it).
	same := []byte(strings.ReplaceAll(string(kaVRRPConf("state BACKUP")), "s3cr3t-pass", "s3cr3t-pXXX"))
	kaImportOK(t, kaPairInput(kaVRRPConf("state MASTER"), same))
	other := []byte(strings.ReplaceAll(string(kaVRRPConf("state BACKUP")), "s3cr3t-pass", "other-pass"))
	if _, err := ImportKeepalived(kaPairInput(kaVRRPConf("state MASTER"), other)); err == nil || !strings.Contains(err.Error(), "lvs2.conf:") ||
		!strings.Contains(err.Error(), "both routers become MASTER") || strings.Contains(err.Error(), "other-pa") {
		t.Errorf("different passwords: %v", err)
	}
	none := []byte("vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n  10.0.0.3/24\n }\n}\n")
	if _, err := ImportKeepalived(kaPairInput(none, nil)); err == nil || !strings.Contains(err.Error(), "--authkeys FILE") {
		t.Errorf("no password: %v", err)
	}
	hash := []byte(strings.ReplaceAll(string(kaVRRPConf("state MASTER")), "s3cr3t-pass", `"ab#cd"`))
	if _, err := ImportKeepalived(kaPairInput(hash, nil)); err == nil || !strings.Contains(err.Error(), "'#'") {
		t.Errorf("a '#' in the password: %v", err)
	}

	// --authkeys: the file given, checked; auth_pass unused.
	in := kaPairInput(kaVRRPConf("state MASTER"), nil)
	in.Authkeys, in.AuthkeysPath = kaAuthkeys, "keys"
	k, _ = kaImportOK(t, in)
	if string(k.Files["authkeys"]) != string(kaAuthkeys) || outcome(&k.Report, "auth_pass").Outcome != Caveat {
		t.Errorf("--authkeys: %q %+v", k.Files["authkeys"], outcome(&k.Report, "auth_pass"))
	}
	in.Authkeys = []byte("auth 1\n1 crc\n")
	if _, err := ImportKeepalived(in); err == nil || !strings.Contains(err.Error(), "keys") {
		t.Errorf("a bad --authkeys: %v", err)
	}
}

// The pair's nodes: addresses from unicast_src_ip/unicast_peer (then
// heartbeats by ucast only), from the other router's file, or given; the
// other node's name from its router_id; more than one peer, a missing
// peer or address are errors.
func TestKeepalivedPeers(t *testing.T) {
	uni := kaVRRPConf("state MASTER\n unicast_src_ip 192.0.2.1\n unicast_peer {\n  192.0.2.2\n }")
	in := kaPairInput(uni, nil)
	in.Addresses = nil
	in.PingNodes = []string{"192.0.2.254"}
	k, cfg := kaImportOK(t, in)
	h := cfg.HA
	if len(h.Nodes) != 2 || h.Nodes[0].Address != "192.0.2.1" || h.Nodes[1].Address != "192.0.2.2" || len(h.UCast) != 1 || len(h.BCast) != 0 ||
		!h.TwoNode || len(h.PingNodes) != 1 || h.Node != "lvs1" {
		t.Errorf("unicast pair:\n%s", k.Files["ha.toml"])
	}
	if e := outcome(&k.Report, "vrrp_instance"); e.Directive != "vrrp_instance" || e.Outcome != Caveat || !strings.Contains(e.Note, "ping node (192.0.2.254)") {
		t.Errorf("two_node note with a ping node: %+v", e)
	}

	// Multicast: the other router's file names its own address, this
	// one's is given; heartbeats also broadcast on the VRRP interface.
	in = kaPairInput(kaVRRPConf("state MASTER"), append([]byte("global_defs {\n router_id LVS2\n}\n"), kaVRRPConf("state BACKUP\n mcast_src_ip 192.0.2.2")...))
	in.Peer = ""
	in.Addresses = map[string]string{"lvs1": "192.0.2.1"}
	k, cfg = kaImportOK(t, in)
	if h := cfg.HA; h.Nodes[1].Name != "lvs2" || h.Nodes[1].Address != "192.0.2.2" || len(h.BCast) != 1 || h.BCast[0].Interface != "eth0" {
		t.Errorf("multicast pair, the peer named by its router_id:\n%s", k.Files["ha.toml"])
	}
	if e := outcome(&k.Report, "vrrp_instance"); !strings.Contains(e.Note, "vigil takeover") || !strings.Contains(e.Note, `ping_nodes = ["ROUTER"]`) {
		t.Errorf("two_node note without a tie-breaker: %+v", e)
	}

	for _, tc := range []struct {
		name string
		edit func(*KeepalivedInput)
		want string
	}{
		{"no peer", func(in *KeepalivedInput) { in.Peer = "" }, "--peer NAME"},
		{"peer is self", func(in *KeepalivedInput) { in.Peer = "lvs1" }, "is this node"},
		{"no node", func(in *KeepalivedInput) { in.Node = "" }, "name this node"},
		{"bad peer name", func(in *KeepalivedInput) { in.Peer = "lvs 2" }, `"lvs 2" is not a node name`},
		{"no address", func(in *KeepalivedInput) { delete(in.Addresses, "lvs2") }, "--address lvs2=IP"},
		{"bad address", func(in *KeepalivedInput) { in.Addresses["lvs2"] = "lvs2.example" }, `"lvs2.example" is not an IP address`},
		{"IPv6 address", func(in *KeepalivedInput) { in.Addresses["lvs2"] = "fd00::2" }, "heartbeats run over IPv4"},
		{"three routers", func(in *KeepalivedInput) {
			in.Data = kaVRRPConf("unicast_peer {\n  192.0.2.2\n  192.0.2.3\n }")
		}, "2 peers"},
	} {
		in := kaPairInput(kaVRRPConf("state MASTER"), nil)
		tc.edit(&in)
		if _, err := ImportKeepalived(in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// notify scripts stay notes: Vigil's alert routes run on the Raft leader
// with mon's argv, not keepalived's. keepalived's mail settings become a
// mail route.
func TestKeepalivedNotifyAndMail(t *testing.T) {
	conf := append([]byte("global_defs {\n notification_email {\n  ops@example.org\n  noc@example.org\n }\n notification_email_from ka@example.org\n smtp_server 192.0.2.25 2525\n}\n"),
		kaVRRPConf("state MASTER\n smtp_alert\n notify_master \"/etc/keepalived/up.sh master\"\n notify \"/etc/keepalived/all.sh\"")...)
	k, cfg := kaImportOK(t, kaPairInput(conf, nil))
	for _, d := range []string{"notify_master", "notify /etc"} {
		if e := outcome(&k.Report, d); e.Outcome != Unsupported || !strings.Contains(e.Note, "mon's argv") || !strings.Contains(e.Note, "INSTANCE NAME STATE PRIORITY") {
			t.Errorf("%s: %+v", d, e)
		}
	}
	h := cfg.HA
	if len(h.Alerts) != 1 || strings.Join(h.Alerts[0].Send, "|") != "mail ops@example.org noc@example.org" || h.SMTPRelay != "192.0.2.25:2525" || h.MailFrom != "ka@example.org" {
		t.Errorf("mail:\n%s", k.Files["ha.toml"])
	}
}
