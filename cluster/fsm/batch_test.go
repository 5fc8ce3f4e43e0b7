package fsm

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A batch of claims applies each claim on its own: a stale one is refused
// while the others are accepted, and the accepting entry is recorded.
func TestClaimsBatch(t *testing.T) {
	a := fixture(t)
	a.must(TypeSetGroups, SetGroups{Version: "v2", Nodes: []NodeSpec{{"n1", "member"}, {"n2", "member"}, {"w", "witness"}},
		Groups: []GroupSpec{{Name: "web"}, {Name: "db"}, {Name: "mail"}}})
	a.must(TypeAssign, Assign{Changes: []Change{{Group: "db", To: "n1"}, {Group: "mail", To: "n2"}}})
	s := a.s
	web, db, mail := s.Groups["web"], s.Groups["db"], s.Groups["mail"]
	a.must(TypeClaims, Claims{Claims: []Claim{
		{Node: "n1", Group: "web", AssignIndex: web.AssignIndex},
		{Node: "n1", Group: "mail", AssignIndex: mail.AssignIndex}, // assigned to n2
		{Node: "n1", Group: "nope"},
		{Node: "n1", Group: "db", AssignIndex: db.AssignIndex},
	}})
	if web.Claimed != "n1" || db.Claimed != "n1" || web.ClaimIndex != a.index || db.ClaimIndex != a.index {
		t.Errorf("accepted claims: web %q@%d db %q@%d", web.Claimed, web.ClaimIndex, db.Claimed, db.ClaimIndex)
	}
	if mail.Claimed != "" || mail.ClaimIndex != 0 || len(mail.Reports) != 0 {
		t.Errorf("refused claim took effect: %+v", mail)
	}
	if web.Reports["n1"].State != "starting" {
		t.Errorf("claim report: %+v", web.Reports["n1"])
	}
	// A claim repeated once the group runs keeps the running report.
	a.must(TypeReports, Reports{Reports: []Report{{Node: "n1", Group: "web", State: "running", Op: "start"}}})
	a.must(TypeClaims, Claims{Claims: []Claim{{Node: "n1", Group: "web", AssignIndex: web.AssignIndex}}})
	if r := web.Reports["n1"]; r.State != "running" || web.ClaimIndex != a.index {
		t.Errorf("repeated claim: report %+v, claim index %d", r, web.ClaimIndex)
	}
	// n2 cannot claim mail while n1 runs nothing there: accepted; db is
	// n1's and running elsewhere is checked per item.
	a.must(TypeClaims, Claims{Claims: []Claim{{Node: "n2", Group: "mail", AssignIndex: mail.AssignIndex}}})
	if mail.Claimed != "n2" {
		t.Errorf("n2's claim: %+v", mail)
	}
	// A reassignment forgets the claim.
	a.must(TypeAssign, Assign{Changes: []Change{{Group: "db", From: "n1", To: "n2"}}})
	if db.Claimed != "" || db.ClaimIndex != 0 {
		t.Errorf("after reassignment: %q@%d", db.Claimed, db.ClaimIndex)
	}
}

// A batch of reports applies in order; a refused report leaves the
// others; failures count as single reports do.
func TestReportsBatch(t *testing.T) {
	a := fixture(t)
	g := a.s.Groups["web"]
	a.must(TypeReports, Reports{Reports: []Report{
		{Node: "n1", Group: "web", State: "failed", Op: "monitor", Resource: "vip", Fail: true, At: t0.UnixNano()},
		{Node: "n1", Group: "nope", State: "running"},
		{Node: "zz", Group: "web", State: "running"},
		{Node: "n1", Group: "web", State: "stopped", Op: "stop", Result: "OK"},
		{Node: "n2", Group: "web", State: "stopped", Op: "probe"},
	}})
	if r := g.Reports["n1"]; r.State != "stopped" || r.Index != a.index {
		t.Errorf("n1's last report: %+v", r)
	}
	if r := g.Reports["n2"]; r.State != "stopped" || len(g.Reports) != 2 {
		t.Errorf("reports: %+v", g.Reports)
	}
	if a.s.Failcount("web", "n1") != 1 || len(a.s.Failures) != 1 || !a.s.Failures[0].Time.Equal(t0) {
		t.Errorf("failcount %d, failures %+v", a.s.Failcount("web", "n1"), a.s.Failures)
	}
}

