package lab

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/config"
)

// StartImported runs `vigil daemon -c dir --node name` in namespace ns as
// a machine of its own runs it: /run and /var/lib are the node's own —
// directories under NodeRoot(name), bind-mounted over them in the
// daemon's mount namespace (`ip netns exec` gives it a private one) — so
// a configuration written for a real node, as `vigil import` writes it
// or as the shipped examples are (control socket /run/vigil/vigil.sock,
// state under /var/lib/vigil), runs unchanged, two nodes on one host.
// The host's /run and /var/lib are not touched.
func (l *Lab) StartImported(bin, ns, name, dir string) *Node {
	l.t.Helper()
	return l.StartNode(bin, ns, name, dir, NodeOptions{})
}

// NodeOptions are how StartNode runs a node's daemon.
type NodeOptions struct {
	// Witness runs `vigil witness` (as vigil-witness.service does)
	// instead of `vigil daemon`.
	Witness bool
	// Env is added to the daemon's environment (NAME=value), and so to
	// its plugins' (VIGIL_HA_DIR for the scripts a lab stands in for).
	Env []string
}

// NodeRoot is the directory whose run/ and var-lib/ StartImported and
// StartNode mount over node name's /run and /var/lib: a test puts there
// what the node's own filesystem would hold.
func (l *Lab) NodeRoot(name string) string { return filepath.Join(l.Dir, "root-"+name) }

// StartNode is StartImported with options.
func (l *Lab) StartNode(bin, ns, name, dir string, o NodeOptions) *Node {
	l.t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, config.HAFile))
	if err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	ha, _, err := config.ParseHA(filepath.Join(dir, config.HAFile), data)
	if err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	root := l.NodeRoot(name)
	mounts := map[string]string{"/run": filepath.Join(root, "run"), "/var/lib": filepath.Join(root, "var-lib")}
	var script strings.Builder
	script.WriteString("set -e\n")
	for at, from := range mounts {
		if err := os.MkdirAll(from, 0o755); err != nil {
			l.t.Fatalf("lab: %v", err)
		}
		script.WriteString("mount --bind " + from + " " + at + "\n")
	}
	script.WriteString(`exec "$@"` + "\n")
	socket, ok := strings.CutPrefix(ha.ControlSocket, "/run/")
	if !ok {
		l.t.Fatalf("lab: control_socket %s is not under /run", ha.ControlSocket)
	}
	n := &Node{Name: name, NS: ns, Dir: dir, Socket: filepath.Join(mounts["/run"], socket)}
	cmd := "daemon"
	if o.Witness {
		cmd = "witness"
	}
	args := []string{"sh", "-c", script.String(), "sh"}
	if len(o.Env) > 0 {
		// env execs the daemon in its place: the PID stays the daemon's.
		args = append(append(args, "env"), o.Env...)
	}
	args = append(args, bin, cmd, "-c", dir, "--node", name, "--log-level", "debug")
	n.Proc = l.Start(ns, "vigil-"+name, args...)
	n.Client = api.NewClient(n.Socket)
	if err := waitLog(n.Proc, "vigil daemon started", 20*time.Second); err != nil {
		l.t.Fatalf("lab: daemon %s: %v", name, err)
	}
	return n
}
