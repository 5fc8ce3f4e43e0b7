package alerts

import (
	"fmt"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/membership"
	"github.com/vigil-ha/vigil/monitors"
)

// Cluster derives the events of the replicated state between two views
// of it: nodes that went offline or came back, groups that changed owner
// or lost it, failed operations. The Raft leader sends them, so each is
// told once for the whole cluster. Recoveries are told only after a
// failure (a node's or group's first start is not news), as mon sends an
// upalert only after an alert.
func Cluster(cluster string, old, cur *fsm.State) []monitors.Alert {
	var out []monitors.Alert
	for _, name := range cur.NodeOrder {
		n, o := cur.Nodes[name], old.Nodes[name]
		if n == nil || o == nil || n.Online == o.Online || (n.Online && o.Since.IsZero()) {
			continue
		}
		a := monitors.Alert{Type: monitors.AlertFailure, Kind: "node", Node: name, Group: cluster, Service: "node",
			Hosts: []string{name}, Time: n.Since, Summary: "node " + name + " offline", Retval: 1}
		if n.Online {
			a.Type, a.Summary, a.Retval = monitors.AlertUp, "node "+name+" online", 0
		}
		out = append(out, withReason(a, n.Reason))
	}
	for _, d := range cur.Decisions {
		if d.Index <= old.Index {
			continue
		}
		a := monitors.Alert{Type: monitors.AlertFailure, Kind: "failover", Node: d.To, Group: d.Group, Service: "failover",
			Hosts: []string{d.To}, Time: d.Time, Retval: 1}
		switch {
		case d.To == "":
			a.Node, a.Hosts = d.From, []string{d.From}
			a.Summary = fmt.Sprintf("group %s stopped on %s, placed nowhere", d.Group, d.From)
		case d.From != "":
			a.Summary = fmt.Sprintf("group %s moved from %s to %s", d.Group, d.From, d.To)
		default:
			if g := old.Groups[d.Group]; g == nil || g.Since.IsZero() {
				continue // the group's first placement
			}
			a.Type, a.Retval = monitors.AlertUp, 0
			a.Summary = fmt.Sprintf("group %s placed on %s", d.Group, d.To)
		}
		out = append(out, withReason(a, d.Reason))
	}
	for _, f := range cur.Failures {
		if f.Index <= old.Index {
			continue
		}
		a := monitors.Alert{Type: monitors.AlertFailure, Kind: "resource", Node: f.Node, Group: f.Group, Service: f.Resource,
			Hosts: []string{f.Node}, Time: f.Time, Retval: 1,
			Summary: fmt.Sprintf("%s of %s failed on %s (%s)", f.Op, f.Resource, f.Node, f.Result)}
		out = append(out, withReason(a, f.Reason))
	}
	return out
}

// withReason puts the summary and the reason in the alert's output, as
// a monitor's summary line and detail.
func withReason(a monitors.Alert, reason string) monitors.Alert {
	a.Output = a.Summary + "\n"
	if reason != "" {
		a.Summary += ": " + reason
		a.Output = a.Summary + "\n" + reason + "\n"
	}
	return a
}

// Links turns this node's membership events into link alerts: a
// heartbeat link to a peer that died, and its recovery (a link's first
// "up", at boot, is not news). Other membership events are left to
// Cluster, which tells them from the replicated state. Each node tells of
// its own links.
type Links struct {
	cluster, self string
	down          map[string]bool // peer + " " + link
}

// NewLinks returns the link alerts of node self.
func NewLinks(cluster, self string) *Links {
	return &Links{cluster: cluster, self: self, down: map[string]bool{}}
}

// Event returns the alert for ev, if it is one.
func (l *Links) Event(ev membership.Event) (monitors.Alert, bool) {
	a := monitors.Alert{Kind: "link", Node: l.self, Group: l.cluster, Service: "link", Hosts: []string{ev.Node}, Time: ev.Time}
	key := ev.Node + " " + ev.Link
	switch ev.Kind {
	case membership.LinkDead:
		l.down[key] = true
		a.Type, a.Retval = monitors.AlertFailure, 1
		a.Summary = fmt.Sprintf("link %s from %s to %s down", ev.Link, l.self, ev.Node)
	case membership.LinkUp:
		if !l.down[key] {
			return a, false
		}
		delete(l.down, key)
		a.Type = monitors.AlertUp
		a.Summary = fmt.Sprintf("link %s from %s to %s up", ev.Link, l.self, ev.Node)
	default:
		return a, false
	}
	return withReason(a, ev.Reason), true
}
