package api

import (
	"go/build"
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

// coreDebt are the imports of resource packages the core still has: the
// metrics of ldirectord and mon decode their plugins' Inspect answers with
// the plugins' own types, and config validates their instance files with
// their specs (issue 22, item 3). Nothing may be added to it.
var coreDebt = map[string][]string{
	"cluster/config": {"resources/ldirectord/spec", "resources/mon/spec"},
}

// The cluster core imports no resource implementation nor the registry of
// built-ins (cmd/vigil hands the daemon the registry): data flows down
// from the core to the plugin host, which runs resources.
func TestCoreImportsNoResource(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "cluster", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		pkg := strings.TrimPrefix(filepath.ToSlash(dir), "../")
		if _, err := build.ImportDir(dir, 0); err != nil {
			continue // not a package
		}
		for _, imp := range vigilImports(t, dir) {
			if (strings.HasPrefix(imp, "resources/") || imp == "plugins/builtin") && !slices.Contains(coreDebt[pkg], imp) {
				t.Errorf("%s imports %s: the core must not import resource implementations", pkg, imp)
			}
		}
	}
}
