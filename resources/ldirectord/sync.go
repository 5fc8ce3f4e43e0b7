package ldirectord

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// SyncControl drives the kernel's connection-sync daemons of this node's
// network namespace (director.SyncHandle; a fake in unit tests).
type SyncControl interface {
	Daemons(ctx context.Context) ([]director.SyncDaemon, error)
	Start(ctx context.Context, d director.SyncDaemon) error
	Stop(ctx context.Context, state uint32) error
	Close() error
}

func openSync() (SyncControl, error) { return director.OpenSync() }

// syncVersionPath is net.ipv4.vs.sync_version; /proc/sys/net is the
// network namespace of the thread that opens it, which for a plugin is
// the resource's.
const syncVersionPath = "/proc/sys/net/ipv4/vs/sync_version"

func writeSysctl(path, value string) error {
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == value {
		return nil
	}
	return os.WriteFile(path, []byte(value), 0o644)
}

// syncTimeout bounds one pass over the daemons: a DEL_DAEMON waits for the
// kernel's sync thread to stop (kthread_stop), which is prompt in the VM
// test (about 1 ms) but is a wait on the kernel all the same, and a pass
// runs with the engine's lock held.
const syncTimeout = 5 * time.Second

// SyncStatus is what status shows of the sync daemons.
type SyncStatus struct {
	Want        string                `json:"want"` // master, backup or none
	Daemons     []director.SyncDaemon `json:"daemons"`
	SyncVersion int                   `json:"sync_version"`
	Error       string                `json:"error,omitempty"`
}

// syncRole is the daemon this node should run: master while it directs,
// backup while it stands by with the configuration, none once closed.
// Called with e.mu held.
func (e *Engine) syncRole() uint32 {
	switch {
	case e.inst.Sync == nil || e.closed:
		return 0
	case e.active:
		return director.SyncMaster
	}
	return director.SyncBackup
}

// syncPass brings the sync daemons to the role: the wanted daemon is
// started first (a takeover's master runs before its backup goes), then
// any other, or one whose settings changed, is stopped (and the changed
// one started again). A daemon stopped behind the engine's back is
// started again at the next pass. Called with e.mu held.
func (e *Engine) syncPass() {
	role := e.syncRole()
	if e.sync == nil {
		if role == 0 {
			return
		}
		if name, _ := director.Pick(e.inst.Backend); name != director.Kernel {
			e.syncErr = errors.New("connection sync needs kernel IPVS; this node runs the userspace director")
			return
		}
		s, err := e.opts.OpenSync()
		if err != nil {
			e.syncErr = err
			return
		}
		e.sync = s
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	var errs []error
	var want director.SyncDaemon
	if role != 0 {
		want = e.inst.Sync.Daemon(role)
		if v := strconv.Itoa(*e.inst.Sync.SyncVersion); v != e.syncVer {
			if err := e.opts.SetSysctl(syncVersionPath, v); err != nil {
				errs = append(errs, fmt.Errorf("net.ipv4.vs.sync_version = %s: %w", v, err))
			} else {
				e.syncVer = v
			}
		}
	}
	have, err := e.sync.Daemons(ctx)
	if err != nil {
		e.syncErr = err
		return
	}
	running := map[uint32]director.SyncDaemon{}
	for _, d := range have {
		running[d.State] = d
	}
	changed := false
	start := func() {
		changed = true
		if err := e.sync.Start(ctx, want); err != nil {
			errs = append(errs, err)
			return
		}
		e.opts.Log.Info("sync daemon started", "daemon", want.String())
	}
	_, present := running[role]
	if role != 0 && !present {
		start()
	}
	for _, d := range have {
		if d.State == role && sameDaemon(d, want) {
			continue
		}
		changed = true
		if err := e.sync.Stop(ctx, d.State); err != nil {
			errs = append(errs, err)
			continue
		}
		e.opts.Log.Info("sync daemon stopped", "daemon", d.String())
		if d.State == role {
			start() // its settings changed
		}
	}
	// A pass that changed nothing (every pass, normally) dumps once.
	if changed {
		have, err = e.sync.Daemons(ctx)
	}
	if err == nil {
		e.syncHave = have
	}
	e.syncErr = errors.Join(append(errs, err)...)
	if role == 0 && len(e.syncHave) == 0 && e.syncErr == nil {
		_ = e.sync.Close()
		e.sync = nil
	}
}

// sameDaemon compares what the kernel reports with what is wanted; the
// kernel reports a derived maxlen when none was asked for.
func sameDaemon(have, want director.SyncDaemon) bool {
	if want.MaxLen == 0 {
		have.MaxLen = 0
	}
	have.Role, want.Role = "", ""
	return have == want
}

// syncStatus reports the daemons as the kernel lists them now. Called
// with e.mu held.
func (e *Engine) syncStatus() *SyncStatus {
	if e.inst.Sync == nil && e.sync == nil {
		return nil
	}
	st := &SyncStatus{Want: "none"}
	if r := e.syncRole(); r != 0 {
		st.Want = director.SyncStateName(r)
	}
	if e.inst.Sync != nil {
		st.SyncVersion = *e.inst.Sync.SyncVersion
	}
	if e.sync != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if have, err := e.sync.Daemons(ctx); err == nil {
			e.syncHave = have
		}
	}
	st.Daemons = append(st.Daemons, e.syncHave...)
	if e.syncErr != nil {
		st.Error = e.syncErr.Error()
	}
	return st
}

// StopSync stops the instance's sync daemons for good (the plugin is
// exiting): a kernel daemon would otherwise outlive the process. The
// director table is left as it is.
func (e *Engine) StopSync() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	e.syncPass()
	e.sloppyPass()
}
