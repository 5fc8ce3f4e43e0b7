//go:build race

package ipaddr_test

// slowdown stretches the timing of the thousand-goroutine tests: each
// goroutine there holds an OS thread switched into the test namespace,
// and the race detector slows them several times over.
const slowdown = 4
