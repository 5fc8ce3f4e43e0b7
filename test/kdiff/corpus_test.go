package kdiff

import (
	"fmt"
	"strings"
)

// base is a director's keepalived.conf using the keywords the importer
// maps; each corpus case changes one thing in it.
const base = `! a director of a MASTER/BACKUP pair
global_defs {
    router_id lvs1
    notification_email {
        root@localhost
    }
    notification_email_from vigil@localhost
    smtp_server 127.0.0.1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret12
    }
    virtual_ipaddress {
        10.9.0.100/24 dev eth0
    }
}
virtual_server 10.9.0.100 80 {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.9.0.11 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
`

type kaCase struct{ name, text string }

// edit is one change to base: the line starting (after indent) with
// find is replaced by repl (several lines with \n; "" deletes it);
// find "" appends repl at the end; find "^" puts it first.
type edit struct{ name, find, repl string }

func (e edit) apply() (string, error) {
	switch e.find {
	case "":
		return base + e.repl + "\n", nil
	case "^":
		return e.repl + "\n" + base, nil
	}
	lines := strings.Split(base, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), e.find) {
			indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
			var repl []string
			if e.repl != "" {
				for _, r := range strings.Split(e.repl, "\n") {
					repl = append(repl, indent+r)
				}
			}
			return strings.Join(append(append(append([]string{}, lines[:i]...), repl...), lines[i+1:]...), "\n"), nil
		}
	}
	return "", fmt.Errorf("corpus %s: no line %q in base", e.name, e.find)
}

