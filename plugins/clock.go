package plugins

import (
	"time"

	"golang.org/x/sys/unix"
)

// BootNow reads CLOCK_BOOTTIME, the clock of pb.Lease: one clock for the
// daemon and its plugins (Go's monotonic readings are per process), and
// it keeps counting while the host is suspended, so a lease never
// outlives a suspend.
func BootNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic("CLOCK_BOOTTIME: " + err.Error()) // Linux has had it since 2.6.39
	}
	return time.Duration(ts.Nano())
}

// BootTime converts t, a time read in this process, to CLOCK_BOOTTIME.
// The boot clock is read before the wall clock, so a pause between the
// two reads (preemption, a stopped process) makes the result earlier,
// never later: a release instant converted here is never postponed.
func BootTime(t time.Time) time.Duration {
	boot := BootNow()
	return boot + t.Sub(time.Now())
}

// AddressLifetimeSlack is how long past its lifetime the kernel may still
// hold an address: its lifetime worker runs at most once a second and
// rounds its next run to a whole second when that is close, and it is
// an ordinary kernel worker, scheduled like any thread. Measured on a
// loaded 2-core machine (make bench-lifetime): up to a second late.
const AddressLifetimeSlack = 1500 * time.Millisecond
