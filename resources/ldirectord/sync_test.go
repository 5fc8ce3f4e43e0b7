package ldirectord

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// fakeSync is the kernel's daemon table as far as the engine sees it:
// one daemon per state, EEXIST and ESRCH as the kernel answers, and a
// maxlen derived from a 1500-byte MTU when none is asked for.
type fakeSync struct {
	mu      sync.Mutex
	daemons map[uint32]director.SyncDaemon
	closed  bool
}

func (f *fakeSync) Daemons(context.Context) ([]director.SyncDaemon, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []director.SyncDaemon
	for _, s := range []uint32{director.SyncMaster, director.SyncBackup} {
		if d, ok := f.daemons[s]; ok {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeSync) Start(_ context.Context, d director.SyncDaemon) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.daemons[d.State]; ok {
		return unix.EEXIST
	}
	if d.MaxLen == 0 {
		d.MaxLen = 1472
	}
	f.daemons[d.State] = d
	return nil
}

func (f *fakeSync) Stop(_ context.Context, state uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.daemons[state]; !ok {
		return unix.ESRCH
	}
	delete(f.daemons, state)
	return nil
}

func (f *fakeSync) Close() error { f.mu.Lock(); f.closed = true; f.mu.Unlock(); return nil }

func (f *fakeSync) roles() string {
	ds, _ := f.Daemons(context.Background())
	var r []string
	for _, d := range ds {
		r = append(r, director.SyncStateName(d.State)+":"+d.Interface)
	}
	return strings.Join(r, ",")
}

const syncInstance = `
backend = "ipvs"
[[virtual]]
address = "127.0.0.10:18093"
checktype = "off"
[sync]
interface = "eth1"
sync_id = 7
`

// The roles follow the instance: a configured standby runs the backup
// daemon, Activate switches to the master, Deactivate (a move or a
// failback away from here) back to the backup, Close stops both; a
// daemon stopped behind the engine's back is started again, a changed
// setting restarts it, and sync_version is written.
func TestEngineSyncRoles(t *testing.T) {
	fake := &fakeSync{daemons: map[uint32]director.SyncDaemon{}}
	var sysctls []string
	e := NewEngine(Options{
		Open: func(string, *slog.Logger) (director.Backend, error) {
			return director.NewUserspace(director.UserspaceOptions{}), nil
		},
		OpenSync:  func() (SyncControl, error) { return fake, nil },
		SetSysctl: func(p, v string) error { sysctls = append(sysctls, p+"="+v); return nil },
	})
	defer e.Close()
	in := instance(t, syncInstance)
	e.Configure(in)
	if got := fake.roles(); got != "backup:eth1" {
		t.Fatalf("configured standby: %q", got)
	}
	if len(sysctls) == 0 || sysctls[0] != "/proc/sys/net/ipv4/vs/sync_version=1" {
		t.Fatalf("sysctls %q", sysctls)
	}
	st := e.Status()
	if st.Sync == nil || st.Sync.Want != "backup" || len(st.Sync.Daemons) != 1 ||
		!strings.Contains(st.Text("www", false), "backup sync daemon running: backup on eth1 syncid 7 group 224.0.0.81 port 8848 ttl 1 maxlen 1472") {
		t.Fatalf("status: %+v\n%s", st.Sync, st.Text("www", false))
	}
	for round := range 2 { // a failover, a failback, and again
		if err := e.Activate(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := fake.roles(); got != "master:eth1" {
			t.Fatalf("round %d, active: %q", round, got)
		}
		if err := e.Deactivate(); err != nil {
			t.Fatal(err)
		}
		if got := fake.roles(); got != "backup:eth1" {
			t.Fatalf("round %d, stopped: %q", round, got)
		}
	}
	// Stopped behind our back: the next pass (a monitor) puts it back.
	_ = fake.Stop(context.Background(), director.SyncBackup)
	if err := e.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := fake.roles(); got != "backup:eth1" {
		t.Fatalf("after a kill: %q", got)
	}
	// A changed port restarts the daemon with it.
	in.Sync.Port = 8900
	e.Configure(in)
	if d, _ := fake.Daemons(context.Background()); len(d) != 1 || d[0].Port != 8900 {
		t.Fatalf("after a port change: %+v", d)
	}
	// The [sync] table removed: no daemon.
	in2 := instance(t, syncInstance[:strings.Index(syncInstance, "[sync]")])
	e.Configure(in2)
	if got := fake.roles(); got != "" {
		t.Fatalf("sync removed: %q", got)
	}
	e.Configure(in)
	if got := fake.roles(); got != "backup:eth1" {
		t.Fatalf("sync back: %q", got)
	}
	// The plugin exiting (Drain) stops them and keeps them stopped.
	e.StopSync()
	e.Configure(in)
	if got := fake.roles(); got != "" || !fake.closed {
		t.Fatalf("after StopSync: %q closed %v", got, fake.closed)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fake.roles(); got != "" || !fake.closed {
		t.Fatalf("after close: %q closed %v", got, fake.closed)
	}
}

// Without kernel IPVS the [sync] table is reported, not fatal.
func TestEngineSyncUserspace(t *testing.T) {
	e := NewEngine(Options{OpenSync: func() (SyncControl, error) { t.Fatal("opened"); return nil, nil }})
	defer e.Close()
	in := instance(t, strings.Replace(syncInstance, `backend = "ipvs"`, `backend = "auto"`, 1))
	if name, _ := director.Pick("auto"); name == director.Kernel {
		t.Skip("this kernel has IPVS")
	}
	e.Configure(in)
	if st := e.Status(); st.Sync == nil || !strings.Contains(st.Sync.Error, "needs kernel IPVS") {
		t.Fatalf("%+v", st.Sync)
	}
}
