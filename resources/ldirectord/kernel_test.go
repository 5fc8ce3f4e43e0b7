package ldirectord

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/nstest"

	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// The seed's ldirectord example programmed into kernel IPVS: the table in
// /proc/net/ip_vs is what `ipvsadm -A -t 10.0.0.3:80 -s wlc` and two
// `-a … -g -w 5` give. Health checks are "on" here (the real servers do
// not exist in the VM); their effect on the table is tested above against
// the userspace director with the same engine. Run by test/ipvsvm.
func TestKernelSeed(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Skip("kernel has no IPVS here; test/ipvsvm runs this test in a VM that has it")
	}
	e := NewEngine(Options{})
	defer e.Close()
	e.Configure(instance(t, `
backend = "ipvs"
[[virtual]]
address = "10.0.0.3:80"
scheduler = "wlc"
checktype = "on"
request = "/.testpage"
receive = "test page"
  [[virtual.real]]
  address = "192.168.6.2:80"
  forward = "gate"
  weight = 5
  [[virtual.real]]
  address = "192.168.6.3:80"
  forward = "gate"
  weight = 5
`))
	if err := e.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	proc, err := os.ReadFile("/proc/net/ip_vs")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TCP  0A000003:0050 wlc", "-> C0A80602:0050      Route   5", "-> C0A80603:0050      Route   5"} {
		if !strings.Contains(string(proc), want) {
			t.Errorf("no %q in\n%s", want, proc)
		}
	}
	if st := e.Status(); st.Backend != director.Kernel || !strings.Contains(st.Text("www", false), "Route   5") {
		t.Errorf("status:\n%s", st.Text("www", false))
	}
	if err := e.Deactivate(); err != nil {
		t.Fatal(err)
	}
	proc, _ = os.ReadFile("/proc/net/ip_vs")
	if strings.Contains(string(proc), "0A000003") {
		t.Errorf("cleanstop left the service:\n%s", proc)
	}
}

// The sync daemons follow the instance's role in real kernel IPVS: two
// directors (this VM's root namespace and a namespace "b", linked by a
// veth pair named alike on both sides, as one [sync] table names it)
// start as standbys running the backup daemon; the active one switches to
// the master, and the roles swap on a failover and back on a failback;
// Close stops both. GET_DAEMON in each namespace is the judge, and
// sync_version is written in each namespace. Run by test/ipvsvm.
func TestKernelSyncRoles(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Skip("kernel has no IPVS here; test/ipvsvm runs this test in a VM that has it")
	}
	ns := nstest.NewNetns(t)
	b := ns.Add("b")
	ns.Run("ip", "link", "add", "vsync", "type", "veth", "peer", "name", "vsync", "netns", b)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "vsync").Run() })
	ns.Run("ip", "addr", "add", "10.78.0.1/24", "dev", "vsync")
	ns.Run("ip", "link", "set", "vsync", "up")
	ns.Run("ip", "-n", b, "addr", "add", "10.78.0.2/24", "dev", "vsync")
	ns.Run("ip", "-n", b, "link", "set", "vsync", "up")
	t.Cleanup(func() { _ = os.WriteFile(syncVersionPath, []byte("1"), 0o644) })

	inst := instance(t, "backend = \"ipvs\"\n[sync]\ninterface = \"vsync\"\nsync_id = 77\nsync_version = 0\n")
	a := NewEngine(Options{})
	defer a.Close()
	inB := func(f func() error) error { return nstest.InNS(b, f) }
	bEng := NewEngine(Options{
		OpenSync: func() (s SyncControl, err error) {
			err = inB(func() error { s, err = director.OpenSync(); return err })
			return s, err
		},
		SetSysctl: func(p, v string) error { return inB(func() error { return writeSysctl(p, v) }) },
		Open: func(name string, log *slog.Logger) (be director.Backend, err error) {
			err = inB(func() error { be, err = director.Open(name, log); return err })
			return be, err
		},
	})
	defer bEng.Close()
	roles := func() string {
		var r []string
		for _, e := range []*Engine{a, bEng} {
			st := e.Status().Sync
			if st == nil || st.Error != "" {
				t.Fatalf("sync status %+v", st)
			}
			var here []string
			for _, d := range st.Daemons {
				if d.Interface != "vsync" || d.SyncID != 77 || d.Port != 8848 || d.Group.String() != "224.0.0.81" {
					t.Fatalf("daemon as the kernel lists it: %+v", d)
				}
				here = append(here, d.Role)
			}
			r = append(r, strings.Join(here, "+"))
		}
		return strings.Join(r, " ")
	}
	step := func(what, want string, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		took := time.Since(start)
		if got := roles(); got != want {
			t.Fatalf("%s: daemons %q, want %q", what, got, want)
		}
		t.Logf("%s: %s (%s)", what, want, took.Round(time.Millisecond))
	}
	ctx := context.Background()
	step("both configured", "backup backup", func() error { a.Configure(inst); bEng.Configure(inst); return nil })
	for _, p := range []string{syncVersionPath} {
		v, _ := os.ReadFile(p)
		var vb []byte
		_ = inB(func() (err error) { vb, err = os.ReadFile(p); return err })
		if strings.TrimSpace(string(v)) != "0" || strings.TrimSpace(string(vb)) != "0" {
			t.Fatalf("sync_version here %q, in b %q, want 0", v, vb)
		}
	}
	step("a active", "master backup", func() error { return a.Activate(ctx) })
	step("failover to b", "backup master", func() error {
		if err := a.Deactivate(); err != nil {
			return err
		}
		return inB(func() error { return bEng.Activate(ctx) })
	})
	step("failback to a", "master backup", func() error {
		if err := bEng.Deactivate(); err != nil {
			return err
		}
		return a.Activate(ctx)
	})
	if !strings.Contains(a.Status().Text("www", false), "master sync daemon running: master on vsync syncid 77") {
		t.Errorf("status text:\n%s", a.Status().Text("www", false))
	}
	// Close stops them: GET_DAEMON in each namespace lists none.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bEng.Close(); err != nil {
		t.Fatal(err)
	}
	for _, in := range []func(func() error) error{func(f func() error) error { return f() }, inB} {
		var ds []director.SyncDaemon
		if err := in(func() error {
			h, err := director.OpenSync()
			if err != nil {
				return err
			}
			defer h.Close()
			ds, err = h.Daemons(ctx)
			return err
		}); err != nil || len(ds) != 0 {
			t.Errorf("after close: %+v %v", ds, err)
		}
	}
}
