package control

import (
	"fmt"
	"sort"
	"strings"
)

// Nagios plugin exit codes, for `vigil status -1`.
const (
	NagiosOK       = 0
	NagiosWarning  = 1
	NagiosCritical = 2
)

// OneLine is the cluster in one line for a Nagios-style check, and the
// plugin exit code: CRITICAL when there is no leader or quorum, or a group
// runs nowhere; WARNING when a node is offline, a heartbeat link that
// worked is dead,
// operations failed, a plugin failed or alerts could not be sent; else OK.
// Performance data follows the "|" as Nagios expects.
func OneLine(s *Status) (string, int) {
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
			if n := st.Nodes[name]; n != nil && n.Online {
				online++
			} else {
				warn = append(warn, "node "+name+" offline")
			}
		}
		for _, name := range st.GroupOrder {
			g := st.Groups[name]
			if g == nil {
				continue
			}
			groups++
			if r, ok := g.Reports[g.Owner]; g.Owner != "" && ok && r.State == "running" {
				running++
			} else {
				crit = append(crit, "group "+name+" not running")
			}
		}
		if n := len(st.Failures); n > 0 {
			warn = append(warn, fmt.Sprintf("%d failed operations", n))
		}
	}
	var dead []string
	for _, n := range s.Nodes {
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
		if p.State == "failed" {
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
