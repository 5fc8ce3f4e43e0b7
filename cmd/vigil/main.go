// Command vigil is the Vigil cluster resource manager: the daemon and every
// operator command, in one binary.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/cluster/control"
	"github.com/vigil-ha/vigil/cluster/daemon"
	"github.com/vigil-ha/vigil/cluster/lrm"
	"github.com/vigil-ha/vigil/internal/instances"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/builtin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1 // bad usage, invalid configuration, daemon failure
	exitUnreachable = 2 // no daemon answered (status)
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitError
	}
	switch args[0] {
	case "daemon":
		return cmdDaemon(args[1:], stderr, false)
	case "witness":
		return cmdDaemon(args[1:], stderr, true)
	case "move", "unmove", "standby", "online", "maintenance", "ready", "cleanup", "node", "reload", "takeover":
		return cmdCommand(args[0], args[1:], stdout, stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "import":
		return cmdImport(args[1:], stdout, stderr)
	case "resource":
		return cmdResource(args[1:], stdout, stderr)
	case "monitor":
		return cmdMonitor(args[1:], stdout, stderr)
	case "alert":
		return cmdAlert(args[1:], stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			const u = "usage: vigil config check [-c DIR] [--node NAME] [-v | --json]"
			if wantsJSON(args) {
				return fail(stdout, stderr, true, "config", errors.New(u), exitError)
			}
			fmt.Fprintln(stderr, u)
			return exitError
		}
		return cmdConfigCheck(args[2:], stdout, stderr)
	case "plugin":
		// Hidden: how the daemon runs its built-in plugins.
		if len(args) != 4 || args[1] != "serve" {
			fmt.Fprintln(stderr, "usage: vigil plugin serve KIND NAME (run by the daemon)")
			return exitError
		}
		if err := builtin.Serve(plugins.Kind(args[2]), args[3]); err != nil {
			fmt.Fprintf(stderr, "vigil plugin: %v\n", err)
			return exitError
		}
		return exitOK
	case "completion":
		if len(args) != 2 || args[1] != "bash" {
			fmt.Fprintln(stderr, "usage: vigil completion bash")
			return exitError
		}
		writeCompletion(stdout)
		return exitOK
	case "man":
		writeMan(stdout)
		return exitOK
	case "version", "--version":
		if wantsJSON(args) {
			writeJSON(stdout, map[string]string{"version": version})
			return exitOK
		}
		fmt.Fprintf(stdout, "vigil %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return exitOK
	}
	if wantsJSON(args) {
		writeJSON(stdout, jsonError{Error: fmt.Sprintf("unknown command %q (vigil help)", args[0]), Exit: exitError})
		return exitError
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage())
	return exitError
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// -h says what goes on the line, then the options (the flag
	// package's own usage named the options only: "Usage of vigil move")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [options]\n", synopsis(name))
		if help := commandHelp(name); help != "" {
			fmt.Fprintln(fs.Output(), "  "+strings.ReplaceAll(help, "\n", "\n  "))
		}
		fmt.Fprintln(fs.Output(), "options (anywhere on the line):")
		fs.PrintDefaults()
	}
	return fs
}

