package coord

import (
	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/fsm"
)

// Specs converts the configuration into replicated definitions.
func Specs(cfg *config.Config) ([]fsm.GroupSpec, []fsm.NodeSpec) {
	var gs []fsm.GroupSpec
	for _, g := range cfg.Resources.Groups {
		gs = append(gs, fsm.GroupSpec{Name: g.Name, Preferred: g.Node, Resources: toFSM(g.Resources)})
	}
	var ns []fsm.NodeSpec
	for _, n := range cfg.HA.Nodes {
		ns = append(ns, fsm.NodeSpec{Name: n.Name, Role: n.Role})
	}
	return gs, ns
}

func toFSM(rs []config.Resource) []fsm.Resource {
	var out []fsm.Resource
	for _, r := range rs {
		out = append(out, fsm.Resource{ID: r.ID, Type: r.Type, Params: r.Params, Args: r.Args,
			Timeout: r.Timeout, Interval: r.Interval})
	}
	return out
}

// toConfig is the group as the LRM takes it.
func toConfig(g fsm.GroupSpec) config.Group {
	cg := config.Group{Name: g.Name, Node: g.Preferred}
	for _, r := range g.Resources {
		cg.Resources = append(cg.Resources, config.Resource{ID: r.ID, Type: r.Type, Params: r.Params, Args: r.Args,
			Timeout: r.Timeout, Interval: r.Interval})
	}
	return cg
}
