package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// keepalived is the reference a failover is judged against: Debian's
// keepalived 2.2.7, run only inside the lab's namespaces, never as a host
// service. `make samples` unpacks the package under bin/samples without
// installing it (installing would start a daemon on the host).

// KeepalivedBin returns the keepalived binary: the one unpacked under
// bin/samples, else an installed one.
func KeepalivedBin() (string, error) {
	unpacked := filepath.Join(RepoRoot(), "bin", "samples", "usr", "sbin", "keepalived")
	if _, err := os.Stat(unpacked); err == nil {
		return unpacked, nil
	}
	if p, err := exec.LookPath("keepalived"); err == nil {
		return p, nil
	}
	return "", errors.New("keepalived not found: `make samples` unpacks Debian's package under bin/samples")
}

// StartKeepalived runs keepalived's VRRP subsystem (VRRPv3, one instance,
// both directors starting as BACKUP, preemption on, as in the usual
// director pair) in namespace node as a director of the VIP lab, with
// advert as the advertisement interval, and waits until it has entered a
// state. The returned Node has no control client.
func (l *Lab) StartKeepalived(bin, node string, priority int, advert time.Duration) *Node {
	l.t.Helper()
	dir := filepath.Join(l.Dir, "keepalived-"+node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	conf := fmt.Sprintf(`global_defs {
    router_id %s
    vrrp_version 3
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int %s
    virtual_ipaddress {
        %s/24 dev eth0
    }
}
`, node, priority, strconv.FormatFloat(advert.Seconds(), 'f', -1, 64), VIP)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	// A crashed keepalived leaves its pid files; a rebooted machine has a
	// fresh /run.
	for _, f := range []string{"keepalived.pid", "vrrp.pid"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	p := l.Start(node, "keepalived-"+node, bin, "--dont-fork", "--log-console", "--no-syslog", "--vrrp",
		"--use-file", path, "--pid", filepath.Join(dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
	if err := waitLog(p, "Entering", 20*time.Second); err != nil {
		l.t.Fatalf("lab: keepalived in %s: %v", node, err)
	}
	return &Node{Name: node, NS: node, Dir: dir, Proc: p}
}

// Directors builds the VIP lab's network without starting any daemon:
// the switch, and directors n1..n<count> on eth0 (10.77.1.0/24) and eth1
// (10.77.2.0/24), as Trio wires them.
func (l *Lab) Directors(count int) {
	l.t.Helper()
	l.AddNS("sw")
	l.Bridge("sw", "br0")
	l.Bridge("sw", "br1")
	for i := 1; i <= count; i++ {
		name := fmt.Sprintf("n%d", i)
		l.AddNS(name)
		l.Wire(name, "eth0", "sw", "br0", fmt.Sprintf("10.77.1.%d/24", i))
		l.Wire(name, "eth1", "sw", "br1", fmt.Sprintf("10.77.2.%d/24", i))
	}
}

// DropVIP removes the VIP a crashed director left configured, as a reboot
// would.
func (l *Lab) DropVIP(node string) {
	l.t.Helper()
	if out, err := exec.Command("ip", "-n", l.NS(node), "addr", "del", VIP+"/24", "dev", "eth0").CombinedOutput(); err != nil &&
		!strings.Contains(string(out), "Cannot assign") && !strings.Contains(string(out), "Address not found") {
		l.t.Fatalf("lab: drop the VIP on %s: %v %s", node, err, out)
	}
}
