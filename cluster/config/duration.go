package config

import "github.com/vigil-ha/vigil/cluster/timing"

// Duration is the configuration's name for timing.Duration, the one
// duration type of ha.toml, resources.toml and the replicated state.
type Duration = timing.Duration
