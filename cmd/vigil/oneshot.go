package main

// The one-shot commands: `vigil resource run`, `vigil monitor run` and
// `vigil alert test` do one thing the daemon does, the way it does it,
// without a daemon — an operator's `crm_resource --force-start`,
// `ocf-tester` or mon test command.

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/internal/instances"
	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/builtin"
	"github.com/vigil-ha/vigil/plugins/host"
	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/resources/ipaddr"
	ldspec "github.com/vigil-ha/vigil/resources/ldirectord/spec"
	"github.com/vigil-ha/vigil/resources/mon"
	monspec "github.com/vigil-ha/vigil/resources/mon/spec"
)

// stdin is what `alert test` reads the monitor output from (tests set it).
var stdin io.Reader = os.Stdin

// Exit codes of `monitor run` and `alert test` when the monitor or alert
// did not run to an exit status of its own (timeout(1) and env(1) use
// the same numbers).
const (
	exitTimedOut = 124 // killed at its deadline
	exitBadLine  = 125 // the command line or the monitor/alert line is wrong
	exitCannot   = 126 // found but could not be run
	exitNotFound = 127 // no such script in mondir/alertdir
)

// ocfNames are the OCF return codes as resource-agents' ocf-returncodes
// names them, with what they mean.
var ocfNames = []struct{ name, meaning string }{
	{"OCF_SUCCESS", "success"},
	{"OCF_ERR_GENERIC", "generic error"},
	{"OCF_ERR_ARGS", "invalid arguments"},
	{"OCF_ERR_UNIMPLEMENTED", "unimplemented action"},
	{"OCF_ERR_PERM", "insufficient privileges"},
	{"OCF_ERR_INSTALLED", "not installed"},
	{"OCF_ERR_CONFIGURED", "not configured"},
	{"OCF_NOT_RUNNING", "not running"},
	{"OCF_RUNNING_MASTER", "running promoted"},
	{"OCF_FAILED_MASTER", "failed promoted"},
}

func ocfName(c pb.Code) (string, string) {
	if c < 0 || int(c) >= len(ocfNames) {
		return "OCF_ERR_GENERIC", "generic error"
	}
	return ocfNames[c].name, ocfNames[c].meaning
}

// parseOneShot parses a command's line with parseLine, with bad as the
// exit code for a bad line (the one-shots exit with OCF codes; the other
// commands use parseCommand).
func parseOneShot(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, asJSON bool, name string, bad int) (int, bool) {
	if asJSON {
		fs.SetOutput(io.Discard)
	}
	err := parseLine(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, false
	case err != nil && asJSON:
		return fail(stdout, stderr, true, name, err, bad), false
	case err != nil:
		return bad, false // the flag package said why, with the usage
	}
	return exitOK, true
}

// interrupted is a context that ends on ^C or SIGTERM: the operation's
// scripts are then killed with their process group.
func interrupted() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func cmdResource(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, "usage: vigil resource run [options] TYPE|GROUP/ID ACTION [NAME=VALUE...] (vigil resource run -h)")
		return exitOK
	}
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprintln(stderr, "usage: vigil resource run [options] TYPE|GROUP/ID ACTION [NAME=VALUE...] (vigil resource run -h)")
		return int(pb.Code_ERR_ARGS)
	}
	return cmdResourceRun(args[1:], stdout, stderr)
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" || a == "help" }

// paramName is what a NAME=VALUE parameter's name must look like: it
// becomes OCF_RESKEY_NAME (or NAME for a heartbeat script).
var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// resourceLine is `resource run`'s line after the options.
type resourceLine struct {
	target, action string
	params         map[string]string
}

// parseResourceLine checks TYPE|GROUP/ID ACTION [NAME=VALUE...], naming
// the argument that is wrong.
func parseResourceLine(a []string) (resourceLine, error) {
	if len(a) < 2 {
		return resourceLine{}, fmt.Errorf("want TYPE|GROUP/ID ACTION [NAME=VALUE...], got %d argument(s)", len(a))
	}
	l := resourceLine{target: a[0], action: a[1], params: map[string]string{}}
	if l.target == "" {
		return l, errors.New("argument 1: empty TYPE|GROUP/ID")
	}
	if !slices.Contains(lrm.OnceActions, l.action) {
		return l, fmt.Errorf("argument 2 %q: unknown action (one of %s)", l.action, strings.Join(lrm.OnceActions, ", "))
	}
	for i, kv := range a[2:] {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return l, fmt.Errorf("argument %d %q: want NAME=VALUE", i+3, kv)
		case !paramName.MatchString(k):
			return l, fmt.Errorf("argument %d %q: parameter name %q must be letters, digits and '_'", i+3, kv, k)
		}
		if _, dup := l.params[k]; dup {
			return l, fmt.Errorf("argument %d %q: parameter %s given twice", i+3, kv, k)
		}
		l.params[k] = v
	}
	return l, nil
}