func cmdConfigCheck(args []string, stdout, stderr io.Writer) int {
	jsonOut := wantsJSON(args)
	fs := newFlags("config check", stderr)
	dir := fs.String("c", config.DefaultDir, "configuration directory")
	node := fs.String("node", "", "check as this node (default: ha.toml's node, else the hostname)")
	verbose := fs.Bool("v", false, "print the normalised groups")
	withPlugins := fs.Bool("plugins", true, "have each resource's plugin validate it (--plugins=false: the files only)")
	asJSON := fs.Bool("json", false, "print the outcome as JSON (errors and warnings as lists)")
	if code, ok := parseCommand(fs, args, stdout, stderr, jsonOut, true, "config check"); !ok {
		return code
	}
	if *asJSON && *verbose {
		return fail(stdout, stderr, true, "config check", errors.New("-v prints TOML for people; --json takes no -v"), exitError)
	}
	invalid := func(err error) int {
		if *asJSON {
			writeJSON(stdout, jsonError{Error: err.Error(), Exit: exitError, Errors: strings.Split(err.Error(), "\n")})
		} else {
			fmt.Fprintln(stderr, err)
		}
		return exitError
	}
	cfg, err := config.Load(*dir, instances.Options(*node))
	if err != nil {
		return invalid(err)
	}
	if *withPlugins {
		errs, warns := validateResources(cfg, stderr)
		cfg.Warnings = append(cfg.Warnings, warns...)
		if len(errs) > 0 {
			return invalid(errs)
		}
	}
	ha := &cfg.HA
	media := len(ha.UCast) + len(ha.BCast) + len(ha.MCast) + len(ha.Serial)
	if *asJSON {
		writeJSON(stdout, configChecked{OK: true, Dir: *dir, Cluster: ha.Cluster, Node: cfg.Self.Name,
			Nodes: len(ha.Nodes), Media: media, Groups: len(cfg.Resources.Groups), Warnings: append([]string{}, cfg.Warnings...)})
		return exitOK
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	fmt.Fprintf(stdout, "%s: OK — cluster %q, %s (this node %s), %s, %s\n",
		*dir, ha.Cluster, counted(len(ha.Nodes), "node", "nodes"), cfg.Self.Name,
		counted(media, "heartbeat medium", "heartbeat media"),
		counted(len(cfg.Resources.Groups), "group", "groups"))
	if *verbose {
		fmt.Fprintf(stdout, "\n# resources.toml as loaded: every resource in the table form\n")
		if err := writeGroupsTOML(stdout, cfg.Resources.Groups); err != nil {
			fmt.Fprintln(stderr, "vigil config check:", err)
			return exitError
		}
	}
	return exitOK
}

// configChecked is config check's --json answer for a valid directory.
type configChecked struct {
	OK       bool     `json:"ok"`
	Dir      string   `json:"dir"`
	Cluster  string   `json:"cluster"`
	Node     string   `json:"node"` // checked as this node
	Nodes    int      `json:"nodes"`
	Media    int      `json:"heartbeat_media"`
	Groups   int      `json:"groups"`
	Warnings []string `json:"warnings"`
}

// validateResources has every resource's plugin validate it, as a
// reload does: a bad parameter is found here, not when a node first
// starts the resource. What a node lacks (a script, a plugin) is a
// warning, and none on a witness, which runs no resources.
func validateResources(cfg *config.Config, stderr io.Writer) (config.Errors, []string) {
	h, err := pluginHost(cfg.HA.PluginDir, []string{plugins.EnvNode + "=" + cfg.Self.Name, plugins.EnvPluginDir + "=" + cfg.HA.PluginDir}, stderr, slog.LevelError)
	if err != nil {
		return nil, []string{fmt.Sprintf("resources not validated by their plugins: %v", err)}
	}
	defer h.Close()
	ctx, stop := interrupted()
	defer stop()
	errs, warns := lrm.CheckConfig(ctx, h, cfg, validateTimeout, nil)
	if cfg.Self.Role == "witness" {
		warns = nil
	}
	return errs, warns
}

// validateTimeout bounds one resource's validation unless it sets its own
// timeout: the built-ins answer at once, an OCF agent's validate-all runs
// a script.
const validateTimeout = 10 * time.Second

// daemonGCPercent is the daemon's GOGC unless the environment sets one: a
// director should hold little memory, steadily, more than it should
// collect seldom. Its idle allocation is small, so collecting at half the
// default's growth costs little; at a thousand groups it took the
// daemon's anonymous memory from 56 to 32 MB (bench-scale), and the
// node's from 94–100 MB to 75–82, with the takeover as fast.
const daemonGCPercent = 50

func cmdDaemon(args []string, stderr io.Writer, witness bool) int {
	name := "daemon"
	if witness {
		name = "witness"
	}
	fs := newFlags(name, stderr)
	dir := fs.String("c", config.DefaultDir, "configuration directory")
	node := fs.String("node", "", "this node's name (default: ha.toml's node, else the hostname)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if code, ok := parseCommand(fs, args, io.Discard, stderr, false, true, name); !ok {
		return code
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "vigil daemon:", err)
		return exitError
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
	cfg, err := config.Load(*dir, instances.Options(*node))
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintln(stderr, "vigil daemon: configuration error, not started")
		return exitError
	}
	if witness && cfg.Self.Role != "witness" {
		fmt.Fprintf(stderr, "vigil witness: node %q has role %q in ha.toml; give it role = \"witness\" or run 'vigil daemon'\n", cfg.Self.Name, cfg.Self.Role)
		return exitError
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	d, err := daemon.New(cfg, version, builtin.Has, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitError
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP reloads, as it does for heartbeat, ldirectord and keepalived.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := d.Reload(ctx); err != nil {
					log.Error("reload on SIGHUP", "err", err)
				}
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		log.Error("daemon failed", "err", err)
		return exitError
	}
	return exitOK
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad --log-format %q (text or json)", format)
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	jsonOut := wantsJSON(args)
	fs := newFlags("status", stderr)
	dir := fs.String("c", config.DefaultDir, "configuration directory (to find the control socket)")
	socket := fs.String("s", "", "control socket (default: ha.toml's control_socket, else "+config.DefaultControlSocket+")")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	stats := fs.Bool("stats", false, "show the IPVS tables' counters (like ipvsadm -Ln --stats)")
	var oneLine bool
	fs.BoolVar(&oneLine, "1", false, "one line for a Nagios-style check; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
	fs.BoolVar(&oneLine, "one-line", false, "same as -1")
	watch := fs.Bool("watch", false, "redraw in place until interrupted")
	interval := fs.Duration("i", time.Second, "--watch: how often to redraw")
	if hasOption(args, "1", "one-line") {
		// A Nagios check whose line is wrong is UNKNOWN (3), said on
		// stdout like every other state.
		fs.SetOutput(io.Discard)
		if err := parseLine(fs, args); err != nil || fs.NArg() > 0 {
			if err == nil {
				err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
			}
			fmt.Fprintf(stdout, "VIGIL UNKNOWN - vigil status: %v\n", err)
			return control.NagiosUnknown
		}
	}
	if code, ok := parseCommand(fs, args, stdout, stderr, jsonOut, true, "status"); !ok {
		return code
	}
	path := *socket
	if path == "" {
		path = socketFromConfig(*dir)
	}
	client := api.NewClient(path)
	show := func(ctx context.Context, stdout io.Writer) int {
		st, err := client.Status(ctx)
		switch {
		case err != nil && oneLine:
			fmt.Fprintf(stdout, "VIGIL CRITICAL - %v\n", err)
			return control.NagiosCritical
		case err != nil && *asJSON && *watch:
			_ = json.NewEncoder(stdout).Encode(jsonError{Error: err.Error(), Exit: exitCode(err)})
			return exitCode(err)
		case err != nil:
			return fail(stdout, stderr, *asJSON, "status", err, exitCode(err))
		case oneLine:
			line, code := control.OneLine(st)
			fmt.Fprintln(stdout, line)
			return code
		case *asJSON && *watch:
			// a stream: one object a line, as jq and scripts read it
			_ = json.NewEncoder(stdout).Encode(st)
			return exitOK
		case *asJSON:
			writeJSON(stdout, st)
			return exitOK
		}
		st.ShowStats = *stats
		control.Render(stdout, st)
		return exitOK
	}
	if !*watch {
		return show(context.Background(), stdout)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// With --json or -1 the output is for a program: lines, no terminal
	// escapes (JSON errors and -1 lines as well).
	return watchStatus(ctx, *interval, !*asJSON && !oneLine, show, stdout)
}

// watchStatus shows the status every interval until ctx ends (^C). On a
// terminal (redraw) each frame is drawn whole over the last, like
// watch(1): home, clear and frame in one write, no flicker; otherwise the
// frames follow each other.
func watchStatus(ctx context.Context, interval time.Duration, redraw bool, show func(context.Context, io.Writer) int, stdout io.Writer) int {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var frame bytes.Buffer
		if redraw {
			frame.WriteString("\x1b[H\x1b[2J")
		}
		code := show(ctx, &frame)
		if ctx.Err() != nil {
			// ^C cut this frame short (its request failed with the
			// context): the watch ends as asked, not with that error.
			return exitOK
		}
		_, _ = stdout.Write(frame.Bytes())
		select {
		case <-ctx.Done():
			return code
		case <-t.C:
		}
	}
}

// cmdCommand sends an operator command to the local daemon, which commits
// it through the cluster.
func cmdCommand(op string, args []string, stdout, stderr io.Writer) int {
	jsonOut := wantsJSON(args)
	fs := newFlags(op, stderr)
	dir := fs.String("c", config.DefaultDir, "configuration directory (to find the control socket)")
	socket := fs.String("s", "", "control socket")
	fs.Bool("json", false, "print the outcome as JSON")
	if code, ok := parseCommand(fs, args, stdout, stderr, jsonOut, false, op); !ok {
		return code
	}
	a := fs.Args()
	var cmd api.Command
	bad := func(u string) int {
		if jsonOut {
			return fail(stdout, stderr, true, op, fmt.Errorf("usage: vigil %s [-c DIR | -s SOCKET] [--json]", u), exitError)
		}
		fmt.Fprintf(stderr, "usage: vigil %s [-c DIR | -s SOCKET] [--json]\n", u)
		return exitError
	}
	switch op {
	case "move":
		if len(a) != 2 {
			return bad("move GROUP NODE")
		}
		cmd = api.Command{Op: op, Group: a[0], Node: a[1]}
	case "unmove":
		if len(a) != 1 {
			return bad("unmove GROUP")
		}
		cmd = api.Command{Op: op, Group: a[0]}
	case "standby", "online", "maintenance", "ready":
		if len(a) != 1 {
			return bad(op + " NODE")
		}
		cmd = api.Command{Op: op, Node: a[0]}
	case "cleanup":
		if len(a) < 1 || len(a) > 2 {
			return bad("cleanup GROUP [NODE]")
		}
		cmd = api.Command{Op: op, Group: a[0]}
		if len(a) == 2 {
			cmd.Node = a[1]
		}
	case "reload", "takeover":
		if len(a) != 0 {
			return bad(op)
		}
		cmd = api.Command{Op: op}
	case "node":
		switch {
		case len(a) == 3 && a[0] == "add":
			cmd = api.Command{Op: api.OpNodeAdd, Node: a[1], Address: a[2]}
		case len(a) == 2 && a[0] == "remove":
			cmd = api.Command{Op: api.OpNodeRemove, Node: a[1]}
		default:
			return bad("node add NAME HOST:PORT | node remove NAME")
		}
	}
	path := *socket
	if path == "" {
		path = socketFromConfig(*dir)
	}
	line := strings.Join(append([]string{op}, a...), " ")
	if err := api.NewClient(path).Command(context.Background(), cmd); err != nil {
		return fail(stdout, stderr, jsonOut, op, err, exitCode(err))
	}
	if jsonOut {
		writeJSON(stdout, struct {
			Done    bool   `json:"done"`
			Command string `json:"command"`
		}{true, line})
		return exitOK
	}
	fmt.Fprintf(stdout, "vigil %s: done\n", line)
	return exitOK
}

// exitCode is a failed request's exit code: 2 when no daemon answered.
func exitCode(err error) int {
	if errors.Is(err, api.ErrUnreachable) {
		return exitUnreachable
	}
	return exitError
}

// socketFromConfig reads only control_socket from ha.toml: status must
// work even while the rest of the file is being edited.
func socketFromConfig(dir string) string {
	var partial struct {
		ControlSocket string `toml:"control_socket"`
	}
	if _, err := toml.DecodeFile(filepath.Join(dir, config.HAFile), &partial); err == nil && partial.ControlSocket != "" {
		return partial.ControlSocket
	}
	return config.DefaultControlSocket
}

// counted is n and the noun in its number ("1 group", "2 groups").
func counted(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
