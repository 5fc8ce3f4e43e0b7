package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Grafana dashboard and the Prometheus rules shipped under packaging/.
const (
	dashboardFile = "../../packaging/grafana/vigil.json"
	rulesFile     = "../../packaging/prometheus/vigil-rules.yml"
	rulesTestFile = "../../packaging/prometheus/vigil-rules.test.yml"
)

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"instance", "job"}

// scrapeTarget is the instance label Prometheus gives the fixture node.
var scrapeTarget = status().Node + ":9470"

// exported gathers the registry of a node whose status has every kind of
// series and returns each series name with the label names it carries:
// a histogram is its _bucket (with le), _sum and _count. A target label
// the node exports itself (the ldirectord and mon families' instance) is
// renamed exported_LABEL by Prometheus, so that name is one too. It also
// returns the series as scraped, as promtool's input series over 20
// minutes: gauges steady, counters rising at their value per minute.
func exported(t *testing.T) (map[string]map[string]bool, []map[string]string) {
	t.Helper()
	m := New(status)
	m.ObserveApply(time.Millisecond, nil)
	m.ObserveApply(time.Second, errors.New("no leader"))
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series []map[string]string
	sample := func(name string, labels map[string]string, v float64, counter bool) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		var keys []string
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%s,", k, strconv.Quote(labels[k]))
		}
		f := strconv.FormatFloat(v, 'g', -1, 64)
		values := f + "x20"
		if counter && v > 0 {
			values = "0+" + f + "x20"
		}
		series = append(series, map[string]string{"series": name + "{" + strings.TrimSuffix(b.String(), ",") + "}", "values": values})
	}
	out := map[string]map[string]bool{}
	add := func(name string, labels map[string]bool, extra ...string) {
		l := map[string]bool{}
		for k := range labels {
			l[k] = true
		}
		for _, k := range extra {
			l[k] = true
		}
		out[name] = l
	}
	for _, f := range families {
		labels := map[string]bool{}
		for _, mt := range f.GetMetric() {
			scraped := map[string]string{"instance": scrapeTarget, "job": "vigil"}
			for _, lp := range mt.GetLabel() {
				labels[lp.GetName()] = true
				if slices.Contains(targetLabels, lp.GetName()) {
					scraped["exported_"+lp.GetName()] = lp.GetValue()
				} else {
					scraped[lp.GetName()] = lp.GetValue()
				}
			}
			with := func(k, v string) map[string]string {
				l := maps.Clone(scraped)
				l[k] = v
				return l
			}
			name := f.GetName()
			switch f.GetType().String() {
			case "COUNTER":
				sample(name, scraped, mt.GetCounter().GetValue(), true)
			case "GAUGE":
				sample(name, scraped, mt.GetGauge().GetValue(), false)
			case "UNTYPED":
				sample(name, scraped, mt.GetUntyped().GetValue(), false)
			case "HISTOGRAM":
				h := mt.GetHistogram()
				for _, b := range h.GetBucket() {
					sample(name+"_bucket", with("le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)), float64(b.GetCumulativeCount()), true)
				}
				sample(name+"_bucket", with("le", "+Inf"), float64(h.GetSampleCount()), true)
				sample(name+"_sum", scraped, h.GetSampleSum(), true)
				sample(name+"_count", scraped, float64(h.GetSampleCount()), true)
			case "SUMMARY":
				sm := mt.GetSummary()
				for _, q := range sm.GetQuantile() {
					sample(name, with("quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64)), q.GetValue(), false)
				}
				sample(name+"_sum", scraped, sm.GetSampleSum(), true)
				sample(name+"_count", scraped, float64(sm.GetSampleCount()), true)
			default:
				t.Fatalf("%s: type %s", name, f.GetType())
			}
		}
		for _, k := range targetLabels {
			if labels[k] {
				labels["exported_"+k] = true
			}
			labels[k] = true
		}
		switch f.GetType().String() {
		case "HISTOGRAM":
			add(f.GetName()+"_bucket", labels, "le")
			add(f.GetName()+"_sum", labels)
			add(f.GetName()+"_count", labels)
		case "SUMMARY":
			add(f.GetName(), labels, "quantile")
			add(f.GetName()+"_sum", labels)
			add(f.GetName()+"_count", labels)
		default:
			add(f.GetName(), labels)
		}
	}
	return out, series
}

// query is one PromQL expression and where it comes from. An event's
// (an annotation's) has data only when something happens.
type query struct {
	where, expr string
	event       bool
}

// dashboard reads the dashboard, checks its structure (a datasource
// variable every panel and query uses, a node variable, unique panel ids,
// a grid of 24 columns) and returns every PromQL expression in it: panel
// queries, variable queries (label_values and query_result unwrapped) and
// annotation queries.
func dashboard(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Datasource struct{ UID string } `json:"datasource"`
		Expr       string               `json:"expr"`
	}
	type panel struct {
		ID         int                  `json:"id"`
		Type       string               `json:"type"`
		Title      string               `json:"title"`
		Datasource struct{ UID string } `json:"datasource"`
		GridPos    struct{ X, Y, W, H int }
		Targets    []target `json:"targets"`
		Panels     []panel  `json:"panels"`
	}
	var d struct {
		Title         string  `json:"title"`
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name, Type string
				Query      json.RawMessage      `json:"query"`
				Datasource struct{ UID string } `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name       string               `json:"name"`
				Datasource struct{ UID string } `json:"datasource"`
				Expr       string               `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	const ds = "${datasource}"
	// Grafana 12 and later write schemaVersion 42, the last of the
	// classic JSON model; an older one would be migrated on import.
	if d.SchemaVersion < 42 || d.Title == "" || d.UID == "" {
		t.Errorf("schemaVersion %d, title %q, uid %q", d.SchemaVersion, d.Title, d.UID)
	}
	var out []query
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type != "query" {
			continue
		}
		if v.Datasource.UID != ds {
			t.Errorf("variable %s: datasource %q, want %q", v.Name, v.Datasource.UID, ds)
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Fatalf("variable %s: query %s", v.Name, v.Query)
			}
		}
		expr := q.Query
		if m := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`).FindStringSubmatch(expr); m != nil {
			expr = m[1]
		} else if m := regexp.MustCompile(`^query_result\((.+)\)$`).FindStringSubmatch(expr); m != nil {
			expr = m[1]
		}
		out = append(out, query{where: "variable " + v.Name, expr: expr})
	}
	if vars["datasource"] != "datasource" || vars["node"] != "query" {
		t.Errorf("variables %v: want a datasource variable `datasource` and a query variable `node`", vars)
	}
	for _, a := range d.Annotations.List {
		if a.Expr == "" {
			continue // Grafana's built-in annotations
		}
		if a.Datasource.UID != ds {
			t.Errorf("annotation %s: datasource %q", a.Name, a.Datasource.UID)
		}
		out = append(out, query{where: "annotation " + a.Name, expr: a.Expr, event: true})
	}
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup || p.ID == 0 {
				t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, prev)
			}
			ids[p.ID] = p.Title
			if g := p.GridPos; g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v", p.Title, g)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || len(p.Targets) == 0 || p.Datasource.UID != ds {
				t.Errorf("panel %d %q: %d queries, datasource %q", p.ID, p.Title, len(p.Targets), p.Datasource.UID)
			}
			for i, tg := range p.Targets {
				if tg.Datasource.UID != ds || tg.Expr == "" {
					t.Errorf("panel %q query %d: datasource %q, expr %q", p.Title, i, tg.Datasource.UID, tg.Expr)
				}
				out = append(out, query{where: fmt.Sprintf("panel %q query %d", p.Title, i), expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVars stands in for the dashboard's variables, so that an
// expression reads as Prometheus gets it: the fixture node's cluster and
// target. Any other $name is an error (label_replace's $1 is not a name).
var grafanaVars = map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "1h",
	"cluster": status().Cluster, "node": scrapeTarget, "datasource": "prometheus"}

func expand(expr string) (string, error) {
	var err error
	out := regexp.MustCompile(`\$\{?([A-Za-z_]\w*)\}?`).ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.Trim(v, "${}")
		if s, ok := grafanaVars[name]; ok {
			return s
		}
		err = fmt.Errorf("unknown variable %s", v)
		return v
	})
	return out, err
}

// rules returns every alert's expression in the rules file. The file is
// read line by line, so an expr written in a form this does not know is
// an error, never skipped; promtool's count of rules checks none was
// missed.
func rules(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []query
	lines := strings.Split(string(b), "\n")
	alert := ""
	for i := 0; i < len(lines); i++ {
		s := strings.TrimSpace(lines[i])
		if a, ok := strings.CutPrefix(s, "- alert: "); ok {
			alert = a
		}
		if strings.HasPrefix(s, "- record: ") {
			alert = strings.TrimPrefix(s, "- record: ")
		}
		v, ok := strings.CutPrefix(s, "expr:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case v == "|" || v == "|-":
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			var block []string
			for i+1 < len(lines) {
				next := lines[i+1]
				if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				block = append(block, next)
				i++
			}
			v = strings.Join(block, "\n")
		case v == "" || strings.ContainsAny(v[:1], `|>"'`):
			t.Fatalf("%s:%d: expr %q: write it plainly or as a | block", rulesFile, i+1, v)
		}
		out = append(out, query{where: "rule " + alert, expr: v})
	}
	return out
}

