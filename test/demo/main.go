// Command demo runs the seed setup — heartbeat's `lvs1 IPaddr::VIP
// ldirectord::www mon` on a director pair — as Vigil, with no input
// needed: it imports the seed's ldirectord.cf and mon.cf with `vigil
// import`, starts two directors and a witness in network namespaces (UDP
// heartbeats on two networks plus a serial cable), two real web servers and
// a client; shows `vigil status`; takes a real server down and up; kills
// the active director with SIGKILL while the client keeps requesting the
// VIP, and prints the outage the client saw and the new status; restarts
// the old director; and removes everything it made. The kernel here may
// lack IPVS: ldirectord then directs through its userspace backend. Run it
// as root: `make demo`.
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/test/lab"
)

// run is a minimal lab.TB for a program: it records cleanups and runs them
// in reverse order at the end, whatever happens.
type run struct {
	dir      string
	cleanups []func()
	failed   bool
}

func (r *run) Helper()                   {}
func (r *run) Logf(f string, a ...any)   { fmt.Printf(f+"\n", a...) }
func (r *run) Failed() bool              { return r.failed }
func (r *run) Cleanup(f func())          { r.cleanups = append(r.cleanups, f) }
func (r *run) TempDir() string           { return r.dir }
func (r *run) Fatalf(f string, a ...any) { r.failed = true; panic(fmt.Sprintf(f, a...)) }
func (r *run) close() {
	slices.Reverse(r.cleanups)
	for _, f := range r.cleanups {
		f()
	}
	os.RemoveAll(r.dir)
}

func main() {
	bin := flag.String("vigil", "bin/vigil", "vigil binary")
	flag.Parse()
	if why := lab.Available(); why != "" {
		fmt.Fprintln(os.Stderr, "demo:", why)
		os.Exit(1)
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, _ := os.MkdirTemp("", "vigil-demo")
	r := &run{dir: dir}
	// Ctrl-C or SIGTERM still removes the namespaces.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; r.failed = true; r.close(); os.Exit(130) }()
	code := 0
	func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintln(os.Stderr, "demo failed:", p)
				code = 1
			}
			r.close()
		}()
		demo(r, abs)
	}()
	os.Exit(code)
}

func step(f string, a ...any) { fmt.Printf("\n\033[1m==> "+f+"\033[0m\n", a...) }

func status(bin string, n *lab.Node, args ...string) {
	out, _ := exec.Command(bin, append([]string{"status", "-s", n.Socket}, args...)...).CombinedOutput()
	fmt.Print(string(out))
}

// The seed's files with the lab's addresses: the VIP for 10.0.0.3, the
// real servers for 192.168.6.2 and .3; mon's mail.alert becomes a
// file.alert so that the demo sends no mail.
const ldirectordCf = `# the seed's www service (ldirectord 4.12 syntax)
checktimeout=1
checkinterval=1
quiescent=no

virtual=%[1]s:80
	real=%[2]s:80 gate 5
	real=%[3]s:80 gate 5
	service=http
	request="/.testpage"
	receive="test page"
	scheduler=wlc
	protocol=tcp
	checktype=negotiate
`

const monCf = `# the seed's mon.cf: lvs.alert takes a failed real server out of the
# virtual service and puts it back
alertdir = /usr/lib/mon/alert.d
mondir   = /usr/lib/mon/mon.d

hostgroup rs1 %[2]s

hostgroup rs2 %[3]s

watch rs1
    service http
        interval 1s
        monitor http.monitor -u /.testpage -t 1
        period wd {Sun-Sat}
            alert file.alert %[4]s
            alert lvs.alert -P tcp -V %[1]s:80 -R %[2]s -W 5 -F gate
            upalert file.alert %[4]s
            upalert lvs.alert -P tcp -V %[1]s:80 -R %[2]s -W 5 -F gate

watch rs2
    service http
        interval 1s
        monitor http.monitor -u /.testpage -t 1
        period wd {Sun-Sat}
            alert file.alert %[4]s
            alert lvs.alert -P tcp -V %[1]s:80 -R %[3]s -W 5 -F gate
            upalert file.alert %[4]s
            upalert lvs.alert -P tcp -V %[1]s:80 -R %[3]s -W 5 -F gate
`

