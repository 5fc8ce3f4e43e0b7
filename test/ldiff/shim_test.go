package ldiff

import (
	"io"
	"strings"
	"testing"
)

// The recording ipvsadm applies ipvsadm's own rules, so the table it
// keeps is the one the kernel would hold.
func TestShimRules(t *testing.T) {
	var tb shimTable
	run := func(args string) error {
		_, err := shimRun(&tb, strings.Fields(args), io.Discard)
		return err
	}
	for _, c := range []struct {
		args string
		ok   bool
	}{
		{"-A -t 10.0.0.1:80 -s rr", true},
		{"-A -t 10.0.0.1:80 -s rr", false},                          // exists
		{"-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -g -w 2", true},        // gate: the virtual's port
		{"-a -t 10.0.0.1:80 -r 10.0.0.3:8080 -m -w 3", true},        // masq keeps its port
		{"-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 2", false},         // already there
		{"-d -t 10.0.0.1:80 -r 10.0.0.3:8080", true},                // -d takes the port as given
		{"-e -t 10.0.0.1:80 -x 5 -y 1 -r 10.0.0.2:9 -g -w 0", true}, // -e maps the port too
		{"-A -t 10.0.0.9:80 -s rr -p 0", false},                     // timeouts are 1..2678400
		{"-A -f 7 -s sh -p 60 -M 255.255.255.0", true},
		{"-a -f 7 -r 10.0.0.4:0 -i -w 1", true}, // a mark keeps port 0
	} {
		if err := run(c.args); (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.args, err, c.ok)
		}
	}
	got := strings.Join(canonShim(&tb), "\n")
	want := strings.Join([]string{
		"FWM 7 -> 10.0.0.4:0 ipip w=1",
		"FWM 7 sh persistent 60 mask 255.255.255.0",
		"TCP 10.0.0.1:80 -> 10.0.0.2:80 gate w=0 u=5 l=1",
		"TCP 10.0.0.1:80 rr",
	}, "\n")
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
	var out strings.Builder
	shimList(&tb, false, &out)
	if !strings.Contains(out.String(), "\n  -> 10.0.0.2:80                  Route   0 ") {
		t.Fatalf("listing:\n%s", out.String())
	}
}
