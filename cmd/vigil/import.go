package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/internal/instances"
	"github.com/vigil-ha/vigil/legacy"
)

// addresses collects --address NAME=IP flags.
type addresses map[string]string

func (a addresses) String() string { return fmt.Sprint(map[string]string(a)) }
func (a addresses) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || v == "" {
		return errors.New("want NAME=IP")
	}
	a[strings.ToLower(k)] = v
	return nil
}

// cmdImport reads an old tool's files, writes Vigil's and prints what
// became of every directive. Nothing is written when a directive is one
// the old tool would refuse too, or when a file exists (unless -f).
func cmdImport(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelp(args[0]) || !wantsJSON(args) {
		return importRun(args, stdout, stderr, nil)
	}
	// --json: the same run, its words kept for the error object and the
	// rest of the answer collected as it goes.
	var said bytes.Buffer
	res := &importResult{Entries: []legacy.Entry{}, Written: []string{}}
	code := importRun(args, io.Discard, &said, res)
	if code != exitOK {
		text := strings.TrimPrefix(strings.TrimSpace(said.String()), "vigil import: ")
		text, _, _ = strings.Cut(text, "\nusage: ") // a bad option: the usage is for people
		first, more, _ := strings.Cut(text, "\n")
		var errs []string
		if more != "" {
			errs = strings.Split(more, "\n")
		}
		writeJSON(stdout, importFailure{Error: first, Exit: code, Errors: errs, Entries: res.Entries})
		return code
	}
	writeJSON(stdout, res)
	return code
}

// importResult is import's --json answer: what became of every directive,
// the files written, and whether the directory is complete (checked as
// Check would; CheckErrors otherwise).
type importResult struct {
	Entries     []legacy.Entry `json:"entries"`
	Written     []string       `json:"written"`
	Complete    bool           `json:"complete"`
	Check       string         `json:"check"`
	CheckErrors []string       `json:"check_errors,omitempty"`
	Warnings    []string       `json:"warnings,omitempty"`
}

// importFailure is import's --json answer when nothing was written.
type importFailure struct {
	Error   string         `json:"error"`
	Exit    int            `json:"exit"`
	Errors  []string       `json:"errors,omitempty"`
	Entries []legacy.Entry `json:"entries"`
}