// isGroupID tells GROUP/ID from a TYPE: haresources shorthand may hold a
// "/" too ("IPaddr::10.0.0.3/24/eth0", "10.0.0.3/24").
func isGroupID(s string) bool {
	if !strings.Contains(s, "/") || strings.Contains(s, "::") {
		return false
	}
	ip, _, _ := strings.Cut(s, "/")
	_, err := netip.ParseAddr(ip)
	return err != nil
}

// fromConfig finds GROUP/ID in the configuration as the daemon loads it
// (instances' specs filled in), with params laid over its own.
func fromConfig(cfg *config.Config, target string, params map[string]string) (config.Resource, error) {
	gname, id, _ := strings.Cut(target, "/")
	var groups []string
	for _, g := range cfg.Resources.Groups {
		groups = append(groups, g.Name)
		if g.Name != gname {
			continue
		}
		var ids []string
		for _, r := range g.Resources {
			ids = append(ids, r.ID)
			if r.ID == id {
				p := map[string]string{}
				for k, v := range r.Params {
					p[k] = v
				}
				for k, v := range params {
					p[k] = v
				}
				r.Params = p
				return r, nil
			}
		}
		return config.Resource{}, fmt.Errorf("group %s has no resource %q (it has %s)", gname, id, strings.Join(ids, ", "))
	}
	return config.Resource{}, fmt.Errorf("no group %q in %s (groups: %s)", gname, filepath.Join(cfg.Dir, config.ResourcesFile), strings.Join(groups, ", "))
}

// adHoc builds a resource of TYPE with params: a type as resources.toml
// names it (IPaddr, Dummy, ocf:heartbeat:Dummy, lsb:NAME, plugin:NAME,
// ldirectord, mon) or a haresources entry ("IPaddr::10.0.0.3/24/eth0",
// "httpd::a::b", a bare script name). ldirectord and mon read their
// instance from DIR/NAME.toml (params config=NAME), as the daemon does.
func adHoc(dir, typ, id string, params map[string]string) (config.Resource, error) {
	r := config.Resource{Type: typ, Params: params}
	if _, err := r.Bind(); err != nil && strings.Contains(typ, ":") && !strings.Contains(typ, "::") {
		// ocf:…, lsb:…, plugin:… mistyped: not a script's name.
		return r, fmt.Errorf("argument 1 %q: %w", typ, err)
	} else if err != nil {
		sh, serr := config.ParseShorthand(typ)
		if serr != nil {
			return r, fmt.Errorf("argument 1 %q: %w", typ, serr)
		}
		for k, v := range params {
			sh.Params[k] = v
		}
		r = sh
	}
	if _, err := r.Bind(); err != nil {
		return r, fmt.Errorf("argument 1 %q: %w", typ, err)
	}
	switch {
	case id != "":
		r.ID = id
	case r.ID == "" && r.Type == config.TypeIPaddr:
		r.ID = "IPaddr_" + r.Params["ip"]
	case r.ID == "":
		// ocf:heartbeat:Dummy → Dummy: OCF_RESOURCE_INSTANCE, which names
		// the agent's state files, is the same from one run to the next.
		r.ID = typ[strings.LastIndex(typ, ":")+1:]
		if c := r.Params["config"]; c != "" {
			r.ID += "_" + c
		}
	}
	var err error
	switch r.Type {
	case config.TypeLdirectord:
		err = instanceParam(dir, r, ldspec.ParamName, func(p string, b []byte) (any, error) { return instances.ParseLdirectord(p, b) })
	case config.TypeMon:
		err = instanceParam(dir, r, monspec.ParamName, func(p string, b []byte) (any, error) { return instances.ParseMon(p, b) })
	}
	return r, err
}

// instanceParam reads an ldirectord or mon instance from DIR/NAME.toml
// and hands it to the plugin as the daemon does: normalised, as JSON.
func instanceParam(dir string, r config.Resource, param string, parse func(string, []byte) (any, error)) error {
	name := r.Params["config"]
	if name == "" {
		name = r.Type
	}
	if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("config=%s: want the plain name of an instance file in %s", name, dir)
	}
	path := filepath.Join(dir, name+".toml")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s instance %q: %w", r.Type, name, err)
	}
	in, err := parse(path, data)
	if err != nil {
		return err
	}
	js, err := json.Marshal(in)
	if err != nil {
		return err
	}
	r.Params[param] = string(js)
	return nil
}

