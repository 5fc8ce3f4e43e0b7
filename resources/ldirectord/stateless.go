package ldirectord

import (
	"errors"
	"fmt"
	"os"
	"strings"

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

// sloppyPass sets the sloppy sysctls while the instance has a stateless
// virtual service, on the active director and on standbys alike (a
// standby that takes over must carry mid-flow packets from its first
// one), and puts back the values it found once no stateless virtual is
// left or the instance closes. Called with e.mu held.
func (e *Engine) sloppyPass() {
	want := e.inst.Stateless() && !e.closed
	if want && e.sloppyFound == nil {
		if name, _ := director.Pick(e.inst.Backend); name != director.Kernel {
			e.sloppyErr = errors.New("stateless mode needs kernel IPVS; this node runs the userspace director")
			return
		}
		found := map[string]string{}
		var errs []error
		for _, p := range sloppySysctls {
			v, err := e.opts.GetSysctl(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("read %s: %w", p, err))
				continue
			}
			found[p] = v
		}
		if len(errs) > 0 {
			e.sloppyErr = errors.Join(errs...)
			return
		}
		e.sloppyFound = found
	}
	var errs []error
	switch {
	case want:
		for _, p := range sloppySysctls {
			if err := e.opts.SetSysctl(p, "1"); err != nil {
				errs = append(errs, fmt.Errorf("%s = 1: %w", sysctlName(p), err))
			}
		}
	case e.sloppyFound != nil:
		for _, p := range sloppySysctls {
			if err := e.opts.SetSysctl(p, e.sloppyFound[p]); err != nil {
				errs = append(errs, fmt.Errorf("restore %s = %s: %w", sysctlName(p), e.sloppyFound[p], err))
			}
		}
		if len(errs) == 0 {
			e.opts.Log.Info("stateless mode off: sloppy sysctls restored", "sloppy_tcp", e.sloppyFound[sloppySysctls[0]], "sloppy_sctp", e.sloppyFound[sloppySysctls[1]])
			e.sloppyFound = nil
		}
	}
	e.sloppyErr = errors.Join(errs...)
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
	if !e.inst.Stateless() && e.sloppyFound == nil && e.sloppyErr == nil {
		return nil
	}
	st := &StatelessStatus{Sloppy: e.sloppyFound != nil && e.inst.Stateless() && !e.closed}
	if e.sloppyErr != nil {
		st.Error = e.sloppyErr.Error()
	}
	return st
}
