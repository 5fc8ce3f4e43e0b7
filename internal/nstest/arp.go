package nstest

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"golang.org/x/sys/unix"
)

// CaptureARP hands every ARP frame that interface ifname of namespace ns
// sees to record, with the time it was read, until the test ends. The
// client it returns can send too (a foreign claim).
func CaptureARP(t testing.TB, ns, ifname string, record func(time.Time, *arp.Packet)) *arp.Client {
	t.Helper()
	var c *arp.Client
	if err := InNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			p, _, err := c.Read()
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return
			}
			if err == nil {
				record(time.Now(), p)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c
}
