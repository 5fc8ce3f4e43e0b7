package daemon

import (
	"fmt"
	"os"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/cluster/config"
)

// pty opens a pseudo-terminal and returns its terminal end's path: a real
// tty the serial medium opens and sets raw, as it does a cable's port.
func pty(t *testing.T) string {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	return fmt.Sprintf("/dev/pts/%d", n)
}

// openMedia names, for each cable this node is at one end of, the node
// at the other; a cable of other nodes it does not open at all (its
// device here does not exist), and one naming no nodes reaches every
// peer.
func TestOpenMediaReach(t *testing.T) {
	cfg := &config.Config{}
	cfg.Self.Name, cfg.Self.Address = "lvs1", "127.0.0.1"
	s0, s2, s3 := pty(t), pty(t), pty(t)
	cfg.HA.Serial = []config.Serial{
		{Device: s0, Baud: 115200, Nodes: []string{"lvs2", "lvs1"}},
		{Device: "/nonexistent/ttyS1", Baud: 115200, Nodes: []string{"lvs2", "lvs3"}}, // not ours: not opened
		{Device: s2, Baud: 115200}, // every node
		{Device: s3, Baud: 115200, Nodes: []string{"lvs1", "lvs3"}},
	}
	media, reach, err := openMedia(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeMedia(media)
	var names []string
	for _, m := range media {
		names = append(names, m.Name())
	}
	if want := []string{"serial:" + s0, "serial:" + s2, "serial:" + s3}; !reflect.DeepEqual(names, want) {
		t.Errorf("media %v, want %v", names, want)
	}
	want := map[string][]string{"serial:" + s0: {"lvs2"}, "serial:" + s3: {"lvs3"}}
	if !reflect.DeepEqual(reach, want) {
		t.Errorf("reach %v, want %v", reach, want)
	}
}
