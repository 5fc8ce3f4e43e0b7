package ldirectord

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// The sysctls of stateless mode, in the network namespace of the thread
// that opens them (the resource's). With sloppy_tcp = 0 IPVS schedules a
// TCP packet that matches no connection entry only when it is a SYN; any
// other packet goes up the director's own stack, which owns the VIP and
// answers with a reset. With 1, a mid-flow packet of a flow this director
// never saw is scheduled like a new one: with mh, to the real server the
// director that saw its SYN picked. sloppy_sctp is the same for SCTP
// (INIT), which a firewall-mark service may carry.
var sloppySysctls = []string{"/proc/sys/net/ipv4/vs/sloppy_tcp", "/proc/sys/net/ipv4/vs/sloppy_sctp"}

func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// sloppyShare is the sloppy sysctls of one network namespace, shared by
// the instances using them there: the values found before the first set
// them, put back when the last one is done.
type sloppyShare struct {
	users map[*Engine]bool
	found map[string]string
}

var (
	sloppyMu     sync.Mutex
	sloppyShares = map[string]*sloppyShare{} // by Options.SysctlScope
)

// sloppyPass sets the sloppy sysctls while the instance has a stateless
// virtual service, on the active director and on standbys alike (a
// standby that takes over must carry mid-flow packets from its first
// one), and once no instance of the namespace has a stateless virtual
// left (a reload removed them, or the instances closed) puts back the
// values found before the first set them. Called with e.mu held.
func (e *Engine) sloppyPass() {
	want := e.inst.Stateless() && !e.closed
	if !want && !e.sloppyOn {
		e.sloppyErr = nil
		return
	}
	sloppyMu.Lock()
	defer sloppyMu.Unlock()
	scope := e.opts.SysctlScope
	sh := sloppyShares[scope]
	var errs []error
	if want {
		if name, _ := director.Pick(e.inst.Backend); name != director.Kernel {
			e.sloppyErr = errors.New("stateless mode needs kernel IPVS; this node runs the userspace director")
			return
		}
		if sh == nil {
			found := map[string]string{}
			for _, p := range sloppySysctls {
				v, err := e.opts.GetSysctl(p)
				if err != nil {
					errs = append(errs, fmt.Errorf("read %s: %w", sysctlName(p), err))
				}
				found[p] = v
			}
			if len(errs) > 0 {
				e.sloppyErr = errors.Join(errs...)
				return
			}
			sh = &sloppyShare{users: map[*Engine]bool{}, found: found}
			sloppyShares[scope] = sh
		}
		sh.users[e] = true
		e.sloppyOn = true
		for _, p := range sloppySysctls {
			if err := e.opts.SetSysctl(p, "1"); err != nil {
				errs = append(errs, fmt.Errorf("%s = 1: %w", sysctlName(p), err))
			}
		}
		e.sloppyErr = errors.Join(errs...)
		return
	}
	if sh != nil && len(sh.users) == 1 && sh.users[e] {
		for _, p := range sloppySysctls {
			if err := e.opts.SetSysctl(p, sh.found[p]); err != nil {
				errs = append(errs, fmt.Errorf("restore %s = %s: %w", sysctlName(p), sh.found[p], err))
			}
		}
		if len(errs) > 0 {
			e.sloppyErr = errors.Join(errs...) // still the user: the next pass retries
			return
		}
		e.opts.Log.Info("stateless mode off: sloppy sysctls restored", "sloppy_tcp", sh.found[sloppySysctls[0]], "sloppy_sctp", sh.found[sloppySysctls[1]])
		delete(sloppyShares, scope)
	} else if sh != nil {
		delete(sh.users, e) // another instance still needs them
	}
	e.sloppyOn = false
	e.sloppyErr = nil
}

// sysctlName is net.ipv4.vs.sloppy_tcp for its /proc/sys path.
func sysctlName(path string) string {
	return strings.ReplaceAll(strings.TrimPrefix(path, "/proc/sys/"), "/", ".")
}

// StatelessStatus is what status shows of stateless mode.
type StatelessStatus struct {
	Sloppy bool   `json:"sloppy"` // the sysctls are set by this instance
	Error  string `json:"error,omitempty"`
}

// statelessStatus is nil while the instance has no stateless virtual and
// has nothing left to restore. Called with e.mu held.
func (e *Engine) statelessStatus() *StatelessStatus {
	if !e.inst.Stateless() && !e.sloppyOn && e.sloppyErr == nil {
		return nil
	}
	st := &StatelessStatus{Sloppy: e.sloppyOn && e.inst.Stateless() && !e.closed}
	if e.sloppyErr != nil {
		st.Error = e.sloppyErr.Error()
	}
	return st
}
