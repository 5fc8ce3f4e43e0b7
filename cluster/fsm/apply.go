package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrSkipped marks a command this build does not know; it is not applied.
var ErrSkipped = errors.New("skipped")

// ErrRefused marks a command that was valid but not allowed in the
// current state (a stale claim, a move to an unknown node).
var ErrRefused = errors.New("refused")

// Apply applies one encoded command appended at index and time at. The
// returned error says why a command had no effect; the state is unchanged
// then.
func (s *State) Apply(index uint64, at time.Time, data []byte) error {
	var t touch
	return s.apply(index, at, data, &t)
}

// touch collects what one entry changed (see Touched).
type touch struct {
	nodes, defs, all bool
	groups           []string
}

func (t *touch) group(name string) { t.groups = append(t.groups, name) }

func (s *State) apply(index uint64, at time.Time, data []byte, t *touch) error {
	s.Index = index
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		s.Skipped++
		return fmt.Errorf("%w: undecodable entry: %v", ErrSkipped, err)
	}
	if v, ok := versions[env.Type]; !ok || env.Version < 1 || env.Version > v {
		s.Skipped++
		return fmt.Errorf("%w: command %q version %d is unknown to this version of vigil", ErrSkipped, env.Type, env.Version)
	}
	var err error
	switch env.Type {
	case TypeNodeState:
		err = decodeAnd(env.Data, func(c *NodeState) error { return s.nodeState(index, at, c, t) })
	case TypeSetGroups:
		err = decodeAnd(env.Data, func(c *SetGroups) error { return s.setGroups(c, t) })
	case TypeAssign:
		err = decodeAnd(env.Data, func(c *Assign) error { return s.assign(index, at, c, t) })
	case TypeReport:
		err = decodeAnd(env.Data, func(c *Report) error { return s.report(index, at, c, t) })
	case TypeClaim:
		err = decodeAnd(env.Data, func(c *Claim) error { return s.claim(index, at, c, false, t) })
	case TypeMove:
		err = decodeAnd(env.Data, func(c *Move) error { return s.move(c, t) })
	case TypeCleanup:
		err = decodeAnd(env.Data, func(c *Cleanup) error { return s.cleanup(index, c, t) })
	case TypeNodeRemove:
		err = decodeAnd(env.Data, func(c *NodeRemove) error { return s.nodeRemove(c, t) })
	case TypeNodeAdd:
		err = decodeAnd(env.Data, func(c *NodeAdd) error { return s.nodeAdd(c, t) })
	case TypeFenced:
		err = decodeAnd(env.Data, func(c *Fenced) error { return s.fenced(index, at, c, t) })
	case TypeHandover:
		err = decodeAnd(env.Data, func(c *Handover) error { return s.handover(index, c) })
	case TypeClaims:
		err = decodeAnd(env.Data, func(c *Claims) error {
			for i := range c.Claims {
				_ = s.claim(index, at, &c.Claims[i], true, t) // refused items change nothing
			}
			return nil
		})
	case TypeReports:
		err = decodeAnd(env.Data, func(c *Reports) error {
			for i := range c.Reports {
				_ = s.report(index, at, &c.Reports[i], t)
			}
			return nil
		})
	}
	return err
}

func decodeAnd[T any](data json.RawMessage, f func(*T) error) error {
	var c T
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("%w: bad command: %v", ErrRefused, err)
	}
	return f(&c)
}

func refused(f string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(f, a...))
}

func (s *State) node(name string) (*Node, error) {
	n := s.Nodes[name]
	if n == nil {
		return nil, refused("no node %q", name)
	}
	return n, nil
}

func (s *State) group(name string) (*Group, error) {
	g := s.Groups[name]
	if g == nil {
		return nil, refused("no group %q", name)
	}
	return g, nil
}

func (s *State) nodeState(index uint64, at time.Time, c *NodeState, t *touch) error {
	n, err := s.node(c.Node)
	if err != nil {
		return err
	}
	t.nodes = true
	if c.Online != nil && *c.Online != n.Online {
		n.Online, n.Since, n.Reason = *c.Online, at, c.Reason
		if !n.Online {
			// Peers stop renewing its lease once they apply this entry;
			// a claim for its groups waits until that took effect.
			n.DownIndex = index
		} else {
			n.Fenced = 0 // back after a restart
		}
	}
	if c.Incarnation != 0 {
		n.Incarnation = c.Incarnation
	}
	if c.Standby != nil {
		n.Standby = *c.Standby
	}
	if c.Maintenance != nil {
		n.Maintenance = *c.Maintenance
	}
	if c.Leaving != nil {
		n.Leaving = *c.Leaving
	}
	if c.Files != "" {
		n.Files = c.Files
	}
	return nil
}

