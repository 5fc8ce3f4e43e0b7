package coord

import (
	"context"
	"fmt"
	"testing"

	"github.com/vigil-ha/vigil/cluster/fsm"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/cluster/placement"
)

// benchLeader is the witness leading n1, n2 with 1,000 groups running on
// n1.
func benchLeader(b *testing.B) (*harness, []string) {
	h := leader(&testing.T{})
	var specs []fsm.GroupSpec
	var names []string
	for i := range 1000 {
		name := fmt.Sprintf("g%04d", i)
		names = append(names, name)
		specs = append(specs, fsm.GroupSpec{Name: name, Preferred: "n1", Resources: []fsm.Resource{{ID: "vip", Type: "IPaddr"}}})
	}
	h.c.groups, h.c.version = specs, GroupsVersion(specs, nodes3)
	h.c.lead(context.Background(), true, nil)
	if !h.c.lead(context.Background(), true, nil) {
		b.Fatal("lead")
	}
	var reports []fsm.Report
	for _, n := range names {
		reports = append(reports, fsm.Report{Node: "n1", Group: n, State: lrm.Running})
	}
	if err := h.c.Apply(context.Background(), fsm.TypeReports, fsm.Reports{Reports: reports}); err != nil {
		b.Fatal(err)
	}
	return h, names
}

// BenchmarkLeaderEntry is what the leader does for one committed report
// at 1,000 groups: now (read what the entry touched, place that group)
// against before (copy the whole state, place every group).
func BenchmarkLeaderEntry(b *testing.B) {
	for _, mode := range []string{"incremental", "full-pass", "before-copy"} {
		b.Run(mode, func(b *testing.B) {
			h, names := benchLeader(b)
			ctx := context.Background()
			seen := h.c.opt.FSM.Applied()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				r := fsm.Report{Node: "n1", Group: names[i%len(names)], State: lrm.Running, At: int64(i)}
				if err := h.c.Apply(ctx, fsm.TypeReport, r); err != nil {
					b.Fatal(err)
				}
				switch mode {
				case "incremental":
					t := h.c.opt.FSM.Since(seen)
					seen = t.To
					h.c.lead(ctx, t.All || t.Nodes || t.Defs, t.Groups)
				case "full-pass":
					h.c.lead(ctx, true, nil)
				case "before-copy":
					placement.Decide(h.c.opt.FSM.View(), h.c.opt.Placement)
				}
			}
		})
	}
}
