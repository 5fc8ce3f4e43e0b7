package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/membership"
)

// Item is one row of the page: the header, a node, a group, a virtual
// service of an ldirectord instance or a mon service. Key is "kind/id";
// the page keeps one element per key and updates it in place.
type Item struct {
	Key  string          `json:"key"`
	Kind string          `json:"kind"`
	Data json.RawMessage `json:"data"`
	// Order is the row's place among its kind's (configuration order).
	Order int `json:"order"`
}

// Event is one line of the timeline: a placement (failover, move,
// failback), a failed operation, an alert, a membership change, a real
// server going up or down.
type Event struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	// Level is how the page marks it: ok, info, warn, bad.
	Level string `json:"level"`
	Text  string `json:"text"`
	// The peer and link of a membership event.
	node, link string
}

// Header is the cluster as this node sees it.
type Header struct {
	Cluster     string   `json:"cluster"`
	Node        string   `json:"node"`
	Version     string   `json:"version"`
	Leader      string   `json:"leader"`
	RaftState   string   `json:"raft_state,omitempty"`
	Term        string   `json:"term,omitempty"`
	Voters      []string `json:"voters,omitempty"`
	HoldsLease  bool     `json:"holds_lease"`
	FilesDiffer []string `json:"files_differ,omitempty"`
}

