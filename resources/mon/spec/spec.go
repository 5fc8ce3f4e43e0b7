// Package spec is the configuration of one mon instance (`mon::NAME` →
// NAME.toml, or an inline [mon.NAME] table): host groups, watches and
// their services, periods and alerts, with mon.cf's meaning. The config
// loader validates it; the mon plugin receives it normalised, as JSON.
package spec

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/monitors"
)

// ParamName is the instance parameter carrying the normalised spec.
const ParamName = "spec"

// Debian's mon puts its scripts here; /usr/local first, as mon searches.
var (
	DefaultMonDir   = []string{"/usr/local/lib/mon/mon.d", "/usr/lib/mon/mon.d"}
	DefaultAlertDir = []string{"/usr/local/lib/mon/alert.d", "/usr/lib/mon/alert.d"}
)

// Instance is one mon: what it watches and whom it tells.
type Instance struct {
	MonDir   []string `toml:"mondir" json:"mondir"`
	AlertDir []string `toml:"alertdir" json:"alertdir"`
	StateDir string   `toml:"statedir" json:"statedir"` // MON_STATEDIR
	LogDir   string   `toml:"logdir" json:"logdir"`     // MON_LOGDIR
	// CfBaseDir is MON_CFBASEDIR, where mon's scripts look for their own
	// configuration (mon's cfbasedir, default /etc/mon).
	CfBaseDir string `toml:"cfbasedir" json:"cfbasedir"`
	// The built-in mail alert's relay and sender.
	SMTPRelay string `toml:"smtp_relay" json:"smtp_relay"`
	MailFrom  string `toml:"mail_from" json:"mail_from"`
	// Randstart spreads each service's first run over [0, randstart)
	// instead of mon's one interval after start.
	Randstart Duration `toml:"randstart" json:"randstart"`

	Hostgroups map[string][]string `toml:"hostgroup" json:"hostgroup"`
	Watches    []Watch             `toml:"watch" json:"watch"`
}

// Watch is mon's `watch GROUP`: services run over the group's hosts.
type Watch struct {
	Group    string    `toml:"group" json:"group"`
	Services []Service `toml:"service" json:"service"`
}

// Service is one monitored thing of a watch.
type Service struct {
	Name            string   `toml:"name" json:"name"`
	Description     string   `toml:"description" json:"description,omitempty"`
	Interval        Duration `toml:"interval" json:"interval"`
	FailureInterval Duration `toml:"failure_interval" json:"failure_interval,omitempty"`
	// Timeout is the per-run deadline: the monitor (and every process it
	// started) is killed then and the run counts as failed for all hosts.
	Timeout Duration `toml:"timeout" json:"timeout"`
	// Monitor is a command line as in mon.cf: a built-in check (tcp,
	// http, https, dns, smtp, ping), plugin:NAME, or a mon monitor script
	// found in mondir; the hosts are appended unless it ends in ";;".
	Monitor string            `toml:"monitor" json:"monitor"`
	Params  map[string]string `toml:"params" json:"params,omitempty"` // for monitor plugins
	// Env is the service's VAR=value lines: given to its monitor and alerts.
	Env          map[string]string `toml:"env" json:"env,omitempty"`
	Depend       []string          `toml:"depend" json:"depend,omitempty"` // "group:service" or "service" of this watch
	Randskew     Duration          `toml:"randskew" json:"randskew,omitempty"`
	ExcludeHosts []string          `toml:"exclude_hosts" json:"exclude_hosts,omitempty"`
	Periods      []Period          `toml:"period" json:"period"`
}

