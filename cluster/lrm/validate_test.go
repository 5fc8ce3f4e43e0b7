package lrm_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Validate asks the real plugins (subprocesses of this test binary) and
// reports each refusal at its resource, sorted into configuration
// errors and what this node lacks; nothing is started.
func TestValidate(t *testing.T) {
	e := newEnv(t)
	groups := []config.Group{
		{Name: "a", Resources: []config.Resource{
			e.dummy("fine"),
			e.dummy("slow", "delay", "soon"), // not a duration
			{ID: "vip", Type: config.TypeIPaddr, Params: map[string]string{"ip": "10.0.0.3", "label": "eth0:much-too-long-a-label"}},
		}},
		{Name: "b", Resources: []config.Resource{
			{ID: "vip6", Type: config.TypeIPaddr, Params: map[string]string{"ip": "10.0.0.4", "arp_count": "many"}},
			{ID: "httpd", Type: config.TypeScript, Params: map[string]string{"script": "no-such-script-here"}},
			{ID: "ext", Type: "plugin:missing", Params: map[string]string{}},
		}},
	}
	got := lrm.Validate(context.Background(), e.h, groups, 5*time.Second, nil)
	type want struct {
		g, r   int
		config bool
		reason string
	}
	wants := []want{
		{0, 1, true, "delay"},
		{0, 2, true, "label"},
		{1, 0, true, "arp_count"},
		{1, 1, false, "no-such-script-here"},
		{1, 2, false, "missing"},
	}
	if len(got) != len(wants) {
		t.Fatalf("refusals %+v, want %d", got, len(wants))
	}
	for i, w := range wants {
		r := got[i]
		if r.Group != w.g || r.Resource != w.r || r.Configuration() != w.config || !strings.Contains(r.Reason, w.reason) {
			t.Errorf("refusal %d: %+v, want group %d resource %d configuration=%v mentioning %q", i, r, w.g, w.r, w.config, w.reason)
		}
	}
	if got[3].Code != pb.Code_ERR_INSTALLED {
		t.Errorf("missing script: %s, want ERR_INSTALLED", got[3].Code)
	}
	// Validation starts nothing: the Dummy's state file would say it runs.
	if _, err := os.Stat(filepath.Join(e.dir, "fine")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("validation started a resource: %v", err)
	}
	// check limits the resources asked.
	only := lrm.Validate(context.Background(), e.h, groups, 5*time.Second, func(gi, ri int) bool { return gi == 1 && ri == 0 })
	if len(only) != 1 || only[0].ID != "vip6" {
		t.Errorf("checked only b/vip6: %+v", only)
	}
}
