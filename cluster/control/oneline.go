package control

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/fsm"
)

// Nagios plugin exit codes, for `vigil status -1`.
const (
	NagiosOK       = 0
	NagiosWarning  = 1
	NagiosCritical = 2
	NagiosUnknown  = 3 // the check itself could not run (a bad command line)
)

// OneLine is the cluster in one line for a Nagios-style check, and the
// plugin exit code: CRITICAL when there is no leader or quorum, or a group
// runs nowhere (or only on a node the cluster holds offline); WARNING when
// a node is offline, in standby or in maintenance, a group is not on its
// preferred node, a heartbeat link that worked is dead, operations failed,
// a plugin failed, alerts could not be sent or this node's group
// definitions are not the cluster's; else OK. Performance data follows the
// "|" as Nagios expects.
func OneLine(s *api.Status) (string, int) {
	code := NagiosOK
	var crit, warn []string
	c := s.Core
	online, total, groups, running := 0, len(s.Nodes), 0, 0
	if c == nil || c.State == nil {
		crit = append(crit, "no cluster state")
	} else {
		st := c.State
		total = len(st.NodeOrder)
		if c.Leader == "" {
			crit = append(crit, "no leader (no quorum?)")
		}
		for _, name := range st.NodeOrder {
			n := st.Nodes[name]
			if _, off := api.Offline(s, name); n != nil && !off {
				online++
			} else {
				warn = append(warn, "node "+name+" offline")
			}
			if n != nil && n.Standby {
				warn = append(warn, "node "+name+" in standby")
			}
			if n != nil && n.Maintenance {
				warn = append(warn, "node "+name+" in maintenance")
			}
		}
		for _, g := range api.Placement(s) {
			groups++
			switch {
			case g.Running():
				running++
				if g.Preferred != "" && g.Owner != g.Preferred {
					how := "on " + g.Owner
					if g.Pinned == g.Owner {
						how = "moved to " + g.Owner + " by operator"
					}
					warn = append(warn, fmt.Sprintf("group %s %s, preferred %s", g.Name, how, g.Preferred))
				}
			case g.State == fsm.Unknown:
				crit = append(crit, fmt.Sprintf("group %s on offline node %s", g.Name, g.Owner))
			default:
				crit = append(crit, "group "+g.Name+" not running")
			}
		}
		if n := len(st.Failures); n > 0 {
			warn = append(warn, fmt.Sprintf("%d failed operations", n))
		}
		if nodes := api.FilesDiffer(s); len(nodes) > 0 {
			warn = append(warn, "resources.toml of "+strings.Join(nodes, " ")+" differs from the cluster's")
		}
	}
	var dead []string
	for _, n := range SharedLinks(s.Nodes) {
		for _, l := range n.Links {
			// A link never heard from this peer reaches another one (a
			// serial cable joins two nodes of three): not a failure.
			if l.State == "dead" && n.State == "up" && !l.LastHeard.IsZero() {
				dead = append(dead, n.Name+"/"+l.Link)
			}
		}
	}
	if len(dead) > 0 {
		sort.Strings(dead)
		warn = append(warn, "links dead: "+strings.Join(dead, " "))
	}
	for _, p := range s.Plugins {
		if p.State == api.PluginFailed {
			warn = append(warn, "plugin "+string(p.Kind)+"/"+p.Name+" failed")
		}
	}
	if s.Alerts != nil && s.Alerts.Failed > 0 {
		warn = append(warn, fmt.Sprintf("%d alerts failed", s.Alerts.Failed))
	}
	word := "OK"
	problems := append(crit, warn...)
	switch {
	case len(crit) > 0:
		code, word = NagiosCritical, "CRITICAL"
	case len(warn) > 0:
		code, word = NagiosWarning, "WARNING"
	}
	summary := fmt.Sprintf("%d/%d nodes online, %d/%d groups running", online, total, running, groups)
	if c != nil && c.Leader != "" {
		summary += ", leader " + c.Leader
	}
	if len(problems) > 0 {
		summary = strings.Join(problems, ", ") + "; " + summary
	}
	return fmt.Sprintf("VIGIL %s - %s: %s | nodes_online=%d;;;0;%d groups_running=%d;;;0;%d",
		word, s.Cluster, summary, online, total, running, groups), code
}
