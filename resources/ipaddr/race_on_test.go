//go:build race

package ipaddr_test

// slowdown stretches timing under the race detector, which slows the
// thousand-goroutine tests several times over.
const slowdown = 4
