//go:build !race

package ipaddr_test

// slowdown stretches the timing of the thousand-goroutine tests: each
// goroutine there holds an OS thread switched into the test namespace, so
// the announcer's goroutine waits among a thousand runnable threads.
const slowdown = 2
