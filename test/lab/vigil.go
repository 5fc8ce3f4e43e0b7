package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/internal/testutil"
)

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildVigil builds cmd/vigil into dir and returns the binary's path.
func BuildVigil(dir string) (string, error) {
	bin := filepath.Join(dir, "vigil")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/vigil")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Cluster describes a lab cluster's shared settings.
type Cluster struct {
	Name      string
	Keepalive time.Duration
	Deadtime  time.Duration
	Warntime  time.Duration // 0: default
	Initdead  time.Duration // 0: default
	Nodes     []NodeSpec
	Secret    string
	Extra     string // more top-level ha.toml settings (auto_failback, lease...)
	Resources string // resources.toml, the same on every node
	// Files are more files of the configuration directory (an ldirectord
	// instance's www.toml), by name.
	Files map[string]string
}

// NodeSpec is one [[nodes]] entry of the lab cluster's ha.toml.
type NodeSpec struct {
	Name    string
	Address string
	Role    string
}

// Node is a running daemon in the lab.
type Node struct {
	Name   string
	NS     string // short namespace name
	Dir    string // its configuration directory
	Socket string
	Proc   *Proc
	Client *api.Client
}

// WriteConfig writes a node's configuration directory: ha.toml with the
// cluster's nodes and timing plus the given media, and authkeys with
// secret (the cluster's, unless overridden).
func (l *Lab) WriteConfig(c *Cluster, self, media, secret string) string {
	l.t.Helper()
	dir := filepath.Join(l.Dir, "etc-"+self)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cluster = %q\nnode = %q\nkeepalive = %q\ndeadtime = %q\n", c.Name, self, c.Keepalive.String(), c.Deadtime.String())
	if c.Warntime > 0 {
		fmt.Fprintf(&b, "warntime = %q\n", c.Warntime.String())
	}
	if c.Initdead > 0 {
		fmt.Fprintf(&b, "initdead = %q\n", c.Initdead.String())
	}
	fmt.Fprintf(&b, "control_socket = %q\nstate_dir = %q\n%s\n", filepath.Join(dir, "vigil.sock"), filepath.Join(dir, "state"), c.Extra)
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "[[nodes]]\nname = %q\naddress = %q\n", n.Name, n.Address)
		if n.Role != "" {
			fmt.Fprintf(&b, "role = %q\n", n.Role)
		}
		b.WriteString("\n")
	}
	b.WriteString(media)
	if err := os.WriteFile(filepath.Join(dir, "ha.toml"), []byte(b.String()), 0o644); err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	if c.Resources != "" {
		if err := os.WriteFile(filepath.Join(dir, "resources.toml"), []byte(c.Resources), 0o644); err != nil {
			l.t.Fatalf("lab: %v", err)
		}
	}
	for name, data := range c.Files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			l.t.Fatalf("lab: %v", err)
		}
	}
	if secret == "" {
		secret = c.Secret
	}
	if err := os.WriteFile(filepath.Join(dir, "authkeys"), []byte("auth 1\n1 sha256 "+secret+"\n"), 0o600); err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	return dir
}

// StartDaemon runs `vigil daemon` for the node configured in dir inside
// namespace ns and waits until its control socket answers.
func (l *Lab) StartDaemon(bin, ns, name, dir string) *Node {
	l.t.Helper()
	n := &Node{Name: name, NS: ns, Dir: dir, Socket: filepath.Join(dir, "vigil.sock")}
	_ = os.Remove(n.Socket)
	level := l.LogLevel
	if level == "" {
		level = "debug"
	}
	n.Proc = l.Start(ns, "vigil-"+name, bin, "daemon", "-c", dir, "--log-level", level)
	n.Client = api.NewClient(n.Socket)
	if err := waitLog(n.Proc, "vigil daemon started", 20*time.Second); err != nil {
		l.t.Fatalf("lab: daemon %s: %v", name, err)
	}
	return n
}

