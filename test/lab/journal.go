package lab

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Op is one line of a Dummy resource's journal.
type Op struct {
	Node   string
	Time   time.Time
	Op     string
	Result string
}

// Interval is a span during which a resource ran on a node: from its
// successful start to its successful stop (End zero: still running).
type Interval struct {
	Node       string
	Start, End time.Time
}

// DummyResources returns resources.toml for one group of Dummy resources
// whose state files and journals live under dir/NODE/, so that every node
// records exactly when it ran each resource. Extra is added to each
// resource table (e.g. `interval = "200ms"`).
func DummyResources(dir, group, node string, extra string, ids ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[[group]]\nname = %q\nnode = %q\nresources = [\n", group, node)
	for _, id := range ids {
		fmt.Fprintf(&b, "  { type = \"Dummy\", id = %q, params = { state = %q, log = %q }%s },\n", id,
			filepath.Join(dir, "{node}", id+".state"), filepath.Join(dir, "{node}", id+".log"), extra)
	}
	b.WriteString("]\n")
	return b.String()
}

// ReadJournal returns the operations every node recorded for resource id
// under dir, in time order.
func ReadJournal(dir, id string) ([]Op, error) {
	var ops []Op
	nodes, _ := os.ReadDir(dir)
	for _, n := range nodes {
		f, err := os.Open(filepath.Join(dir, n.Name(), id+".log"))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) != 3 {
				f.Close()
				return nil, fmt.Errorf("%s: bad journal line %q", n.Name(), sc.Text())
			}
			t, err := time.Parse(time.RFC3339Nano, fs[0])
			if err != nil {
				f.Close()
				return nil, err
			}
			ops = append(ops, Op{Node: n.Name(), Time: t, Op: fs[1], Result: fs[2]})
		}
		f.Close()
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Time.Before(ops[j].Time) })
	return ops, nil
}

// Intervals turns a journal into run intervals. A node listed in crashed
// (with the time it was killed) is taken to stop running then.
func Intervals(ops []Op, crashed map[string]time.Time) []Interval {
	open := map[string]int{}
	var out []Interval
	for _, o := range ops {
		switch {
		case o.Op == "start" && o.Result == "success":
			if _, running := open[o.Node]; !running {
				open[o.Node] = len(out)
				out = append(out, Interval{Node: o.Node, Start: o.Time})
			}
		case o.Op == "stop" && o.Result == "success":
			if i, running := open[o.Node]; running {
				out[i].End = o.Time
				delete(open, o.Node)
			}
		}
	}
	for i := range out {
		if at, ok := crashed[out[i].Node]; ok && at.After(out[i].Start) && (out[i].End.IsZero() || out[i].End.After(at)) {
			out[i].End = at
		}
	}
	return out
}

// Overlap returns the first pair of intervals on different nodes that
// overlap in time, or nil.
func Overlap(iv []Interval) []Interval {
	for i := range iv {
		for j := i + 1; j < len(iv); j++ {
			a, b := iv[i], iv[j]
			if a.Node == b.Node {
				continue
			}
			aEnd, bEnd := a.End, b.End
			if aEnd.IsZero() {
				aEnd = time.Unix(1<<40, 0)
			}
			if bEnd.IsZero() {
				bEnd = time.Unix(1<<40, 0)
			}
			if a.Start.Before(bEnd) && b.Start.Before(aEnd) {
				return []Interval{a, b}
			}
		}
	}
	return nil
}