// importRun is cmdImport; res, when set, collects the --json answer.
func importRun(args []string, stdout, stderr io.Writer, res *importResult) int {
	if len(args) == 0 || isHelp(args[0]) {
		w, code := stderr, exitError
		if len(args) > 0 {
			w, code = stdout, exitOK // asked for
		}
		fmt.Fprintln(w, "usage: vigil import heartbeat|ldirectord|mon|keepalived [options] (vigil import KIND -h)")
		return code
	}
	kind := args[0]
	fs := newFlags("import "+kind, stderr)
	out := fs.String("o", ".", "directory to write Vigil's files into")
	force := fs.Bool("f", false, "overwrite existing files")
	fs.Bool("json", false, "print the outcome as JSON: every directive's, the files written, the check's")
	var files map[string][]byte
	var report *legacy.Report
	var checkNode string // the node the written directory is checked as
	var err error
	switch kind {
	case "heartbeat":
		dir := fs.String("d", "/etc/ha.d", "heartbeat's directory (ha.cf, haresources, authkeys)")
		addrs := addresses{}
		fs.Var(addrs, "address", "a node's address, NAME=IP (repeat for each node; heartbeat found peers by name)")
		if code, ok := parseOneShot(fs, args[1:], stdout, stderr, false, "import "+kind, exitError); !ok {
			return code // -h: 0
		}
		in := legacy.HeartbeatInput{Addresses: addrs,
			HACfPath: filepath.Join(*dir, "ha.cf"), HAResourcesPath: filepath.Join(*dir, "haresources"), AuthkeysPath: filepath.Join(*dir, "authkeys")}
		if in.HACf, err = os.ReadFile(in.HACfPath); err != nil {
			fmt.Fprintln(stderr, "vigil import:", err)
			return exitError
		}
		in.HAResources, _ = os.ReadFile(in.HAResourcesPath) // optional: a cluster without resources
		in.Authkeys, _ = os.ReadFile(in.AuthkeysPath)
		in.OCFConf = func(agent, instance string) ([]byte, error) {
			return os.ReadFile(filepath.Join(*dir, "conf", "OCF", agent, instance))
		}
		var h *legacy.Heartbeat
		h, err = legacy.ImportHeartbeat(in)
		files, report = h.Files, &h.Report
	case "keepalived":
		host, _ := os.Hostname()
		node := fs.String("node", host, "this node's name in Vigil (ha.toml's node)")
		peer := fs.String("peer", "", "the other router's name in Vigil (default: the router_id of --peer-conf)")
		peerConf := fs.String("peer-conf", "", "the other router's keepalived.conf: its priorities, preemption and addresses complete the pair's")
		addrs := addresses{}
		fs.Var(addrs, "address", "a node's address, NAME=IP (for routers whose files name none: multicast VRRP)")
		var pings strlist
		fs.Var(&pings, "ping-node", "a ping node, the pair's tie-breaker (repeat for more): ha.toml's ping_nodes")
		cluster := fs.String("cluster", "keepalived", "ha.toml's cluster name (the same on both nodes)")
		authkeys := fs.String("authkeys", "", "an authkeys file to use as the cluster secret instead of auth_pass")
		name := fs.String("name", "lvs", "the ldirectord instance the virtual servers become (NAME.toml)")
		if code, ok := parseOneShot(fs, args[1:], stdout, stderr, false, "import "+kind, exitError); !ok {
			return code // -h: 0
		}
		path := "/etc/keepalived/keepalived.conf"
		if fs.NArg() == 1 {
			path = fs.Arg(0)
		} else if fs.NArg() > 1 {
			fmt.Fprintln(stderr, "usage: vigil import keepalived [-o DIR] [--node NAME] [--peer NAME] [--peer-conf FILE] [--address NAME=IP]... [--ping-node IP]... [--authkeys FILE] [FILE]")
			return exitError
		}
		in := legacy.KeepalivedInput{Path: path, Node: strings.ToLower(*node), Peer: strings.ToLower(*peer), PeerPath: *peerConf, Addresses: addrs,
			PingNodes: pings, Cluster: *cluster, AuthkeysPath: *authkeys, Name: *name, ReadFile: os.ReadFile, Glob: filepath.Glob}
		read := []struct {
			path string
			dst  *[]byte
		}{{path, &in.Data}, {*peerConf, &in.PeerData}, {*authkeys, &in.Authkeys}}
		for _, f := range read {
			if f.path == "" {
				continue
			}
			if *f.dst, err = os.ReadFile(f.path); err != nil {
				fmt.Fprintln(stderr, "vigil import:", err)
				return exitError
			}
		}
		var k *legacy.Keepalived
		k, err = legacy.ImportKeepalived(in)
		files, report = k.Files, &k.Report
		checkNode = in.Node
	case "ldirectord", "mon":
		name := fs.String("name", "", "the instance's name: NAME.toml, used as "+kind+"::NAME (default: the file's name)")
		var syncFrom *string
		if kind == "ldirectord" {
			syncFrom = fs.String("ipvsadm", "", "Debian's /etc/default/ipvsadm: its sync daemon (DAEMON, IFACE, SYNCID) becomes the instance's [sync] table")
		}
		if code, ok := parseOneShot(fs, args[1:], stdout, stderr, false, "import "+kind, exitError); !ok {
			return code // -h: 0
		}
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "usage: vigil import %s [-o DIR] [--name NAME] FILE\n", kind)
			return exitError
		}
		path := fs.Arg(0)
		data, rerr := os.ReadFile(path)
		if rerr != nil {
			fmt.Fprintln(stderr, "vigil import:", rerr)
			return exitError
		}
		if *name == "" {
			*name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".cf"), ".conf")
		}
		var toml []byte
		if kind == "ldirectord" {
			toml, report, err = legacy.ImportLdirectord(path, data)
			if err == nil && *syncFrom != "" {
				d, rerr := os.ReadFile(*syncFrom)
				if rerr != nil {
					fmt.Fprintln(stderr, "vigil import:", rerr)
					return exitError
				}
				sync, sr := legacy.ImportIpvsadmDefaults(*syncFrom, d)
				report.Entries = append(report.Entries, sr.Entries...)
				toml, err = append(toml, sync...), sr.Err()
			}
		} else {
			toml, report, err = legacy.ImportMon(path, data)
		}
		files = map[string][]byte{*name + ".toml": toml}
	default:
		fmt.Fprintf(stderr, "vigil import: unknown kind %q (heartbeat, ldirectord, mon, keepalived)\n", kind)
		return exitError
	}
	report.Write(stdout)
	if res != nil {
		res.Entries = append(res.Entries, report.Entries...)
	}
	if err != nil {
		fmt.Fprintln(stderr, "vigil import: nothing written; these are refused by the old tool too, or need what the import must be told:")
		fmt.Fprintln(stderr, err)
		return exitError
	}
	// Check first: nothing is written unless the whole result passes.
	if err := checkImported(*out, kind, files); err != nil {
		fmt.Fprintf(stderr, "vigil import: nothing written; the result does not pass the configuration check:\n%v\n", err)
		return exitError
	}
	if err := writeImported(*out, files, *force); err != nil {
		fmt.Fprintln(stderr, "vigil import:", err)
		return exitError
	}
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*out, name))
		if res != nil {
			res.Written = append(res.Written, filepath.Join(*out, name))
		}
	}
	// "checked: OK" only for a directory `vigil config check` accepts
	// whole; the files written passed on their own above.
	cfg, node, err := completeCheck(*out, checkNode)
	if err != nil {
		// the command as it was run: without --node, a host not named
		// like a node gets one error more than what is shown
		check := "vigil config check -c " + *out
		if node != "" {
			check += " --node " + node
		}
		fmt.Fprintf(stdout, "not complete yet (each file written passed its check); `%s` says:\n%v\n", check, err)
		if res != nil {
			res.Check, res.CheckErrors = check, strings.Split(err.Error(), "\n")
		}
		return exitOK
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stdout, "warning: "+w)
	}
	check := fmt.Sprintf("vigil config check -c %s --node %s", *out, cfg.Self.Name)
	fmt.Fprintf(stdout, "checked: OK — %s is a complete configuration for node %s (%s)\n", *out, cfg.Self.Name, check)
	if res != nil {
		res.Complete, res.Check, res.Warnings = true, check, cfg.Warnings
	}
	return exitOK
}

