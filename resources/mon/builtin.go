package mon

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/resources/mon/spec"
)

// builtinCheck runs one of the shared checks over every host at once and
// reports in mon's shape: the summary is the failed hosts, sorted; the
// detail one line per failed host. Options follow the mon scripts'
// flags: -p port, -u url, -m regex, -s status, -v virtual host,
// -q query name, -T query type, -e expected address.
func builtinCheck(ctx context.Context, name string, args, hosts []string) outcome {
	mk, err := checkMaker(name, args)
	if err != nil {
		return fail(hosts, err)
	}
	results := make([]monitors.Result, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = mk(h).Check(ctx)
		}()
	}
	wg.Wait()
	var failed []string
	var detail strings.Builder
	for i, r := range results {
		if !r.OK {
			failed = append(failed, hosts[i])
			fmt.Fprintf(&detail, "%s %s\n", hosts[i], r.Summary)
		}
	}
	sort.Strings(failed)
	sum := strings.Join(failed, " ")
	return outcome{OK: len(failed) == 0, Summary: sum, Output: sum + "\n" + detail.String(), Retval: boolRet(len(failed) == 0)}
}

// checkMaker returns how to build a built-in monitor's check for one
// host, its flags parsed once (spec.ParseBuiltin).
func checkMaker(name string, args []string) (func(host string) monitors.Check, error) {
	f, err := spec.ParseBuiltin(name, args)
	if err != nil {
		return nil, err
	}
	addr := func(h string) string { return net.JoinHostPort(h, f.Port) }
	switch name {
	case "tcp":
		return func(h string) monitors.Check { return monitors.TCP{Addr: addr(h)} }, nil
	case "http", "https":
		return func(h string) monitors.Check {
			return monitors.HTTP{Addr: addr(h), TLS: name == "https", Path: f.URL, Host: f.VHost, Receive: f.Match, Status: f.Status, Insecure: true}
		}, nil
	case "dns":
		return func(h string) monitors.Check {
			return monitors.DNS{Addr: addr(h), Name: f.QName, Type: f.QType, Expect: f.Expect}
		}, nil
	case "smtp":
		return func(h string) monitors.Check { return monitors.SMTP{Addr: addr(h)} }, nil
	default: // ping
		return func(h string) monitors.Check { return monitors.Ping{Addr: h} }, nil
	}
}