// Entries written when GroupSpec held the configuration's resource type
// decode into the FSM's own, durations included, and encode the same way.
func TestResourceJSONCompatible(t *testing.T) {
	old := `{"name":"web","preferred":"n1","resources":[{"id":"vip","type":"IPaddr","params":{"ip":"10.0.0.3"},"timeout":"20s","interval":"2s"},{"id":"lvs","type":"ldirectord","args":["a"]}]}`
	var g GroupSpec
	if err := json.Unmarshal([]byte(old), &g); err != nil {
		t.Fatal(err)
	}
	if r := g.Resources[0]; r.Timeout.D() != 20*time.Second || r.Interval.D() != 2*time.Second || r.Params["ip"] != "10.0.0.3" {
		t.Errorf("decoded %+v", r)
	}
	b, _ := json.Marshal(g)
	if string(b) != old {
		t.Errorf("re-encoded differently:\n%s\n%s", b, old)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","resources":[{"id":"a","interval":"soon"}]}`), &g); err == nil {
		t.Error("a bad duration decoded")
	}
}

// A snapshot written when the state had a duration type of its own
// (before it took the configuration's, timing.Duration) restores with the
// same durations and persists byte for byte the same.
func TestSnapshotDurationsCompatible(t *testing.T) {
	const old = `{"index":1,"groups_version":"v1","nodes":{"n1":{"name":"n1","role":"member","online":false,"standby":false,"maintenance":false,"since":"0001-01-01T00:00:00Z"},"n2":{"name":"n2","role":"member","online":false,"standby":false,"maintenance":false,"since":"0001-01-01T00:00:00Z"}},"node_order":["n1","n2"],"groups":{"web":{"name":"web","preferred":"n1","resources":[{"id":"vip","type":"IPaddr","timeout":"20s","interval":"1.5s"},{"id":"lvs","type":"ldirectord","interval":"1m30s"}],"owner":"","assign_index":0,"since":"0001-01-01T00:00:00Z","reports":{}}},"group_order":["web"],"failures":null,"decisions":null,"skipped":0}`
	f := New(slog.New(slog.DiscardHandler))
	if err := f.Restore(io.NopCloser(strings.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	rs := f.View().Groups["web"].Resources
	if len(rs) != 2 || rs[0].Timeout.D() != 20*time.Second || rs[0].Interval.D() != 1500*time.Millisecond || rs[1].Timeout != 0 || rs[1].Interval.D() != 90*time.Second {
		t.Fatalf("restored resources %+v", rs)
	}
	if got := strings.TrimSpace(string(persist(t, f))); got != old {
		t.Errorf("persisted differently:\n%s\n%s", got, old)
	}
}

// Since says which groups the entries after an index changed, and when a
// reader must redo everything.
func TestSince(t *testing.T) {
	f := New(slog.New(slog.DiscardHandler))
	var index uint64
	apply := func(typ string, cmd any) {
		t.Helper()
		b, err := Encode(typ, cmd)
		if err != nil {
			t.Fatal(err)
		}
		index++
		if err, _ := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b}).(error); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
	var groups []GroupSpec
	for i := range 5 {
		groups = append(groups, GroupSpec{Name: fmt.Sprintf("g%d", i)})
	}
	apply(TypeSetGroups, SetGroups{Version: "v", Groups: groups, Nodes: []NodeSpec{{"n1", "member"}, {"n2", "member"}}})
	if tc := f.Since(0); !tc.Defs || !tc.Group("g3") || tc.To != 1 {
		t.Errorf("after set-groups: %+v", tc)
	}
	apply(TypeNodeState, NodeState{Node: "n1", Online: ptr(true)})
	mark := index
	apply(TypeAssign, Assign{Changes: []Change{{Group: "g1", To: "n1"}, {Group: "g2", To: "n1"}}})
	apply(TypeReports, Reports{Reports: []Report{{Node: "n1", Group: "g4", State: "stopped"}}})
	tc := f.Since(mark)
	got := slices.Sorted(func(yield func(string) bool) {
		for g := range tc.Groups {
			if !yield(g) {
				return
			}
		}
	})
	if tc.All || tc.Nodes || tc.Defs || !slices.Equal(got, []string{"g1", "g2", "g4"}) || tc.Group("g3") || tc.To != index {
		t.Errorf("since %d: %+v", mark, tc)
	}
	if tc := f.Since(index); !tc.Empty() {
		t.Errorf("nothing new: %+v", tc)
	}
	apply(TypeNodeState, NodeState{Node: "n2", Standby: ptr(true)})
	if tc := f.Since(index - 1); !tc.Nodes || len(tc.Groups) != 0 {
		t.Errorf("node flags: %+v", tc)
	}
	// A refused command changes nothing.
	b, _ := Encode(TypeClaim, Claim{Node: "n2", Group: "g1", AssignIndex: 99})
	index++
	f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b})
	if tc := f.Since(index - 1); !tc.Empty() {
		t.Errorf("refused claim: %+v", tc)
	}
	// (A reader further behind than the journal: TestJournalBounded.)
}

