package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-ha/vigil/cluster/config"
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
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: vigil import heartbeat|ldirectord|mon|keepalived [options] (vigil import KIND -h)")
		return exitError
	}
	kind := args[0]
	fs := newFlags("import "+kind, stderr)
	out := fs.String("o", ".", "directory to write Vigil's files into")
	force := fs.Bool("f", false, "overwrite existing files")
	var files map[string][]byte
	var report *legacy.Report
	var checkNode string // keepalived: the node resources.toml may name
	var err error
	switch kind {
	case "heartbeat":
		dir := fs.String("d", "/etc/ha.d", "heartbeat's directory (ha.cf, haresources, authkeys)")
		addrs := addresses{}
		fs.Var(addrs, "address", "a node's address, NAME=IP (repeat for each node; heartbeat found peers by name)")
		if fs.Parse(args[1:]) != nil {
			return exitError
		}
		in := legacy.HeartbeatInput{Addresses: addrs,
			HACfPath: filepath.Join(*dir, "ha.cf"), HAResourcesPath: filepath.Join(*dir, "haresources"), AuthkeysPath: filepath.Join(*dir, "authkeys")}
		if in.HACf, err = os.ReadFile(in.HACfPath); err != nil {
			fmt.Fprintln(stderr, "vigil import:", err)
			return exitError
		}
		in.HAResources, _ = os.ReadFile(in.HAResourcesPath) // optional: a cluster without resources
		in.Authkeys, _ = os.ReadFile(in.AuthkeysPath)
		var h *legacy.Heartbeat
		h, err = legacy.ImportHeartbeat(in)
		files, report = h.Files, &h.Report
	case "keepalived":
		host, _ := os.Hostname()
		node := fs.String("node", host, "this node's name: the preferred node of the instances that start as MASTER here")
		name := fs.String("name", "lvs", "the ldirectord instance the virtual servers become (NAME.toml)")
		if fs.Parse(args[1:]) != nil {
			return exitError
		}
		path := "/etc/keepalived/keepalived.conf"
		if fs.NArg() == 1 {
			path = fs.Arg(0)
		} else if fs.NArg() > 1 {
			fmt.Fprintln(stderr, "usage: vigil import keepalived [-o DIR] [--node NAME] [--name NAME] [FILE]")
			return exitError
		}
		data, rerr := os.ReadFile(path)
		if rerr != nil {
			fmt.Fprintln(stderr, "vigil import:", rerr)
			return exitError
		}
		var k *legacy.Keepalived
		k, err = legacy.ImportKeepalived(legacy.KeepalivedInput{Path: path, Data: data, Node: strings.ToLower(*node), Name: *name,
			ReadFile: os.ReadFile, Glob: filepath.Glob})
		files, report = k.Files, &k.Report
		checkNode = strings.ToLower(*node)
	case "ldirectord", "mon":
		name := fs.String("name", "", "the instance's name: NAME.toml, used as "+kind+"::NAME (default: the file's name)")
		if fs.Parse(args[1:]) != nil {
			return exitError
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
		} else {
			toml, report, err = legacy.ImportMon(path, data)
		}
		files = map[string][]byte{*name + ".toml": toml}
	default:
		fmt.Fprintf(stderr, "vigil import: unknown kind %q (heartbeat, ldirectord, mon, keepalived)\n", kind)
		return exitError
	}
	report.Write(stdout)
	if err != nil {
		fmt.Fprintln(stderr, "vigil import: nothing written; the old tool refuses these too:")
		fmt.Fprintln(stderr, err)
		return exitError
	}
	// Check first: nothing is written unless the whole result passes.
	if err := checkImported(*out, kind, checkNode, files); err != nil {
		fmt.Fprintf(stderr, "vigil import: nothing written; the result does not pass the configuration check:\n%v\n", err)
		return exitError
	}
	if err := writeImported(*out, files, *force); err != nil {
		fmt.Fprintln(stderr, "vigil import:", err)
		return exitError
	}
	for name := range files {
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*out, name))
	}
	fmt.Fprintf(stdout, "checked: OK; then run: vigil config check -c %s\n", *out)
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
// check` does: ha.toml, authkeys and resources.toml for heartbeat (the
// ldirectord and mon instances they name are checked once imported, by
// config check), the instance file for the others.
func checkImported(dir, kind, node string, files map[string][]byte) error {
	for name, data := range files {
		p := filepath.Join(dir, name)
		var err error
		switch {
		case kind == "ldirectord" || kind == "keepalived" && name != config.ResourcesFile:
			_, err = config.ParseLdirectord(p, data)
		case kind == "keepalived":
			// keepalived.conf names no nodes: check the groups against
			// the one node given.
			ha := &config.HA{}
			if node != "" {
				ha.Nodes = []config.Node{{Name: node}}
			}
			_, err = config.ParseResources(p, data, ha)
		case kind == "mon":
			_, err = config.ParseMon(p, data)
		case name == config.HAFile:
			var ha *config.HA
			if ha, _, err = config.ParseHA(p, data); err == nil && files["resources.toml"] != nil {
				_, err = config.ParseResources(filepath.Join(dir, "resources.toml"), files["resources.toml"], ha)
			}
		case name == "authkeys":
			_, _, err = config.ParseAuthkeys(p, data)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
