package placement

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/cluster/fsm"
)

// state builds n1, n2, n3 (members) and w (witness), all online unless
// changed, with group g preferring n1 and owned by owner.
func state(owner string, mod func(*fsm.State)) *fsm.State {
	s := fsm.NewState()
	for _, n := range []string{"n1", "n2", "n3", "w"} {
		role := "member"
		if n == "w" {
			role = "witness"
		}
		s.Nodes[n] = &fsm.Node{Name: n, Role: role, Online: true}
		s.NodeOrder = append(s.NodeOrder, n)
	}
	s.Groups["g"] = &fsm.Group{GroupSpec: fsm.GroupSpec{Name: "g", Preferred: "n1"}, Owner: owner, Reports: map[string]fsm.NodeReport{}}
	s.GroupOrder = []string{"g"}
	if mod != nil {
		mod(s)
	}
	return s
}

func TestDecide(t *testing.T) {
	sticky := Options{MigrationThreshold: 3}
	failback := Options{AutoFailback: true, MigrationThreshold: 3}
	for _, tc := range []struct {
		name   string
		s      *fsm.State
		o      Options
		to     string // "=" for no change
		reason string
	}{
		{"first placement on the preferred node", state("", nil), sticky, "n1", "preferred node n1"},
		{"stays on its node", state("n1", nil), sticky, "=", ""},
		{"dead owner: the next eligible node", state("n1", func(s *fsm.State) { s.Nodes["n1"].Online = false }), sticky, "n2", "n1 is offline"},
		{"no failback without auto_failback", state("n2", nil), sticky, "=", ""},
		{"failback with auto_failback", state("n2", nil), failback, "n1", "auto_failback"},
		{"preferred node in standby", state("n1", func(s *fsm.State) { s.Nodes["n1"].Standby = true }), failback, "n2", "n1 is in standby"},
		{"owner shutting down", state("n1", func(s *fsm.State) { s.Nodes["n1"].Leaving = true }), failback, "n2", "n1 is shutting down"},
		{"witness never holds", state("n1", func(s *fsm.State) {
			s.Nodes["n1"].Online, s.Nodes["n2"].Online, s.Nodes["n3"].Online = false, false, false
		}), sticky, "", "no other node is eligible"},
		{"migration threshold moves it", state("n1", func(s *fsm.State) {
			s.Groups["g"].Failcounts = map[string]map[string]int{"n1": {"r": 3}}
		}), failback, "n2", "migration threshold"},
		{"below the threshold it stays", state("n1", func(s *fsm.State) {
			s.Groups["g"].Failcounts = map[string]map[string]int{"n1": {"r": 1, "s": 1}}
		}), sticky, "=", ""},
		{"threshold 0 never migrates", state("n1", func(s *fsm.State) {
			s.Groups["g"].Failcounts = map[string]map[string]int{"n1": {"r": fsm.Infinity}}
		}), Options{}, "=", ""},
		{"pinned by move", state("n1", func(s *fsm.State) { s.Groups["g"].Pinned = "n3" }), failback, "n3", "moved to n3 by operator"},
		{"pin to an offline node is ignored", state("n1", func(s *fsm.State) {
			s.Groups["g"].Pinned = "n3"
			s.Nodes["n3"].Online = false
		}), sticky, "=", ""},
		{"a blocked group stays put", state("n1", func(s *fsm.State) {
			s.Nodes["n1"].Online = false
			s.Groups["g"].Reports["n1"] = fsm.NodeReport{State: "blocked"}
		}), sticky, "=", ""},
		{"maintenance keeps it", state("n1", func(s *fsm.State) {
			s.Nodes["n1"].Maintenance = true
			s.Groups["g"].Pinned = "n2"
		}), sticky, "=", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owner := tc.s.Groups["g"].Owner
			ch := Decide(tc.s, tc.o)
			if tc.to == "=" {
				if len(ch) != 0 {
					t.Fatalf("changes %+v, want none", ch)
				}
				return
			}
			if len(ch) != 1 || ch[0].To != tc.to || ch[0].From != owner || !strings.Contains(ch[0].Reason, tc.reason) {
				t.Fatalf("changes %+v, want %s → %q because %q", ch, owner, tc.to, tc.reason)
			}
		})
	}
}

// scaled builds a state of members n1, n2 and witness w with groups
// groups, all owned by n1 with a running report from it.
func scaled(groups int) *fsm.State {
	s := fsm.NewState()
	for _, n := range []string{"n1", "n2", "w"} {
		role := "member"
		if n == "w" {
			role = "witness"
		}
		s.Nodes[n] = &fsm.Node{Name: n, Role: role, Online: true}
		s.NodeOrder = append(s.NodeOrder, n)
	}
	for i := range groups {
		name := fmt.Sprintf("g%04d", i)
		s.Groups[name] = &fsm.Group{GroupSpec: fsm.GroupSpec{Name: name, Preferred: "n1"}, Owner: "n1", Reason: "preferred node n1",
			Reports: map[string]fsm.NodeReport{"n1": {State: "running"}}}
		s.GroupOrder = append(s.GroupOrder, name)
	}
	return s
}

// BenchmarkDecide1000 is one full placement pass over 1,000 groups: in
// steady state (nothing moves) and after the owner went offline (every
// group moves).
func BenchmarkDecide1000(b *testing.B) {
	o := Options{MigrationThreshold: 3}
	b.Run("steady", func(b *testing.B) {
		s := scaled(1000)
		b.ReportAllocs()
		for b.Loop() {
			if ch := Decide(s, o); len(ch) != 0 {
				b.Fatal(ch)
			}
		}
	})
	b.Run("failover", func(b *testing.B) {
		s := scaled(1000)
		s.Nodes["n1"].Online = false
		b.ReportAllocs()
		for b.Loop() {
			if ch := Decide(s, o); len(ch) != 1000 {
				b.Fatal(len(ch))
			}
		}
	})
}
