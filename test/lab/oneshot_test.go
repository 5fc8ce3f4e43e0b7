package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/nstest"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/resources/script"
)

// The one-shot commands, run as an operator runs them: the real vigil
// binary, which re-executes itself as the built-in plugin (ocf, lsb,
// heartbeat, ipaddr) over go-plugin, against Debian's resource-agents,
// mon's monitors and alerts, and scripts written here.

// oneShotDeadline bounds one command: a plugin's start and one operation
// with the default 20 s timeout fit well inside it even on a loaded host.
const oneShotDeadline = 60 * time.Second

type shot struct {
	code           int
	stdout, stderr string
}

// vigilOnce runs the vigil binary (inside namespace ns when it is not
// empty) with env added and stdin given.
func vigilOnce(t *testing.T, ns string, env []string, stdin string, args ...string) shot {
	t.Helper()
	if vigilBin == "" {
		t.Skip("the vigil binary was not built (lab unavailable)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), oneShotDeadline)
	defer cancel()
	argv := append([]string{vigilBin}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("vigil %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("vigil %s: still running after %s", strings.Join(args, " "), oneShotDeadline)
	}
	return shot{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
}

func (s shot) want(t *testing.T, what string, code int, in ...string) {
	t.Helper()
	if s.code != code {
		t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, s.code, code, s.stdout, s.stderr)
		return
	}
	for _, w := range in {
		if !strings.Contains(s.stdout+s.stderr, w) {
			t.Errorf("%s: no %q in\nstdout:\n%s\nstderr:\n%s", what, w, s.stdout, s.stderr)
		}
	}
}

func needFile(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: install Debian's %s (make deps)", path, pkg)
	}
}

// ocf:heartbeat:Dummy from resource-agents, through the ocf plugin: the
// codes of LEGACY.md §3.3's Dummy table, ad hoc and as GROUP/ID of a
// configuration.
func TestOneShotOCFDummy(t *testing.T) {
	needFile(t, "/usr/lib/ocf/resource.d/heartbeat/Dummy", "resource-agents")
	dir := t.TempDir()
	state := "state=" + filepath.Join(dir, "d1.state")
	run := func(args ...string) shot {
		return vigilOnce(t, "", nil, "", append([]string{"resource", "run"}, args...)...)
	}
	run("ocf:heartbeat:Dummy", "monitor", state, "--id", "d1").want(t, "probe before start", 7, "d1 monitor: 7 OCF_NOT_RUNNING (not running)")
	run("ocf:heartbeat:Dummy", "monitor", state, "--id", "d1", "--interval", "10s").want(t, "recurring monitor before start", 7, "No process state file found")
	run("ocf:heartbeat:Dummy", "stop", state, "--id", "d1").want(t, "stop when stopped", 0, "OCF_SUCCESS")
	run("ocf:heartbeat:Dummy", "start", state, "--id", "d1").want(t, "start", 0, "d1 start: 0 OCF_SUCCESS (success)", "via plugin ocf, agent heartbeat:Dummy")
	run("ocf:heartbeat:Dummy", "start", state, "--id", "d1").want(t, "start again", 0)
	run("ocf:heartbeat:Dummy", "status", state, "--id", "d1").want(t, "status (the monitor)", 0)
	run("ocf:heartbeat:Dummy", "validate-all", state, "--id", "d1").want(t, "validate-all", 0)
	run("ocf:heartbeat:Dummy", "reload", state, "--id", "d1").want(t, "reload", 0)
	run("ocf:heartbeat:Dummy", "stop", state, "--id", "d1").want(t, "stop", 0)
	run("ocf:heartbeat:Dummy", "monitor", state, "--id", "d1").want(t, "monitor after stop", 7)
	run("ocf:heartbeat:Dummy", "validate-all", "state=/nonexistent/dir/x.state").want(t, "validate-all, state not writable", 2, "is not writable")
	run("ocf:acme:Nothing", "start").want(t, "an agent not installed", 5, "OCF_ERR_INSTALLED")

	md := run("ocf:heartbeat:Dummy", "meta-data")
	md.want(t, "meta-data", 0, `<resource-agent name="Dummy"`)
	if m, err := script.ParseOCFMetaData(md.stdout); err != nil || m.Name != "Dummy" {
		t.Errorf("meta-data does not parse: %v", err)
	}

	js := run("ocf:heartbeat:Dummy", "monitor", state, "--id", "d1", "--json")
	var got struct {
		Resource, Plugin, Agent, Action, Name, Meaning string
		Code                                           int
		Params                                         []string
	}
	if err := json.Unmarshal([]byte(js.stdout), &got); err != nil || js.code != 7 {
		t.Fatalf("--json: exit %d, %v\n%s", js.code, err, js.stdout)
	}
	if got.Resource != "d1" || got.Plugin != "ocf" || got.Agent != "heartbeat:Dummy" || got.Code != 7 || got.Name != "OCF_NOT_RUNNING" || !slices.Contains(got.Params, state) {
		t.Errorf("--json: %+v", got)
	}

	// GROUP/ID: the resource and its parameters from resources.toml, as
	// the daemon loads them.
	cfg := testutil.ConfigCopy(t, "../../etc/examples/pair-witness")
	res := fmt.Sprintf("[[group]]\nname = \"web\"\nnode = \"lvs1\"\nresources = [\n  { id = \"d2\", type = \"ocf:heartbeat:Dummy\", params = { state = %q } },\n]\n",
		filepath.Join(dir, "d2.state"))
	if err := os.WriteFile(filepath.Join(cfg, "resources.toml"), []byte(res), 0o644); err != nil {
		t.Fatal(err)
	}
	run("web/d2", "start", "-c", cfg, "--node", "lvs1").want(t, "GROUP/ID start", 0, "d2 start: 0 OCF_SUCCESS")
	if _, err := os.Stat(filepath.Join(dir, "d2.state")); err != nil {
		t.Errorf("GROUP/ID start did not use the configured state file: %v", err)
	}
	run("web/d2", "monitor", "-c", cfg, "--node", "lvs1").want(t, "GROUP/ID monitor", 0)
	run("web/d2", "stop", "-c", cfg, "--node", "lvs1").want(t, "GROUP/ID stop", 0)
	run("web/d2", "monitor", "-c", cfg, "--node", "lvs1").want(t, "GROUP/ID monitor after stop", 7)
	run("web/nope", "monitor", "-c", cfg, "--node", "lvs1").want(t, "unknown id", 6, `group web has no resource "nope" (it has d2)`)
}

// An LSB init script through the lsb plugin: LSB status codes mapped as
// Pacemaker maps them (LEGACY.md §2.7).
func TestOneShotLSB(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "running")
	testutil.WriteScript(t, filepath.Join(dir, "initd", "myd"), fmt.Sprintf(`case "$1" in
start) touch %[1]s; echo "Starting myd.";;
stop) rm -f %[1]s;;
status) if [ -e %[1]s ]; then echo "myd is running."; exit 0; fi; echo "myd is not running."; exit 3;;
*) echo "Usage: myd {start|stop|status}"; exit 2;;
esac
`, state))
	env := []string{"VIGIL_LSB_DIR=" + filepath.Join(dir, "initd")}
	run := func(args ...string) shot {
		return vigilOnce(t, "", env, "", append([]string{"resource", "run"}, args...)...)
	}
	run("lsb:myd", "status").want(t, "status, stopped (LSB 3)", 7, "OCF_NOT_RUNNING", "myd is not running.")
	run("lsb:myd", "start").want(t, "start", 0, "myd start: 0 OCF_SUCCESS", "Starting myd.")
	run("lsb:myd", "status").want(t, "status, running", 0, "myd is running.")
	run("lsb:myd", "stop").want(t, "stop", 0)
	run("lsb:myd", "monitor").want(t, "monitor after stop", 7)
	run("lsb:nosuch", "start").want(t, "a missing script", 5, "is not installed")
}

// A heartbeat resource.d script through the heartbeat plugin: the "::"
// arguments first and the action last, judged by status's text
// (LEGACY.md §2.3, §2.5).
func TestOneShotHeartbeatScript(t *testing.T) {
	dir := t.TempDir()
	log, state := filepath.Join(dir, "calls"), filepath.Join(dir, "held")
	testutil.WriteScript(t, filepath.Join(dir, "ha.d", "resource.d", "rec"), fmt.Sprintf(`echo "$*" >> %[1]s
env | grep -E '^(HA_|OCF_ROOT=)' | sort >> %[1]s
case "$(eval echo \${$#})" in
start) touch %[2]s;;
stop) rm -f %[2]s;;
status) if [ -e %[2]s ]; then echo "rec is running"; else echo "rec is stopped"; fi; exit 3;;
esac
`, log, state))
	env := []string{"VIGIL_HA_DIR=" + filepath.Join(dir, "ha.d"), "VIGIL_LSB_DIR=" + filepath.Join(dir, "none")}
	run := func(args ...string) shot {
		return vigilOnce(t, "", env, "", append([]string{"resource", "run"}, args...)...)
	}
	run("rec::a1::b2", "status").want(t, "status, stopped (text, exit 3)", 7, "rec_a1_b2 status: 7 OCF_NOT_RUNNING")
	run("rec::a1::b2", "start").want(t, "start", 0, "via plugin heartbeat, agent rec")
	run("rec::a1::b2", "status").want(t, "status, running (text, exit 3 ignored)", 0)
	run("rec::a1::b2", "stop").want(t, "stop", 0)
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "a1 b2 ") {
			calls = append(calls, l)
		}
	}
	// start runs start only: ResourceManager's status before it is the
	// group's (the local resource manager's monitor), not the script's.
	if want := []string{"a1 b2 status", "a1 b2 start", "a1 b2 status", "a1 b2 stop"}; !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
	for _, w := range []string{"HA_DIR=" + filepath.Join(dir, "ha.d"), "HA_RESOURCEDIR=" + filepath.Join(dir, "ha.d", "resource.d"), "OCF_ROOT=/usr/lib/ocf", "HA_CURHOST="} {
		if !strings.Contains(string(b), w) {
			t.Errorf("environment lacks %s:\n%s", w, b)
		}
	}
	run("nosuch", "start").want(t, "a missing script", 5, "Cannot locate resource script nosuch")
}