func (s *State) fenced(index uint64, at time.Time, c *Fenced, t *touch) error {
	n, err := s.node(c.Node)
	if err != nil {
		return err
	}
	t.nodes = true
	if n.Online {
		n.Online, n.DownIndex = false, index
	}
	n.Fenced, n.Since, n.Reason = max(c.Incarnation, 1), at, c.Reason
	for _, g := range s.Groups {
		if r, ok := g.Reports[c.Node]; ok && Active(r.State) {
			g.Reports[c.Node] = NodeReport{State: Stopped, Op: "fence", Result: "OK", Reason: c.Reason, Index: index, At: at}
			t.group(g.Name)
		}
	}
	return nil
}

func (s *State) setGroups(c *SetGroups, t *touch) error {
	switch {
	case c.Generation == 0 && s.GroupsGeneration > 0:
		return fmt.Errorf("%w: the group definitions were reloaded (generation %d); a daemon's own files no longer replace them", ErrRefused, s.GroupsGeneration)
	case c.Generation > 0 && c.Generation != s.GroupsGeneration+1:
		return fmt.Errorf("%w: the group definitions changed meanwhile (generation %d); reload again", ErrRefused, s.GroupsGeneration)
	}
	s.GroupsVersion, s.GroupsGeneration = c.Version, c.Generation
	t.defs, t.nodes = true, true
	var order []string
	for _, ns := range c.Nodes {
		n := s.Nodes[ns.Name]
		if n == nil {
			n = &Node{Name: ns.Name}
			s.Nodes[ns.Name] = n
		}
		n.Role = ns.Role
		order = append(order, ns.Name)
	}
	// Nodes added with `vigil node add` but not (yet) in ha.toml stay.
	for _, name := range s.NodeOrder {
		if !slices.Contains(order, name) && s.Nodes[name] != nil {
			order = append(order, name)
		}
	}
	s.NodeOrder = order
	keep := map[string]bool{}
	s.GroupOrder = s.GroupOrder[:0]
	for _, gs := range c.Groups {
		keep[gs.Name] = true
		s.GroupOrder = append(s.GroupOrder, gs.Name)
		g := s.Groups[gs.Name]
		if g == nil {
			g = &Group{Reports: map[string]NodeReport{}}
			s.Groups[gs.Name] = g
		}
		g.GroupSpec = gs
		// A resource no longer in the group hands nothing over.
		for id := range g.Handover {
			if !slices.ContainsFunc(gs.Resources, func(r Resource) bool { return r.ID == id }) {
				delete(g.Handover, id)
			}
		}
	}
	for name := range s.Groups {
		if !keep[name] {
			delete(s.Groups, name)
		}
	}
	return nil
}

func (s *State) assign(index uint64, at time.Time, c *Assign, t *touch) error {
	for _, ch := range c.Changes {
		if _, err := s.group(ch.Group); err != nil {
			return err
		}
		if ch.To != "" {
			if _, err := s.node(ch.To); err != nil {
				return err
			}
		}
	}
	for _, ch := range c.Changes {
		g := s.Groups[ch.Group]
		t.group(ch.Group)
		if g.Owner == ch.To {
			g.Reason = ch.Reason
			continue
		}
		s.Decisions = appendCapped(s.Decisions, Decision{Time: at, Index: index, Group: ch.Group, From: g.Owner, To: ch.To, Reason: ch.Reason}, keepDecisions)
		if g.Owner != "" && ch.To != "" {
			s.Moves++
		}
		g.Owner, g.Reason, g.AssignIndex, g.Since, g.Claimed, g.ClaimIndex = ch.To, ch.Reason, index, at, "", 0
	}
	return nil
}

func (s *State) report(index uint64, at time.Time, c *Report, t *touch) error {
	g, err := s.group(c.Group)
	if err != nil {
		return err
	}
	if _, err := s.node(c.Node); err != nil {
		return err
	}
	t.group(c.Group)
	when := at
	if c.At != 0 {
		when = time.Unix(0, c.At)
	}
	g.Reports[c.Node] = NodeReport{State: c.State, Op: c.Op, Resource: c.Resource, Result: c.Result, Reason: c.Reason, Index: index, At: when}
	if c.Fail {
		if g.Failcounts == nil {
			g.Failcounts = map[string]map[string]int{}
		}
		fc := g.Failcounts[c.Node]
		if fc == nil {
			fc = map[string]int{}
			g.Failcounts[c.Node] = fc
		}
		if c.Fatal {
			fc[c.Resource] = Infinity
		} else {
			fc[c.Resource] = min(Infinity, fc[c.Resource]+1)
		}
		s.Failures = appendCapped(s.Failures, Failure{Time: when, Index: index, Node: c.Node, Group: c.Group, Resource: c.Resource, Op: c.Op, Result: c.Result, Reason: c.Reason}, keepFailures)
	}
	return nil
}

