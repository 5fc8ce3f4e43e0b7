package control

import (
	"strings"

	"github.com/vigil-ha/vigil/api"
)

// SharedLinks drops, from each peer's links, a point-to-point medium (a
// serial cable) that reaches another peer: a cable joins two nodes, so on
// a director of a pair with a witness the cable belongs to the other
// director and is no link to the witness. A cable is taken to reach a
// peer once that peer was heard on it; while no peer was heard on it, it
// stays listed for every peer (which one it reaches is not known yet, and
// a cable that never carried anything is worth seeing).
func SharedLinks(nodes []api.NodeStatus) []api.NodeStatus {
	heard := map[string]bool{} // links some peer was heard on
	for _, n := range nodes {
		for _, l := range n.Links {
			if !l.LastHeard.IsZero() {
				heard[l.Link] = true
			}
		}
	}
	out := make([]api.NodeStatus, len(nodes))
	for i, n := range nodes {
		out[i] = n
		var links []api.LinkStatus
		for _, l := range n.Links {
			if pointToPoint(l.Link) && l.LastHeard.IsZero() && heard[l.Link] {
				continue
			}
			links = append(links, l)
		}
		out[i].Links = links
	}
	return out
}

// pointToPoint reports whether a link's medium joins exactly two nodes.
func pointToPoint(link string) bool { return strings.HasPrefix(link, "serial:") }