// IPaddr in a namespace of its own, through the ipaddr plugin: start
// adds the address, monitor sees it, stop removes it.
func TestOneShotIPaddr(t *testing.T) {
	if vigilBin == "" {
		t.Skip("the vigil binary was not built (lab unavailable)")
	}
	n := nstest.NewNetns(t)
	ns := n.Add("ip")
	n.Run("ip", "-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	n.Run("ip", "-n", ns, "addr", "add", "10.9.0.1/24", "dev", "v0")
	n.Run("ip", "-n", ns, "link", "set", "v0", "up")
	n.Run("ip", "-n", ns, "link", "set", "v1", "up")
	has := func() bool {
		return strings.Contains(n.Run("ip", "-n", ns, "-4", "addr", "show", "dev", "v0"), "10.9.0.50/24")
	}
	run := func(args ...string) shot {
		return vigilOnce(t, ns, nil, "", append([]string{"resource", "run"}, args...)...)
	}
	run("IPaddr::10.9.0.50/24/v0", "monitor").want(t, "monitor before start", 7, "IPaddr_10.9.0.50 monitor: 7 OCF_NOT_RUNNING")
	arps := arpSocket(t, ns, "v1")
	// Two bursts of 3, 50 ms apart, the second 300 ms after the first:
	// the command outlives them (the plugin sends them, and ends with it).
	run("IPaddr::10.9.0.50/24/v0", "start", "arp_count=3", "arp_interval=50", "arp_repeat=300ms").
		want(t, "start", 0, "10.9.0.50/24 added on v0", "announcements: 6 of 6 sent, 0 failed")
	if !has() {
		t.Fatal("start did not add 10.9.0.50/24 to v0")
	}
	// Every announcement is on the wire by now: the command waited for them.
	got := arps(netip.MustParseAddr("10.9.0.50"))
	t.Logf("gratuitous ARP frames for 10.9.0.50 seen by the peer: %d", got)
	if got < 6 {
		t.Errorf("the peer of v0 received %d gratuitous ARP frames for 10.9.0.50, want at least 6", got)
	}
	run("IPaddr", "monitor", "ip=10.9.0.50", "nic=v0").want(t, "monitor (table form)", 0, "on v0")
	run("IPaddr::10.9.0.50/24/v0", "stop").want(t, "stop", 0)
	if has() {
		t.Fatal("stop left 10.9.0.50 on v0")
	}
	run("IPaddr::10.9.0.50/24/v0", "monitor").want(t, "monitor after stop", 7)
	run("IPaddr", "start", "ip=10.9.0.51", "nic=nope0").want(t, "an interface that does not exist", 5)
}

// arpSocket listens for ARP on link in namespace ns; the function it
// returns counts the frames received so far whose sender is ip.
func arpSocket(t *testing.T, ns, link string) func(ip netip.Addr) int {
	t.Helper()
	htons := func(v uint16) uint16 { return v<<8 | v>>8 }
	var fd int
	err := nstest.InNS(ns, func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP))); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
			return err
		}
		// Frames already queued are read at once; the timeout only
		// ends the read once the queue is empty.
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return func(ip netip.Addr) int {
		n, b := 0, make([]byte, 1500)
		for {
			m, _, err := unix.Recvfrom(fd, b, 0)
			if err != nil {
				return n
			}
			var f ethernet.Frame
			var p arp.Packet
			if f.UnmarshalBinary(b[:m]) == nil && p.UnmarshalBinary(f.Payload) == nil && p.SenderIP == ip {
				n++
			}
		}
	}
}

