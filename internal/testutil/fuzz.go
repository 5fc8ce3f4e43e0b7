package testutil

import (
	"fmt"
	"os"
	"time"
)

// SlowInputEnv sets how long one fuzz input may take (a Go duration);
// `make fuzz` sets 1s. Unset, the bound is generous enough for the race
// detector on a loaded machine and still catches a hang.
const SlowInputEnv = "VIGIL_FUZZ_SLOW"

// SlowInput returns the bound on one fuzz input.
func SlowInput() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(SlowInputEnv)); err == nil && d > 0 {
		return d
	}
	return 30 * time.Second
}

// Quick runs one fuzz input through fn and crashes the process if it
// takes longer than SlowInput: the fuzzer records a crash together with
// its input, so a parser that is slow (quadratic, or hanging) on some
// input is found like one that panics. What it guards is a pathological
// input, not a performance target: the bound is orders of magnitude above
// what any input should take.
func Quick(what string, data []byte, fn func()) {
	bound := SlowInput()
	t := time.AfterFunc(bound, func() {
		panic(fmt.Sprintf("%s: a %d-byte input took longer than %s (%s)", what, len(data), bound, SlowInputEnv))
	})
	defer t.Stop()
	fn()
}