// BenchmarkReports1000 applies 1,000 reports: as one batched entry, and
// as 1,000 single entries (what each node sent before batching).
func BenchmarkReports1000(b *testing.B) {
	var groups []GroupSpec
	for i := range 1000 {
		groups = append(groups, GroupSpec{Name: fmt.Sprintf("g%04d", i)})
	}
	setup := func() (*FSM, uint64) {
		f := New(slog.New(slog.DiscardHandler))
		cmd, _ := Encode(TypeSetGroups, SetGroups{Version: "v", Groups: groups, Nodes: []NodeSpec{{"n1", "member"}, {"n2", "member"}, {"w", "witness"}}})
		f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: cmd})
		return f, 1
	}
	var reports []Report
	var singles [][]byte
	for _, g := range groups {
		r := Report{Node: "n1", Group: g.Name, State: "running", Op: "start", Result: "OK", At: t0.UnixNano()}
		reports = append(reports, r)
		cmd, _ := Encode(TypeReport, r)
		singles = append(singles, cmd)
	}
	batch, _ := Encode(TypeReports, Reports{Reports: reports})
	b.Run("batched", func(b *testing.B) {
		f, index := setup()
		b.ReportAllocs()
		for b.Loop() {
			index++
			f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: batch})
		}
	})
	b.Run("single", func(b *testing.B) {
		f, index := setup()
		b.ReportAllocs()
		for b.Loop() {
			for _, cmd := range singles {
				index++
				f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: cmd})
			}
		}
	})
}

// BenchmarkView1000 is the deep copy of a state of 1,000 groups (the
// leader made one per committed entry before it read in place).
func BenchmarkView1000(b *testing.B) {
	f := New(slog.New(slog.DiscardHandler))
	var groups []GroupSpec
	for i := range 1000 {
		groups = append(groups, GroupSpec{Name: fmt.Sprintf("g%04d", i), Preferred: "n1", Resources: []Resource{{ID: "vip", Type: "IPaddr"}}})
	}
	cmd, _ := Encode(TypeSetGroups, SetGroups{Version: "v", Groups: groups, Nodes: []NodeSpec{{"n1", "member"}, {"n2", "member"}, {"w", "witness"}}})
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: cmd})
	b.ReportAllocs()
	for b.Loop() {
		_ = f.View()
	}
}

// The journal is bounded by the group names it holds, not only entries:
// batches naming 1,000 groups each do not pile up.
func TestJournalBounded(t *testing.T) {
	f := New(slog.New(slog.DiscardHandler))
	var groups []GroupSpec
	var reports []Report
	for i := range 1000 {
		name := fmt.Sprintf("g%04d", i)
		groups = append(groups, GroupSpec{Name: name})
		reports = append(reports, Report{Node: "n1", Group: name, State: "running"})
	}
	cmd, _ := Encode(TypeSetGroups, SetGroups{Version: "v", Groups: groups, Nodes: []NodeSpec{{"n1", "member"}}})
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: cmd})
	batch, _ := Encode(TypeReports, Reports{Reports: reports})
	for i := range uint64(20) {
		f.Apply(&raft.Log{Index: 2 + i, Type: raft.LogCommand, Data: batch})
	}
	if f.names > keepNames || len(f.journal) == 0 {
		t.Errorf("journal holds %d names in %d entries", f.names, len(f.journal))
	}
	if tc := f.Since(20); tc.All || len(tc.Groups) != 1000 {
		t.Errorf("recent: all %v, %d groups", tc.All, len(tc.Groups))
	}
	if tc := f.Since(2); !tc.All {
		t.Error("a reader 19 batches behind is not told to redo all")
	}
}
