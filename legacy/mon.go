package legacy

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	monspec "github.com/vigil-ha/vigil/resources/mon/spec"
)

type monService struct {
	line     int
	name     string
	kv       [][2]string // TOML keys in order, values already TOML
	env      [][2]string
	periods  []*monPeriod
	hadMonit bool
	interval time.Duration // for alertafter's sanity check, as mon makes it
}

type monPeriod struct {
	label, when string
	alerts      map[string][]string // alert, upalert, startupalert
	kv          [][2]string
	exitRange   string
}

type monWatch struct {
	group    string
	services []*monService
}

var (
	monTag     = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
	monVar     = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	monTime    = regexp.MustCompile(`^[0-9.]+[smhdSMHD]$`)
	monDepTerm = regexp.MustCompile(`^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$`)
)

// mon.cf globals Vigil keeps, those it needs not, and those it lacks.
var monGlobalsKept = map[string]string{"alertdir": "alertdir", "mondir": "mondir", "statedir": "statedir", "logdir": "logdir", "cfbasedir": "cfbasedir", "randstart": "randstart"}

var monGlobalsDropped = map[string]string{
	"basedir":  "paths are absolute",
	"authfile": "no client protocol: the control socket is root-only", "authtype": "no client protocol", "pamservice": "no client protocol",
	"userfile": "no client protocol", "serverbind": "no client protocol", "serverport": "no client protocol", "clientallow": "no client protocol",
	"trapbind": "traps are not supported", "trapport": "traps are not supported", "monremote": "no client protocol",
	"dtlogfile": "downtime log: see the alerts' records in vigil status", "dtlogging": "downtime log is not kept",
	"monerrfile": "errors go to the daemon's log", "histlength": "vigil status keeps the last alert of each service",
	"historicfile": "no alert history file", "historictime": "no alert history file", "pidfile": "run under the daemon",
	"maxprocs": "monitors run per service, never overlapping", "cltimeout": "no client protocol",
	"dep_recur_limit": "dependencies only suppress alerts", "dep_behavior": "dependencies only suppress alerts (mon's default a)",
	"dep_memory": "not supported", "unack_summary": "no ack", "syslog_facility": "the daemon logs with log/slog",
	"startupalerts_on_reset": "not supported", "exclude_period": "not supported",
}

var monServiceDropped = map[string]string{
	"alertdepend": "one depend list (mon's a behaviour)", "monitordepend": "dependencies only suppress alerts",
	"hostdepend": "dependencies only suppress alerts", "dep_behavior": "dependencies only suppress alerts (mon's default a)",
	"dep_memory": "not supported", "redistribute": "not supported", "unack_summary": "no ack", "traptimeout": "traps are not supported",
	"trapduration": "traps are not supported", "allow_empty_group": "not supported", "exclude_period": "not supported",
}

