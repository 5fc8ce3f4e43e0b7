package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a TB whose Errorf only records (Known.Check's verdicts).
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Helper() {}

// The list keeps each difference's reason across a rewrite, and a check
// fails on a difference new or gone.
func TestKnown(t *testing.T) {
	file := filepath.Join(t.TempDir(), "known.txt")
	k := Known{File: file, Header: "# header\n\n"}
	src := "# header\n\n# b stays because\nb: 2\n\n# a stays because\n# (two lines)\na: 1\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	k.Check(r, []string{"a: 1", "b: 2"}, false)
	if len(r.errs) != 0 {
		t.Fatalf("same set: %v", r.errs)
	}
	k.Check(r, []string{"a: 1", "c: 3"}, false)
	if len(r.errs) != 2 || !strings.Contains(r.errs[0], "new difference") || !strings.Contains(r.errs[0], "c: 3") ||
		!strings.Contains(r.errs[1], "no longer seen") || !strings.Contains(r.errs[1], "b: 2") {
		t.Fatalf("changed set: %q", r.errs)
	}
	k.Check(t, []string{"a: 1", "b: 2", "c: 3"}, true)
	got, _ := os.ReadFile(file)
	want := "# header\n\n# b stays because\nb: 2\n\n# a stays because\n# (two lines)\na: 1\n\n# NEW: explain why this difference stays, or fix it\nc: 3\n"
	if string(got) != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}
	if err := os.WriteFile(file, []byte("# header\n\nd: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Read(); err == nil || !strings.Contains(err.Error(), "has no reason") {
		t.Errorf("a difference without a reason: %v", err)
	}
}
