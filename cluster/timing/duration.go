package timing

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Duration is a duration written as a string with a unit ("50ms", "2s",
// "1m30s"): in ha.toml and resources.toml (TOML), and in the replicated
// state's entries and snapshots (JSON), which carry the configuration's
// values as it wrote them. One type for both, so a value goes from the
// configuration into the state without a conversion.
//
// A bare number is refused: heartbeat reads it as seconds, mon refuses
// it, and guessing would silently turn 100 into 100 ns or 100 s. The
// state never held one: MarshalText always writes a unit ("0s" for zero),
// and only the configuration, which refuses negatives, made its values.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return fmt.Errorf("duration %s has no unit: write it as a string with a unit, e.g. \"%sms\" or \"%ss\"", s, s, s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number with a unit (ms, s, m, h), e.g. \"200ms\"", s)
	}
	if v < 0 {
		return errors.New("duration must not be negative")
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
