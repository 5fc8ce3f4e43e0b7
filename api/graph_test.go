package api

import (
	"go/build"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/vigil-ha/vigil/"

// leaves are the vigil packages api may import: each imports no vigil
// package but other leaves, so api sits directly above them and below
// everything else, and nothing that imports api (plugins, the CLI, the
// daemon's control server) can come back into api's imports. cluster/timing
// is one because the replicated state's durations are its Duration.
var leaves = []string{"cluster/fsm", "cluster/heartbeat", "cluster/timing", "monitors"}

func vigilImports(t *testing.T, dir string) []string {
	t.Helper()
	p, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var out []string
	for _, imp := range p.Imports {
		if rest, ok := strings.CutPrefix(imp, module); ok {
			out = append(out, rest)
		}
	}
	return out
}

func TestImportsLeavesOnly(t *testing.T) {
	for _, imp := range vigilImports(t, ".") {
		if !slices.Contains(leaves, imp) {
			t.Errorf("api imports %s: api may import only the leaf packages %v (define the wire type in api and alias it there)", imp, leaves)
		}
	}
	for _, leaf := range leaves {
		for _, imp := range vigilImports(t, filepath.Join("..", leaf)) {
			if !slices.Contains(leaves, imp) {
				t.Errorf("%s imports %s: it is no leaf any more, so api must not import it", leaf, imp)
			}
		}
	}
}

// The cluster core imports no resource package nor the registry of
// built-ins: cmd/vigil hands the daemon the registry and the config loader
// the instance kinds (internal/instances), metrics learn resource series
// from the plugins' Inspect answers. Data flows down from the core to the
// plugin host, which runs resources.
func TestCoreImportsNoResource(t *testing.T) {
	// Every dependency, not only the direct imports: a helper package
	// must not carry a resource into the core either.
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../cluster/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		imp, ok := strings.CutPrefix(dep, module)
		if ok && (strings.HasPrefix(imp, "resources/") || imp == "plugins/builtin" || imp == "internal/instances") {
			t.Errorf("the cluster core depends on %s: it must not import resource packages", imp)
		}
	}
	// and the check sees what it should: cmd/vigil does depend on them.
	out, err = exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../cmd/vigil").CombinedOutput()
	if err != nil || !strings.Contains(string(out), module+"resources/ldirectord/spec") {
		t.Fatalf("go list of cmd/vigil: %v\n%s", err, out)
	}
}
