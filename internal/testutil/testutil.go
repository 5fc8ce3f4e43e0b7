// Package testutil holds helpers shared by tests of several packages.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// ConfigCopy copies the configuration directory dir to a temporary
// directory and gives its authkeys mode 0600. Git does not keep file modes,
// so a fresh checkout has the example secrets at 0644, which Vigil
// (rightly) refuses; an install sets 0600 the same way.
func ConfigCopy(t testing.TB, dir string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if e.Name() == "authkeys" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// WriteScript writes an executable shell script (body after the #!/bin/sh
// line) at path, making its directory.
func WriteScript(t testing.TB, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}
