package lrm_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Once runs one operation through the plugin a group would use, with
// the instance the manager builds (the resource's timeout, its
// parameters), and no lease.
func TestOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.dummy("d1")
	r.Timeout = config.Duration(3 * time.Second)
	for _, step := range []struct {
		action string
		code   pb.Code
	}{{"status", pb.Code_NOT_RUNNING}, {"start", pb.Code_SUCCESS}, {"monitor", pb.Code_SUCCESS}, {"validate-all", pb.Code_SUCCESS},
		{"stop", pb.Code_SUCCESS}, {"monitor", pb.Code_NOT_RUNNING}} {
		res, err := lrm.Once(ctx, e.h, r, step.action, time.Minute, 0)
		if err != nil || res.Code != step.code || res.Plugin != "dummy" || res.Resource != "d1" {
			t.Fatalf("%s: %v %+v", step.action, err, res)
		}
	}
	b, _ := os.ReadFile(e.journal)
	var ops []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			ops = append(ops, f[1]+" "+f[2])
		}
	}
	if want := "monitor not_running,start success,monitor success,stop success,monitor not_running"; strings.Join(ops, ",") != want {
		t.Errorf("the plugin ran %q, want %q", ops, want)
	}
	res, err := lrm.Once(ctx, e.h, r, "meta-data", time.Minute, 0)
	if err != nil || res.Meta.GetName() != "Dummy" {
		t.Errorf("meta-data: %v %+v", err, res)
	}
	if _, err := lrm.Once(ctx, e.h, r, "promote", time.Minute, 0); !errors.Is(err, lrm.ErrUnknownAction) {
		t.Errorf("promote: %v", err)
	}
	if _, err := lrm.Once(ctx, e.h, config.Resource{ID: "x", Type: "plugin:nosuch"}, "start", time.Minute, 0); !errors.Is(err, host.ErrUnknownPlugin) {
		t.Errorf("a plugin that does not exist: %v", err)
	}
}
