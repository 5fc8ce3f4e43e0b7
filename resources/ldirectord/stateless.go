package ldirectord

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
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

// sloppyShare is stateless mode's state of one network namespace, shared
// by the instances using it there: the values of the sloppy sysctls found
// before the first set them, put back when the last one is done, and
// each user's stray NAT replies to rewrite or drop (director.StrayReply),
// written as one nftables table.
type sloppyShare struct {
	users   map[*Engine][]director.StrayReply
	found   map[string]string
	written []director.StrayReply // the table's rules, as last written
	wrote   bool                  // a table was written (and not deleted since)
}

var (
	sloppyMu     sync.Mutex
	sloppyShares = map[string]*sloppyShare{} // by Options.SysctlScope
)

// strayReplies is what this instance's stateless virtuals need done with
// the replies of their NAT reals that match no connection. Called with
// e.mu held.
func (e *Engine) strayReplies() []director.StrayReply {
	var out []director.StrayReply
	for vi := range e.inst.Virtual {
		v := &e.inst.Virtual[vi]
		if !v.Stateless {
			continue
		}
		s := v.DirectorService()
		s.Dests = map[netip.AddrPort]director.Dest{}
		for _, r := range v.Real {
			ap, _ := netip.ParseAddrPort(r.Address)
			s.Dests[ap] = director.Dest{Addr: ap, Forward: r.Forward}
		}
		out = append(out, director.StrayRepliesOf(&s)...)
	}
	return director.SortStrayReplies(out)
}

// writeStray makes the namespace's table hold the union of its users'
// rules when that changed; a namespace whose users have none never
// touches nftables (a direct-routing director needs no nf_tables).
// Called with sloppyMu held.
func (e *Engine) writeStray(sh *sloppyShare) error {
	var all []director.StrayReply
	for _, ds := range sh.users {
		all = append(all, ds...)
	}
	all = director.SortStrayReplies(all)
	if slices.Equal(all, sh.written) && (sh.wrote || len(all) == 0) {
		return nil
	}
	if err := e.opts.SetStrayReplies(all); err != nil {
		return err
	}
	sh.written, sh.wrote = all, len(all) > 0
	if len(all) > 0 {
		e.opts.Log.Info("stateless mode: NAT reals' replies that match no connection are rewritten or dropped", "table", "inet "+director.StrayTable, "rules", len(all))
	}
	return nil
}

// sloppyPass sets the sloppy sysctls (and the stray NAT reply rules)
// while the instance has a stateless virtual service, on the active
// director and on standbys alike (a standby that takes over must carry
// mid-flow packets from its first one), and once no instance of the
// namespace has a stateless virtual left (a reload removed them, or the
// instances closed) puts back the values found before the first set
// them and deletes the table. Called with e.mu held.
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
			sh = &sloppyShare{users: map[*Engine][]director.StrayReply{}, found: found}
			sloppyShares[scope] = sh
		}
		sh.users[e] = e.strayReplies()
		e.sloppyOn = true
		for _, p := range sloppySysctls {
			if err := e.opts.SetSysctl(p, "1"); err != nil {
				errs = append(errs, fmt.Errorf("%s = 1: %w", sysctlName(p), err))
			}
		}
		errs = append(errs, e.writeStray(sh))
		e.sloppyErr = errors.Join(errs...)
		return
	}
	mine := false
	if sh != nil {
		_, mine = sh.users[e]
	}
	if mine && len(sh.users) == 1 { // the last user: put back what was found
		for _, p := range sloppySysctls {
			if err := e.opts.SetSysctl(p, sh.found[p]); err != nil {
				errs = append(errs, fmt.Errorf("restore %s = %s: %w", sysctlName(p), sh.found[p], err))
			}
		}
		sh.users[e] = nil
		errs = append(errs, e.writeStray(sh))
		if err := errors.Join(errs...); err != nil {
			e.sloppyErr = err // still the user: the next pass retries
			return
		}
		e.opts.Log.Info("stateless mode off: sloppy sysctls restored", "sloppy_tcp", sh.found[sloppySysctls[0]], "sloppy_sctp", sh.found[sloppySysctls[1]])
		delete(sloppyShares, scope)
		e.sloppyOn = false
		e.sloppyErr = nil
		return
	}
	if sh != nil {
		delete(sh.users, e) // another instance still needs them
		if err := e.writeStray(sh); err != nil {
			e.opts.Log.Warn("stateless mode: stray NAT reply rules of the other instances", "err", err)
		}
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
	Sloppy bool `json:"sloppy"` // the sysctls are set by this instance
	// StrayReplies are this instance's rules for NAT reals' replies that
	// match no connection ("tcp from 10.0.0.11:80").
	StrayReplies []string `json:"stray_replies,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// statelessStatus is nil while the instance has no stateless virtual and
// has nothing left to restore. Called with e.mu held.
func (e *Engine) statelessStatus() *StatelessStatus {
	if !e.inst.Stateless() && !e.sloppyOn && e.sloppyErr == nil {
		return nil
	}
	st := &StatelessStatus{Sloppy: e.sloppyOn && e.inst.Stateless() && !e.closed}
	if st.Sloppy {
		for _, d := range e.strayReplies() {
			st.StrayReplies = append(st.StrayReplies, d.String())
		}
	}
	if e.sloppyErr != nil {
		st.Error = e.sloppyErr.Error()
	}
	return st
}
