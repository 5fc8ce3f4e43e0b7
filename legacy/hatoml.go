package legacy

import (
	"fmt"
	"strings"
	"time"
)

// haFile is what an importer knows of ha.toml: heartbeat's and
// keepalived's importers fill it in, and it is written one way. Zero
// values are left out, so Vigil's defaults apply.
type haFile struct {
	source, tool string // named in the file's first comment
	cluster      string
	node         string // this node; "" when one file serves every node
	keepalive    time.Duration
	deadtime     time.Duration
	warntime     time.Duration
	initdead     time.Duration
	autoFailback *bool
	// comments go before auto_failback: why the timing and preference
	// came out as they did, for the operator reading the file.
	comments  []string
	nodes     []haNode
	pings     []string
	media     []hbMedium
	smtpRelay string
	mailFrom  string
	alerts    []haAlert
}

type haNode struct{ name, address string }

type haAlert struct{ events, send []string }

// pair reports whether the file describes two members and no witness:
// two_node is then set, with its tie-breakers.
func (h *haFile) pair() bool { return len(h.nodes) == 2 }

func (h *haFile) bytes() []byte {
	var t tomlWriter
	t.comment("ha.toml — imported from %s by `vigil import %s`.", h.source, h.tool)
	t.kv("", "cluster", h.cluster)
	if h.node != "" {
		t.kv("", "node", h.node)
	}
	for _, c := range h.comments {
		t.comment("%s", c)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"keepalive", h.keepalive}, {"deadtime", h.deadtime}, {"warntime", h.warntime}, {"initdead", h.initdead}} {
		if d.v != 0 {
			t.kv("", d.key, d.v.String())
		}
	}
	if h.autoFailback != nil {
		t.kv("", "auto_failback", *h.autoFailback)
	}
	if h.pair() {
		if len(h.pings) == 0 {
			t.comment("A pair without a witness or tie-breaker: a survivor never takes over a silent\npeer's groups (it cannot tell a crash from cut links) until `vigil takeover`.\nping_nodes = [\"ROUTER\"] lets it (docs/SAFETY.md, README \"Two-node pairs\").")
		} else {
			t.comment("A pair without a witness: the survivor takes over only while a ping node answers.")
		}
		t.kv("", "two_node", true)
	}
	if len(h.pings) > 0 {
		t.kv("", "ping_nodes", h.pings)
	}
	if h.smtpRelay != "" {
		t.kv("", "smtp_relay", h.smtpRelay)
	}
	if h.mailFrom != "" {
		t.kv("", "mail_from", h.mailFrom)
	}
	for _, nd := range h.nodes {
		t.WriteString("\n[[nodes]]\n")
		t.kv("", "name", nd.name)
		t.kv("", "address", nd.address)
	}
	for _, m := range h.media {
		t.WriteString("\n[[" + m.kind + "]]\n")
		switch m.kind {
		case "bcast":
			t.kv("", "interface", m.iface)
			t.kv("", "port", m.port)
		case "ucast":
			if m.iface != "" {
				t.kv("", "interface", m.iface)
			}
			t.kv("", "port", m.port)
			if len(m.peers) > 0 {
				t.kv("", "peers", m.peers)
			}
		case "mcast":
			t.kv("", "group", m.group)
			t.kv("", "interface", m.iface)
			t.kv("", "port", m.port)
			t.kv("", "ttl", m.ttl)
			t.kv("", "loop", m.loop)
		case "serial":
			t.kv("", "device", m.iface)
			t.kv("", "baud", m.baud)
		}
	}
	for _, a := range h.alerts {
		t.WriteString("\n[[alert]]\n")
		t.kv("", "events", a.events)
		t.kv("", "send", a.send)
	}
	return []byte(t.String())
}

// pairNote explains, at import, what a pair without a witness does in
// Vigil against what the old tool did: the old tool's survivor took over
// whatever silenced its peer, so cut links gave two holders; Vigil's
// asks its tie-breakers first, and without one waits for the operator.
// before says what the old tool did, importHow how the import would
// have written the ping nodes; the note is the same for every importer
// otherwise.
func pairNote(h *haFile, before, importHow string) (Outcome, string) {
	var b strings.Builder
	b.WriteString("two_node = true (two members, no witness). ")
	b.WriteString(before)
	if len(h.pings) > 0 {
		fmt.Fprintf(&b, " Vigil: a survivor takes over after deadtime only while a ping node (%s) has answered it steadily; the side no ping node answers releases its groups within lease and takes nothing over, so cut links never give two holders.",
			strings.Join(h.pings, ", "))
		return Caveat, b.String()
	}
	b.WriteString(" Vigil, with no ping_nodes or [fence], cannot tell a dead peer from cut links, so a node never starts a group its silent peer may hold:" +
		" the groups stay where they are, and after a crash stay down (at boot a node waits for its peer) until `vigil takeover` on the survivor confirms the peer is off." +
		" The one line that changes it, in ha.toml: ping_nodes = [\"ROUTER\"] (a router both nodes reach over a heartbeat network; " + importHow + "), or add a [fence] table or a witness node.")
	return Caveat, b.String()
}

// authkeysFile is Vigil's authkeys for one secret.
func authkeysFile(secret string) []byte {
	return fmt.Appendf(nil, "auth 1\n1 sha256 %s\n", secret)
}
