// Package ipvsvm runs the kernel-IPVS tests in a qemu VM booting Debian's
// kernel (vm.sh), because this kind of machine's kernel has no IPVS.
package ipvsvm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/nstest"
)

// TestKernelIPVSInVM builds the director and ldirectord packages' tests as
// static binaries and runs their Kernel tests inside the VM; any failure
// there fails here, with the VM's output.
func TestKernelIPVSInVM(t *testing.T) {
	if why := nstest.NetnsMissing(); why != "" {
		t.Skip("the VM harness needs root: " + why)
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		t.Skip("this kernel has IPVS: the Kernel tests run directly")
	}
	dir := t.TempDir()
	for _, pkg := range []string{"resources/ldirectord/director", "resources/ldirectord"} {
		bin := filepath.Join(dir, filepath.Base(pkg)+".test")
		build := exec.Command("go", "test", "-c", "-o", bin, "./"+pkg)
		build.Dir = "../.."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
		out, err := exec.Command("./vm.sh", bin, "-test.run", "^TestKernel", "-test.v").CombinedOutput()
		t.Logf("%s in the VM:\n%s", pkg, out)
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		if !strings.Contains(string(out), "--- PASS: TestKernel") || strings.Contains(string(out), "--- SKIP") {
			t.Fatalf("%s: the Kernel tests did not run and pass in the VM", pkg)
		}
	}
}
