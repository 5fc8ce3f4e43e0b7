package plugins

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BootNow reads CLOCK_BOOTTIME, the clock of pb.Lease: one clock for the
// daemon and its plugins (Go's monotonic readings are per process), and
// it keeps counting while the host is suspended, so a lease never
// outlives a suspend.
//
// It is a raw system call (it never blocks): unix.ClockGettime enters the
// runtime's system-call state, and each entry wakes the runtime's sysmon
// thread from its deep sleep into a millisecond of 20 µs polls — the
// daemon reads this clock on every lease renewal, its plugins on every
// release timer.
func BootNow() time.Duration {
	var ts unix.Timespec
	if _, _, e := unix.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_BOOTTIME, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		panic("CLOCK_BOOTTIME: " + e.Error()) // Linux has had it since 2.6.39
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
// an ordinary kernel worker, scheduled like any thread. Measured on this
// 2-core machine (make bench-lifetime, 500 removals each): up to 1.0 s
// late when loaded, but up to 1.75 s when idle (its tickless idle CPUs
// defer the worker's timer further); 2.5 s leaves a margin over both.
const AddressLifetimeSlack = 2500 * time.Millisecond
