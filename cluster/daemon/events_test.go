package daemon

import (
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/cluster/alerts"
	"github.com/vigil-ha/vigil/cluster/fsm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The alert watcher's light view gives the same alerts as full copies of
// the state (6 alerts: n1 offline, a moved, b placed nowhere, b placed
// again, a failure, n1 online), step by step through placements, failovers, a group placed
// nowhere and placed again, and failures.
func TestAlertViewSameAlerts(t *testing.T) {
	f := fsm.New(slog.New(slog.DiscardHandler))
	apply := applier(t, f)
	on, off := true, false
	steps := []func(){
		func() {
			apply(fsm.TypeSetGroups, fsm.SetGroups{Version: "v", Nodes: []fsm.NodeSpec{{Name: "n1", Role: "member"}, {Name: "n2", Role: "member"}},
				Groups: []fsm.GroupSpec{{Name: "a"}, {Name: "b"}}})
		},
		func() { apply(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Online: &on}) },
		func() { apply(fsm.TypeNodeState, fsm.NodeState{Node: "n2", Online: &on}) },
		func() {
			apply(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "a", To: "n1"}, {Group: "b", To: "n1"}}})
		},
		func() {
			apply(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Online: &off, Reason: "dead"})
			apply(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "a", From: "n1", To: "n2"}, {Group: "b", From: "n1", To: ""}}})
		},
		func() { apply(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "b", To: "n2"}}}) },
		func() {
			apply(fsm.TypeReports, fsm.Reports{Reports: []fsm.Report{{Node: "n2", Group: "a", State: "failed", Op: "monitor", Resource: "vip", Fail: true}}})
		},
		func() { apply(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Online: &on, Reason: "back"}) },
	}
	full, light := f.View(), alertView(f)
	total := 0
	for i, step := range steps {
		step()
		fullNow, lightNow := f.View(), alertView(f)
		want, got := alerts.Cluster("c", full, fullNow), alerts.Cluster("c", light, lightNow)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("step %d: alerts differ:\nfull  %+v\nlight %+v", i, want, got)
		}
		total += len(want)
		full, light = fullNow, lightNow
	}
	if total != 6 {
		t.Errorf("the scenario raised only %d alerts", total)
	}
}

// A group that loses its owner and gets one again between two looks of
// the watcher still raises its "placed on" alert, as with a full copy.
func TestAlertViewPlacedAgainBetweenLooks(t *testing.T) {
	f := fsm.New(slog.New(slog.DiscardHandler))
	apply := applier(t, f)
	on := true
	apply(fsm.TypeSetGroups, fsm.SetGroups{Version: "v", Nodes: []fsm.NodeSpec{{Name: "n1", Role: "member"}, {Name: "n2", Role: "member"}},
		Groups: []fsm.GroupSpec{{Name: "g"}}})
	apply(fsm.TypeNodeState, fsm.NodeState{Node: "n1", Online: &on})
	apply(fsm.TypeNodeState, fsm.NodeState{Node: "n2", Online: &on})
	apply(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "g", To: "n1"}}})
	full, light := f.View(), alertView(f)
	apply(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "g", From: "n1", To: ""}}})
	apply(fsm.TypeAssign, fsm.Assign{Changes: []fsm.Change{{Group: "g", To: "n2"}}})
	want, got := alerts.Cluster("c", full, f.View()), alerts.Cluster("c", light, alertView(f))
	if !reflect.DeepEqual(want, got) || len(want) != 2 {
		t.Errorf("alerts differ:\nfull  %+v\nlight %+v", want, got)
	}
}

// applier applies commands to f as a log would, one index after another.
func applier(t *testing.T, f *fsm.FSM) func(typ string, cmd any) {
	var index uint64
	return func(typ string, cmd any) {
		t.Helper()
		b, err := fsm.Encode(typ, cmd)
		if err != nil {
			t.Fatal(err)
		}
		index++
		if err, _ := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b, AppendedAt: time.Unix(1_800_000_000+int64(index), 0)}).(error); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
}
