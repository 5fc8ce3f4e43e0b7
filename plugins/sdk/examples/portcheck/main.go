// Command portcheck is an example monitor plugin: a host passes when a TCP
// connection to params.port succeeds before the deadline.
package main

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

func check(ctx context.Context, in *pb.CheckRequest) (*pb.CheckResult, error) {
	start := time.Now()
	var failed []string
	for _, h := range in.GetHosts() {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(h, in.GetParams()["port"]))
		if err != nil {
			failed = append(failed, h)
			continue
		}
		c.Close()
	}
	return &pb.CheckResult{Ok: len(failed) == 0, Summary: strings.Join(failed, " "), FailedHosts: failed,
		LatencyUs: time.Since(start).Microseconds()}, nil
}

func main() { sdk.Serve(sdk.Plugin{Monitor: sdk.MonitorFunc(check)}) }
