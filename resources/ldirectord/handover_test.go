package ldirectord

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/plugins/pb"
)

func newPlugin(t *testing.T) *Resource {
	r := New(slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		for _, e := range r.engines {
			e.Close()
		}
	})
	return r
}

// Through the plugin's own calls: the owner's Handover answer, given to
// the next owner's Start, sends every client to the real it had; an
// unchanged table answers unchanged; a garbage blob is refused in the
// start's reason, and the start succeeds.
func TestPluginHandover(t *testing.T) {
	newWeb(t, "127.0.0.2:18095")
	newWeb(t, "127.0.0.3:18095")
	js, _ := json.Marshal(instance(t, testutil.PersistentWWW("127.0.0.10:18095", "127.0.0.2:18095", "127.0.0.3:18095")))
	in := &pb.Instance{Id: "www", Params: map[string]string{ParamSpec: string(js)}}
	ctx := context.Background()
	vip := "127.0.0.10:18095"
	clients := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"}

	old := newPlugin(t)
	if res, _ := old.Start(ctx, in); res.GetCode() != pb.Code_SUCCESS || res.GetReason() != "" {
		t.Fatalf("start: %v", res)
	}
	testutil.GetFrom(t, "127.0.0.20", vip) // shifts rr, so a fresh director would differ
	had := map[string]string{}
	for _, c := range clients {
		had[c] = testutil.GetFrom(t, c, vip)
	}
	st, err := old.Handover(ctx, &pb.HandoverRequest{Instance: in})
	if err != nil || !st.GetChanged() || len(st.GetState()) == 0 {
		t.Fatalf("handover: %v %v", st, err)
	}
	if again, _ := old.Handover(ctx, &pb.HandoverRequest{Instance: in, Have: st.GetGeneration()}); again.GetChanged() || len(again.GetState()) != 0 {
		t.Fatalf("unchanged table handed over again: %v", again)
	}
	if res, _ := old.Stop(ctx, in); res.GetCode() != pb.Code_SUCCESS {
		t.Fatalf("stop: %v", res)
	}
	if after, _ := old.Handover(ctx, &pb.HandoverRequest{Instance: in, Have: st.GetGeneration()}); after.GetChanged() {
		t.Fatalf("a stopped instance handed over: %v", after)
	}

	next := newPlugin(t)
	seeded := &pb.Instance{Id: in.Id, Params: in.Params, Handover: st.GetState()}
	res, _ := next.Start(ctx, seeded)
	if res.GetCode() != pb.Code_SUCCESS || !strings.HasPrefix(res.GetReason(), fmt.Sprintf("%d persistence templates taken over", len(clients)+1)) {
		t.Fatalf("seeded start: %v", res)
	}
	for _, c := range clients {
		if got := testutil.GetFrom(t, c, vip); got != had[c] {
			t.Fatalf("client %s reached %s after the hand-over, had %s", c, got, had[c])
		}
	}
	next.Stop(ctx, in)

	bad := newPlugin(t)
	garbage := &pb.Instance{Id: in.Id, Params: in.Params, Handover: []byte("not a table")}
	if res, _ := bad.Start(ctx, garbage); res.GetCode() != pb.Code_SUCCESS || !strings.Contains(res.GetReason(), "not taken over") {
		t.Fatalf("start with a garbage blob: %v", res)
	}
	bad.Stop(ctx, in)
}
