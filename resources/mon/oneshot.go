package mon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/resources/mon/spec"
)

// The one-shot runs below serve `vigil monitor run` and `vigil alert
// test`: they build the engine an instance would run and take one step of
// its schedule by hand, so that what an operator tries is what the
// daemon would do (argv, environment, the summary rule, alert flags).

// Probe is one monitor run by RunOnce.
type Probe struct {
	Service string   `json:"service"` // group:service
	Monitor string   `json:"monitor"` // the monitor line
	Path    string   `json:"path,omitempty"`
	Argv    []string `json:"argv,omitempty"` // after the path (scripts only)
	Env     []string `json:"env,omitempty"`  // besides PATH (scripts only)
	Hosts   []string `json:"hosts"`
	OK      bool     `json:"ok"`
	Exit    int      `json:"exit"`
	// Summary is the first line of the output, trimmed; Detail the rest.
	Summary string        `json:"summary"`
	Detail  string        `json:"detail"`
	Output  string        `json:"output"`
	Took    time.Duration `json:"-"`
	// Err: the monitor could not run or judge its hosts (killed at its
	// deadline, say); the rest then says what mon would have recorded.
	Err error `json:"-"`
}

// ErrNoService: the instance has no such group:service.
var ErrNoService = errors.New("no such service")

func onceService(in *spec.Instance, opts Options, key string) (*Engine, *service, error) {
	e := newEngine(in, opts)
	svc := e.svcs[key]
	if svc == nil {
		return nil, nil, fmt.Errorf("%w %q (have %s)", ErrNoService, key, strings.Join(in.Keys(), ", "))
	}
	return e, svc, nil
}

// RunOnce runs the monitor of service key (group:service) of in (already
// normalised) once, under the service's timeout, as the schedule would
// run it first: no alert is sent. A monitor that cannot be found is an
// error; one that ran and failed is a Probe that is not OK.
func RunOnce(ctx context.Context, in *spec.Instance, key string, opts Options) (Probe, error) {
	e, svc, err := onceService(in, opts, key)
	if err != nil {
		return Probe{}, err
	}
	p := Probe{Service: key, Monitor: svc.cfg.Monitor, Hosts: svc.monHosts()}
	switch name := svc.cmd.Name; {
	case spec.Builtin(name):
		if _, err := spec.ParseBuiltin(name, svc.cmd.Args); err != nil {
			return p, err
		}
	case strings.HasPrefix(name, "plugin:"):
		if opts.Plugins == nil {
			return p, errors.New("monitor plugins are not available here")
		}
	default:
		path, argv, env, err := e.script(svc)
		if err != nil {
			return p, err
		}
		p.Path, p.Argv, p.Env = path, argv, env[1:] // env[0] is PATH
	}
	ctx, cancel := context.WithTimeout(ctx, svc.cfg.Timeout.Duration)
	defer cancel()
	start := time.Now()
	o := e.monitor(ctx, svc)
	p.Took = time.Since(start)
	p.OK, p.Exit, p.Summary, p.Output, p.Err = o.OK, o.Retval, o.Summary, o.Output, o.Err
	_, p.Detail, _ = strings.Cut(o.Output, "\n")
	return p, nil
}

// Sent is one alert sent by SendOnce.
type Sent struct {
	Line string `json:"line"`
	Via  string `json:"via"` // the sender: a script's name, mail, webhook, …
	Path string `json:"path,omitempty"`
	// Argv and Env are a script's (Env besides PATH); Stdin what it read.
	Argv  []string      `json:"argv,omitempty"`
	Env   []string      `json:"env,omitempty"`
	Stdin string        `json:"stdin"`
	Exit  int           `json:"exit"`
	Sent  bool          `json:"sent"`
	Skip  string        `json:"skipped,omitempty"` // why it was not sent
	Took  time.Duration `json:"-"`
}

// SendOnce sends one alert for service key of in as mon would after a
// run: words is the alert line, split (spec.Words); typ the alert type
// (monitors.AlertFailure, AlertUp, …); output the monitor output that
// goes on the alert's stdin (its first line the summary); retval the
// monitor's exit value. A script's exit status is reported (mon ignores
// it); an error is a delivery that failed or could not start.
func SendOnce(ctx context.Context, in *spec.Instance, key string, words []string, typ string, at time.Time, output string, retval int, opts Options) (Sent, error) {
	e, svc, err := onceService(in, opts, key)
	if err != nil {
		return Sent{}, err
	}
	sum, _, _ := strings.Cut(output, "\n")
	a := e.alert(svc, monitors.Alert{Type: typ, Time: at}, outcome{OK: typ == monitors.AlertUp,
		Summary: strings.TrimSpace(sum), Output: output, Retval: retval})
	s := Sent{Line: strings.Join(words, " "), Stdin: a.Output}
	sel := selectWords(words, a)
	if len(sel) == 0 {
		if len(words) > 0 && strings.HasPrefix(words[0], "exit=") {
			s.Skip = fmt.Sprintf("%s does not select exit value %d", words[0], a.Retval)
			return s, nil
		}
		return s, errors.New("the alert line names no alert")
	}
	s.Via = sel[0]
	start := time.Now()
	if e.senders.Known(sel[0]) {
		err := e.senders.Send(ctx, sel[0], sel[1:], a)
		s.Took, s.Sent = time.Since(start), err == nil
		return s, err
	}
	path, err := monitors.Find(e.senders.AlertDir, sel[0])
	if err != nil {
		return s, err
	}
	s.Path, s.Argv, s.Env = path, monitors.ScriptArgs(a, sel[1:]), monitors.ScriptEnv(a)[1:]
	r, err := monitors.RunAlertScript(ctx, path, sel[1:], a)
	s.Took, s.Exit, s.Sent = time.Since(start), r.Code, err == nil
	return s, err
}

// PluginsIn runs monitor and alert plugins from dir, as a mon instance
// does; close stops the ones started.
func PluginsIn(dir string, log *slog.Logger) (p Plugins, close func()) {
	r := &pluginRunner{host.Lazy{Dir: dir, Log: log}}
	return r, r.Close
}