// Node is one configured node: how this node hears it and what the
// cluster holds about it.
type Node struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Role    string `json:"role"`
	Self    bool   `json:"self,omitempty"`
	// Heard is this node's membership view: up, dead, or "" before the
	// first beat.
	Heard string    `json:"heard"`
	Since time.Time `json:"since,omitzero"`
	// Cluster is the replicated view: online, offline, standby,
	// maintenance ("" without cluster state).
	Cluster string    `json:"cluster,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Links   []Link    `json:"links,omitempty"`
	Changed time.Time `json:"changed,omitzero"` // the replicated state's Since
}

// Link is one heartbeat link to a peer.
type Link struct {
	Link  string `json:"link"`
	State string `json:"state"`
}

// Service is one virtual service of an ldirectord instance on this node.
type Service struct {
	Instance  string `json:"instance"`
	Key       string `json:"key"`
	Scheduler string `json:"scheduler"`
	Flags     string `json:"flags,omitempty"`
	Directing bool   `json:"directing"`
	Backend   string `json:"backend,omitempty"`
	Reals     []Real `json:"reals"`
}

// Real is one real server of a virtual service.
type Real struct {
	Addr     string `json:"addr"`
	Forward  string `json:"forward"`
	Weight   int    `json:"weight"`
	Active   int64  `json:"active"`
	Inactive int64  `json:"inactive"`
	Health   string `json:"health"`
	Result   string `json:"result,omitempty"`
}

// Watch is one service of a mon instance on this node.
type Watch struct {
	Instance string    `json:"instance"`
	Service  string    `json:"service"`
	Monitor  string    `json:"monitor"`
	Interval string    `json:"interval"`
	OK       bool      `json:"ok"`
	Summary  string    `json:"summary,omitempty"`
	Since    time.Time `json:"failing_since,omitzero"`
	Alerts   int       `json:"alerts"`
	Hosts    []string  `json:"hosts"`
}

// The parts of the ldirectord and mon inspections the page shows: their
// JSON, decoded here so the core imports no resource implementation.
type ldStatus struct {
	Backend  string `json:"backend"`
	Active   bool   `json:"active"`
	Services []struct {
		Key       string `json:"key"`
		Scheduler string `json:"scheduler"`
		Flags     string `json:"flags"`
		Reals     []Real `json:"reals"`
	} `json:"services"`
	Events []struct {
		Time    time.Time
		Kind    string
		Subject string
		Up      bool
		Summary string
	} `json:"events"`
}

// Build turns a status snapshot into the page's rows and timeline. Only
// what an operator reads is kept: no counters that move with every
// heartbeat or check, so that an unchanged cluster sends nothing.
func Build(s *api.Status) (items []Item, events []Event) {
	add := func(kind, id string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			return // plain structs: cannot happen
		}
		items = append(items, Item{Key: kind + "/" + id, Kind: kind, Data: b, Order: len(items)})
	}
	h := Header{Cluster: s.Cluster, Node: s.Node, Version: s.Version, FilesDiffer: s.FilesDiffer}
	if c := s.Core; c != nil {
		h.Leader, h.RaftState, h.Term, h.Voters, h.HoldsLease = c.Leader, c.RaftState, c.Term, c.Voters, c.HoldsLease
	}
	add("header", "", h)

	for _, n := range s.Nodes {
		v := Node{Name: n.Name, Address: n.Address, Role: n.Role, Self: n.Self, Heard: n.State, Since: n.PeerStatus.Since}
		for _, l := range n.Links {
			v.Links = append(v.Links, Link{Link: l.Link, State: l.State})
		}
		if s.Core != nil && s.Core.State != nil {
			if fn := s.Core.State.Nodes[n.Name]; fn != nil {
				v.Reason, v.Changed = fn.Reason, fn.Since
				at, off := api.Offline(s, n.Name) // as status shows it
				switch {
				case off && fn.Online:
					// cut off: no leader records what this node hears
					v.Cluster, v.Reason, v.Changed = "offline", "not heard here (no leader to record it)", at
				case off:
					v.Cluster = "offline"
				case fn.Maintenance:
					v.Cluster = "maintenance"
				case fn.Standby:
					v.Cluster = "standby"
				default:
					v.Cluster = "online"
				}
			}
		}
		add("node", n.Name, v)
	}

	for _, g := range s.Placement {
		add("group", g.Name, g)
	}

	plugins := map[string]string{}
	for _, g := range s.Groups {
		for _, r := range g.Resources {
			plugins[r.ID] = r.Plugin
		}
	}
	for _, in := range s.Inspections {
		switch plugins[in.Resource] {
		case "ldirectord":
			var st ldStatus
			if json.Unmarshal(in.JSON, &st) != nil {
				continue
			}
			for _, svc := range st.Services {
				key := strings.Join(strings.Fields(svc.Key), " ") // "TCP  VIP:80", as ipvsadm pads it
				add("service", in.Resource+" "+key, Service{Instance: in.Resource, Key: key, Scheduler: svc.Scheduler, Flags: svc.Flags,
					Directing: st.Active, Backend: st.Backend, Reals: svc.Reals})
			}
			for _, e := range st.Events {
				if e.Kind != "realserver" {
					continue
				}
				lvl, word := "bad", "down"
				if e.Up {
					lvl, word = "ok", "up"
				}
				events = append(events, Event{ID: fmt.Sprintf("ld/%s/%d/%s/%v", in.Resource, e.Time.UnixNano(), e.Subject, e.Up), Time: e.Time,
					Kind: "realserver", Level: lvl, Text: strings.TrimSpace(fmt.Sprintf("%s: real server %s %s %s", in.Resource, e.Subject, word, e.Summary))})
			}
		case "mon":
			var st []Watch
			if json.Unmarshal(in.JSON, &st) != nil {
				continue
			}
			for _, w := range st {
				w.Instance = in.Resource
				add("watch", in.Resource+" "+w.Service, w)
			}
		}
	}

	if c := s.Core; c != nil && c.State != nil {
		for _, d := range c.State.Decisions {
			kind, text := "move", fmt.Sprintf("%s: %s → %s", d.Group, orNone(d.From), orNone(d.To))
			if d.From == "" {
				kind = "placed"
			}
			if d.Reason != "" {
				text += " (" + d.Reason + ")"
			}
			lvl := "info"
			if d.From != "" && d.To != "" && isFailover(s, d.From) {
				kind, lvl = "failover", "warn"
			}
			events = append(events, Event{ID: fmt.Sprintf("d/%d/%s", d.Index, d.Group), Time: d.Time, Kind: kind, Level: lvl, Text: text})
		}
		for _, f := range c.State.Failures {
			text := fmt.Sprintf("%s/%s on %s: %s %s", f.Group, f.Resource, f.Node, f.Op, f.Result)
			if f.Reason != "" {
				text += ": " + f.Reason
			}
			events = append(events, Event{ID: fmt.Sprintf("f/%d/%s/%s/%s", f.Index, f.Group, f.Node, f.Resource), Time: f.Time, Kind: "failure", Level: "bad", Text: text})
		}
	}
	if a := s.Alerts; a != nil {
		for _, r := range a.Recent {
			lvl := "warn"
			if r.Err != "" {
				lvl = "bad"
			}
			text := fmt.Sprintf("alert %s %s: %s → %s", r.Kind, r.Type, r.Summary, r.Via)
			if r.Err != "" {
				text += ": " + r.Err
			}
			events = append(events, Event{ID: fmt.Sprintf("a/%d/%s/%s/%s", r.Time.UnixNano(), r.Kind, r.Type, r.Via), Time: r.Time, Kind: "alert", Level: lvl, Text: text})
		}
	}
	return items, events
}

// isFailover tells a failover (the old owner is offline or in standby)
// from an operator's move or a failback.
func isFailover(s *api.Status, from string) bool {
	n := s.Core.State.Nodes[from]
	return n != nil && !n.Online
}

func orNone(s string) string {
	if s == "" {
		return "nowhere"
	}
	return s
}

// MemberEvent is a membership change as a timeline line.
func MemberEvent(ev membership.Event) Event {
	lvl := "bad"
	if ev.Kind == membership.NodeUp || ev.Kind == membership.LinkUp {
		lvl = "ok"
	} else if ev.Kind == membership.NodeRestarted {
		lvl = "warn"
	}
	text := fmt.Sprintf("%s %s", ev.Kind, ev.Node)
	if ev.Link != "" {
		text += " via " + ev.Link
	}
	if ev.Reason != "" {
		text += ": " + ev.Reason
	}
	return Event{ID: fmt.Sprintf("m/%d/%s/%s/%s", ev.Time.UnixNano(), ev.Kind, ev.Node, ev.Link), Time: ev.Time, Kind: string(ev.Kind), Level: lvl, Text: text,
		node: ev.Node, link: ev.Link}
}

// sortEvents orders a timeline oldest first.
func sortEvents(evs []Event) {
	slices.SortStableFunc(evs, func(a, b Event) int { return a.Time.Compare(b.Time) })
}
