package ldirectord

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// ExportPersistence returns the userspace director's persistence
// templates unless they are still generation have (see
// director.UserspaceDirector.ExportPersistence). A kernel director hands
// over through its sync daemons, and an inactive engine has nothing:
// both answer unchanged.
func (e *Engine) ExportPersistence(have uint64) (blob []byte, gen uint64, changed bool) {
	e.mu.Lock()
	defer e.mu.Unlock() // a Deactivate must not close the director meanwhile
	u, ok := e.backend.(*director.UserspaceDirector)
	if !ok || !e.active {
		return nil, have, false
	}
	return u.ExportPersistence(have, 0)
}

// errNoUserspace: templates came for a director that is not the
// userspace one.
var errNoUserspace = errors.New("the director is not the userspace one")

// ImportPersistence seeds the active userspace director's persistence
// templates from another director's export, and returns how many it took.
func (e *Engine) ImportPersistence(blob []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.backend.(*director.UserspaceDirector)
	if !ok || !e.active {
		return 0, errNoUserspace
	}
	return u.ImportPersistence(blob)
}

// Handover answers the userspace director's persistence templates (see
// the protocol's Handover).
func (r *Resource) Handover(_ context.Context, req *pb.HandoverRequest) (*pb.HandoverState, error) {
	in := req.GetInstance()
	r.mu.Lock()
	e := r.engines[in.GetId()]
	r.mu.Unlock()
	if e == nil {
		return &pb.HandoverState{Generation: req.GetHave()}, nil
	}
	blob, gen, changed := e.ExportPersistence(req.GetHave())
	return &pb.HandoverState{Changed: changed, Generation: gen, State: blob}, nil
}

// seed imports the templates a start inherited; a blob that does not
// decode (or a director that cannot take it) leaves the director as it
// is, and the reason says why: the start itself succeeds.
func (r *Resource) seed(e *Engine, in *pb.Instance) string {
	if len(in.GetHandover()) == 0 {
		return ""
	}
	n, err := e.ImportPersistence(in.GetHandover())
	if err != nil {
		r.log.Warn("persistence templates not taken over", "ldirectord", in.GetId(), "bytes", len(in.GetHandover()), "err", err)
		return fmt.Sprintf("persistence templates not taken over: %v", err)
	}
	r.log.Info("persistence templates taken over", "ldirectord", in.GetId(), "templates", n)
	return fmt.Sprintf("%d persistence templates taken over", n)
}
