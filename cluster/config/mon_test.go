package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/resources/mon/spec"
)

func TestMonInstanceLoaded(t *testing.T) {
	dir := testutil.ConfigCopy(t, "../../etc/examples/pair-witness")
	c, err := Load(dir, testOptions("lvs1"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Resources.Groups[0].Resources[2]
	var in spec.Instance
	if err := json.Unmarshal([]byte(r.Params[spec.ParamName]), &in); err != nil {
		t.Fatalf("%s: %v", r.ID, err)
	}
	s := in.Watches[0].Services[0]
	p := s.Periods[0]
	if len(in.Watches) != 2 || s.Interval.Duration != 5*time.Second || p.Rules.Every != 10*time.Minute ||
		len(p.Alert) != 2 || in.MonDir[1] != "/usr/lib/mon/mon.d" || s.Timeout.Duration != 10*time.Second {
		t.Fatalf("%+v", in)
	}
}

func TestMonErrors(t *testing.T) {
	base := "[hostgroup]\nweb = [\"a\", \"b\"]\n[[watch]]\ngroup = \"web\"\n  [[watch.service]]\n  name = \"http\"\n  interval = \"30s\"\n  monitor = \"http.monitor\"\n    [[watch.service.period]]\n    when = \"\"\n    alert = [\"mail.alert ops\"]\n"
	if _, err := ParseMon("mon.toml", []byte(base)); err != nil {
		t.Fatalf("base: %v", err)
	}
	cases := []struct {
		name, src string
		want      []string
	}{
		{"unknown key", base + "    alertevry = \"5m\"\n", []string{"mon.toml:12: watch[0].service[0].period[0].alertevry: unknown key"}},
		{"interval needs a unit", strings.Replace(base, `"30s"`, `"30"`, 1), []string{"mon.toml:7: watch.service.interval: invalid time"}},
		{"bad period", strings.Replace(base, `when = ""`, `when = "wd {Mon-Xyz}"`, 1), []string{`mon.toml:10: watch[0].service[0].period[0].when: malformed period`}},
		{"alertafter in days", base + "    alertafter = \"1d\"\n", []string{"mon.toml:12: watch[0].service[0].period[0].alertafter"}},
		{"alertafter N T", base + "    alertafter = \"3 bogus\"\n", []string{"mon.toml:12: watch[0].service[0].period[0].alertafter"}},
		{"bad alertevery mode", base + "    alertevery = \"5m sometimes\"\n", []string{"mon.toml:12: watch[0].service[0].period[0].alertevery: unknown mode"}},
		{"duplicate watch", base + "[[watch]]\ngroup = \"web\"\n  [[watch.service]]\n  name = \"x\"\n  interval = \"1m\"\n  monitor = \"tcp -p 1\"\n    [[watch.service.period]]\n", []string{"mon.toml:13: watch[1].group: watch \"web\" already defined"}},
		{"unknown dependency", strings.Replace(base, "  monitor", "  depend = [\"ping\"]\n  monitor", 1), []string{"mon.toml:8: watch[0].service[0].depend[0]: no service \"web:ping\""}},
		{"lowercase variable", strings.Replace(base, "  monitor", "  env = { foo = \"bar\" }\n  monitor", 1), []string{"mon.toml:8: watch[0].service[0].env.foo"}},
		{"bad built-in flag", strings.Replace(base, `"http.monitor"`, `"tcp -x 1"`, 1), []string{"mon.toml:8: watch[0].service[0].monitor: tcp: flag provided but not defined: -x"}},
		{"built-in needs a port", strings.Replace(base, `"http.monitor"`, `"tcp"`, 1), []string{"mon.toml:8: watch[0].service[0].monitor: tcp: -p PORT is required"}},
		{"no period", strings.Split(base, "    [[")[0], []string{"mon.toml:5: watch[0].service[0].period"}},
		{"monitor script outside the script directories", strings.Replace(base, `"http.monitor"`, `"../../tmp/x.monitor"`, 1), []string{"mon.toml:8: watch[0].service[0].monitor: \"../../tmp/x.monitor\": give a plain name"}},
		{"monitor path with ..", strings.Replace(base, `"http.monitor"`, `"/usr/lib/mon/../../../tmp/x"`, 1), []string{"mon.toml:8: watch[0].service[0].monitor: \"/usr/lib/mon/../../../tmp/x\": give the script's absolute path without"}},
		{"monitor plugin path", strings.Replace(base, `"http.monitor"`, `"plugin:../x"`, 1), []string{"mon.toml:8: watch[0].service[0].monitor: \"plugin:../x\": plugin:NAME takes the plain name"}},
		{"alert script outside", strings.Replace(base, `"mail.alert ops"`, `"../mail.alert ops"`, 1), []string{"mon.toml:11: watch[0].service[0].period[0].alert[0]: \"../mail.alert\": give a plain name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMon("mon.toml", []byte(tc.src))
			wantErrors(t, err, tc.want)
		})
	}
}
