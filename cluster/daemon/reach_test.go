package daemon

import (
	"reflect"
	"testing"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/heartbeat"
)

// namedMedium is a medium of which reach reads only the name.
type namedMedium struct {
	heartbeat.Medium
	name string
}

func (m namedMedium) Name() string { return m.name }

// reach names, for each cable this node is at one end of, the node at the
// other; cables of other nodes are not among its media at all.
func TestReach(t *testing.T) {
	cfg := &config.Config{}
	cfg.Self.Name = "lvs1"
	cfg.HA.Serial = []config.Serial{
		{Device: "/dev/ttyS0", Nodes: []string{"lvs2", "lvs1"}},
		{Device: "/dev/ttyS1", Nodes: []string{"lvs2", "lvs3"}}, // not ours: not opened
		{Device: "/dev/ttyS2"}, // every node
		{Device: "/dev/ttyS3", Nodes: []string{"lvs1", "lvs3"}},
	}
	// openMedia's names, in its order: UDP first, then the cables this
	// node opens.
	var media []heartbeat.Medium
	for _, n := range []string{"ucast:eth0", "serial:/dev/ttyS0", "serial:/dev/ttyS2", "serial:/dev/ttyS3"} {
		media = append(media, namedMedium{name: n})
	}
	want := map[string][]string{"serial:/dev/ttyS0": {"lvs2"}, "serial:/dev/ttyS3": {"lvs3"}}
	if got := reach(cfg, media); !reflect.DeepEqual(got, want) {
		t.Errorf("reach %v, want %v", got, want)
	}
}
