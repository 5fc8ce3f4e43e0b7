//go:build !race

package ipaddr_test

const slowdown = 1