// importSeed writes the old files and imports them with `vigil import`.
func importSeed(r *run, bin, dir, monAlerts string) map[string]string {
	old, out := filepath.Join(dir, "legacy"), filepath.Join(dir, "imported")
	files := map[string]string{
		"ldirectord.cf": fmt.Sprintf(ldirectordCf, lab.VIP, lab.RealIP1, lab.RealIP2),
		"mon.cf":        fmt.Sprintf(monCf, lab.VIP, lab.RealIP1, lab.RealIP2, monAlerts),
	}
	os.MkdirAll(old, 0o755)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(old, name), []byte(data), 0o644); err != nil {
			r.Fatalf("%v", err)
		}
	}
	imported := map[string]string{}
	for _, imp := range [][]string{{"ldirectord", "www", "ldirectord.cf"}, {"mon", "mon", "mon.cf"}} {
		fmt.Printf("$ vigil import %s --name %s %s\n", imp[0], imp[1], imp[2])
		b, err := exec.Command(bin, "import", imp[0], "-o", out, "--name", imp[1], filepath.Join(old, imp[2])).CombinedOutput()
		fmt.Print(indent(string(b)))
		if err != nil {
			r.Fatalf("import %s: %v", imp[0], err)
		}
		data, err := os.ReadFile(filepath.Join(out, imp[1]+".toml"))
		if err != nil {
			r.Fatalf("%v", err)
		}
		imported[imp[1]+".toml"] = string(data)
	}
	return imported
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