// resourceJSON is `resource run --json`'s answer.
type resourceJSON struct {
	lrm.OnceResult
	Code    int    `json:"code"`
	Name    string `json:"name"`    // OCF_NOT_RUNNING
	Meaning string `json:"meaning"` // not running
	TookMs  int64  `json:"took_ms"`
	MetaXML string `json:"meta_data,omitempty"`
	// Announced: an IPaddr start's gratuitous ARP / NA bursts.
	Announced *announced `json:"announced,omitempty"`
}

// announced counts an IPaddr start's announcements.
type announced struct {
	Wanted int    `json:"wanted"`
	Sent   uint64 `json:"sent"`
	Failed uint64 `json:"failed"`
}

// awaitAnnouncements keeps the IPaddr plugin, whose announcer sends a
// start's gratuitous ARP or neighbour advertisements after the start
// returned, until its bursts went out (as many as its arp_* parameters
// make, by when they make them, with slack for a loaded host): the
// plugin, and with it what it sends, ends with the command.
func awaitAnnouncements(ctx context.Context, h *host.Host, r config.Resource, timeout time.Duration) *announced {
	p, err := ipaddr.Parse(r.Params)
	if err != nil {
		return nil
	}
	n, within := p.Announce.Steps()
	if n == 0 {
		return nil
	}
	a := &announced{Wanted: n}
	deadline := time.Now().Add(within + 2*time.Second)
	poll := time.NewTicker(max(p.Announce.Interval, 20*time.Millisecond))
	defer poll.Stop()
	for {
		res, err := lrm.Once(ctx, h, r, "monitor", timeout, 0) // a probe: it announces nothing itself
		if err == nil {
			sent, failed, ok := ipaddr.Announced(res.Output)
			if !ok {
				return a // nothing announces it (the plugin logged why)
			}
			a.Sent, a.Failed = sent, failed
		}
		if int(a.Sent+a.Failed) >= n || time.Now().After(deadline) {
			return a
		}
		select {
		case <-ctx.Done():
			return a
		case <-poll.C:
		}
	}
}

