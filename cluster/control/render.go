package control

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/fsm"
)

// Render writes status the way crm_mon lays it out: a summary, the node
// lists, then details per peer and per link. Times are relative to s.Now,
// so output is a pure function of s (golden-tested).
func Render(w io.Writer, s *api.Status) {
	fmt.Fprintf(w, "Cluster: %s    Node: %s    Vigil %s\n", s.Cluster, s.Node, s.Version)
	fmt.Fprintf(w, "Last updated: %s    Daemon up %s (incarnation %d)\n",
		s.Now.UTC().Format("2006-01-02 15:04:05 MST"), ago(s.Now, s.Started), s.Incarnation)
	fmt.Fprintf(w, "Heartbeat: keepalive %s, warntime %s, deadtime %s, initdead %s\n",
		s.Timing.Keepalive, s.Timing.Warntime, s.Timing.Deadtime, s.Timing.Initdead)
	fmt.Fprintf(w, "%d nodes configured, %d heartbeat links\n", len(s.Nodes), len(s.Links))
	renderCoreSummary(w, s)
	fmt.Fprintln(w)

	var online, offline, pending []string
	for _, n := range s.Nodes {
		name := n.Name
		switch n.State {
		case "up":
			online = append(online, name)
		case "dead":
			offline = append(offline, name)
		default:
			pending = append(pending, name)
		}
	}
	list := func(label string, names []string) {
		if len(names) > 0 {
			fmt.Fprintf(w, "%s [ %s ]\n", label, strings.Join(names, " "))
		}
	}
	list("Online:", online)
	list("OFFLINE:", offline)
	list("Pending:", pending)

	fmt.Fprintln(w, "\nNodes:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range s.Nodes {
		switch {
		case n.Self:
			fmt.Fprintf(tw, "  * %s\t%s\t%s\tthis node\n", n.Name, n.Address, n.Role)
		default:
			fmt.Fprintf(tw, "  * %s\t%s\t%s\t%s since %s\n", n.Name, n.Address, n.Role, nodeWord(n.State), ago(s.Now, n.Since)+" ago")
		}
	}
	tw.Flush()

	fmt.Fprintln(w, "\nHeartbeat links per peer:")
	for _, n := range SharedLinks(s.Nodes) {
		if n.Self {
			continue
		}
		fmt.Fprintf(w, "  %s:\n", n.Name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, l := range n.Links {
			heard := "never heard"
			if !l.LastHeard.IsZero() {
				heard = "last heard " + ago(s.Now, l.LastHeard) + " ago"
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\tlate %d\treceived %d\n", l.Link, l.State, heard, l.Late, l.Received)
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nLink counters:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  LINK\tSENT\tRECEIVED\tSEND-ERRORS\tDROPPED")
	for _, l := range s.Links {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\n", l.Link, l.Sent, l.Received, l.SendErrors, drops(l.Dropped))
	}
	tw.Flush()
	renderAssignments(w, s)
	renderGroups(w, s)
	renderInspections(w, s)
	renderAlerts(w, s)
	renderPlugins(w, s)
}

// renderAlerts shows what this node's alert routes delivered.
func renderAlerts(w io.Writer, s *api.Status) {
	a := s.Alerts
	if a == nil {
		return
	}
	fmt.Fprintf(w, "\nAlerts (this node's [[alert]] routes): %d sent, %d failed, %d dropped\n", a.Sent, a.Failed, a.Dropped)
	for _, r := range a.Recent {
		line := fmt.Sprintf("  %s ago  %s %s via %s: %s", ago(s.Now, r.Time), r.Kind, r.Type, r.Via, r.Summary)
		if r.Err != "" {
			line += "  FAILED: " + r.Err
		}
		fmt.Fprintln(w, line)
	}
}

func renderInspections(w io.Writer, s *api.Status) {
	for _, in := range s.Inspections {
		fmt.Fprintf(w, "\n%s, group %s:\n", in.Title, in.Group)
		text := in.Text
		if s.ShowStats && in.Stats != "" {
			text = in.Stats
		}
		for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
}

func renderCoreSummary(w io.Writer, s *api.Status) {
	c := s.Core
	if c == nil || c.State == nil {
		return
	}
	leader := c.Leader
	if leader == "" {
		leader = "NONE (no quorum?)"
	}
	quorum, voters := c.Quorum, len(c.State.NodeOrder)
	if len(c.Voters) > 0 {
		voters = len(c.Voters)
		quorum = voters/2 + 1
	}
	fmt.Fprintf(w, "Raft: leader %s, this node %s, term %s, applied %d, quorum %d of %d voters\n",
		leader, strings.ToLower(c.RaftState), c.Term, c.Applied, quorum, voters)
	if c.HoldsLease {
		fmt.Fprintf(w, "Lease: held (%s left)\n", c.Lease)
	} else {
		fmt.Fprintln(w, "Lease: NOT HELD: this node runs no resources until a quorum confirms it")
	}
	if p := c.Pair; p != nil {
		renderPair(w, p, c.Voters, s.Now)
	} else if c.Fencing != nil {
		fmt.Fprintf(w, "Fence plugin %s\n", fenceState(c.Fencing))
	}
}

// fenceState is the fence plugin and its latest result.
func fenceState(t *api.TieBreakStatus) string {
	last := "never used"
	if f := t.LastFence; f != nil {
		last = fmt.Sprintf("last: %s %s at %s", f.Node, f.Result, f.At.Format(time.TimeOnly))
	}
	return t.Fence + ": " + last
}

// renderPair shows a two_node pair's voters and tie-breakers.
func renderPair(w io.Writer, p *api.PairStatus, voters []string, now time.Time) {
	alone := ""
	if len(voters) == 1 {
		alone = " (running alone: the peer rejoins as a voter when heard again)"
	}
	fmt.Fprintf(w, "Two-node pair: peer %s, voters %s%s\n", p.Peer, strings.Join(voters, " "), alone)
	for _, pn := range p.TieBreak.Ping {
		switch {
		case pn.Up:
			fmt.Fprintf(w, "  ping node %s: answering (%s ago)\n", pn.Addr, now.Sub(pn.Answered).Round(time.Millisecond))
		case pn.Answered.IsZero():
			fmt.Fprintf(w, "  ping node %s: NOT ANSWERING (never answered)\n", pn.Addr)
		default:
			fmt.Fprintf(w, "  ping node %s: NOT ANSWERING (last answer %s ago)\n", pn.Addr, now.Sub(pn.Answered).Round(time.Millisecond))
		}
	}
	if p.TieBreak.Fence != "" {
		fmt.Fprintf(w, "  fence plugin %s\n", fenceState(&p.TieBreak))
	}
	if len(p.TieBreak.Ping) == 0 && p.TieBreak.Fence == "" {
		fmt.Fprintln(w, "  no tie-breaker: a silent peer's groups are never taken over automatically (vigil takeover)")
	}
	if p.Note != "" {
		fmt.Fprintf(w, "  %s\n", p.Note)
	}
}

// renderAssignments shows the replicated view: node flags, every group's
// owner and reason, what each node reported, failcounts, failures and the
// last placement decisions.
func renderAssignments(w io.Writer, s *api.Status) {
	c := s.Core
	if c == nil || c.State == nil {
		return
	}
	st := c.State
	fmt.Fprintln(w, "\nCluster nodes (replicated):")
	if c.Leader == "" {
		fmt.Fprintln(w, "  NO LEADER: this is the state as last applied here, and nothing updates it; nodes this node does not hear show OFFLINE")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// RAFT is this node's view of Raft now; STATE, FLAGS and the last
	// change are the replicated flags: separate columns, so that a reason
	// recorded by an earlier leader never reads as the current one.
	fmt.Fprintln(tw, "  NODE\tROLE\tSTATE\tFLAGS\tRAFT\tLAST CHANGE")
	for _, name := range st.NodeOrder {
		n := st.Nodes[name]
		if n == nil {
			continue
		}
		state := "online"
		since, reason := n.Since, n.Reason
		if at, off := api.Offline(s, name); off {
			state = "OFFLINE"
			if n.Online { // by this node's membership: no leader records it
				since, reason = at, "not heard here (no leader to record it)"
			}
		}
		var flags []string
		if n.Standby {
			flags = append(flags, "standby")
		}
		if n.Maintenance {
			flags = append(flags, "maintenance")
		}
		if n.Leaving {
			flags = append(flags, "leaving")
		}
		if n.Fenced != 0 {
			flags = append(flags, "fenced")
		}
		fl := strings.Join(flags, ",")
		if fl == "" {
			fl = "-"
		}
		var change []string
		if !since.IsZero() {
			change = append(change, ago(s.Now, since)+" ago")
		}
		if reason != "" {
			change = append(change, reason)
		}
		if len(change) == 0 {
			change = []string{"-"}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", name, n.Role, state, fl, raftRole(c, name), strings.Join(change, ": "))
	}
	tw.Flush()
	renderDefinitions(w, s)
	fmt.Fprintln(w, "\nGroups:")
	for _, g := range api.Placement(s) {
		owner := g.Owner
		if owner == "" {
			owner = "(stopped)"
		}
		pin := ""
		if g.Pinned != "" {
			pin = ", moved to " + g.Pinned + " by operator"
		}
		state := g.State
		if state == fsm.Unknown {
			state = "UNKNOWN (owner OFFLINE)"
		}
		fmt.Fprintf(w, "  %s: %s on %s (preferred %s%s): %s\n", g.Name, state, owner, g.Preferred, pin, g.Reason)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, n := range g.Nodes {
			fc := ""
			if n.Failcount >= fsm.Infinity {
				fc = "failcount INFINITY"
			} else if n.Failcount > 0 {
				fc = fmt.Sprintf("failcount %d", n.Failcount)
			}
			state, last := n.State, n.Last
			if n.State == "offline" {
				// Pacemaker shows such a node OFFLINE, not its stale state.
				state = "OFFLINE"
				last = fmt.Sprintf("last known %s %s ago (%s)", n.LastKnown, ago(s.Now, n.OfflineSince), n.Last)
			} else if n.Unrecorded {
				last = fmt.Sprintf("here now; no leader records it (recorded: %s, %s)", n.LastKnown, n.Last)
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", n.Node, state, fc, last)
		}
		tw.Flush()
	}
	if len(st.Failures) > 0 {
		fmt.Fprintln(w, "\nFailed operations:")
		for _, f := range st.Failures {
			fmt.Fprintf(w, "  %s ago  %s on %s: %s %s %s: %s\n", ago(s.Now, f.Time), f.Group, f.Node, f.Resource, f.Op, f.Result, f.Reason)
		}
	}
	if n := len(st.Decisions); n > 0 {
		fmt.Fprintln(w, "\nPlacement decisions (latest last):")
		for _, d := range st.Decisions[max(0, n-5):] {
			from := d.From
			if from == "" {
				from = "-"
			}
			to := d.To
			if to == "" {
				to = "(stopped)"
			}
			fmt.Fprintf(w, "  %s ago  %s: %s → %s: %s\n", ago(s.Now, d.Time), d.Group, from, to, d.Reason)
		}
	}
}

// raftRole is a node's part in Raft as this node knows it now.
func raftRole(c *api.ClusterStatus, name string) string {
	switch {
	case c.Leader == name:
		return "leader"
	case slices.Contains(c.Voters, name):
		return "voter"
	case len(c.Voters) == 0:
		return "-" // this node does not know the voters (no Raft yet)
	}
	return "non-voter"
}

// renderDefinitions names the nodes whose files are not what the
// cluster runs: a reload elsewhere or the leader's files won.
func renderDefinitions(w io.Writer, s *api.Status) {
	nodes := api.FilesDiffer(s)
	if len(nodes) == 0 {
		return
	}
	c := s.Core
	how := "set at start by the leader's files"
	if g := c.State.GroupsGeneration; g > 0 {
		how = fmt.Sprintf("set by vigil reload, generation %d", g)
	}
	whose := "the resources.toml of " + strings.Join(nodes, ", ") + " is"
	if len(nodes) > 1 {
		whose = "the resources.toml files of " + strings.Join(nodes, ", ") + " are"
	}
	fmt.Fprintf(w, "\nDEFINITIONS DIFFER: %s not what the cluster runs (version %s, %s);\n", whose, c.State.GroupsVersion, how)
	fmt.Fprintln(w, "  the cluster's stay in force: copy the right files to every node and run vigil reload")
}

func renderGroups(w io.Writer, s *api.Status) {
	if len(s.Groups) == 0 {
		return
	}
	fmt.Fprintln(w, "\nResource groups on this node:")
	for _, g := range s.Groups {
		wanted := ""
		if g.Wanted {
			wanted = ", to run here"
		}
		fmt.Fprintf(w, "  %s: %s%s\n", g.Name, g.State, wanted)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range g.Resources {
			last := ""
			if r.LastOp != "" {
				last = fmt.Sprintf("%s %s %s ago", r.LastOp, r.Result, ago(s.Now, r.At))
				if r.Reason != "" {
					last += ": " + r.Reason
				}
			}
			fmt.Fprintf(tw, "    %s\t(%s via %s)\t%s\t%s\n", r.ID, r.Type, r.Plugin, r.State, last)
		}
		tw.Flush()
	}
}

func renderPlugins(w io.Writer, s *api.Status) {
	if len(s.Plugins) == 0 {
		return
	}
	fmt.Fprintln(w, "\nPlugins:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PLUGIN\tSTATE\tPID\tCRASHES\tRESTARTS\tLAST EXIT")
	for _, p := range s.Plugins {
		exit := "-"
		if p.LastExit != "" {
			exit = p.LastExit + " " + ago(s.Now, p.LastExitAt) + " ago"
		}
		if p.State == api.PluginFailed && p.LastError != "" {
			exit = p.LastError
		}
		pid := "-"
		if p.PID != 0 {
			pid = fmt.Sprint(p.PID)
		}
		fmt.Fprintf(tw, "  %s/%s\t%s\t%s\t%d\t%d\t%s\n", p.Kind, p.Name, p.State, pid, p.Crashes, p.Restarts, exit)
	}
	tw.Flush()
}

func nodeWord(state string) string {
	switch state {
	case "up":
		return "online"
	case "dead":
		return "OFFLINE"
	}
	return "pending"
}

func drops(m map[string]uint64) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// ago renders now-t compactly: 340ms, 4.2s, 3m12s, 5h3m, 2d4h.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%dh", days, int((d-time.Duration(days)*24*time.Hour)/time.Hour))
}