func demo(r *run, bin string) {
	start := time.Now()
	l := lab.New(r)
	monAlerts, clusterAlerts := filepath.Join(l.Dir, "mon.alerts"), filepath.Join(l.Dir, "cluster.alerts")
	step("importing the seed's ldirectord.cf and mon.cf (haresources: lvs1 IPaddr::%s/24/eth0 ldirectord::www mon)", lab.VIP)
	files := importSeed(r, bin, l.Dir, monAlerts)

	step("two directors n1 n2 and a witness n3 in namespaces (prefix %s): UDP heartbeats on two networks, a serial cable n1-n2", l.Prefix)
	c := &lab.Cluster{Name: "seed", Keepalive: 100 * time.Millisecond, Deadtime: 350 * time.Millisecond, Initdead: 3 * time.Second,
		Secret: "demo-secret-0123456789abcdef", Files: files, Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}},
		Extra: fmt.Sprintf("[[alert]]\nevents = [\"node\", \"failover\", \"realserver\"]\nsend = [\"file.alert %s\"]\n", clusterAlerts),
		Resources: fmt.Sprintf(`[[group]]
name = "lvs"
node = "n1"
resources = [
  { type = "IPaddr", interval = "200ms", params = { ip = %q, cidr_netmask = "24", nic = "eth0" } },
  { type = "ldirectord", params = { config = "www" }, interval = "1s" },
  { type = "mon", params = { config = "mon" }, interval = "1s" },
]
`, lab.VIP)}
	nodes := l.Trio(bin, c, true, nil)
	ns := l.AddClient()
	rs1 := l.AddWebServer("rs1", lab.RealIP1)
	l.AddWebServer("rs2", lab.RealIP2)
	n1, n2 := nodes["n1"], nodes["n2"]
	real1, real2 := lab.RealIP1+":80", lab.RealIP2+":80"

	table := func(n *lab.Node, want map[string]string) *api.Status {
		st, err := n.WaitStatus(20*time.Second, func(st *api.Status) bool {
			if st.Core == nil || st.Core.State == nil || st.Core.State.Groups["lvs"] == nil || st.Core.State.Groups["lvs"].Owner != n.Name {
				return false
			}
			got := realTable(st)
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return len(got) == len(want)
		})
		if err != nil {
			r.Fatalf("%s: %v", n.Name, err)
		}
		return st
	}
	step("waiting for the VIP and the IPVS table on n1")
	// The round trip: the table the daemon programs from the imported
	// file is the one ldirectord programs from ldirectord.cf
	// (-A -t VIP:80 -s wlc; -a -r REAL:80 -g -w 5 for each real). It is
	// read from the same status that shows both reals healthy: a check
	// that times out on a starved machine may take a real out a moment
	// later, as ldirectord would.
	st := table(n1, map[string]string{real1: "up", real2: "up"})
	status(bin, n1)
	if got, want := tableLines(st), []string{"TCP " + lab.VIP + ":80 wlc", "-> " + real1 + " Route 5", "-> " + real2 + " Route 5"}; !slices.Equal(got, want) {
		r.Fatalf("IPVS table %q, want ldirectord's %q", got, want)
	}

	step("the client asks the VIP ten times (wlc over both real servers)")
	fmt.Println(served(l, ns, 10))

	step("rs1 stops: ldirectord's check and mon's lvs.alert take it out")
	rs1.Stop()
	table(n1, map[string]string{real2: "up"})
	fmt.Println(served(l, ns, 6))
	if _, err := lab.WaitFile(monAlerts, 10*time.Second, func(s string) bool { return strings.Contains(s, "failure rs1 http") }); err != nil {
		r.Fatalf("mon: %v", err)
	}
	rs1.Start()
	table(n1, map[string]string{real1: "up", real2: "up"})
	if _, err := lab.WaitFile(monAlerts, 10*time.Second, func(s string) bool { return strings.Contains(s, "up rs1 http") }); err != nil {
		r.Fatalf("mon: %v", err)
	}
	fmt.Println("rs1 is back:", served(l, ns, 6))

	step("kill -9 of the active director n1 (every process in its namespace) while the client keeps asking")
	cl := l.StartClient(ns, 20*time.Millisecond, 100*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // a few answers before the crash, for the record
	killed := time.Now()
	l.Crash(n1)
	table(n2, map[string]string{real1: "up", real2: "up"})
	if _, err := n2.WaitStatus(10*time.Second, func(*api.Status) bool {
		return answeredAfter(cl, killed)
	}); err != nil {
		r.Fatalf("no answer from the VIP after the failover: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	outage, failed := outageOf(cl.Stop(), killed)
	fmt.Printf("the client's outage: %s (%d failed requests); deadtime is %s\n", outage.Round(time.Millisecond), failed, c.Deadtime)
	status(bin, n2)

	step("n1 restarts: it rejoins; auto_failback is off, so the group stays on n2")
	l.Reboot(bin, n1)
	if _, err := n2.WaitStatus(20*time.Second, func(st *api.Status) bool {
		return st.Core != nil && st.Core.State != nil && st.Core.State.Nodes["n1"] != nil && st.Core.State.Nodes["n1"].Online
	}); err != nil {
		r.Fatalf("n1 did not rejoin: %v", err)
	}
	fmt.Print("$ vigil status -1\n    ")
	status(bin, n2, "-1")
	fmt.Println("client:", served(l, ns, 4))

	step("what the alert routes wrote (ha.toml [[alert]] and mon's file.alert)")
	for _, file := range []string{clusterAlerts, monAlerts} {
		b, _ := os.ReadFile(file)
		for _, line := range strings.Split(string(b), "\n") {
			// file.alert: TYPE GROUP SERVICE TIME (DATE) SUMMARY
			if f := strings.Fields(line); len(f) > 4 && (f[0] == "failure" || f[0] == "up") {
				_, summary, _ := strings.Cut(line, ") ")
				fmt.Printf("    %-15s %-7s %-22s %s\n", filepath.Base(file)+":", f[0], f[1]+" "+f[2], summary)
			}
		}
	}
	step("done in %s; removing the lab", time.Since(start).Round(100*time.Millisecond))
}

// realTable is the ldirectord table's real servers that are healthy and
// programmed: the checker's verdict and the director's table are read
// separately, so a real can show "up" a moment before its weight is set.
func realTable(st *api.Status) map[string]string {
	got := map[string]string{}
	for _, in := range st.Inspections {
		if in.Resource != "ldirectord_www" {
			continue
		}
		for _, line := range strings.Split(in.Text, "\n") {
			f := strings.Fields(line)
			if len(f) >= 7 && f[0] == "->" && f[1] != "RemoteAddress:Port" && f[3] != "-" && f[6] == "up" {
				got[f[1]] = f[6]
			}
		}
	}
	return got
}

// tableLines is the ldirectord table as ipvsadm -Ln shows it, without
// counters and health: "TCP VIP:PORT SCHED", "-> REAL FORWARD WEIGHT".
func tableLines(st *api.Status) []string {
	var out []string
	for _, in := range st.Inspections {
		if in.Resource != "ldirectord_www" {
			continue
		}
		for _, line := range strings.Split(in.Text, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 3 && (f[0] == "TCP" || f[0] == "UDP"):
				out = append(out, strings.Join(f[:3], " "))
			case len(f) >= 4 && f[0] == "->" && f[1] != "RemoteAddress:Port":
				out = append(out, strings.Join(f[:4], " "))
			}
		}
	}
	return out
}

// served asks the VIP n times and counts the answers by server.
func served(l *lab.Lab, ns string, n int) string {
	by := map[string]int{}
	for range n {
		body, err := l.Get(ns, lab.VIP+":80", "/", time.Second)
		if err != nil {
			body = "failed"
		}
		by[body]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, by[k]))
	}
	return "answers: " + strings.Join(parts, ", ")
}

func answeredAfter(c *lab.Client, t time.Time) bool {
	return slices.ContainsFunc(c.Answers(), func(a lab.Answer) bool { return a.At.After(t) && a.Err == nil })
}

// outageOf is the time from the last answer before the first failure
// after t to the first answer after it, and the failed requests between.
func outageOf(as []lab.Answer, t time.Time) (time.Duration, int) {
	lastOK, failed := t, 0
	for _, a := range as {
		switch {
		case a.Err == nil && failed == 0:
			lastOK = a.At
		case a.Err != nil && a.At.After(t.Add(-time.Second)):
			failed++
		case a.Err == nil && failed > 0:
			return a.At.Sub(lastOK), failed
		}
	}
	return 0, failed
}
