package lrm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// Refusal is a resource its plugin did not accept at validation.
type Refusal struct {
	Group, Resource int // indexes in the configuration's groups
	ID              string
	Type            string
	Code            pb.Code
	Reason          string
}

// Configuration reports whether the refusal is about the configuration
// itself (wrong on every node), not about this node: a script or binary
// missing here (ERR_INSTALLED), a plugin not installed, a permission.
func (r Refusal) Configuration() bool {
	return r.Code == pb.Code_ERR_CONFIGURED || r.Code == pb.Code_ERR_ARGS
}

func (r Refusal) Error() string {
	if r.Configuration() {
		return fmt.Sprintf("%s (%s): %s", r.ID, r.Type, r.Reason)
	}
	return fmt.Sprintf("%s (%s): %s: %s", r.ID, r.Type, r.Code, r.Reason)
}

// Validate asks the plugin of every resource of groups for which check
// is true (nil: every one) whether it accepts the resource as configured:
// Once's "validate" (the plugin protocol's Validate, an OCF agent's
// validate-all), with the instance the manager would start. Each plugin
// is started once, by h, and answers for all its resources; nothing is
// started or changed. timeout bounds each call unless the resource sets
// its own. The refusals come in configuration order.
func Validate(ctx context.Context, h *host.Host, groups []config.Group, timeout time.Duration, check func(gi, ri int) bool) []Refusal {
	var out []Refusal
	for gi, g := range groups {
		for ri, r := range g.Resources {
			if check != nil && !check(gi, ri) {
				continue
			}
			res, err := Once(ctx, h, r, "validate", timeout, 0)
			code, reason := res.Code, res.Reason
			switch {
			case errors.Is(err, host.ErrUnimplemented):
				continue // a plugin without Validate accepts what it is given
			case errors.Is(err, host.ErrUnknownPlugin):
				code, reason = pb.Code_ERR_INSTALLED, err.Error()
			case err != nil:
				code, reason = pb.Code_ERR_GENERIC, err.Error()
			case code == pb.Code_SUCCESS:
				continue
			}
			out = append(out, Refusal{Group: gi, Resource: ri, ID: r.ID, Type: r.Type, Code: code, Reason: reason})
		}
	}
	return out
}

// CheckConfig validates cfg's resources (see Validate) and sorts the
// refusals: errors about the configuration itself, each placed at its
// entry in resources.toml, and warnings about this node (what it lacks to
// run a resource it may never be asked to run).
func CheckConfig(ctx context.Context, h *host.Host, cfg *config.Config, timeout time.Duration, check func(gi, ri int) bool) (config.Errors, []string) {
	var errs config.Errors
	var warns []string
	for _, r := range Validate(ctx, h, cfg.Resources.Groups, timeout, check) {
		e := cfg.ResourceError(r.Group, r.Resource, r.Error())
		if r.Configuration() {
			errs = append(errs, e)
		} else {
			warns = append(warns, fmt.Sprintf("%s (on this node, %s)", e, cfg.Self.Name))
		}
	}
	return errs, warns
}