// A mon monitor script written here and Debian's tcp.monitor, run as mon
// runs them (LEGACY.md §4.1–4.2): argv = arguments then hosts,
// MON_* environment, the first line of output is the summary, the exit
// status is the monitor's.
func TestOneShotMonitor(t *testing.T) {
	if vigilBin == "" {
		t.Skip("the vigil binary was not built (lab unavailable)")
	}
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	testutil.WriteScript(t, filepath.Join(dir, "mon.d", "argv.monitor"), fmt.Sprintf(`for a in "$@"; do echo "arg:$a"; done > %[1]s
env | grep -E '^(MON_|FOO_BAR=)' | sort >> %[1]s
echo "h2 h3"
echo "h2 is down"
echo "on stderr" >&2
exit 3
`, rec))
	s := vigilOnce(t, "", nil, "", "monitor", "run", "--mondir", filepath.Join(dir, "mon.d"), "-g", "web", "-s", "www", "-e", "FOO_BAR=baz qux",
		`argv.monitor -x "a b" 'c d'`, "--", "h1", "h2", "h3")
	s.want(t, "a failing monitor script", 3, "summary: h2 h3", "h2 is down", "on stderr")
	b, _ := os.ReadFile(rec)
	for _, w := range []string{"arg:-x\narg:a b\narg:c d\narg:h1\narg:h2\narg:h3\n", "MON_GROUP=web\n", "MON_SERVICE=www\n", "FOO_BAR=baz qux\n",
		"MON_LAST_SUCCESS=0\n", "MON_STATEDIR="} {
		if !strings.Contains(string(b), w) {
			t.Errorf("monitor saw no %q:\n%s", w, b)
		}
	}
	// ";;": no hosts appended.
	vigilOnce(t, "", nil, "", "monitor", "run", "--mondir", filepath.Join(dir, "mon.d"), "argv.monitor nohosts ;;").want(t, "a ;; monitor", 3)
	if b, _ := os.ReadFile(rec); !strings.HasPrefix(string(b), "arg:nohosts\nMON_") {
		t.Errorf(";; still passed hosts:\n%s", b)
	}
	vigilOnce(t, "", nil, "", "monitor", "run", "--mondir", filepath.Join(dir, "mon.d"), "gone.monitor", "--", "h1").want(t, "a monitor not in mondir", 127, "gone.monitor not found")

	// Debian's tcp.monitor in a namespace with only lo: the exact bytes
	// of LEGACY.md §4.2 for a refused port, nothing at all on success.
	needFile(t, "/usr/lib/mon/mon.d/tcp.monitor", "mon")
	n := nstest.NewNetns(t)
	ns := n.Add("mon")
	s = vigilOnce(t, ns, nil, "", "monitor", "run", "--json", "tcp.monitor -p 18081", "--", "127.0.0.1")
	var p struct {
		Path, Summary, Detail, Output string
		Exit                          int
		OK                            bool
		Argv                          []string
	}
	if err := json.Unmarshal([]byte(s.stdout), &p); err != nil {
		t.Fatalf("--json: %v\n%s%s", err, s.stdout, s.stderr)
	}
	if s.code != 1 || p.Exit != 1 || p.OK || p.Path != "/usr/lib/mon/mon.d/tcp.monitor" || !slices.Equal(p.Argv, []string{"-p", "18081", "127.0.0.1"}) ||
		p.Output != "127.0.0.1\n\n127.0.0.1 could not connect: Connection refused\n" || p.Summary != "127.0.0.1" {
		t.Errorf("tcp.monitor on a refused port: exit %d %+v", s.code, p)
	}
	stop := listenIn(t, ns, "127.0.0.1:18080")
	defer stop()
	s = vigilOnce(t, ns, nil, "", "monitor", "run", "--json", "tcp.monitor -p 18080", "--", "127.0.0.1")
	if err := json.Unmarshal([]byte(s.stdout), &p); err != nil || s.code != 0 || !p.OK || p.Output != "" {
		t.Errorf("tcp.monitor on a listening port: exit %d %v %+v", s.code, err, p)
	}
	// The built-in tcp check answers in mon's shape too.
	vigilOnce(t, ns, nil, "", "monitor", "run", "tcp -p 18081", "--", "127.0.0.1").want(t, "built-in tcp, refused", 1, "summary: 127.0.0.1")
	vigilOnce(t, ns, nil, "", "monitor", "run", "tcp -p 18080", "--", "127.0.0.1").want(t, "built-in tcp, listening", 0, "summary: (NO SUMMARY)")
}

