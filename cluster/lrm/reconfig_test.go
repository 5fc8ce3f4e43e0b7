package lrm_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/lrm"
)

// A changed group definition applied to a running group: unchanged
// resources stay, a reloadable change reloads in place, and from the
// first other change the group restarts in order.
func TestReconfigure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(e *env) []config.Resource
		want  string // journal after the initial start
		ids   string // resources and states afterwards
		state string
	}{
		{"unchanged", func(e *env) []config.Resource { return []config.Resource{e.dummy("a"), e.dummy("b"), e.dummy("c")} },
			"", "a:running b:running c:running", lrm.Running},
		{"new timeout only", func(e *env) []config.Resource {
			b := e.dummy("b")
			b.Timeout = config.Duration(5e9)
			return []config.Resource{e.dummy("a"), b, e.dummy("c")}
		}, "", "a:running b:running c:running", lrm.Running},
		{"reloadable change, one removed, two added", func(e *env) []config.Resource {
			return []config.Resource{e.dummy("a"), e.dummy("b", "delay", "1ms"), e.dummy("d"), e.dummy("e")}
		}, "stop:success reload:success start:success start:success", "a:running b:running d:running e:running", lrm.Running},
		{"a unique parameter changes: all restart", func(e *env) []config.Resource {
			return []config.Resource{e.dummy("a", "state", e.dir+"/a2"), e.dummy("b"), e.dummy("c")}
		}, "stop:success stop:success stop:success start:success start:success start:success", "a:running b:running c:running", lrm.Running},
		{"reordered", func(e *env) []config.Resource { return []config.Resource{e.dummy("a"), e.dummy("c"), e.dummy("b")} },
			"stop:success stop:success start:success start:success", "a:running c:running b:running", lrm.Running},
		{"a failed reload restarts from there", func(e *env) []config.Resource {
			return []config.Resource{e.dummy("a"), e.dummy("b", "fail", "reload"), e.dummy("c")}
		}, "reload:err_generic stop:success stop:success start:success start:success", "a:running b:running c:running", lrm.Running},
		{"a failed start stops the group", func(e *env) []config.Resource {
			return []config.Resource{e.dummy("a"), e.dummy("b"), e.dummy("x", "fail", "start")}
		}, "stop:success start:err_generic stop:success stop:success stop:success", "", lrm.Failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			g := config.Group{Name: "g", Resources: []config.Resource{e.dummy("a"), e.dummy("b"), e.dummy("c")}}
			if err := e.m.Start(ctx, g); err != nil {
				t.Fatal(err)
			}
			before := e.ops(t)
			g.Resources = tc.after(e)
			changed, err := e.m.Reconfigure(ctx, g)
			if changed != (tc.name != "unchanged") || (err != nil) != (tc.state != lrm.Running) {
				t.Fatalf("changed %v, err %v", changed, err)
			}
			if got := strings.TrimSpace(strings.TrimPrefix(e.ops(t), before)); got != tc.want {
				t.Fatalf("journal after reconfigure:\n%s\nwant:\n%s", got, tc.want)
			}
			st := e.m.Status()[0]
			if st.State != tc.state {
				t.Fatalf("group state %s, want %s", st.State, tc.state)
			}
			if tc.ids != "" {
				var ids []string
				for _, r := range st.Resources {
					ids = append(ids, r.ID+":"+r.State)
				}
				if strings.Join(ids, " ") != tc.ids {
					t.Fatalf("resources %s, want %s", strings.Join(ids, " "), tc.ids)
				}
			}
		})
	}
}

// A group that does not run here takes the new definition and probes
// what changed; a removed resource a probe found running is stopped.
func TestReconfigureStopped(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	g := config.Group{Name: "g", Resources: []config.Resource{e.dummy("a"), e.dummy("b")}}
	if err := os.WriteFile(e.dir+"/b", nil, 0o644); err != nil { // b runs, a does not
		t.Fatal(err)
	}
	e.m.Probe(ctx, g)
	before := e.ops(t)
	g.Resources = []config.Resource{e.dummy("a", "delay", "1ms"), e.dummy("c")}
	if changed, err := e.m.Reconfigure(ctx, g); !changed || err != nil {
		t.Fatalf("changed %v, err %v", changed, err)
	}
	if got := strings.TrimSpace(strings.TrimPrefix(e.ops(t), before)); got != "stop:success monitor:not_running monitor:not_running" {
		t.Fatalf("journal after reconfigure: %s", got)
	}
	if _, err := os.Stat(e.dir + "/b"); !os.IsNotExist(err) {
		t.Fatalf("removed resource b still runs: %v", err)
	}
	if st := e.m.Status()[0]; len(st.Resources) != 2 || st.Resources[1].ID != "c" || st.Resources[1].State != lrm.Stopped {
		t.Fatalf("status %+v", st)
	}
}