func cmdResourceRun(args []string, stdout, stderr io.Writer) int {
	const name = "resource run"
	jsonOut := wantsJSON(args)
	fs := newFlags(name, stderr)
	dir := fs.String("c", config.DefaultDir, "configuration directory: GROUP/ID's resource, ha.toml's plugin_dir, ldirectord and mon instance files")
	node := fs.String("node", "", "GROUP/ID: load the configuration as this node (default: ha.toml's node, else the hostname)")
	id := fs.String("id", "", "TYPE: the resource id (OCF_RESOURCE_INSTANCE; default: from the type)")
	timeout := fs.Duration("timeout", 20*time.Second, "the operation's timeout, unless the resource sets its own")
	interval := fs.Duration("interval", 0, "monitor: its interval (OCF_RESKEY_CRM_meta_interval); 0 is a probe")
	pluginDir := fs.String("plugin-dir", "", "TYPE plugin:NAME: where NAME is (default: ha.toml's plugin_dir, else "+config.DefaultPluginDir+")")
	verbose := fs.Bool("v", false, "log what the plugin does on stderr")
	fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vigil resource run [options] TYPE|GROUP/ID ACTION [NAME=VALUE...]\n\n"+
			"Runs one operation through the resource's plugin, as the daemon would, without a daemon.\n"+
			"ACTION: %s. The exit status is the OCF code.\n\nOptions:\n", strings.Join(lrm.OnceActions, ", "))
		fs.PrintDefaults()
	}
	badArgs := int(pb.Code_ERR_ARGS)
	if code, ok := parseOneShot(fs, args, stdout, stderr, jsonOut, name, badArgs); !ok {
		return code
	}
	line, err := parseResourceLine(fs.Args())
	if err != nil {
		return fail(stdout, stderr, jsonOut, name, err, badArgs)
	}
	failCfg := func(err error) int { return fail(stdout, stderr, jsonOut, name, err, int(pb.Code_ERR_CONFIGURED)) }
	var r config.Resource
	pdir := config.DefaultPluginDir
	env := []string{}
	if isGroupID(line.target) {
		if *id != "" {
			return fail(stdout, stderr, jsonOut, name, fmt.Errorf("--id is for TYPE; %s names its resource", line.target), badArgs)
		}
		cfg, err := config.Load(*dir, instances.Options(*node))
		if err != nil {
			return failCfg(err)
		}
		if r, err = fromConfig(cfg, line.target, line.params); err != nil {
			return failCfg(err)
		}
		pdir = cfg.HA.PluginDir
		// The daemon tells plugins which node runs them.
		env = append(env, plugins.EnvNode+"="+cfg.Self.Name)
	} else {
		if r, err = adHoc(*dir, line.target, *id, line.params); err != nil {
			return failCfg(err)
		}
		if p := haPluginDir(*dir); p != "" {
			pdir = p
		}
	}
	if *pluginDir != "" {
		pdir = *pluginDir
	}
	env = append(env, plugins.EnvPluginDir+"="+pdir)
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	h, err := pluginHost(pdir, env, stderr, level)
	if err != nil {
		return fail(stdout, stderr, jsonOut, name, err, int(pb.Code_ERR_GENERIC))
	}
	defer h.Close()
	ctx, stop := interrupted()
	defer stop()
	res, err := lrm.Once(ctx, h, r, line.action, *timeout, *interval)
	if err != nil {
		code := pb.Code_ERR_GENERIC
		switch {
		case errors.Is(err, host.ErrUnknownPlugin):
			code = pb.Code_ERR_INSTALLED
		case errors.Is(err, host.ErrUnimplemented):
			code = pb.Code_ERR_UNIMPLEMENTED
		}
		return fail(stdout, stderr, jsonOut, name, err, int(code))
	}
	var ann *announced
	if res.Plugin == "ipaddr" && (res.Action == "start" || res.Action == "reload") && res.Code == pb.Code_SUCCESS {
		ann = awaitAnnouncements(ctx, h, r, *timeout)
	}
	n, meaning := ocfName(res.Code)
	metaXML := ""
	if res.Meta != nil {
		metaXML = res.Meta.GetRaw()
		if metaXML == "" {
			metaXML = metaDataXML(res.Meta)
		}
	}
	if jsonOut {
		writeJSON(stdout, resourceJSON{OnceResult: res, Code: int(res.Code), Name: n, Meaning: meaning,
			TookMs: res.Took.Milliseconds(), MetaXML: metaXML, Announced: ann})
		return int(res.Code)
	}
	if metaXML != "" {
		fmt.Fprintln(stdout, strings.TrimRight(metaXML, "\n"))
		return int(res.Code)
	}
	fmt.Fprintf(stdout, "%s %s: %d %s (%s)\n", res.Resource, res.Action, res.Code, n, meaning)
	fmt.Fprintf(stdout, "  via plugin %s, agent %s, in %s\n", res.Plugin, res.Agent, res.Took.Round(time.Millisecond))
	if res.Reason != "" {
		fmt.Fprintf(stdout, "  reason: %s\n", res.Reason)
	}
	if ann != nil {
		fmt.Fprintf(stdout, "  announcements: %d of %d sent, %d failed\n", ann.Sent, ann.Wanted, ann.Failed)
	}
	if res.Output != "" {
		fmt.Fprintf(stdout, "output:\n%s\n", strings.TrimRight(res.Output, "\n"))
	}
	return int(res.Code)
}

// pluginHost runs plugins for a command, as the daemon would: the
// built-ins from this binary, the others from pdir; the plugins' logs at
// level and above go to logs.
func pluginHost(pdir string, env []string, logs io.Writer, level slog.Level) (*host.Host, error) {
	return host.New(host.Options{Builtin: builtin.Has, Dir: pdir, Env: env,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))})
}

// haPluginDir is ha.toml's plugin_dir in dir, if there is one to read;
// an ad-hoc run needs nothing else of the configuration.
func haPluginDir(dir string) string {
	var partial struct {
		PluginDir string `toml:"plugin_dir"`
	}
	if _, err := toml.DecodeFile(filepath.Join(dir, config.HAFile), &partial); err != nil {
		return ""
	}
	return partial.PluginDir
}