func writeImported(dir string, files map[string][]byte, force bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name := range files {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil && !force {
			return fmt.Errorf("%s exists (-f overwrites); nothing written", filepath.Join(dir, name))
		}
	}
	// Every file goes to a temporary name first and is renamed into place
	// only once all are written, so a failure (a full disk) leaves the
	// directory as it was.
	tmps := map[string]string{}
	defer func() {
		for _, t := range tmps {
			os.Remove(t)
		}
	}()
	for name, data := range files {
		mode := os.FileMode(0o644)
		if name == "authkeys" {
			mode = 0o600 // the cluster secret
		}
		f, err := os.CreateTemp(dir, "."+name+".*")
		if err != nil {
			return err
		}
		tmps[name] = f.Name()
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(f.Name(), mode)
		}
		if err != nil {
			return fmt.Errorf("%s: %w; nothing written", filepath.Join(dir, name), err)
		}
	}
	for name, t := range tmps {
		if err := os.Rename(t, filepath.Join(dir, name)); err != nil {
			return err
		}
		delete(tmps, name)
	}
	return nil
}

// checkImported validates the files about to be written as `vigil config
// check` does, each on its own (ha.toml, authkeys, resources.toml against
// that ha.toml, instance files): nothing is written unless they pass.
// Whether the directory is then complete is completeCheck's question.
func checkImported(dir, kind string, files map[string][]byte) error {
	var ha *config.HA
	if data := files[config.HAFile]; data != nil {
		var err error
		if ha, _, err = config.ParseHA(filepath.Join(dir, config.HAFile), data); err != nil {
			return err
		}
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		var err error
		switch {
		case name == config.HAFile:
		case name == "authkeys":
			_, _, err = config.ParseAuthkeys(p, data)
		case name == config.ResourcesFile:
			if ha != nil {
				_, err = config.ParseResources(p, data, ha, instances.Builtin())
			}
		case kind == "mon":
			_, err = instances.ParseMon(p, data)
		default: // ldirectord's, and keepalived's virtual servers
			_, err = instances.ParseLdirectord(p, data)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// completeCheck checks the written directory as `vigil config check -c
// DIR --node NODE` does (node: the one imported for, else ha.toml's, else its
// first member): an import may leave it incomplete (an ldirectord
// instance haresources names, not imported yet; no ha.toml yet).
// It returns the node it checked as ("" when the directory names it).
func completeCheck(dir, node string) (*config.Config, string, error) {
	if node == "" {
		if data, err := os.ReadFile(filepath.Join(dir, config.HAFile)); err == nil {
			if ha, _, err := config.ParseHA(config.HAFile, data); err == nil && ha.Node == "" {
				for _, n := range ha.Nodes {
					if n.Role == "member" {
						node = n.Name
						break
					}
				}
			}
		}
	}
	cfg, err := config.Load(dir, instances.Options(node))
	if err != nil {
		return nil, node, err
	}
	// and as config check does, each resource through its plugin
	errs, warns := validateResources(cfg, io.Discard)
	if len(errs) > 0 {
		return nil, node, errs
	}
	cfg.Warnings = append(cfg.Warnings, warns...)
	return cfg, node, nil
}

// strlist collects a repeated flag's values.
type strlist []string

func (l *strlist) String() string     { return strings.Join(*l, ",") }
func (l *strlist) Set(s string) error { *l = append(*l, s); return nil }
