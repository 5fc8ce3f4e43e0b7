package director

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
)

// Backend is a director: something that holds a table of virtual services
// and forwards their traffic. Read and Apply are all reconciliation needs;
// Stats feeds the status command.
type Backend interface {
	Name() string
	// Read returns the backend's current table (every service it holds,
	// also those another program added).
	Read() (Table, error)
	// Apply carries out ops in order. It goes on past a failed op and
	// returns every failure joined: the next reconcile retries them.
	Apply(ops []Op) error
	// Stats returns connection and byte counters per service and real.
	Stats() (map[Key]ServiceStats, error)
	Close() error
}

// Counters are IPVS's per-service and per-real counters.
type Counters struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
}

// ServiceStats is one service's counters and its reals'.
type ServiceStats struct {
	Counters
	Dests map[string]DestStats // by real address ("10.0.0.2:80")
}

// DestStats adds a real's live connection counts.
type DestStats struct {
	Counters
	Active, Inactive int64
}

// Backend names for the config's backend key.
const (
	Auto      = "auto"
	Kernel    = "ipvs"
	Userspace = "userspace"
)

// procIPVS exists when the kernel has IPVS loaded.
const procIPVS = "/proc/net/ip_vs"

// Pick resolves "auto" the documented way: the kernel when /proc/net/ip_vs
// exists, else the userspace director. It returns the choice and why.
func Pick(name string) (string, string) {
	switch name {
	case Kernel, Userspace:
		return name, "configured"
	}
	if _, err := os.Stat(procIPVS); err == nil {
		return Kernel, procIPVS + " exists"
	}
	return Userspace, "the kernel has no IPVS (" + procIPVS + " missing)"
}

// Open opens the named backend (resolve "auto" with Pick first).
func Open(name string, log *slog.Logger) (Backend, error) {
	switch name {
	case Kernel:
		return OpenKernel()
	case Userspace:
		return NewUserspace(UserspaceOptions{Log: log}), nil
	}
	return nil, fmt.Errorf("unknown director backend %q", name)
}

// applyAll runs each op through do, joining the failures.
func applyAll(ops []Op, do func(Op) error) error {
	var errs []error
	for _, op := range ops {
		if err := do(op); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", op, err))
		}
	}
	return errors.Join(errs...)
}