// metaDataXML renders a built-in plugin's description in the OCF
// meta-data shape (ra-api-1.dtd) an OCF agent prints.
func metaDataXML(m *pb.Meta) string {
	type desc struct {
		Lang string `xml:"lang,attr"`
		Text string `xml:",chardata"`
	}
	type content struct {
		Type    string `xml:"type,attr"`
		Default string `xml:"default,attr,omitempty"`
	}
	type param struct {
		Name      string  `xml:"name,attr"`
		Required  string  `xml:"required,attr"`
		Unique    string  `xml:"unique,attr"`
		ShortDesc desc    `xml:"shortdesc"`
		Content   content `xml:"content"`
	}
	type action struct {
		Name     string `xml:"name,attr"`
		Timeout  string `xml:"timeout,attr"`
		Interval string `xml:"interval,attr,omitempty"`
	}
	type agent struct {
		XMLName   xml.Name `xml:"resource-agent"`
		Name      string   `xml:"name,attr"`
		Version   string   `xml:"version,attr"`
		V         string   `xml:"version"`
		ShortDesc desc     `xml:"shortdesc"`
		Params    []param  `xml:"parameters>parameter"`
		Actions   []action `xml:"actions>action"`
	}
	b01 := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	secs := func(ms int64) string {
		if ms == 0 {
			return ""
		}
		return strconv.FormatInt(ms/1000, 10) + "s"
	}
	a := agent{Name: m.GetName(), Version: m.GetVersion(), V: m.GetVersion(), ShortDesc: desc{"en", m.GetDescription()}}
	for _, p := range m.GetParameters() {
		typ := p.GetType()
		if typ == "" {
			typ = "string"
		}
		a.Params = append(a.Params, param{Name: p.GetName(), Required: b01(p.GetRequired()), Unique: b01(p.GetUnique()),
			ShortDesc: desc{"en", p.GetDescription()}, Content: content{typ, p.GetDefault()}})
	}
	for _, ac := range m.GetActions() {
		a.Actions = append(a.Actions, action{Name: ac.GetName(), Timeout: secs(ac.GetTimeoutMs()), Interval: secs(ac.GetIntervalMs())})
	}
	out, err := xml.MarshalIndent(a, "", "  ")
	if err != nil {
		return ""
	}
	return "<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">\n" + string(out) + "\n"
}

// listFlag is a repeatable option.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// dirsFlag is a colon-separated list of directories, as mon's -s and -a.
type dirsFlag []string

func (d *dirsFlag) String() string { return strings.Join(*d, ":") }
func (d *dirsFlag) Set(v string) error {
	*d = nil
	for _, p := range strings.Split(v, ":") {
		if p != "" {
			*d = append(*d, p)
		}
	}
	if len(*d) == 0 {
		return errors.New("no directory")
	}
	return nil
}

// splitDashes splits a line at its first "--": `monitor run`'s hosts
// follow it, and may look like options.
func splitDashes(args []string) (before, after []string, found bool) {
	i := slices.Index(args, "--")
	if i < 0 {
		return args, nil, false
	}
	return args[:i], args[i+1:], true
}

// envVars reads -e VAR=value options into a service's variables.
func envVars(list []string) (map[string]string, error) {
	env := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-e %q: want VAR=value", kv)
		}
		env[k] = v
	}
	return env, nil
}

// oneService is a mon instance of one watch over hosts with one service
// running monitor line, as `monitor run` and `alert test` describe it;
// its errors say which option is wrong.
func oneService(group, service, monitor string, hosts []string, env map[string]string, descr string, timeout time.Duration, monDir, alertDir []string) (*monspec.Instance, string, error) {
	in := &monspec.Instance{MonDir: monDir, AlertDir: alertDir,
		Watches: []monspec.Watch{{Group: group, Services: []monspec.Service{{
			Name: service, Description: descr, Monitor: monitor, Env: env,
			Interval: monspec.Duration{Duration: time.Minute}, Timeout: monspec.Duration{Duration: timeout},
			Periods: []monspec.Period{{}},
		}}}}}
	if len(hosts) == 0 {
		hosts = []string{group} // mon: a watch without a hostgroup watches the host of that name
	}
	in.Hostgroups = map[string][]string{group: hosts}
	var errs []string
	option := map[string]string{"watch[0].group": "-g", "watch[0].service[0].name": "-s", "watch[0].service[0].monitor": "the monitor line",
		"hostgroup." + group: "-g"}
	in.Normalize(func(key, msg string) {
		what := option[key]
		switch {
		case what != "":
		case strings.HasPrefix(key, "watch[0].service[0].env."):
			what = "-e " + strings.TrimPrefix(key, "watch[0].service[0].env.")
		default:
			what = key
		}
		errs = append(errs, what+": "+msg)
	})
	if len(errs) > 0 {
		return nil, "", errors.New(strings.Join(errs, "; "))
	}
	return in, group + ":" + service, nil
}