// claim accepts c or says why not. again (a batched claim) accepts a claim
// this node already holds for the same assignment without resetting what
// it reported since.
func (s *State) claim(index uint64, at time.Time, c *Claim, again bool, t *touch) error {
	g, err := s.group(c.Group)
	if err != nil {
		return err
	}
	if g.Owner != c.Node || g.AssignIndex != c.AssignIndex {
		return refused("group %s is assigned to %q since entry %d, not to %s at %d", c.Group, g.Owner, g.AssignIndex, c.Node, c.AssignIndex)
	}
	if other := s.RunningElsewhere(c.Group, c.Node); other != "" {
		return refused("group %s may still run on %s", c.Group, other)
	}
	t.group(c.Group)
	r, ok := g.Reports[c.Node]
	dup := again && g.Claimed == c.Node && ok && Active(r.State)
	g.Claimed, g.ClaimIndex = c.Node, index
	if dup {
		return nil
	}
	g.Reports[c.Node] = NodeReport{State: Starting, Op: "claim", Index: index, At: at}
	return nil
}

// RunningElsewhere names an online node other than self whose last report
// says the group may run there. Offline nodes do not count: their lease
// ends once peers stop renewing it, which the claimant checks itself.
func (s *State) RunningElsewhere(group, self string) string {
	g := s.Groups[group]
	if g == nil {
		return ""
	}
	for _, name := range s.NodeOrder {
		r, ok := g.Reports[name]
		if name == self || !ok || !Active(r.State) {
			continue
		}
		if n := s.Nodes[name]; n != nil && n.Online {
			return name
		}
	}
	return ""
}

func (s *State) move(c *Move, t *touch) error {
	g, err := s.group(c.Group)
	if err != nil {
		return err
	}
	if c.Node != "" {
		n, err := s.node(c.Node)
		if err != nil {
			return err
		}
		if n.Role == "witness" {
			return refused("%s is a witness: it runs no resources", c.Node)
		}
	}
	g.Pinned = c.Node
	t.group(c.Group)
	return nil
}

func (s *State) cleanup(index uint64, c *Cleanup, t *touch) error {
	g, err := s.group(c.Group)
	if err != nil {
		return err
	}
	t.group(c.Group)
	if c.Node == "" {
		g.Failcounts = nil
	} else {
		delete(g.Failcounts, c.Node)
	}
	s.Failures = slices.DeleteFunc(s.Failures, func(f Failure) bool {
		return f.Group == c.Group && (c.Node == "" || f.Node == c.Node)
	})
	g.CleanupIndex = index
	return nil
}

// handover records c. It touches no group: nothing the workers decide
// depends on it, so a replicated state wakes no one.
func (s *State) handover(index uint64, c *Handover) error {
	g, err := s.group(c.Group)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(g.Resources, func(r Resource) bool { return r.ID == c.Resource }) {
		return refused("group %s has no resource %q", c.Group, c.Resource)
	}
	if len(c.State) > MaxHandover {
		return refused("hand-over state of %s is %d bytes, more than %d", c.Resource, len(c.State), MaxHandover)
	}
	if g.Owner != c.Node || g.Claimed != c.Node {
		return refused("group %s is held by %q (claimed by %q), not by %s", c.Group, g.Owner, g.Claimed, c.Node)
	}
	if len(c.State) == 0 {
		delete(g.Handover, c.Resource)
		return nil
	}
	if g.Handover == nil {
		g.Handover = map[string]HandoverState{}
	}
	g.Handover[c.Resource] = HandoverState{Node: c.Node, Generation: c.Generation, Index: index, Size: len(c.State), State: c.State}
	return nil
}

func (s *State) nodeAdd(c *NodeAdd, t *touch) error {
	if c.Node == "" {
		return refused("node name required")
	}
	if c.Role != "member" && c.Role != "witness" {
		return refused("role %q is not member or witness", c.Role)
	}
	t.nodes = true
	if n := s.Nodes[c.Node]; n != nil {
		n.Role = c.Role
		return nil
	}
	s.Nodes[c.Node] = &Node{Name: c.Node, Role: c.Role}
	s.NodeOrder = append(s.NodeOrder, c.Node)
	return nil
}

func (s *State) nodeRemove(c *NodeRemove, t *touch) error {
	if _, err := s.node(c.Node); err != nil {
		return err
	}
	for _, g := range s.Groups {
		if g.Owner == c.Node {
			return refused("node %s still owns group %s: move it first", c.Node, g.Name)
		}
	}
	t.all = true // every group's reports of it go
	delete(s.Nodes, c.Node)
	s.NodeOrder = slices.DeleteFunc(s.NodeOrder, func(n string) bool { return n == c.Node })
	for _, g := range s.Groups {
		delete(g.Reports, c.Node)
		delete(g.Failcounts, c.Node)
	}
	return nil
}

func appendCapped[T any](s []T, v T, limit int) []T {
	s = append(s, v)
	if len(s) > limit {
		s = slices.Delete(s, 0, len(s)-limit)
	}
	return s
}
