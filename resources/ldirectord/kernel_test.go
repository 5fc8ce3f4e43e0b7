package ldirectord

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// The seed's ldirectord example programmed into kernel IPVS: the table in
// /proc/net/ip_vs is what `ipvsadm -A -t 10.0.0.3:80 -s wlc` and two
// `-a … -g -w 5` give. Health checks are "on" here (the real servers do
// not exist in the VM); their effect on the table is tested above against
// the userspace director with the same engine. Run by test/ipvsvm.
func TestKernelSeed(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Skip("kernel has no IPVS here; test/ipvsvm runs this test in a VM that has it")
	}
	e := NewEngine(Options{})
	defer e.Close()
	e.Configure(instance(t, `
backend = "ipvs"
[[virtual]]
address = "10.0.0.3:80"
scheduler = "wlc"
checktype = "on"
request = "/.testpage"
receive = "test page"
  [[virtual.real]]
  address = "192.168.6.2:80"
  forward = "gate"
  weight = 5
  [[virtual.real]]
  address = "192.168.6.3:80"
  forward = "gate"
  weight = 5
`))
	if err := e.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	proc, err := os.ReadFile("/proc/net/ip_vs")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TCP  0A000003:0050 wlc", "-> C0A80602:0050      Route   5", "-> C0A80603:0050      Route   5"} {
		if !strings.Contains(string(proc), want) {
			t.Errorf("no %q in\n%s", want, proc)
		}
	}
	if st := e.Status(); st.Backend != director.Kernel || !strings.Contains(st.Text("www", false), "Route   5") {
		t.Errorf("status:\n%s", st.Text("www", false))
	}
	if err := e.Deactivate(); err != nil {
		t.Fatal(err)
	}
	proc, _ = os.ReadFile("/proc/net/ip_vs")
	if strings.Contains(string(proc), "0A000003") {
		t.Errorf("cleanstop left the service:\n%s", proc)
	}
}