func cmdMonitor(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, "usage: vigil monitor run [options] 'MONITOR [ARGS...]' [-- HOST...] (vigil monitor run -h)")
		return exitOK
	}
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprintln(stderr, "usage: vigil monitor run [options] 'MONITOR [ARGS...]' [-- HOST...] (vigil monitor run -h)")
		return exitBadLine
	}
	return cmdMonitorRun(args[1:], stdout, stderr)
}

// monitorJSON is `monitor run --json`'s answer.
type monitorJSON struct {
	mon.Probe
	Error  string `json:"error,omitempty"`
	TookMs int64  `json:"took_ms"`
}

func cmdMonitorRun(args []string, stdout, stderr io.Writer) int {
	const name = "monitor run"
	opts, hosts, _ := splitDashes(args)
	jsonOut := wantsJSON(opts)
	fs := newFlags(name, stderr)
	monDir := dirsFlag(monspec.DefaultMonDir)
	fs.Var(&monDir, "mondir", "where monitor scripts are found, colon-separated, first match wins (mon's -s)")
	group := fs.String("g", "test", "the watch's host group (MON_GROUP)")
	service := fs.String("s", "", "the service (MON_SERVICE; default: the monitor's name without .monitor)")
	descr := fs.String("description", "", "the service's description (MON_DESCRIPTION)")
	var envList listFlag
	fs.Var(&envList, "e", "a service variable VAR=value for the monitor's environment (repeatable)")
	timeout := fs.Duration("timeout", 10*time.Second, "kill the monitor after this long")
	pluginDir := fs.String("plugin-dir", config.DefaultPluginDir, "where plugin:NAME monitors are")
	fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: vigil monitor run [options] 'MONITOR [ARGS...]' [-- HOST...]\n\n"+
			"Runs one mon monitor once, as mon would: a built-in check (tcp, http, https, dns, smtp, ping),\n"+
			"plugin:NAME or a mon monitor script with its arguments (one quoted argument, as on mon.cf's\n"+
			"monitor line; \";;\" at the end: no hosts). The exit status is the monitor's.\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseOneShot(fs, opts, stdout, stderr, jsonOut, name, exitBadLine); !ok {
		return code
	}
	bad := func(err error) int { return fail(stdout, stderr, jsonOut, name, err, exitBadLine) }
	switch fs.NArg() {
	case 0:
		return bad(errors.New("no monitor: give its line, quoted as one argument ('tcp.monitor -p 80'), then -- and the hosts"))
	case 1:
	default:
		return bad(fmt.Errorf("argument %q: the monitor line is one argument (quote it: 'MONITOR ARGS...') and the hosts follow --", fs.Arg(1)))
	}
	line := fs.Arg(0)
	cmd, err := monspec.ParseMonitor(line)
	if err != nil || cmd.Name == "" {
		if err == nil {
			err = errors.New("empty")
		}
		return bad(fmt.Errorf("monitor line %q: %w", line, err))
	}
	if len(hosts) == 0 && !cmd.NoHosts {
		return bad(errors.New("no hosts: give them after --, or end the monitor line with \";;\""))
	}
	for i, h := range hosts {
		if h == "" || strings.ContainsAny(h, " \t\n") {
			return bad(fmt.Errorf("host %d %q: one host name or address per argument", i+1, h))
		}
	}
	if *service == "" {
		*service = strings.TrimSuffix(filepath.Base(cmd.Name), ".monitor")
		*service = strings.TrimPrefix(*service, "plugin:")
	}
	env, err := envVars(envList)
	if err != nil {
		return bad(err)
	}
	in, key, err := oneService(*group, *service, line, hosts, env, *descr, *timeout, monDir, nil)
	if err != nil {
		return bad(err)
	}
	p, closePlugins := mon.PluginsIn(*pluginDir, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer closePlugins()
	ctx, stop := interrupted()
	defer stop()
	probe, err := mon.RunOnce(ctx, in, key, mon.Options{Plugins: p})
	if err != nil {
		code := exitBadLine
		if errors.Is(err, monitors.ErrNotFound) {
			code = exitNotFound
		}
		return fail(stdout, stderr, jsonOut, name, err, code)
	}
	code := probe.Exit
	switch {
	case errors.Is(probe.Err, monitors.ErrKilled):
		code = exitTimedOut
	case probe.Err != nil && probe.Path != "":
		code = exitCannot // the script did not start
	}
	if jsonOut {
		js := monitorJSON{Probe: probe, TookMs: probe.Took.Milliseconds()}
		js.Exit = code
		if probe.Err != nil {
			js.Error = probe.Err.Error()
		}
		writeJSON(stdout, js)
		return code
	}
	if probe.Path != "" {
		fmt.Fprintf(stdout, "ran:     %s\n", shellQuote(append([]string{probe.Path}, probe.Argv...)))
		writeEnv(stdout, "env:", probe.Env)
	} else {
		fmt.Fprintf(stdout, "ran:     %s (built in) over %s\n", line, strings.Join(probe.Hosts, " "))
	}
	state := "success"
	if !probe.OK {
		state = "failure"
	}
	if probe.Err != nil {
		state = probe.Err.Error()
	}
	fmt.Fprintf(stdout, "exit:    %d (%s) in %s\n", code, state, probe.Took.Round(time.Millisecond))
	sum := probe.Summary
	if strings.TrimSpace(sum) == "" {
		sum = "(NO SUMMARY)" // mon's word for it in logs and alerts
	}
	fmt.Fprintf(stdout, "summary: %s\n", sum)
	if strings.TrimSpace(probe.Detail) != "" {
		fmt.Fprintf(stdout, "detail:\n%s\n", strings.TrimRight(probe.Detail, "\n"))
	}
	return code
}