// Period is mon's `period [label:] SPEC` with its alert rules.
type Period struct {
	Label        string   `toml:"label" json:"label,omitempty"`
	When         string   `toml:"when" json:"when"` // Time::Period spec; empty = always
	Alert        []string `toml:"alert" json:"alert,omitempty"`
	UpAlert      []string `toml:"upalert" json:"upalert,omitempty"`
	StartupAlert []string `toml:"startupalert" json:"startupalert,omitempty"`
	// AlertEvery: "10m" [observe_detail|ignore_summary|strict].
	AlertEvery string `toml:"alertevery" json:"alertevery,omitempty"`
	// AlertAfter: "N", "N T" or "T" (integer or string).
	AlertAfter   Count    `toml:"alertafter" json:"alertafter,omitempty"`
	UpAlertAfter Duration `toml:"upalertafter" json:"upalertafter,omitempty"`
	NumAlerts    int      `toml:"numalerts" json:"numalerts,omitempty"`
	NoCompAlerts bool     `toml:"no_comp_alerts" json:"no_comp_alerts,omitempty"`

	Rules Rules `toml:"-" json:"rules"` // parsed by Normalize
}

// Rules are a period's alert rules in parsed form.
type Rules struct {
	Every        time.Duration `json:"every,omitempty"`
	EveryMode    string        `json:"every_mode,omitempty"` // "", observe_detail, ignore_summary, strict
	AfterN       int           `json:"after_n,omitempty"`    // consecutive failures (or within AfterT)
	AfterT       time.Duration `json:"after_t,omitempty"`    // with AfterN: the window; alone: failing this long
	UpAfter      time.Duration `json:"up_after,omitempty"`
	NumAlerts    int           `json:"num_alerts,omitempty"`
	NoCompAlerts bool          `json:"no_comp_alerts,omitempty"`
}

// Duration is a time with mon's units: a number (fractions allowed)
// followed by s, m, h or d. A bare number is an error, as in mon.cf.
type Duration struct{ time.Duration }

var durRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)([smhdSMHD])$`)

// ParseDuration reads mon's time values ("30s", "1.5m", "2h", "1d").
func ParseDuration(s string) (time.Duration, error) {
	m := durRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid time %q: want a number with a unit s, m, h or d (\"30s\")", s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[strings.ToLower(m[2])]
	return time.Duration(v * float64(unit)), nil
}

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	d.Duration = v
	return err
}

// MarshalText writes seconds, which ParseDuration reads back exactly.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"), nil
}

// Count is alertafter's value: an integer or a string.
type Count string

func (c *Count) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		*c = Count(strconv.FormatInt(x, 10))
	case string:
		*c = Count(x)
	default:
		return fmt.Errorf("want a count or a string like \"3 5m\", got %T", v)
	}
	return nil
}

var (
	nameRE  = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
	envRE   = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	builtin = map[string]bool{"tcp": true, "http": true, "https": true, "dns": true, "smtp": true, "ping": true}
)

// Builtin reports whether name is a check mon runs itself.
func Builtin(name string) bool { return builtin[name] }

// Normalize fills defaults and checks everything, reporting each problem
// with the dotted key it concerns.
func (in *Instance) Normalize(report func(key, msg string)) {
	if len(in.MonDir) == 0 {
		in.MonDir = DefaultMonDir
	}
	if len(in.AlertDir) == 0 {
		in.AlertDir = DefaultAlertDir
	}
	if in.StateDir == "" {
		in.StateDir = "/var/lib/vigil/mon"
	}
	if in.LogDir == "" {
		in.LogDir = "/var/log/vigil"
	}
	if in.CfBaseDir == "" {
		in.CfBaseDir = "/etc/mon"
	}
	if in.SMTPRelay == "" {
		in.SMTPRelay = "127.0.0.1:25"
	}
	if in.MailFrom == "" {
		in.MailFrom = "vigil@localhost"
	}
	for g, hosts := range in.Hostgroups {
		if !nameRE.MatchString(g) {
			report("hostgroup."+g, "host group names are letters, digits, '_', '.' and '-'")
		}
		if len(hosts) == 0 {
			report("hostgroup."+g, "a host group needs at least one host")
		}
	}
	if len(in.Watches) == 0 {
		report("watch", "nothing to watch: add a [[watch]] with a [[watch.service]]")
	}
	seen := map[string]bool{}
	services := map[string]bool{}
	for wi := range in.Watches {
		w := &in.Watches[wi]
		for si := range w.Services {
			services[w.Group+":"+w.Services[si].Name] = true
		}
	}
	for wi := range in.Watches {
		w := &in.Watches[wi]
		wk := fmt.Sprintf("watch[%d]", wi)
		switch {
		case w.Group == "":
			report(wk+".group", "missing: the host group to watch")
		case seen[w.Group]:
			report(wk+".group", fmt.Sprintf("watch %q already defined", w.Group))
		case in.Hostgroups[w.Group] == nil:
			// mon: a watch without a host group watches the one host of
			// that name.
			if in.Hostgroups == nil {
				in.Hostgroups = map[string][]string{}
			}
			in.Hostgroups[w.Group] = []string{w.Group}
		}
		seen[w.Group] = true
		if len(w.Services) == 0 {
			report(wk+".service", "a watch needs at least one service")
		}
		names := map[string]bool{}
		for si := range w.Services {
			s := &w.Services[si]
			s.normalize(fmt.Sprintf("%s.service[%d]", wk, si), w.Group, names, services, report)
		}
	}
}

func (s *Service) normalize(sk, group string, names, services map[string]bool, report func(key, msg string)) {
	switch {
	case !nameRE.MatchString(s.Name):
		report(sk+".name", "service names are letters, digits, '_', '.' and '-'")
	case names[s.Name]:
		report(sk+".name", fmt.Sprintf("service %q already defined in this watch", s.Name))
	}
	names[s.Name] = true
	if s.Interval.Duration <= 0 {
		report(sk+".interval", "missing: how often to run the monitor (\"30s\")")
	}
	if s.Timeout.Duration <= 0 {
		s.Timeout.Duration = max(s.Interval.Duration, 10*time.Second)
	}
	cmd, err := ParseMonitor(s.Monitor)
	switch {
	case err != nil:
		report(sk+".monitor", err.Error())
	case cmd.Name == "":
		report(sk+".monitor", "missing: a built-in check (tcp, http, https, dns, smtp, ping), plugin:NAME or a mon monitor script")
	case Builtin(cmd.Name):
		if _, err := ParseBuiltin(cmd.Name, cmd.Args); err != nil {
			report(sk+".monitor", err.Error())
		}
	default:
		if err := CheckCommand(cmd.Name); err != nil {
			report(sk+".monitor", err.Error())
		}
	}
	for k := range s.Env {
		if !envRE.MatchString(k) {
			report(sk+".env."+k, "variable names are upper case letters, digits and '_'")
		}
	}
	for i, d := range s.Depend {
		if !strings.Contains(d, ":") {
			d = group + ":" + d
			s.Depend[i] = d
		}
		if !services[d] {
			report(fmt.Sprintf("%s.depend[%d]", sk, i), fmt.Sprintf("no service %q (GROUP:SERVICE)", d))
		}
	}
	if len(s.Periods) == 0 {
		report(sk+".period", "a service needs a [[…period]] saying when and whom to alert (when = \"\" is always)")
	}
	labels := map[string]bool{}
	for pi := range s.Periods {
		p := &s.Periods[pi]
		pk := fmt.Sprintf("%s.period[%d]", sk, pi)
		if labels[p.Label+"\x00"+p.When] {
			report(pk, "duplicate period: give each a label")
		}
		labels[p.Label+"\x00"+p.When] = true
		if _, err := ParsePeriod(p.When); err != nil {
			report(pk+".when", err.Error())
		}
		for kind, list := range map[string][]string{"alert": p.Alert, "upalert": p.UpAlert, "startupalert": p.StartupAlert} {
			for i, a := range list {
				ak := fmt.Sprintf("%s.%s[%d]", pk, kind, i)
				if w, err := monitors.Words(a); err != nil || len(w) == 0 {
					report(ak, "want an alert: mail, webhook URL, log, ipvs …, plugin:NAME or a mon alert script")
				} else if err := CheckCommand(w[0]); err != nil {
					report(ak, err.Error())
				}
			}
		}
		p.parseRules(pk, report)
	}
}

func (p *Period) parseRules(pk string, report func(key, msg string)) {
	r := Rules{UpAfter: p.UpAlertAfter.Duration, NumAlerts: p.NumAlerts, NoCompAlerts: p.NoCompAlerts}
	if p.NumAlerts < 0 {
		report(pk+".numalerts", "must not be negative")
	}
	if f := strings.Fields(p.AlertEvery); len(f) > 0 {
		d, err := ParseDuration(f[0])
		if err != nil {
			report(pk+".alertevery", err.Error())
		}
		r.Every = d
		if len(f) > 2 {
			report(pk+".alertevery", "want \"T\" or \"T observe_detail|ignore_summary|strict\"")
		} else if len(f) == 2 {
			switch f[1] {
			case "observe_detail", "ignore_summary", "strict":
				r.EveryMode = f[1]
			default:
				report(pk+".alertevery", fmt.Sprintf("unknown mode %q (observe_detail, ignore_summary, strict)", f[1]))
			}
		}
	}
	if f := strings.Fields(string(p.AlertAfter)); len(f) > 0 {
		bad := func() { report(pk+".alertafter", "want N, \"N T\" or \"T\" (T in s, m or h)") }
		n, nerr := strconv.Atoi(f[0])
		switch {
		case len(f) == 1 && nerr == nil && n > 0:
			r.AfterN = n
		case len(f) == 1:
			// mon: alertafter's time takes s, m or h only.
			if strings.HasSuffix(strings.ToLower(f[0]), "d") {
				bad()
				break
			}
			d, err := ParseDuration(f[0])
			if err != nil {
				bad()
			}
			r.AfterT = d
		case len(f) == 2 && nerr == nil && n > 0 && !strings.HasSuffix(strings.ToLower(f[1]), "d"):
			d, err := ParseDuration(f[1])
			if err != nil {
				bad()
			}
			r.AfterN, r.AfterT = n, d
		default:
			bad()
		}
	}
	p.Rules = r
}

// CheckCommand checks the first word of a monitor or alert line that is
// not a built-in check: plugin:NAME names a plugin in plugin_dir, anything
// else a script (monitors.ScriptName). What the daemon would refuse when
// it runs the line is refused when the configuration is checked.
func CheckCommand(name string) error {
	if p, ok := strings.CutPrefix(name, "plugin:"); ok {
		if p == "" || p == "." || p == ".." || strings.Contains(p, "/") {
			return fmt.Errorf("%q: plugin:NAME takes the plain name of a plugin in plugin_dir", name)
		}
		return nil
	}
	return monitors.ScriptName(name)
}

// Monitor is a parsed monitor line.
type Monitor struct {
	Name    string
	Args    []string
	NoHosts bool // the line ended in ";;": the hosts are not appended
}

// ParseMonitor splits a monitor line as mon does, with its ";;" ending.
func ParseMonitor(line string) (Monitor, error) {
	words, err := monitors.Words(line)
	if err != nil || len(words) == 0 {
		return Monitor{}, err
	}
	var m Monitor
	if last := words[len(words)-1]; strings.HasSuffix(last, ";;") {
		m.NoHosts = true
		if words[len(words)-1] = strings.TrimSuffix(last, ";;"); words[len(words)-1] == "" {
			words = words[:len(words)-1]
		}
	}
	if len(words) > 0 {
		m.Name, m.Args = words[0], words[1:]
	}
	return m, nil
}

// Hosts returns a watch's hosts in group order: "*host" entries are
// disabled and left out, as are excluded ones.
func (in *Instance) Hosts(group string, exclude []string) []string {
	var out []string
	for _, h := range in.Hostgroups[group] {
		if strings.HasPrefix(h, "*") || contains(exclude, h) {
			continue
		}
		out = append(out, h)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Keys lists the services as "group:service", sorted.
func (in *Instance) Keys() []string {
	var out []string
	for _, w := range in.Watches {
		for _, s := range w.Services {
			out = append(out, w.Group+":"+s.Name)
		}
	}
	sort.Strings(out)
	return out
}