// selector is one metric a PromQL expression selects, with the label
// names its matchers use.
type selector struct {
	name   string
	labels []string
}

var (
	// Words of PromQL that are neither metrics nor functions.
	promqlWords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true, "atan2": true}
	// Aggregations, which may take their by/without before the parentheses.
	promqlAggregations = map[string]bool{"sum": true, "avg": true, "count": true, "min": true, "max": true, "group": true,
		"stddev": true, "stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true,
		"limitk": true, "limit_ratio": true}
	tokenRE = regexp.MustCompile(`^(?:\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`" +
		`|[A-Za-z_:][A-Za-z0-9_:]*|[0-9.][0-9A-Za-z_.]*(?:[eE][+-]?[0-9]+)?|==|!=|=~|!~|>=|<=|[-+*/%^=<>(){}\[\],@])`)
)

// selectors lexes a PromQL expression into the metrics it selects: an
// identifier that is not a keyword, not a function or aggregation (it is
// followed by a parenthesis), nor inside a label list (by, on…), a
// matcher or a range. Strings and comments are skipped. It is no parser:
// promtool checks the syntax.
func selectors(expr string) ([]selector, error) {
	var toks []string
	for rest := expr; rest != ""; {
		m := tokenRE.FindString(rest)
		if m == "" {
			return nil, fmt.Errorf("cannot read %.20q", rest)
		}
		rest = rest[len(m):]
		if strings.TrimSpace(m) != "" && m[0] != '#' {
			toks = append(toks, m)
		}
	}
	isIdent := func(s string) bool { return regexp.MustCompile(`^[A-Za-z_:][A-Za-z0-9_:]*$`).MatchString(s) }
	next := func(i int) string {
		if i+1 < len(toks) {
			return toks[i+1]
		}
		return ""
	}
	// skip returns the index of the token closing the one at i.
	skip := func(i int, open, close string) (int, error) {
		depth := 0
		for j := i; j < len(toks); j++ {
			switch toks[j] {
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					return j, nil
				}
			}
		}
		return 0, fmt.Errorf("no %s closes %s", close, open)
	}
	var out []selector
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		switch {
		case tok == "[":
			j, err := skip(i, "[", "]")
			if err != nil {
				return nil, err
			}
			i = j
		case tok == "{":
			return nil, errors.New("a selector without a metric name")
		case !isIdent(tok):
		case promqlWords[strings.ToLower(tok)]:
			if next(i) == "(" && tok != "atan2" {
				j, err := skip(i+1, "(", ")")
				if err != nil {
					return nil, err
				}
				i = j
			}
		case next(i) == "(":
		case promqlAggregations[tok] && (next(i) == "by" || next(i) == "without"):
		default:
			sel := selector{name: tok}
			if next(i) == "{" {
				j, err := skip(i+1, "{", "}")
				if err != nil {
					return nil, err
				}
				for k := i + 2; k < j; k++ {
					if isIdent(toks[k]) && k+1 < j && strings.ContainsAny(toks[k+1][:1], "=!") {
						sel.labels = append(sel.labels, toks[k])
					}
				}
				i = j
			}
			out = append(out, sel)
		}
	}
	return out, nil
}