// WaitStatus polls the node's status until cond holds or timeout passes,
// and returns the last status. Polling an observable state is how the
// tests synchronise: nothing sleeps for a fixed time.
func (n *Node) WaitStatus(timeout time.Duration, cond func(*api.Status) bool) (*api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last *api.Status
	var lastErr error
	for {
		st, err := n.Client.Status(ctx)
		if err == nil {
			last = st
			if cond(st) {
				return st, nil
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%s: condition not met within %s (last error %v)", n.Name, timeout, lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitFile polls a file (an alert log) until cond holds on its contents
// or timeout passes, and returns the last contents.
func WaitFile(path string, timeout time.Duration, cond func(string) bool) (string, error) {
	s, ok := testutil.EventuallyOK(timeout, func() (string, bool) {
		b, _ := os.ReadFile(path)
		return string(b), cond(string(b))
	})
	if !ok {
		return s, fmt.Errorf("%s: condition not met within %s", path, timeout)
	}
	return s, nil
}

// Peer returns the named node from a status.
func Peer(st *api.Status, name string) *api.NodeStatus {
	for i := range st.Nodes {
		if st.Nodes[i].Name == name {
			return &st.Nodes[i]
		}
	}
	return nil
}

// LinkState returns the state of the link whose name starts with prefix
// towards peer, or "".
func LinkState(st *api.Status, peer, prefix string) string {
	if p := Peer(st, peer); p != nil {
		for _, l := range p.Links {
			if strings.HasPrefix(l.Link, prefix) {
				return l.State
			}
		}
	}
	return ""
}

// Dropped sums the packets node dropped for reason over all links.
func Dropped(st *api.Status, reason string) uint64 {
	var n uint64
	for _, l := range st.Links {
		n += l.Dropped[reason]
	}
	return n
}

// Trio builds the standard three-node lab and starts a daemon on each node:
// n1..n3 on two networks — eth0 (10.77.1.0/24, UDP unicast) and eth1
// (10.77.2.0/24, UDP broadcast) — and, if serial, a null-modem cable
// between n1 and n2. c's Nodes are filled in; secrets overrides a node's
// secret.
func (l *Lab) Trio(bin string, c *Cluster, serial bool, secrets map[string]string) map[string]*Node {
	l.t.Helper()
	return l.members(bin, c, 3, serial, secrets)
}

// PingNode is the router namespace "gw" of a Pair, on eth0's network.
const PingNode = "10.77.1.254"

// Pair builds a two-node lab like Trio's (n1, n2 on eth0 and eth1) plus a
// router namespace "gw" at PingNode on eth0's network, which answers
// pings and runs no daemon, and starts a daemon on n1 and n2.
func (l *Lab) Pair(bin string, c *Cluster) map[string]*Node {
	l.t.Helper()
	nodes := l.members(bin, c, 2, false, nil)
	l.AddNS("gw")
	l.Wire("gw", "eth0", "sw", "br0", PingNode+"/24")
	return nodes
}

func (l *Lab) members(bin string, c *Cluster, count int, serial bool, secrets map[string]string) map[string]*Node {
	l.t.Helper()
	l.Directors(count)
	roles := map[string]string{}
	for _, n := range c.Nodes {
		roles[n.Name] = n.Role
	}
	c.Nodes = nil
	for i := 1; i <= count; i++ {
		name := fmt.Sprintf("n%d", i)
		c.Nodes = append(c.Nodes, NodeSpec{Name: name, Address: fmt.Sprintf("10.77.1.%d", i), Role: roles[name]})
	}
	tty := map[string]string{}
	if serial {
		tty["n1"], tty["n2"] = l.SerialCable("cable")
	}
	nodes := map[string]*Node{}
	for i := 1; i <= count; i++ {
		name := fmt.Sprintf("n%d", i)
		media := "[[ucast]]\ninterface = \"eth0\"\nport = 6940\n\n[[bcast]]\ninterface = \"eth1\"\nport = 6940\n\n"
		if dev := tty[name]; dev != "" {
			media += fmt.Sprintf("[[serial]]\ndevice = %q\nbaud = 115200\n", dev)
		}
		nodes[name] = l.StartDaemon(bin, name, name, l.WriteConfig(c, name, media, secrets[name]))
	}
	return nodes
}

// Restart starts a node's daemon again with the configuration it had.
func (l *Lab) Restart(bin string, n *Node) {
	l.t.Helper()
	*n = *l.StartDaemon(bin, n.NS, n.Name, n.Dir)
}

// Isolate sets every link of a Trio node down (up: false) or up again.
func (l *Lab) Isolate(node string, isolated bool) {
	state := "up"
	if isolated {
		state = "down"
	}
	l.LinkSet(node, "eth0", state)
	l.LinkSet(node, "eth1", state)
}