var edits = []edit{
	{"base", "router_id", "router_id lvs1"},
	// vrrp_instance
	{"state-backup", "state", "state BACKUP"},
	{"state-lowercase", "state", "state master"},
	{"state-unknown", "state", "state PRIMARY"},
	{"state-missing", "state", ""},
	{"interface-missing", "interface", ""},
	{"interface-nonexistent", "interface", "interface nosuch0"},
	{"vrid-0", "virtual_router_id", "virtual_router_id 0"},
	{"vrid-1", "virtual_router_id", "virtual_router_id 1"},
	{"vrid-255", "virtual_router_id", "virtual_router_id 255"},
	{"vrid-256", "virtual_router_id", "virtual_router_id 256"},
	{"vrid-word", "virtual_router_id", "virtual_router_id fifty"},
	{"vrid-missing", "virtual_router_id", ""},
	{"priority-1", "priority", "priority 1"},
	{"priority-254", "priority", "priority 254"},
	{"priority-255", "priority", "priority 255"},
	{"priority-0", "priority", "priority 0"},
	{"priority-256", "priority", "priority 256"},
	{"priority-negative", "priority", "priority -5"},
	{"priority-word", "priority", "priority high"},
	{"priority-missing", "priority", ""},
	{"advert-3", "advert_int", "advert_int 3"},
	{"advert-half", "advert_int", "advert_int 0.5"},
	{"advert-255", "advert_int", "advert_int 255"},
	{"advert-256", "advert_int", "advert_int 256"},
	{"advert-0", "advert_int", "advert_int 0"},
	{"advert-ms", "advert_int", "advert_int 500ms"},
	{"advert-v3-half", "advert_int", "advert_int 0.5\nversion 3"},
	{"version-3", "advert_int", "advert_int 1\nversion 3"},
	{"version-4", "advert_int", "advert_int 1\nversion 4"},
	{"nopreempt-master", "advert_int", "advert_int 1\nnopreempt"},
	{"nopreempt-backup", "state", "state BACKUP\nnopreempt"},
	{"preempt-delay-300", "state", "state BACKUP\npreempt_delay 300"},
	{"preempt-delay-1000", "state", "state BACKUP\npreempt_delay 1000"},
	{"preempt-delay-1001", "state", "state BACKUP\npreempt_delay 1001"},
	{"preempt-delay-negative", "state", "state BACKUP\npreempt_delay -1"},
	{"auth-ah", "auth_type", "auth_type AH"},
	{"auth-unknown", "auth_type", "auth_type MD5"},
	{"auth-pass-long", "auth_pass", "auth_pass secret1234567890"},
	{"auth-pass-missing", "auth_pass", ""},
	{"auth-type-missing", "auth_type", ""},
	{"auth-v3", "advert_int", "advert_int 1\nversion 3"},
	{"unicast", "advert_int", "advert_int 1\nunicast_src_ip 10.9.0.1\nunicast_peer {\n    10.9.0.2\n}"},
	{"unicast-peer-bad", "advert_int", "advert_int 1\nunicast_src_ip 10.9.0.1\nunicast_peer {\n    10.9.0.999\n}"},
	{"unicast-src-bad", "advert_int", "advert_int 1\nunicast_src_ip ten\nunicast_peer {\n    10.9.0.2\n}"},
	{"mcast-src", "advert_int", "advert_int 1\nmcast_src_ip 10.9.0.1"},
	{"garp", "advert_int", "advert_int 1\ngarp_master_delay 10\ngarp_master_repeat 3\ngarp_master_refresh 60"},
	{"garp-delay-negative", "advert_int", "advert_int 1\ngarp_master_delay -1"},
	{"garp-repeat-0", "advert_int", "advert_int 1\ngarp_master_repeat 0"},
	{"smtp-alert", "advert_int", "advert_int 1\nsmtp_alert"},
	{"notify-master", "advert_int", "advert_int 1\nnotify_master \"/bin/true master\""},
	{"notify-master-secure", "advert_int", "advert_int 1\nnotify_master \"/bin/true master\""},
	{"vip-bare", "10.9.0.100/24", "10.9.0.100"},
	{"vip-several", "10.9.0.100/24", "10.9.0.100/24 dev eth0\n10.9.0.101/24 dev eth0 label eth0:1\n10.9.0.102/24 brd 10.9.0.255 dev eth0"},
	{"vip-prefix-33", "10.9.0.100/24", "10.9.0.100/33 dev eth0"},
	{"vip-bad-address", "10.9.0.100/24", "10.9.0.300/24 dev eth0"},
	{"vip-dev-nonexistent", "10.9.0.100/24", "10.9.0.100/24 dev nosuch0"},
	{"vip-ipv6", "10.9.0.100/24", "fd00::100/64 dev eth0"},
	{"vip-none", "10.9.0.100/24", ""},
	{"vip-dup-instance", "", "vrrp_instance VI_2 {\n    state BACKUP\n    interface eth0\n    virtual_router_id 52\n    priority 100\n    virtual_ipaddress {\n        10.9.0.100/24 dev eth0\n    }\n}"},
	{"instance-dup-name", "", "vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n    virtual_router_id 52\n    priority 100\n    virtual_ipaddress {\n        10.9.0.150/24 dev eth0\n    }\n}"},
	{"instance-no-name", "vrrp_instance", "vrrp_instance {"},
	{"sync-group", "^", "vrrp_sync_group G1 {\n    group {\n        VI_1\n    }\n}"},
	{"sync-group-unknown", "^", "vrrp_sync_group G1 {\n    group {\n        VI_9\n    }\n}"},
	// global_defs
	{"vrrp-version-3", "router_id", "router_id lvs1\nvrrp_version 3"},
	{"vrrp-strict", "router_id", "router_id lvs1\nvrrp_strict"},
	{"script-security", "router_id", "router_id lvs1\nenable_script_security\nscript_user root"},
	{"lvs-sync-daemon", "router_id", "router_id lvs1\nlvs_sync_daemon eth0 VI_1 id 5"},
	{"lvs-sync-daemon-unknown-instance", "router_id", "router_id lvs1\nlvs_sync_daemon eth0 VI_9"},
	{"smtp-server-port", "smtp_server", "smtp_server 127.0.0.1 2525"},
	{"smtp-server-bad", "smtp_server", "smtp_server nowhere..example"},
	{"garp-interval-0", "router_id", "router_id lvs1\nvrrp_garp_interval 0"},
	// virtual_server
	{"lb-algo-wlc", "lb_algo", "lb_algo wlc"},
	{"lvs-sched", "lb_algo", "lvs_sched sh"},
	{"lb-algo-upper", "lb_algo", "lb_algo RR"},
	{"lb-algo-unknown", "lb_algo", "lb_algo fastest"},
	{"lb-kind-nat", "lb_kind", "lb_kind NAT"},
	{"lb-kind-tun", "lb_kind", "lb_kind TUN"},
	{"lvs-method", "lb_kind", "lvs_method DR"},
	{"lb-kind-masq", "lb_kind", "lb_kind MASQ"},
	{"lb-kind-lower", "lb_kind", "lb_kind dr"},
	{"protocol-udp", "protocol", "protocol UDP"},
	{"protocol-sctp", "protocol", "protocol SCTP"},
	{"protocol-bad", "protocol", "protocol ICMP"},
	{"persistence", "delay_loop", "delay_loop 6\npersistence_timeout 50\npersistence_granularity 255.255.255.0"},
	{"persistence-0", "delay_loop", "delay_loop 6\npersistence_timeout 0"},
	{"persistence-bad", "delay_loop", "delay_loop 6\npersistence_timeout soon"},
	{"delay-loop-0", "delay_loop", "delay_loop 0"},
	{"delay-loop-bad", "delay_loop", "delay_loop often"},
	{"sorry-server", "delay_loop", "delay_loop 6\nsorry_server 10.9.0.200 80"},
	{"sorry-server-bad", "delay_loop", "delay_loop 6\nsorry_server 10.9.0.200"},
	{"inhibit", "delay_loop", "delay_loop 6\ninhibit_on_failure"},
	{"vs-port-0", "virtual_server", "virtual_server 10.9.0.100 0 {"},
	{"vs-no-port", "virtual_server", "virtual_server 10.9.0.100 {"},
	{"vs-bad-address", "virtual_server", "virtual_server 10.9.0.300 80 {"},
	{"vs-fwmark", "virtual_server", "virtual_server fwmark 1 {"},
	{"vs-ipv6", "virtual_server", "virtual_server fd00::100 80 {"},
	{"weight-0", "weight", "weight 0"},
	{"weight-negative", "weight", "weight -1"},
	{"weight-big", "weight", "weight 65536"},
	{"real-no-port", "real_server", "real_server 10.9.0.11 {"},
	{"real-bad-address", "real_server", "real_server 10.9.0.311 80 {"},
	{"tcp-check-port", "connect_timeout", "connect_timeout 3\nconnect_port 8080"},
	{"tcp-check-bad-timeout", "connect_timeout", "connect_timeout slow"},
	{"http-get", "TCP_CHECK", "HTTP_GET {\n    url {\n        path /health\n        status_code 200\n    }\n    connect_timeout 3"},
	{"http-get-digest", "TCP_CHECK", "HTTP_GET {\n    url {\n        path /\n        digest 640205b7b0fc66c1ea91c463fac6334d\n    }"},
	{"http-get-status-range", "TCP_CHECK", "HTTP_GET {\n    url {\n        path /\n        status_code 200-299 301\n    }"},
	{"http-get-bad-status", "TCP_CHECK", "HTTP_GET {\n    url {\n        path /\n        status_code 99\n    }"},
	{"ssl-get", "TCP_CHECK", "SSL_GET {\n    url {\n        path /\n    }"},
	{"misc-check", "TCP_CHECK", "MISC_CHECK {\n    misc_path \"/bin/true\""},
	{"smtp-check", "TCP_CHECK", "SMTP_CHECK {\n    helo_name director"},
	{"dns-check", "TCP_CHECK", "DNS_CHECK {\n    type A\n    name example.com"},
	{"dns-check-bad-type", "TCP_CHECK", "DNS_CHECK {\n    type BOGUS\n    name example.com"},
	// syntax
	{"unknown-keyword", "advert_int", "advert_int 1\nfrobnicate 3"},
	{"unknown-top-keyword", "", "frobnicate {\n}"},
	{"keyword-case", "priority", "Priority 150"},
	{"comment-bang", "priority", "priority 150 ! the master"},
	{"comment-hash", "priority", "priority 150 # the master"},
	{"missing-brace", "virtual_ipaddress", "virtual_ipaddress {\n    10.9.0.100/24 dev eth0\n"},
	{"extra-brace", "", "}"},
	{"brace-next-line", "vrrp_instance", "vrrp_instance VI_1\n{"},
	{"include-missing", "^", "include /nonexistent/keepalived-extra.conf"},
	{"empty-file", "^", ""},
	{"quoted-string", "router_id", "router_id \"lvs1\""},
	{"value-missing", "priority", "priority"},
	{"extra-value", "priority", "priority 150 151"},
}

// corpus is the generated cases; notify-master-secure also enables
// script security, which notify scripts need.
func corpus() []kaCase {
	var out []kaCase
	for _, e := range edits {
		text, err := e.apply()
		if err != nil {
			panic(err)
		}
		if e.name == "notify-master-secure" || e.name == "misc-check" {
			text = strings.Replace(text, "router_id lvs1", "router_id lvs1\n    enable_script_security\n    script_user root", 1)
		}
		if e.name == "empty-file" {
			text = ""
		}
		out = append(out, kaCase{name: e.name, text: text})
	}
	return out
}