// writeEnv lists an environment one variable a line, values with
// control characters quoted.
func writeEnv(w io.Writer, label string, env []string) {
	fmt.Fprintln(w, label)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' }) {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(w, "  %s=%s\n", k, v)
	}
}

// shellQuote writes argv as a shell would need it.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
		}) {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

func cmdAlert(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, "usage: vigil alert test [options] ALERT [ARGS...] (vigil alert test -h)")
		return exitOK
	}
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: vigil alert test [options] ALERT [ARGS...] (vigil alert test -h)")
		return exitBadLine
	}
	return cmdAlertTest(args[1:], stdout, stderr)
}

// alertTypes are the alert types `alert test` sends (MON_ALERTTYPE).
var alertTypes = []string{monitors.AlertFailure, monitors.AlertUp, monitors.AlertStartup, monitors.AlertTest}

func cmdAlertTest(args []string, stdout, stderr io.Writer) int {
	const name = "alert test"
	jsonOut := wantsJSON(args)
	fs := newFlags(name, stderr)
	service := fs.String("s", "test", "the service (-s, MON_SERVICE)")
	group := fs.String("g", "test", "the host group (-g, MON_GROUP)")
	hosts := fs.String("h", "", "the group's hosts, space-separated (-h; default: the group's name, as mon reads a watch without a hostgroup)")
	at := fs.Int64("t", 0, "the time of the alert, seconds since the epoch (-t; default: now)")
	up := fs.Bool("u", false, "an upalert (-u, MON_ALERTTYPE=up, MON_OPSTATUS=1)")
	typ := fs.String("type", "", "the alert type: "+strings.Join(alertTypes, ", ")+" (default failure, or up with -u)")
	retval := fs.Int("retval", -1, "the monitor's exit value (MON_RETVAL; default 1, 0 for an upalert)")
	descr := fs.String("description", "", "the service's description (MON_DESCRIPTION)")
	var envList listFlag
	fs.Var(&envList, "e", "a service variable VAR=value for the alert's environment (repeatable)")
	alertDir := dirsFlag(monspec.DefaultAlertDir)
	fs.Var(&alertDir, "alertdir", "where alert scripts are found, colon-separated, first match wins (mon's -a)")
	timeout := fs.Duration("timeout", 60*time.Second, "kill the alert after this long")
	pluginDir := fs.String("plugin-dir", config.DefaultPluginDir, "where plugin:NAME alerts are")
	fs.Bool("json", false, "print what ran as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: vigil alert test [options] ALERT [ARGS...]\n\n"+
			"Sends one alert as mon would: ALERT [ARGS...] is an alert line of mon.cf (a script in alertdir,\n"+
			"mail, webhook, log or plugin:NAME; one quoted argument, or words after --). The monitor output\n"+
			"(first line: the summary) is read from stdin. The exit status is the alert script's.\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseOneShot(fs, args, stdout, stderr, jsonOut, name, exitBadLine); !ok {
		return code
	}
	bad := func(err error) int { return fail(stdout, stderr, jsonOut, name, err, exitBadLine) }
	words := fs.Args()
	if len(words) == 1 {
		w, err := monitors.Words(words[0])
		if err != nil {
			return bad(fmt.Errorf("alert line: %w", err))
		}
		words = w
	}
	if len(words) == 0 {
		return bad(errors.New("no alert: give an alert line (file.alert /var/log/alerts, mail ops@example.com, …)"))
	}
	if first := words[0]; strings.HasPrefix(first, "exit=") && len(words) == 1 {
		return bad(fmt.Errorf("alert line: %s selects exit values but names no alert", first))
	}
	if err := monspec.CheckCommand(selectorLess(words)); err != nil {
		return bad(fmt.Errorf("alert line: %w", err))
	}
	kind := *typ
	switch {
	case kind == "" && *up:
		kind = monitors.AlertUp
	case kind == "":
		kind = monitors.AlertFailure
	case *up && kind != monitors.AlertUp:
		return bad(fmt.Errorf("-u and --type %s disagree", kind))
	case !slices.Contains(alertTypes, kind):
		return bad(fmt.Errorf("--type %q: one of %s", kind, strings.Join(alertTypes, ", ")))
	}
	if *retval < 0 {
		*retval = 1
		if kind != monitors.AlertFailure {
			*retval = 0
		}
	}
	when := time.Now()
	if *at > 0 {
		when = time.Unix(*at, 0)
	} else if *at < 0 {
		return bad(fmt.Errorf("-t %d: want seconds since the epoch", *at))
	}
	env, err := envVars(envList)
	if err != nil {
		return bad(err)
	}
	in, key, err := oneService(*group, *service, "true.monitor", strings.Fields(*hosts), env, *descr, *timeout, nil, alertDir)
	if err != nil {
		return bad(err)
	}
	output, err := readOutput(stdin)
	if err != nil {
		return bad(fmt.Errorf("stdin: %w", err))
	}
	p, closePlugins := mon.PluginsIn(*pluginDir, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer closePlugins()
	ctx, cancel := interrupted()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()
	// The built-in log alert writes here.
	log := slog.New(slog.NewTextHandler(stderr, nil))
	sent, err := mon.SendOnce(ctx, in, key, words, kind, when, output, *retval, mon.Options{Plugins: p, Log: log})
	code := sent.Exit
	switch {
	case err == nil:
	case errors.Is(err, monitors.ErrKilled):
		code = exitTimedOut
	case errors.Is(err, monitors.ErrNotFound):
		code = exitNotFound
	case sent.Path != "":
		code = exitCannot
	default:
		code = exitError // a built-in sender failed to deliver
	}
	if jsonOut {
		js := struct {
			mon.Sent
			Error  string `json:"error,omitempty"`
			TookMs int64  `json:"took_ms"`
		}{Sent: sent, TookMs: sent.Took.Milliseconds()}
		js.Exit = code
		if err != nil {
			js.Error = err.Error()
		}
		writeJSON(stdout, js)
		return code
	}
	if err != nil && sent.Via == "" && sent.Path == "" && !errors.Is(err, monitors.ErrNotFound) {
		return fail(stdout, stderr, false, name, err, code)
	}
	switch {
	case sent.Skip != "":
		fmt.Fprintf(stdout, "not sent: %s\n", sent.Skip)
	case sent.Path != "":
		fmt.Fprintf(stdout, "ran:   %s\n", shellQuote(append([]string{sent.Path}, sent.Argv...)))
		writeEnv(stdout, "env:", sent.Env)
		fmt.Fprintf(stdout, "stdin: %d bytes, summary %q\n", len(sent.Stdin), firstLine(sent.Stdin))
	case err == nil:
		fmt.Fprintf(stdout, "sent:  %s (built in)\n", sent.Line)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil %s: %v\n", name, err)
		return code
	}
	if sent.Path != "" {
		fmt.Fprintf(stdout, "exit:  %d in %s (mon ignores an alert's exit status)\n", code, sent.Took.Round(time.Millisecond))
	}
	return code
}

// selectorLess is the alert's name: the first word after an exit= selector.
func selectorLess(words []string) string {
	if strings.HasPrefix(words[0], "exit=") && len(words) > 1 {
		return words[1]
	}
	return words[0]
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

// readOutput reads the monitor output an alert gets on stdin, bounded
// like a monitor's; a terminal gives none (nothing to wait for).
func readOutput(r io.Reader) (string, error) {
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return "", nil
		}
	}
	b, err := io.ReadAll(io.LimitReader(r, monitors.MaxOutput+1))
	if err != nil {
		return "", err
	}
	if len(b) > monitors.MaxOutput {
		return "", fmt.Errorf("more than %d bytes of monitor output", monitors.MaxOutput)
	}
	return string(b), nil
}
