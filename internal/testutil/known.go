package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// Known is a differential test's list of the differences that stay
// between a legacy tool and Vigil: "CASE: DIFFERENCE" lines, each group
// of them under "# reason" comment lines, groups apart by blank lines,
// the file opening with Header (a comment block of its own). The test
// fails when the set found changes either way; with update it rewrites
// the file, keeping each listed difference's reason.
type Known struct {
	File   string
	Header string
}

// Read returns the listed differences and their reasons.
func (k Known) Read() (map[string]string, error) {
	f, err := os.Open(k.File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	var reason []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#"):
			reason = append(reason, l)
		case strings.TrimSpace(l) == "":
			reason = nil
		default:
			if len(reason) == 0 {
				return nil, fmt.Errorf("%s: %q has no reason (a # line above it)", k.File, l)
			}
			out[l] = strings.Join(reason, "\n")
		}
	}
	return out, sc.Err()
}

// Check compares found with the list, or rewrites the list (update).
func (k Known) Check(t testing.TB, found []string, update bool) {
	t.Helper()
	old, err := k.Read()
	if err != nil && !(update && errors.Is(err, os.ErrNotExist)) {
		t.Fatal(err)
	}
	if update {
		if err := k.write(found, old); err != nil {
			t.Fatal(err)
		}
		return
	}
	var extra, missing []string
	for _, d := range found {
		if _, ok := old[d]; !ok {
			extra = append(extra, d)
		}
	}
	for d := range old {
		if !slices.Contains(found, d) {
			missing = append(missing, d)
		}
	}
	slices.Sort(extra)
	slices.Sort(missing)
	for _, d := range extra {
		t.Errorf("new difference (fix it, or list it with its reason in %s and the README's Migrating section; -update writes it): %s", k.File, d)
	}
	for _, d := range missing {
		t.Errorf("listed difference no longer seen (remove it from %s and the README): %s", k.File, d)
	}
}

// write lists found grouped under the reasons they had, in the order the
// reasons had in the file; new ones go last under a placeholder for a
// person to replace.
func (k Known) write(found []string, old map[string]string) error {
	const placeholder = "# NEW: explain why this difference stays, or fix it"
	groups := map[string][]string{}
	for _, d := range found {
		r, ok := old[d]
		if !ok {
			r = placeholder
		}
		groups[r] = append(groups[r], d)
	}
	first := map[string]int{} // a reason's first line in the file
	if data, err := os.ReadFile(k.File); err == nil {
		for i, l := range strings.Split(string(data), "\n") {
			if _, ok := old[l]; ok {
				if _, seen := first[old[l]]; !seen {
					first[old[l]] = i
				}
			}
		}
	}
	reasons := make([]string, 0, len(groups))
	for r := range groups {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		ia, oka := first[a]
		ib, okb := first[b]
		switch {
		case oka && okb:
			return ia - ib
		case oka != okb:
			if oka {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	b.WriteString(k.Header)
	for _, r := range reasons {
		slices.Sort(groups[r])
		fmt.Fprintf(&b, "%s\n%s\n\n", r, strings.Join(groups[r], "\n"))
	}
	return os.WriteFile(k.File, []byte(strings.TrimRight(b.String(), "\n")+"\n"), 0o644)
}