// ImportMon reads one mon.cf and returns the instance's TOML (NAME.toml).
func ImportMon(file string, data []byte) ([]byte, *Report, error) {
	r := &Report{}
	type logical struct {
		n    int
		text string
	}
	// mon's read_cf: trailing backslash continues (the next line's leading
	// blanks go), every line trimmed; blank lines matter.
	var logicals []logical
	cont, start := "", 0
	for n, text := range lines(data) {
		l := strings.TrimSpace(text)
		if cont == "" {
			start = n
		}
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cont += strings.TrimSpace(s) + " "
			continue
		}
		logicals = append(logicals, logical{start, cont + l})
		cont = ""
	}
	var globals [][2]string
	groups := map[string][]string{}
	var groupOrder []string
	var watches []*monWatch
	var w *monWatch
	var svc *monService
	var per *monPeriod
	inHostgroup := ""
	for _, l := range logicals {
		line := l.text
		add := func(o Outcome, note string, a ...any) { r.add(file, l.n, line, o, note, a...) }
		if line == "" {
			inHostgroup, w, svc, per = "", nil, nil, nil
			continue
		}
		if line[0] == '#' {
			continue
		}
		if inHostgroup != "" {
			hosts := strings.Fields(line)
			groups[inHostgroup] = append(groups[inHostgroup], hosts...)
			if k := hosts[0]; k == "watch" || k == "service" || k == "interval" || k == "monitor" || k == "period" || k == "hostgroup" {
				add(Caveat, "taken as host names of %s, as mon does: a hostgroup must be followed by a blank line", inHostgroup)
			} else {
				add(Mapped, "more hosts of %s", inHostgroup)
			}
			continue
		}
		word, rest := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			word, rest = line[:i], strings.TrimSpace(line[i+1:])
		}
		switch word {
		case "hostgroup":
			f := strings.Fields(rest)
			if len(f) == 0 || !monTag.MatchString(f[0]) {
				add(Invalid, "hostgroup needs a tag [a-zA-Z0-9_.-]+")
				continue
			}
			if _, dup := groups[f[0]]; dup {
				add(Invalid, "hostgroup %s already defined", f[0])
				continue
			}
			groups[f[0]] = f[1:]
			groupOrder = append(groupOrder, f[0])
			inHostgroup, w, svc, per = f[0], nil, nil, nil
			add(Mapped, "[hostgroup] %s", f[0])
			continue
		case "watch":
			g := strings.TrimSpace(rest)
			for _, o := range watches {
				if o.group == g {
					add(Invalid, "watch '%s' already defined", g)
				}
			}
			w = &monWatch{group: g}
			svc, per = nil, nil
			watches = append(watches, w)
			if _, ok := groups[g]; !ok {
				add(Caveat, "no hostgroup %s: a one-host group named after the watch, as mon makes", g)
			} else {
				add(Mapped, "[[watch]]")
			}
			continue
		case "view", "alias":
			add(Unsupported, "views and aliases are not supported")
			w, svc, per = nil, nil, nil
			continue
		}
		if w == nil {
			// A global: name = value.
			k, v, ok := strings.Cut(line, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch {
			case !ok:
				add(Invalid, "cf error: unknown syntax")
			case monGlobalsKept[k] != "":
				if k == "randstart" {
					if !monTime.MatchString(v) {
						add(Invalid, "bad value '%s' (a time needs a unit: s m h d)", v)
						continue
					}
					globals = append(globals, [2]string{k, quote(v)})
				} else if k == "statedir" || k == "logdir" || k == "cfbasedir" {
					globals = append(globals, [2]string{k, quote(v)})
				} else {
					// mondir and alertdir are colon-separated lists, searched in order.
					var dirs []string
					for _, d := range strings.Split(v, ":") {
						if d = strings.TrimSpace(d); d != "" {
							dirs = append(dirs, d)
						}
					}
					globals = append(globals, [2]string{k, tomlValue(dirs)})
				}
				add(Mapped, "")
			case k == "dep_behavior" && v != "a" && v != "m" && v != "hm":
				add(Invalid, "unknown dependency behavior '%s' (a, m or hm)", v)
			case monGlobalsDropped[k] != "":
				add(Unsupported, "%s", monGlobalsDropped[k])
			default:
				add(Invalid, "cf error: unknown variable '%s'", k)
			}
			continue
		}
		if word == "service" {
			name := strings.TrimSpace(rest)
			if !monTag.MatchString(name) {
				add(Invalid, "service needs a tag [a-zA-Z0-9_.-]+")
				continue
			}
			for _, o := range w.services {
				if o.name == name {
					add(Invalid, "service %s already defined", name)
				}
			}
			svc = &monService{line: l.n, name: name}
			per = nil
			w.services = append(w.services, svc)
			add(Mapped, "[[watch.service]]")
			continue
		}
		if svc == nil {
			add(Invalid, "cf error: unknown syntax (a service keyword outside a service)")
			continue
		}
		if word == "period" {
			p := &monPeriod{alerts: map[string][]string{}}
			spec := rest
			if i := strings.Index(rest, ":"); i > 0 && monTag.MatchString(rest[:i]) && !strings.Contains(rest[:i], " ") {
				p.label, spec = rest[:i], strings.TrimSpace(rest[i+1:])
			}
			p.when = spec
			if _, err := monspec.ParsePeriod(spec); err != nil {
				add(Invalid, "malformed period '%s' (the specified time period is not valid as per Time::Period::inPeriod): %v", spec, err)
				continue
			}
			dup := false
			for _, o := range svc.periods {
				dup = dup || (o.label == p.label && o.when == p.when)
			}
			if dup {
				add(Invalid, "period '%s' already defined for watch group %s service %s", rest, w.group, svc.name)
				continue
			}
			svc.periods = append(svc.periods, p)
			per = p
			add(Mapped, "[[watch.service.period]]")
			continue
		}
		if per == nil {
			monServiceKey(svc, word, rest, line, add)
		} else {
			monPeriodKey(svc, per, word, rest, add)
		}
	}
	for _, w := range watches {
		if _, ok := groups[w.group]; !ok {
			groups[w.group] = []string{w.group}
			groupOrder = append(groupOrder, w.group)
		}
		kept := w.services[:0]
		for _, s := range w.services {
			if !s.hadMonit {
				r.add(file, s.line, "service "+s.name, Caveat, "no monitor: mon never runs it; left out")
				continue
			}
			if !hasKey(s.kv, "interval") {
				r.add(file, s.line, "service "+s.name, Caveat, "no interval, which Vigil needs: left out (add it with an interval by hand)")
				continue
			}
			kept = append(kept, s)
			if len(s.periods) == 0 {
				r.add(file, s.line, "service "+s.name, Caveat, "no period: mon runs it and never alerts; so does Vigil (an empty period)")
				s.periods = append(s.periods, &monPeriod{alerts: map[string][]string{}})
			}
		}
		w.services = kept
	}

	// mon's scripts see its own directories in MON_STATEDIR and
	// MON_LOGDIR even when mon.cf names none: Debian's, which exist.
	for _, d := range [][2]string{{"statedir", "/var/lib/mon"}, {"logdir", "/var/log/mon"}} {
		if !hasKey(globals, d[0]) {
			globals = append(globals, [2]string{d[0], quote(d[1])})
		}
	}

	var t tomlWriter
	t.comment("Imported from %s by `vigil import mon`.", file)
	for _, kv := range globals {
		t.WriteString(kv[0] + " = " + kv[1] + "\n")
	}
	t.WriteString("\n[hostgroup]\n")
	for _, g := range groupOrder {
		t.WriteString(quote(g) + " = " + tomlValue(groups[g]) + "\n")
	}
	for _, w := range watches {
		t.WriteString("\n[[watch]]\n")
		t.kv("", "group", w.group)
		for _, s := range w.services {
			t.WriteString("  [[watch.service]]\n")
			t.kv("  ", "name", s.name)
			for _, kv := range s.kv {
				t.WriteString("  " + kv[0] + " = " + kv[1] + "\n")
			}
			if len(s.env) > 0 {
				var parts []string
				for _, kv := range s.env {
					parts = append(parts, kv[0]+" = "+quote(kv[1]))
				}
				t.WriteString("  env = { " + strings.Join(parts, ", ") + " }\n")
			}
			for _, p := range s.periods {
				t.WriteString("    [[watch.service.period]]\n")
				if p.label != "" {
					t.kv("    ", "label", p.label)
				}
				t.kv("    ", "when", p.when)
				for _, k := range []string{"alert", "upalert", "startupalert"} {
					if a := p.alerts[k]; len(a) > 0 {
						if p.exitRange != "" && k == "alert" {
							for i := range a {
								a[i] = "exit=" + p.exitRange + " " + a[i]
							}
						}
						t.kv("    ", k, a)
					}
				}
				for _, kv := range p.kv {
					t.WriteString("    " + kv[0] + " = " + kv[1] + "\n")
				}
			}
		}
	}
	return []byte(t.String()), r, r.Err()
}

