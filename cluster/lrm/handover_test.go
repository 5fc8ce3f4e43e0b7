package lrm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/resources/ldirectord/spec"
)

// serveName answers HTTP on addr with its host ("/.testpage": "test
// page") until the test ends.
func serveName(t *testing.T, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	name, _, _ := strings.Cut(addr, ":")
	mux := http.NewServeMux()
	mux.HandleFunc("/.testpage", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, "test page") })
	mux.HandleFunc("/", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, name) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// Two managers, each with its own ldirectord plugin process (two nodes):
// the first one's hand-over state, handed to the second's start through
// SetHandover, keeps every client on its real server; a group of
// resources without hand-over state says so once.
func TestHandoverThroughPlugins(t *testing.T) {
	serveName(t, "127.0.0.2:18097")
	serveName(t, "127.0.0.3:18097")
	var in spec.Instance
	if _, err := toml.Decode(testutil.PersistentWWW("127.0.0.10:18097", "127.0.0.2:18097", "127.0.0.3:18097"), &in); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(in)
	g := config.Group{Name: "lvs", Resources: []config.Resource{{ID: "www", Type: "ldirectord", Params: map[string]string{spec.ParamName: string(js)}}}}
	ctx := context.Background()
	vip := "127.0.0.10:18097"
	clients := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"}

	old := newEnv(t)
	if err := old.m.Start(ctx, g); err != nil {
		t.Fatal(err)
	}
	testutil.GetFrom(t, "127.0.0.20", vip) // shifts rr
	had := map[string]string{}
	for _, c := range clients {
		had[c] = testutil.GetFrom(t, c, vip)
	}
	states, more, err := old.m.Handover(ctx, g, nil)
	if err != nil || !more || len(states) != 1 || states[0].Resource != "www" || len(states[0].State) == 0 {
		t.Fatalf("handover: %+v more %v err %v", states, more, err)
	}
	if again, more, err := old.m.Handover(ctx, g, map[string]uint64{"www": states[0].Generation}); err != nil || !more || len(again) != 0 {
		t.Fatalf("unchanged: %+v more %v err %v", again, more, err)
	}
	if err := old.m.Stop(ctx, g); err != nil {
		t.Fatal(err)
	}

	next := newEnv(t)
	next.m.SetHandover(func(group, resource string) []byte {
		if group == "lvs" && resource == "www" {
			return states[0].State
		}
		return nil
	})
	if err := next.m.Start(ctx, g); err != nil {
		t.Fatal(err)
	}
	if r := next.m.Status()[0].Resources[0]; r.LastOp != "start" || !strings.HasPrefix(r.Reason, fmt.Sprintf("%d persistence templates taken over", len(clients)+1)) {
		t.Fatalf("start: %+v", r)
	}
	for _, c := range clients {
		if got := testutil.GetFrom(t, c, vip); got != had[c] {
			t.Fatalf("client %s reached %s after the hand-over, had %s", c, got, had[c])
		}
	}
	if err := next.m.Stop(ctx, g); err != nil {
		t.Fatal(err)
	}

	d := config.Group{Name: "d", Resources: []config.Resource{next.dummy("a")}}
	if err := next.m.Start(ctx, d); err != nil {
		t.Fatal(err)
	}
	if states, more, err := next.m.Handover(ctx, d, nil); err != nil || more || len(states) != 0 {
		t.Fatalf("a Dummy group: %+v more %v err %v", states, more, err)
	}
}
