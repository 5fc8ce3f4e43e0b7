package ldirectord

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// Status is what `vigil status` shows of an instance.
type Status struct {
	Backend  string         `json:"backend"`
	Why      string         `json:"why,omitempty"`
	Active   bool           `json:"active"`
	Error    string         `json:"error,omitempty"`
	Services []ServiceState `json:"services"`
	Events   []Event        `json:"events,omitempty"`
	// Sync is the connection-sync daemons, when the instance has [sync].
	Sync *SyncStatus `json:"sync,omitempty"`
	// Stateless is stateless failover mode, when a virtual has it.
	Stateless *StatelessStatus `json:"stateless,omitempty"`
}

// ServiceState is one virtual service as configured and as programmed.
type ServiceState struct {
	Key       string             `json:"key"`
	Scheduler string             `json:"scheduler"`
	Flags     string             `json:"flags,omitempty"`
	Stats     *director.Counters `json:"stats,omitempty"`
	Reals     []RealState        `json:"reals"`
}

// RealState is one real server: configured, programmed and checked.
type RealState struct {
	Addr      string             `json:"addr"`
	Forward   string             `json:"forward"`
	Weight    int                `json:"weight"` // as programmed; -1 when not in the table
	Active    int64              `json:"active"`
	Inactive  int64              `json:"inactive"`
	Stats     *director.Counters `json:"stats,omitempty"`
	Health    string             `json:"health"` // up, down, pending, not checked, fallback
	Check     string             `json:"check,omitempty"`
	Result    string             `json:"result,omitempty"`
	CheckedAt time.Time          `json:"checked_at,omitzero"`
	Failures  int                `json:"failures,omitempty"`
	// Checks run and failed so far, and how long the last one took.
	Checks       uint64  `json:"checks,omitempty"`
	ChecksFailed uint64  `json:"checks_failed,omitempty"`
	CheckSeconds float64 `json:"check_seconds,omitempty"`
}

// Status reports the instance's configured services with what the
// director holds and what the checks last said.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{Active: e.active, Why: e.why, Events: append([]Event(nil), e.events...)}
	name, why := director.Pick(e.inst.Backend)
	st.Backend = name
	if st.Why == "" {
		st.Why = why
	}
	if e.lastErr != nil {
		st.Error = e.lastErr.Error()
	}
	st.Sync = e.syncStatus()
	st.Stateless = e.statelessStatus()
	var have director.Table
	var stats map[director.Key]director.ServiceStats
	if e.backend != nil {
		have, _ = e.backend.Read()
		stats, _ = e.backend.Stats()
	}
	for vi := range e.inst.Virtual {
		v := &e.inst.Virtual[vi]
		s := v.DirectorService()
		ss := ServiceState{Key: s.Key.String(), Scheduler: s.Scheduler}
		var flags []string
		if s.MHPort {
			flags = append(flags, "mh-port")
		}
		if s.MHFallback {
			flags = append(flags, "mh-fallback")
		}
		if v.Stateless {
			flags = append(flags, "stateless")
		}
		if s.Persistent > 0 {
			flags = append(flags, fmt.Sprintf("persistent %d mask /%d", s.Persistent, s.Netmask))
		}
		ss.Flags = strings.Join(flags, " ")
		hs, programmed := have[s.Key]
		sst, hasStats := stats[s.Key]
		if hasStats {
			c := sst.Counters
			ss.Stats = &c
		}
		listed := map[netip.AddrPort]bool{}
		for ri := range v.Real {
			r := &v.Real[ri]
			ap, _ := netip.ParseAddrPort(r.Address)
			listed[ap] = true
			rs := RealState{Addr: r.Address, Forward: r.Forward, Weight: -1, Health: "not checked"}
			up, c := e.health(vi, ri)
			if c != nil {
				known, _, last, at, fails := c.state()
				rs.Check, rs.Result, rs.CheckedAt, rs.Failures = c.check.String(), last.Summary, at, fails
				rs.Checks, rs.ChecksFailed = c.counts()
				rs.CheckSeconds = last.Latency.Seconds()
				switch {
				case e.isDisabled(vi, ri):
					rs.Health = "disabled"
				case !known:
					rs.Health = "pending"
				case up:
					rs.Health = "up"
				default:
					rs.Health = "down"
				}
			}
			fillProgrammed(&rs, hs, programmed, ap, sst)
			ss.Reals = append(ss.Reals, rs)
		}
		if programmed {
			for _, d := range hs.SortedDests() {
				if !listed[d.Addr] {
					rs := RealState{Addr: d.Addr.String(), Forward: d.Forward, Health: "fallback"}
					fillProgrammed(&rs, hs, true, d.Addr, sst)
					ss.Reals = append(ss.Reals, rs)
				}
			}
		}
		st.Services = append(st.Services, ss)
	}
	return st
}