func monServiceKey(s *monService, word, rest, line string, add func(Outcome, string, ...any)) {
	timeKey := func() {
		if !monTime.MatchString(rest) {
			add(Invalid, "cf error: invalid time interval '%s' (a unit is required: s m h d)", rest)
			return
		}
		s.kv = append(s.kv, [2]string{word, quote(rest)})
		add(Mapped, "")
	}
	switch word {
	case "interval", "failure_interval", "randskew":
		timeKey()
		if word == "interval" {
			s.interval, _ = monspec.ParseDuration(rest)
		}
	case "monitor":
		s.hadMonit = true
		s.kv = append(s.kv, [2]string{"monitor", quote(rest)})
		add(Mapped, "the same script from mondir, or a built-in check if you rename it (see README)")
	case "description":
		s.kv = append(s.kv, [2]string{"description", quote(rest)})
		add(Mapped, "")
	case "exclude_hosts":
		s.kv = append(s.kv, [2]string{"exclude_hosts", tomlValue(strings.Fields(rest))})
		add(Mapped, "")
	case "depend":
		var terms []string
		ops := false
		for _, f := range strings.FieldsFunc(rest, func(c rune) bool { return strings.ContainsRune(" \t()!&|", c) }) {
			if monDepTerm.MatchString(f) {
				terms = append(terms, f)
			}
		}
		if strings.ContainsAny(rest, "!|") {
			ops = true
		}
		s.kv = append(s.kv, [2]string{"depend", tomlValue(terms)})
		if len(terms) > 1 && !strings.ContainsAny(rest, "&|!") {
			// Found by test/mondiff: mon's example.cf writes such lines.
			add(Caveat, "to mon, terms without && or || are a Perl syntax error: it never sets the dependency status and never alerts for this service; Vigil holds alerts back while any of %s fails", strings.Join(terms, ", "))
		} else if ops {
			add(Caveat, "a Perl expression in mon; Vigil suppresses alerts while any of %s fails", strings.Join(terms, ", "))
		} else {
			add(Mapped, "")
		}
	default:
		if k, v, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, " \t") {
			if !monVar.MatchString(k) {
				add(Invalid, "cf error: unknown syntax (a variable name is upper case: [A-Z_][A-Z0-9_]*)")
				return
			}
			s.env = append(s.env, [2]string{k, v})
			add(Mapped, "env")
			return
		}
		if word == "dep_behavior" && rest != "a" && rest != "m" && rest != "hm" {
			add(Invalid, "unknown dependency behavior '%s' (a, m or hm)", rest)
			return
		}
		if why, ok := monServiceDropped[word]; ok {
			add(Unsupported, "%s", why)
			return
		}
		add(Invalid, "cf error: unknown syntax")
	}
}

