package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/test/lab"
)

// Every goroutine a test started has ended when the package's tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The README's main command must keep working: the whole demo, with the
// checks it makes along the way (the table after each change, mon's
// alerts, the takeover, the rejoin).
func TestDemo(t *testing.T) {
	if why := lab.Available(); why != "" {
		t.Skip(why)
	}
	bin, err := lab.BuildVigil(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &run{dir: t.TempDir()}
	defer r.close()
	defer func() {
		if p := recover(); p != nil {
			t.Fatal("demo failed: ", p)
		}
	}()
	demo(r, bin)
}