// check reports every metric q selects that the registry does not
// export, and every label a matcher names that the metric lacks.
func check(t *testing.T, q query, names map[string]map[string]bool) int {
	t.Helper()
	expr, err := expand(q.expr)
	if err != nil {
		t.Errorf("%s: %v", q.where, err)
	}
	sels, err := selectors(expr)
	if err != nil {
		t.Errorf("%s: %v in %s", q.where, err, q.expr)
	}
	if len(sels) == 0 {
		t.Errorf("%s: selects no metric: %s", q.where, q.expr)
	}
	for _, s := range sels {
		labels, ok := names[s.name]
		if !ok {
			t.Errorf("%s: %s is not a series Vigil exports (%s)", q.where, s.name, q.expr)
			continue
		}
		for _, l := range s.labels {
			if !labels[l] {
				t.Errorf("%s: %s has no label %q", q.where, s.name, l)
			}
		}
	}
	return len(sels)
}

// promtool finds Debian's promtool: unpacked under bin/samples by `make
// deps`, else one on the PATH.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../../bin/samples/usr/bin/promtool"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	t.Fatal("promtool not found: `make deps` unpacks Debian's prometheus package under bin/samples")
	return ""
}

// promtoolCheck runs `promtool check rules` on file and returns how many
// rules it found.
func promtoolCheck(t *testing.T, file string) int {
	t.Helper()
	out, err := exec.Command(promtool(t), "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", file, err, out)
	}
	m := regexp.MustCompile(`SUCCESS: (\d+) rules found`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("promtool check rules %s: %s", file, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// Every metric the dashboard and the alerting rules query is one a Vigil
// node exports, with the labels they match on (the names come from the
// real registry, gathered); every expression parses (promtool's parser);
// the rules pass `promtool check rules` and their unit tests (`promtool
// test rules`: series in, alerts out), whose input series are exported
// ones too.
func TestDashboardAndRules(t *testing.T) {
	names, series := exported(t)
	var seen []string
	for n := range names {
		seen = append(seen, n)
	}
	sort.Strings(seen)
	t.Logf("%d exported series names: %s", len(seen), strings.Join(seen, " "))

	// The dashboard: names, labels, and its syntax, each expression
	// given to promtool as a recording rule.
	dash := dashboard(t)
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var recs []rule
	used := map[string]bool{}
	for i, q := range dash {
		check(t, q, names)
		expr, _ := expand(q.expr)
		recs = append(recs, rule{fmt.Sprintf("vigil_dashboard:query_%d", i), expr})
		sels, _ := selectors(expr)
		for _, s := range sels {
			used[s.name] = true
		}
	}
	// JSON is YAML: promtool reads it as a rules file.
	js, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": recs}}})
	if err != nil {
		t.Fatal(err)
	}
	asRules := filepath.Join(t.TempDir(), "dashboard-rules.json")
	if err := os.WriteFile(asRules, js, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := promtoolCheck(t, asRules); n != len(dash) {
		t.Errorf("promtool found %d of the dashboard's %d expressions", n, len(dash))
	}
	// Evaluated by promtool on the series this node exports, every panel
	// and variable has data: a join on a label the series lack, a label
	// value they never carry or a many-to-many match would leave it
	// empty. Annotations mark events, so they may well be empty.
	var cases []any
	var where []string
	for i, q := range dash {
		if q.event {
			continue
		}
		cases = append(cases, map[string]any{"expr": fmt.Sprintf("count(vigil_dashboard:query_%d) > bool 0 or vector(0)", i),
			"eval_time": "15m", "exp_samples": []any{map[string]any{"labels": "{}", "value": 1}}})
		where = append(where, fmt.Sprintf("query_%d: %s", i, q.where))
	}
	js, err = json.Marshal(map[string]any{"rule_files": []string{asRules}, "evaluation_interval": "1m",
		"tests": []any{map[string]any{"interval": "1m", "input_series": series, "promql_expr_test": cases}}})
	if err != nil {
		t.Fatal(err)
	}
	evalTest := filepath.Join(t.TempDir(), "dashboard-test.json")
	if err := os.WriteFile(evalTest, js, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool(t), "test", "rules", evalTest).CombinedOutput(); err != nil {
		t.Errorf("dashboard queries without data: %v\n%s\n%s", err, out, strings.Join(where, "\n"))
	}

	// The rules: names and labels; promtool's count of rules must match
	// the expressions read here, so none escaped the check.
	rs := rules(t)
	for _, q := range rs {
		check(t, q, names)
	}
	if n := promtoolCheck(t, rulesFile); n != len(rs) {
		t.Errorf("promtool found %d rules in %s, this test read %d expressions", n, rulesFile, len(rs))
	}

	// The rules' unit tests, and their input series.
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	inputs := regexp.MustCompile(`series: '([^']*)'`).FindAllStringSubmatch(string(b), -1)
	if len(inputs) == 0 {
		t.Errorf("%s: no input series", rulesTestFile)
	}
	for _, s := range inputs {
		check(t, query{where: "test series", expr: s[1]}, names)
	}
	// Every alert is seen firing in some test case.
	fired := map[string]bool{}
	alert := ""
	for _, ln := range strings.Split(string(b), "\n") {
		s := strings.TrimSpace(ln)
		if a, ok := strings.CutPrefix(s, "alertname: "); ok {
			alert = a
		}
		if s == "exp_alerts:" {
			fired[alert] = true
		}
	}
	for _, q := range rs {
		if name := strings.TrimPrefix(q.where, "rule "); !fired[name] {
			t.Errorf("%s: no test case where %s fires", rulesTestFile, name)
		}
	}
	cmd := exec.Command(promtool(t), "test", "rules", filepath.Base(rulesTestFile))
	cmd.Dir = filepath.Dir(rulesTestFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}

	// What an operator needs is on the dashboard: each area has a series.
	for _, want := range []string{"vigil_node_online", "vigil_raft_leader", "vigil_raft_term", "vigil_group_owner",
		"vigil_group_local_state", "vigil_group_moves_total", "vigil_lease_held", "vigil_link_up",
		"vigil_link_late_heartbeats_total", "vigil_heartbeat_packets_dropped_total", "vigil_ldirectord_real_up",
		"vigil_ipvs_connections_total", "vigil_mon_service_ok", "vigil_mon_alerts_total", "vigil_plugin_crashes_total",
		"vigil_plugin_running", "vigil_alerts_total"} {
		if !used[want] {
			t.Errorf("the dashboard shows no %s", want)
		}
	}
}

// The lexer finds the metrics of an expression and nothing else: not
// functions, aggregations, label lists, keywords, strings or durations.
func TestSelectors(t *testing.T) {
	for expr, want := range map[string]string{
		`sum by (cluster) (vigil_raft_leader * on (instance) group_left (cluster) vigil_info) == 0`: "vigil_raft_leader vigil_info",
		`max_over_time(vigil_raft_term[15m]) - min_over_time(vigil_raft_term[15m] offset 5m) > 3`:   "vigil_raft_term vigil_raft_term",
		`label_replace(a{x="$1", y!~"b|c"}, "dst", "$1", "src", "(.*)") unless on (g) b`:            "a[x y] b",
		`histogram_quantile(0.99, sum(rate(h_bucket{le!=""}[5m:1m])) by (le)) # c d`:                "h_bucket[le]",
		`count without (x) (up) and bool nan or Inf`:                                                "up",
	} {
		sels, err := selectors(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		var got []string
		for _, s := range sels {
			if len(s.labels) > 0 {
				got = append(got, s.name+"["+strings.Join(s.labels, " ")+"]")
			} else {
				got = append(got, s.name)
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: %q, want %q", expr, got, want)
		}
	}
	for _, bad := range []string{`{__name__="x"}`, `sum(x[5m`, `x{a="b"`} {
		if _, err := selectors(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