// mon's alertafter forms: N, T (integer, s m or h), N T.
var (
	monAfterN  = regexp.MustCompile(`^(\d+)$`)
	monAfterT  = regexp.MustCompile(`^\d+[hms]$`)
	monAfterNT = regexp.MustCompile(`^(\d+)\s+(\d+[hms])$`)
	monEvery   = regexp.MustCompile(`^(\S+)(?:\s+(strict|observe_detail|ignore_summary))?$`)
)

func monPeriodKey(s *monService, p *monPeriod, word, rest string, add func(Outcome, string, ...any)) {
	switch word {
	case "alert", "upalert", "startupalert":
		// The LVS HOWTO's lvs.alert drove ipvsadm with these very flags;
		// Vigil's built-in ipvs alert takes them and goes through ldirectord.
		if a, ok := strings.CutPrefix(rest, "lvs.alert "); ok {
			p.alerts[word] = append(p.alerts[word], "ipvs "+a)
			add(Caveat, "lvs.alert is Vigil's built-in ipvs alert (same flags): it changes the table through the ldirectord instance")
			return
		}
		p.alerts[word] = append(p.alerts[word], rest)
		add(Mapped, "")
	case "alertevery":
		m := monEvery.FindStringSubmatch(strings.Join(strings.Fields(rest), " "))
		if m == nil || !monTime.MatchString(m[1]) {
			add(Invalid, "alertevery needs a time with a unit, then strict, observe_detail or ignore_summary")
			return
		}
		p.kv = append(p.kv, [2]string{"alertevery", quote(rest)})
		add(Mapped, "")
	case "alertafter":
		n, t := "", ""
		if m := monAfterN.FindStringSubmatch(rest); m != nil {
			n = m[1]
		} else if monAfterT.MatchString(rest) {
			t = rest
		} else if m := monAfterNT.FindStringSubmatch(strings.Join(strings.Fields(rest), " ")); m != nil {
			n, t = m[1], m[2]
		} else {
			add(Invalid, "invalid interval specification '%s' (alertafter N, T or N T; T an integer in s, m or h)", rest)
			return
		}
		k, _ := strconv.Atoi(n)
		if n != "" && t != "" {
			d, _ := monspec.ParseDuration(t)
			if time.Duration(k-1)*s.interval >= d {
				add(Invalid, "interval & alertafter not sensible: no alerts can be generated with those parameters")
				return
			}
		}
		if n != "" && k == 0 {
			// mon counts failures against 0: every one alerts.
			add(Mapped, "alertafter 0 holds nothing back: left out")
			return
		}
		p.kv = append(p.kv, [2]string{"alertafter", quote(rest)})
		add(Mapped, "")
	case "upalertafter":
		if !monTime.MatchString(rest) {
			add(Invalid, "upalertafter needs a time with a unit")
			return
		}
		p.kv = append(p.kv, [2]string{"upalertafter", quote(rest)})
		add(Mapped, "")
	case "numalerts":
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			add(Invalid, "numalerts needs a number")
			return
		}
		p.kv = append(p.kv, [2]string{"numalerts", strconv.Itoa(n)})
		add(Mapped, "")
	case "no_comp_alerts":
		p.kv = append(p.kv, [2]string{"no_comp_alerts", "true"})
		add(Mapped, "")
	case "alertexitrange":
		p.exitRange = rest
		add(Caveat, "becomes exit=%s before each alert of the period", rest)
	case "ackalert", "disablealert":
		add(Unsupported, "no ack/disable: there is no mon client protocol")
	case "alerts_dont_count":
		add(Unsupported, "not supported")
	default:
		add(Invalid, "cf error: unknown syntax [%s %s]", word, rest)
	}
}