// listenIn accepts connections on addr inside namespace ns until stop.
func listenIn(t *testing.T, ns, addr string) (stop func()) {
	t.Helper()
	var l net.Listener
	if err := nstest.InNS(ns, func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	return testutil.Serve(t, l, func(net.Conn) {})
}

// An alert script that records what it gets, and Debian's file.alert,
// sent as mon sends them (LEGACY.md §4.3): -s -g -h "hosts" -t time,
// -u for an upalert, then the configured arguments; the monitor output
// on stdin; MON_* environment.
func TestOneShotAlert(t *testing.T) {
	if vigilBin == "" {
		t.Skip("the vigil binary was not built (lab unavailable)")
	}
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	testutil.WriteScript(t, filepath.Join(dir, "alert.d", "rec.alert"), fmt.Sprintf(`for a in "$@"; do echo "arg:$a"; done > %[1]s
env | grep -E '^MON_' | sort >> %[1]s
echo "stdin:" >> %[1]s
cat >> %[1]s
exit 4
`, rec))
	output := "127.0.0.1 10.0.0.2\n\n127.0.0.1 could not connect: Connection refused\n"
	s := vigilOnce(t, "", nil, output, "alert", "test", "--alertdir", filepath.Join(dir, "alert.d"), "-s", "http", "-g", "web", "-h", "127.0.0.1 10.0.0.2",
		"-t", "1700000000", `rec.alert tcpalert "two words"`)
	s.want(t, "a failure alert", 4, "exit:  4")
	b, _ := os.ReadFile(rec)
	got := string(b)
	wantArgs := "arg:-s\narg:http\narg:-g\narg:web\narg:-h\narg:127.0.0.1 10.0.0.2\narg:-t\narg:1700000000\narg:tcpalert\narg:two words\n"
	if !strings.HasPrefix(got, wantArgs) || strings.Contains(got, "arg:-l") {
		t.Errorf("argv:\n%s\nwant:\n%s", got, wantArgs)
	}
	for _, w := range []string{"MON_ALERTTYPE=failure\n", "MON_OPSTATUS=0\n", "MON_RETVAL=1\n", "MON_GROUP=web\n", "MON_SERVICE=http\n",
		"MON_LAST_SUMMARY=127.0.0.1 10.0.0.2\n", "MON_FIRST_SUCCESS=\n", "stdin:\n" + output} {
		if !strings.Contains(got, w) {
			t.Errorf("alert saw no %q:\n%s", w, got)
		}
	}
	vigilOnce(t, "", nil, output, "alert", "test", "--alertdir", filepath.Join(dir, "alert.d"), "-u", "-t", "1700000000", "--", "rec.alert", "up1").
		want(t, "an upalert", 4)
	b, _ = os.ReadFile(rec)
	for _, w := range []string{"arg:-t\narg:1700000000\narg:-u\narg:up1\n", "MON_ALERTTYPE=up\n", "MON_OPSTATUS=1\n", "MON_RETVAL=0\n"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("upalert saw no %q:\n%s", w, b)
		}
	}
	vigilOnce(t, "", nil, "", "alert", "test", "--alertdir", filepath.Join(dir, "alert.d"), "gone.alert").want(t, "an alert not in alertdir", 127, "gone.alert not found")
	vigilOnce(t, "", nil, "", "alert", "test", "--alertdir", filepath.Join(dir, "alert.d"), "exit=2-5 rec.alert").want(t, "an exit= line not selecting", 0, "not sent: exit=2-5 does not select exit value 1")

	// Debian's file.alert: LEGACY.md §4.3's record, byte for byte.
	needFile(t, "/usr/lib/mon/alert.d/file.alert", "mon")
	out := filepath.Join(dir, "alerts.log")
	in := "127.0.0.1 10.0.0.2\n\n127.0.0.1 could not connect: Connection refused\n10.0.0.2 timeout\n"
	vigilOnce(t, "", nil, in, "alert", "test", "-s", "http", "-g", "webservers", "-h", "127.0.0.1 10.0.0.2", "-t", "1700000000",
		"--description", "web front ends", "file.alert", out).want(t, "file.alert", 0)
	b, _ = os.ReadFile(out)
	want := "failure webservers http 1700000000 (Tue Nov 14 22:13:20) 127.0.0.1 10.0.0.2\nDESCR=web front ends\nOPSTATUS=0\n\n127.0.0.1 could not connect: Connection refused\n10.0.0.2 timeout\n.\n"
	if string(b) != want {
		t.Errorf("file.alert wrote:\n%q\nwant (LEGACY.md §4.3):\n%q", b, want)
	}
}