func fillProgrammed(rs *RealState, hs *director.Service, programmed bool, ap netip.AddrPort, sst director.ServiceStats) {
	if !programmed {
		return
	}
	if d, ok := hs.Dests[ap]; ok {
		rs.Weight = d.Weight
	}
	if ds, ok := sst.Dests[ap.String()]; ok {
		c := ds.Counters
		rs.Active, rs.Inactive, rs.Stats = ds.Active, ds.Inactive, &c
	}
}

var forwardNames = map[string]string{director.Gate: "Route", director.Masq: "Masq", director.IPIP: "Tunnel", director.Local: "Local"}

// Text renders the status like `ipvsadm -Ln` with each real's health,
// last check result and reason; stats selects the `--stats` columns.
func (st Status) Text(name string, stats bool) string {
	var b strings.Builder
	state := "standby: checking only, nothing programmed"
	if st.Active {
		state = "active"
	}
	fmt.Fprintf(&b, "ldirectord %s: %s backend (%s), %s\n", name, st.Backend, st.Why, state)
	if st.Error != "" {
		fmt.Fprintf(&b, "  last error: %s\n", st.Error)
	}
	if y := st.Sync; y != nil && !stats {
		fmt.Fprintf(&b, "  connection sync: want %s daemon, sync_version %d\n", y.Want, y.SyncVersion)
		for _, d := range y.Daemons {
			fmt.Fprintf(&b, "    %s sync daemon running: %s\n", d.Role, d)
		}
		if len(y.Daemons) == 0 {
			b.WriteString("    no sync daemon running\n")
		}
		if y.Error != "" {
			fmt.Fprintf(&b, "    sync error: %s\n", y.Error)
		}
	}
	if y := st.Stateless; y != nil && !stats {
		if y.Sloppy {
			b.WriteString("  stateless mode: net.ipv4.vs.sloppy_tcp = 1, sloppy_sctp = 1\n")
			if len(y.StrayReplies) > 0 {
				fmt.Fprintf(&b, "    replies matching no connection dropped (nftables inet %s): %s\n", director.StrayTable, strings.Join(y.StrayReplies, ", "))
			}
		}
		if y.Error != "" {
			fmt.Fprintf(&b, "    stateless error: %s\n", y.Error)
		}
	}
	if stats {
		b.WriteString("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n")
		b.WriteString("  -> RemoteAddress:Port\n")
	} else {
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n")
		b.WriteString("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health\n")
	}
	for _, s := range st.Services {
		if stats {
			fmt.Fprintf(&b, "%-34s %s\n", s.Key, counters(s.Stats))
		} else {
			fmt.Fprintf(&b, "%s %s %s\n", s.Key, s.Scheduler, s.Flags)
		}
		for _, r := range s.Reals {
			if stats {
				fmt.Fprintf(&b, "  -> %-30s %s\n", r.Addr, counters(r.Stats))
				continue
			}
			weight := "-"
			if r.Weight >= 0 {
				weight = fmt.Sprint(r.Weight)
			}
			fmt.Fprintf(&b, "  -> %-28s %-7s %-6s %-10d %-9d %s", r.Addr, forwardNames[r.Forward], weight, r.Active, r.Inactive, r.Health)
			if r.Result != "" {
				fmt.Fprintf(&b, " (%s: %s", r.Check, r.Result)
				if r.Failures > 0 {
					fmt.Fprintf(&b, ", %d failed in a row", r.Failures)
				}
				if !r.CheckedAt.IsZero() {
					fmt.Fprintf(&b, ", %s ago", time.Since(r.CheckedAt).Round(time.Millisecond))
				}
				b.WriteString(")")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func counters(c *director.Counters) string {
	if c == nil {
		return fmt.Sprintf("%8s %8s %8s %8s %8s", "-", "-", "-", "-", "-")
	}
	return fmt.Sprintf("%8d %8d %8d %8d %8d", c.Conns, c.InPkts, c.OutPkts, c.InBytes, c.OutBytes)
}
