package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/internal/instances"
	"github.com/vigil-ha/vigil/internal/testutil"
)

func vigil(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestConfigCheck(t *testing.T) {
	code, out, errs := vigil("config", "check", "-c", testutil.ConfigCopy(t, "../../etc/vigil"), "--node", "lvs1")
	if code != exitOK || !strings.Contains(out, `OK — cluster "lvs", 2 nodes (this node lvs1), 2 heartbeat media, 1 group`) {
		t.Errorf("example config: code %d\n%s%s", code, out, errs)
	}
	// The classic pair the install puts in /etc/vigil fails over: no
	// warning (issue 25: it lacked two_node, and `config check` said so).
	if errs != "" {
		t.Errorf("the example director pair draws warnings:\n%s", errs)
	}
	dir := t.TempDir()
	ha, _ := os.ReadFile("../../etc/vigil/ha.toml")
	bad := strings.Replace(string(ha), `deadtime  = "700ms"`, `deadtime  = "400ms"`, 1) + "\nbogus = true\n"
	if err := os.WriteFile(filepath.Join(dir, "ha.toml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = vigil("config", "check", "-c", dir, "--node", "lvs1")
	if code != exitError {
		t.Errorf("bad config: code %d, want %d", code, exitError)
	}
	bogus := fmt.Sprintf(":%d: raft.bogus", strings.Count(string(ha), "\n")+2) // the appended line, inside [raft]
	if i, j := strings.Index(errs, ":11: warntime"), strings.Index(errs, bogus); i < 0 || j < i {
		t.Errorf("errors not in line order:\n%s", errs)
	}
	for _, want := range []string{"ha.toml:12: deadtime: 400ms is not comfortably above keepalive 200ms", "ha.toml" + bogus + ": unknown key"} {
		if !strings.Contains(errs, want) {
			t.Errorf("missing %q in:\n%s", want, errs)
		}
	}
}

// config check has each resource's plugin validate it (issue 22): a bad
// IPaddr label is an error at its line, not a failed start on some node
// later; a script this node lacks is a warning; -plugins=false reads the
// files only.
func TestConfigCheckAsksPlugins(t *testing.T) {
	dir := testutil.ConfigCopy(t, "../../etc/vigil")
	path := filepath.Join(dir, "resources.toml")
	res, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vip := `"IPaddr::10.0.0.3/24/eth0",`
	line := strings.Count(string(res[:strings.Index(string(res), vip)]), "\n") + 1
	bad := strings.Replace(string(res), vip, `{ type = "IPaddr", params = { ip = "10.0.0.3", label = "eth0:far-too-long" } }, "no-such-script",`, 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := vigil("config", "check", "-c", dir, "--node", "lvs1")
	want := fmt.Sprintf("resources.toml:%d: group[0].resources[0]: IPaddr_10.0.0.3 (IPaddr): label \"eth0:far-too-long\"", line)
	if code != exitError || !strings.Contains(errs, want) {
		t.Errorf("bad label: code %d, want %d and %q in:\n%s", code, exitError, want, errs)
	}
	code, out, errs := vigil("config", "check", "--plugins=false", "-c", dir, "--node", "lvs1")
	if code != exitOK || !strings.Contains(out, "OK") || errs != "" {
		t.Errorf("--plugins=false: code %d\n%s%s", code, out, errs)
	}
	fixed := strings.Replace(bad, "eth0:far-too-long", "eth0:vip", 1)
	if err := os.WriteFile(path, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = vigil("config", "check", "-c", dir, "--node", "lvs1")
	if want := "warning: " + path + fmt.Sprintf(":%d: group[0].resources[1]: no-such-script (script): ERR_INSTALLED", line); code != exitOK || !strings.Contains(errs, want) {
		t.Errorf("missing script: code %d, want %d and %q in:\n%s", code, exitOK, want, errs)
	}
}

func TestStatusUnreachable(t *testing.T) {
	code, _, errs := vigil("status", "-s", filepath.Join(t.TempDir(), "none.sock"))
	if code != exitUnreachable || !strings.HasPrefix(errs, "vigil status: daemon not running at ") || !strings.Contains(errs, "systemctl start vigil") || strings.Contains(errs, "http") {
		t.Errorf("code %d, stderr %q", code, errs)
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := vigil(); code != exitError {
		t.Errorf("no args: code %d", code)
	}
	if code, _, errs := vigil("frobnicate"); code != exitError || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command: %d %q", code, errs)
	}
	if code, out, _ := vigil("version"); code != exitOK || !strings.HasPrefix(out, "vigil ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// The seed's heartbeat, ldirectord and mon files become a directory that
// `vigil config check` accepts; the secret is written 0600; an existing
// file is not overwritten without -f.
func TestImportSeed(t *testing.T) {
	seed, out := "../../legacy/testdata/seed", t.TempDir()
	code, stdout, errs := vigil("import", "heartbeat", "-d", seed, "-o", out, "--address", "lvs1=10.0.0.1", "--address", "LVS2=10.0.0.2")
	// ldirectord::ldirectord and mon::mon are not imported yet: no
	// "checked: OK" for the directory.
	if code != exitOK || !strings.Contains(stdout, "ha.cf:16: unsupported respawn hacluster /usr/lib/heartbeat/ipfail") ||
		!strings.Contains(stdout, "haresources:2: caveat") || strings.Contains(stdout, "checked: OK") || !strings.Contains(stdout, "not complete yet") {
		t.Fatalf("import heartbeat: %d\n%s%s", code, stdout, errs)
	}
	checkSaysWhatImportSaid(t, stdout)
	if st, err := os.Stat(filepath.Join(out, "authkeys")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("authkeys: %v %v", st.Mode(), err)
	}
	for _, args := range [][]string{{"ldirectord", "--name", "ldirectord", seed + "/ldirectord.cf"}, {"mon", seed + "/mon.cf"}} {
		if code, stdout, errs := vigil(append([]string{"import", args[0], "-o", out}, args[1:]...)...); code != exitOK || strings.Contains(stdout, "checked: OK") == (args[0] == "ldirectord") {
			t.Fatalf("import %s: %d\n%s%s", args[0], code, stdout, errs)
		}
	}
	if code, stdout, errs := vigil("config", "check", "-c", out, "--node", "lvs2"); code != exitOK || !strings.Contains(stdout, "1 group\n") {
		t.Errorf("config check of the import: %d\n%s%s", code, stdout, errs)
	}
	if code, _, errs := vigil("import", "mon", "-o", out, seed+"/mon.cf"); code != exitError || !strings.Contains(errs, "exists") {
		t.Errorf("overwrite without -f: %d %s", code, errs)
	}
}

// checkSaysWhatImportSaid runs the config check command an import's
// "not complete yet" line names, as the operator would copy it: it must
// fail with exactly the errors the import listed (on a host not named
// like a node, a command without --node fails with one error more).
func checkSaysWhatImportSaid(t *testing.T, stdout string) {
	t.Helper()
	_, rest, ok := strings.Cut(stdout, "not complete yet")
	if !ok {
		t.Fatalf("no 'not complete yet' in\n%s", stdout)
	}
	_, cmd, _ := strings.Cut(rest, "`")
	cmd, listed, _ := strings.Cut(cmd, "` says:\n")
	args := strings.Fields(cmd)
	if len(args) < 3 || args[0] != "vigil" {
		t.Fatalf("no command in %q", rest)
	}
	code, _, errs := vigil(args[1:]...)
	if code != exitError || errs != listed {
		t.Errorf("%s: exit %d, says\n%s\nthe import listed\n%s", cmd, code, errs, listed)
	}
}

// import --json (issue 25.2: --json always prints JSON): every
// directive's outcome, the files written and whether the directory is
// complete; a refusal is an error object with its lines and the report.
func TestImportJSON(t *testing.T) {
	seed, out := "../../legacy/testdata/seed", t.TempDir()
	var fail importFailure
	code, stdout, _ := vigil("import", "heartbeat", "-d", seed, "-o", out, "--json")
	if err := json.Unmarshal([]byte(stdout), &fail); err != nil || code != exitError || fail.Exit != exitError ||
		!strings.HasPrefix(fail.Error, "nothing written") || len(fail.Errors) != 2 || !strings.Contains(fail.Errors[0], "give --address lvs1=IP") || len(fail.Entries) < 10 {
		t.Fatalf("import heartbeat --json without addresses: %d %v\n%s", code, err, stdout)
	}
	imp := func(args ...string) importResult {
		t.Helper()
		var res importResult
		code, stdout, errs := vigil(append([]string{"import"}, append(args, "-o", out, "--json")...)...)
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != exitOK || len(res.Entries) == 0 {
			t.Fatalf("import %v --json: %d %v\n%s%s", args, code, err, stdout, errs)
		}
		return res
	}
	res := imp("heartbeat", "-d", seed, "--address", "lvs1=10.0.0.1", "--address", "LVS2=10.0.0.2")
	if res.Complete || len(res.Written) != 3 || res.Check != "vigil config check -c "+out+" --node lvs1" || len(res.CheckErrors) != 2 {
		t.Errorf("import heartbeat --json: %+v", res)
	}
	imp("ldirectord", "--name", "ldirectord", seed+"/ldirectord.cf")
	if res := imp("mon", seed+"/mon.cf"); !res.Complete || len(res.CheckErrors) != 0 || res.Written[0] != filepath.Join(out, "mon.toml") {
		t.Errorf("import mon --json, the last file: %+v", res)
	}
	fail = importFailure{}
	code, stdout, _ = vigil("import", "mon", seed+"/mon.cf", "-o", out, "--json")
	if err := json.Unmarshal([]byte(stdout), &fail); err != nil || code != exitError || !strings.Contains(fail.Error, "exists") {
		t.Errorf("import mon --json over a file: %d %v\n%s", code, err, stdout)
	}
	code, stdout, _ = vigil("import", "mon", "--bogus", "--json")
	if err := json.Unmarshal([]byte(stdout), &fail); err != nil || code != exitError || fail.Error != "flag provided but not defined: -bogus" {
		t.Errorf("import mon --bogus --json: %d %v\n%s", code, err, stdout)
	}
}

// An import says "checked: OK" only when config check would: also when
// a plugin refuses a resource the files alone allow (a label longer than
// the kernel takes).
func TestImportCheckedByPlugins(t *testing.T) {
	seed, in, out := "../../legacy/testdata/seed", t.TempDir(), t.TempDir()
	for _, f := range []string{"ha.cf", "authkeys"} {
		b, err := os.ReadFile(filepath.Join(seed, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(in, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	haresources := "lvs1 IPaddr::10.0.0.3/24/eth0:far-too-long-a-label\n"
	if err := os.WriteFile(filepath.Join(in, "haresources"), []byte(haresources), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, errs := vigil("import", "heartbeat", "-d", in, "-o", out, "--address", "lvs1=10.0.0.1", "--address", "LVS2=10.0.0.2")
	if code != exitOK || strings.Contains(stdout, "checked: OK") || !strings.Contains(stdout, "not complete yet") || !strings.Contains(stdout, "resources.toml:") || !strings.Contains(stdout, "far-too-long-a-label") {
		t.Fatalf("import heartbeat: %d\n%s%s", code, stdout, errs)
	}
	if code, _, errs := vigil("config", "check", "-c", out, "--node", "lvs1"); code != exitError || !strings.Contains(errs, "far-too-long-a-label") {
		t.Errorf("config check of the import: %d\n%s", code, errs)
	}
}

// -1 with no daemon is a CRITICAL Nagios line, not an error message.
func TestStatusOneLineUnreachable(t *testing.T) {
	code, out, _ := vigil("status", "-1", "-s", filepath.Join(t.TempDir(), "none.sock"))
	if code != 2 || !strings.HasPrefix(out, "VIGIL CRITICAL - daemon not running at ") {
		t.Errorf("%d %q", code, out)
	}
}

// config check -v prints the configuration as an operator would write it
// (issue 25.2): for every shipped example its output, with no instance
// files beside it, is a resources.toml that loads to the same groups and
// instances and prints the same again.
func TestConfigCheckVerboseReloads(t *testing.T) {
	for dir, node := range map[string]string{"../../etc/vigil": "lvs1", "../../etc/examples/pair-witness": "lvs1", "../../etc/examples/three-node": "node1"} {
		src := testutil.ConfigCopy(t, dir)
		code, out, errs := vigil("config", "check", "-v", "-c", src, "--node", node)
		summary, printed, _ := strings.Cut(out, "\n")
		if code != exitOK || !strings.Contains(printed, "[[group]]") {
			t.Fatalf("%s: config check -v: %d\n%s%s", dir, code, out, errs)
		}
		again := testutil.ConfigCopy(t, dir)
		entries, err := os.ReadDir(again)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if n := e.Name(); strings.HasSuffix(n, ".toml") && n != "ha.toml" {
				if err := os.Remove(filepath.Join(again, n)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(again, "resources.toml"), []byte(printed), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out2, errs := vigil("config", "check", "-v", "-c", again, "--node", node)
		summary2, printed2, _ := strings.Cut(out2, "\n")
		if code != exitOK || printed2 != printed || strings.TrimPrefix(summary2, again) != strings.TrimPrefix(summary, src) {
			t.Errorf("%s: what config check -v printed does not load back the same: %d %s\n%s", dir, code, errs, out2)
		}
	}
}

// interruptAfter is stdout for a command that runs until ^C: the third
// write sends this process SIGINT, as the operator's ^C would.
type interruptAfter struct {
	bytes.Buffer
	writes int
}

func (w *interruptAfter) Write(p []byte) (int, error) {
	if w.writes++; w.writes == 3 {
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
	}
	return w.Buffer.Write(p)
}

// status --watch with --json is a stream a program reads: one JSON
// object a line, errors too, no terminal escapes (issue 25: --json always
// prints JSON; it drew each error object after a screen clear).
func TestStatusWatchJSON(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.sock")
	for _, form := range []string{"--json", "-1"} {
		var out interruptAfter
		code := run([]string{"status", "--watch", "-i", "10ms", "-s", none, form}, &out, io.Discard)
		text := out.String()
		if code != exitUnreachable || strings.Contains(text, "\x1b") {
			t.Errorf("status --watch %s: exit %d, %q", form, code, text)
		}
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if len(lines) < 3 {
			t.Errorf("status --watch %s: %d lines, want one per frame: %q", form, len(lines), text)
		}
		for _, l := range lines {
			var e jsonError
			if form == "-1" {
				if !strings.HasPrefix(l, "VIGIL CRITICAL - daemon not running at ") {
					t.Errorf("status --watch -1: %q", l)
				}
			} else if err := json.Unmarshal([]byte(l), &e); err != nil || e.Exit != exitUnreachable || !strings.HasPrefix(e.Error, "daemon not running at ") {
				t.Errorf("status --watch --json: line %q: %v", l, err)
			}
		}
	}
}

// keepalived's main sample through the CLI: a complete directory,
// checked, its secret 0600; without what a pair needs (the other node,
// the addresses multicast VRRP does not name, a secret the sample lacks)
// nothing is written; a configuration keepalived refuses writes nothing.
func TestImportKeepalived(t *testing.T) {
	out := t.TempDir()
	sample := "../../bin/samples/usr/share/doc/keepalived/samples/keepalived.conf.sample"
	keys := filepath.Join(t.TempDir(), "authkeys")
	os.WriteFile(keys, []byte("auth 1\n1 sha256 0123456789abcdef0123456789abcdef\n"), 0o600)
	code, stdout, errs := vigil("import", "keepalived", "-o", t.TempDir(), "--node", "lvs1", sample)
	if code != exitError || !strings.Contains(errs, "--peer NAME") || !strings.Contains(errs, "--address lvs1=IP") || !strings.Contains(errs, "--authkeys FILE") {
		t.Errorf("import keepalived without the pair: %d\n%s%s", code, stdout, errs)
	}
	code, stdout, errs = vigil("import", "keepalived", "-o", out, "--node", "lvs1", "--peer", "lvs2", "--address", "lvs1=10.0.0.1", "--address", "lvs2=10.0.0.2",
		"--ping-node", "10.0.0.254", "--authkeys", keys, sample)
	if code != exitOK || !strings.Contains(stdout, "checked: OK — "+out+" is a complete configuration for node lvs1") || !strings.Contains(stdout, "mapped      virtual_server 10.10.10.2 1358") {
		t.Fatalf("import keepalived: %d\n%s%s", code, stdout, errs)
	}
	for _, f := range []string{"ha.toml", "authkeys", "resources.toml", "lvs.toml"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if st, err := os.Stat(filepath.Join(out, "authkeys")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("authkeys: %v %v", st.Mode(), err)
	}
	if code, stdout, errs := vigil("config", "check", "-c", out, "--node", "lvs2"); code != exitOK || !strings.Contains(stdout, "2 nodes") {
		t.Errorf("config check of the import: %d\n%s%s", code, stdout, errs)
	}
	bad := filepath.Join(t.TempDir(), "keepalived.conf")
	os.WriteFile(bad, []byte("vrrp_instance A {\n  frobnicate\n}\n"), 0o644)
	empty := t.TempDir()
	if code, _, errs := vigil("import", "keepalived", "-o", empty, "--node", "lvs1", bad); code != exitError || !strings.Contains(errs, "Unknown keyword") {
		t.Errorf("refused config: %d %s", code, errs)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("files written for a refused config: %v", entries)
	}
}

// An import whose result fails the configuration check writes nothing:
// mon.cf names a monitor script by a relative path, which mon's importer
// passes through and the check refuses.
func TestImportCheckedBeforeWrite(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "mon.cf")
	data := "hostgroup web 10.0.0.1\n\nwatch web\n    service http\n        interval 30s\n        monitor ../../tmp/evil.monitor\n        period wd {Sun-Sat}\n            alert mail.alert ops\n"
	if err := os.WriteFile(cf, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, errs := vigil("import", "mon", "-o", out, cf)
	if code != exitError || !strings.Contains(errs, "nothing written") || !strings.Contains(errs, `"../../tmp/evil.monitor": give a plain name`) || strings.Contains(stdout, "checked: OK") {
		t.Errorf("import: %d\n%s%s", code, stdout, errs)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("files written for an import that fails the check: %v", entries)
	}
}

// `config check -v` prints TOML an operator would write (issue 25: the
// ldirectord and mon specs came out as escaped JSON strings), and it is
// the configuration itself: read back as resources.toml, with the
// instance files gone, it loads to the same groups.
func TestConfigCheckVerboseTOML(t *testing.T) {
	for example, node := range map[string]string{"../../etc/examples/pair-witness": "lvs1", "../../etc/vigil": "lvs1", "../../etc/examples/three-node": "node1"} {
		dir := testutil.ConfigCopy(t, example)
		code, out, errs := vigil("config", "check", "-v", "-c", dir, "--node", node)
		if code != exitOK || strings.Contains(out, `\"`) || !strings.Contains(out, "[[group]]") {
			t.Fatalf("%s: %d\n%s%s", example, code, out, errs)
		}
		before, err := config.Load(dir, instances.Options(node))
		if err != nil {
			t.Fatal(err)
		}
		_, printed, _ := strings.Cut(out, "\n")
		for _, f := range []string{"resources.toml", "www.toml", "lvs.toml"} {
			os.Remove(filepath.Join(dir, f))
		}
		if err := os.WriteFile(filepath.Join(dir, "resources.toml"), []byte(printed), 0o644); err != nil {
			t.Fatal(err)
		}
		after, err := config.Load(dir, instances.Options(node))
		if err != nil {
			t.Fatalf("%s: the printed TOML does not load: %v\n%s", example, err, printed)
		}
		for i := range before.Resources.Groups {
			a, b := after.Resources.Groups[i], before.Resources.Groups[i]
			ja, _ := json.Marshal(a.Resources) // nil and empty args alike
			jb, _ := json.Marshal(b.Resources)
			if a.Name != b.Name || a.Node != b.Node || !bytes.Equal(ja, jb) {
				t.Errorf("%s: read back, group %d differs:\n%+v\n%+v", example, i, a, b)
			}
		}
		if len(after.Resources.Groups) != len(before.Resources.Groups) {
			t.Errorf("%s: %d groups read back, want %d", example, len(after.Resources.Groups), len(before.Resources.Groups))
		}
	}
}

// Options after the file, as an operator types them (issue 25).
func TestImportOptionsLast(t *testing.T) {
	out := t.TempDir()
	if code, stdout, errs := vigil("import", "mon", "../../legacy/testdata/seed/mon.cf", "-o", out, "--name", "watch"); code != exitOK {
		t.Fatalf("import mon FILE -o DIR --name NAME: %d\n%s%s", code, stdout, errs)
	}
	if _, err := os.Stat(filepath.Join(out, "watch.toml")); err != nil {
		t.Error(err)
	}
}

// -1 with a bad line is Nagios' UNKNOWN, on stdout.
func TestStatusOneLineBadLine(t *testing.T) {
	for _, args := range [][]string{{"status", "-1", "--bogus"}, {"status", "extra", "--one-line"}} {
		code, out, errs := vigil(args...)
		if code != 3 || !strings.HasPrefix(out, "VIGIL UNKNOWN - vigil status: ") || errs != "" {
			t.Errorf("%q: %d %q %q", args, code, out, errs)
		}
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// What an operator sees from `config check -v` on the pair-with-witness
// example, and from the CLI's failures in words and in JSON (issue 25):
// testdata/cli.golden (go test -update rewrites it).
func TestCLIGolden(t *testing.T) {
	dir := testutil.ConfigCopy(t, "../../etc/examples/pair-witness")
	none := filepath.Join(t.TempDir(), "vigil.sock")
	var b strings.Builder
	for _, args := range [][]string{
		{"config", "check", "-v", "-c", dir, "--node", "lvs1"},
		{"move", "lvs", "lvs2", "-s", none},
		{"move", "lvs", "lvs2", "-s", none, "--json"},
		{"status", "-s", none, "--json"},
		{"status", "-s", none, "-1"},
		{"move", "lvs", "--json"},
		{"config", "check", "extra", "-c", dir},
		{"frobnicate", "--json"},
		{"version", "--json"},
		{"config", "--json"},
		{"move", "-h"},
		{"import", "-h"},
		{"import", "ldirectord", "-h"},
		{"config", "check", "--json", "-c", dir, "--node", "lvs1"},
		{"config", "check", "-c", dir, "--node", "nobody", "--json"},
		{"config", "check", "-c", dir, "-v", "--json"},
		{"resource", "run", "lvs/nope", "monitor", "-c", dir, "--node", "lvs1"},
		{"resource", "run", "lvs/nope", "monitor", "-c", dir, "--node", "lvs1", "--json"},
		{"monitor", "run", "tcp.monitor", "--json"},
		{"alert", "test", "--type", "bogus", "log"},
	} {
		code, out, errs := vigil(args...)
		shown := strings.Join(args, " ")
		b.WriteString("$ vigil " + shown + "    (exit " + fmt.Sprint(code) + ")\n" + out + errs + "\n")
	}
	got := strings.NewReplacer(dir, "DIR", none, "SOCK").Replace(b.String())
	path := filepath.Join("testdata", "cli.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("CLI output differs from %s (go test -update to accept):\n%s", path, got)
	}
}

// `vigil import ldirectord --ipvsadm /etc/default/ipvsadm` maps the sync
// daemon Debian's ipvsadm init script starts (ipvsadm --start-daemon) to
// the instance's [sync] table, checked with the rest; a DAEMON ipvsadm
// would refuse writes nothing.
func TestImportIpvsadmSync(t *testing.T) {
	seed, out := "../../legacy/testdata/seed", t.TempDir()
	if code, stdout, errs := vigil("import", "heartbeat", "-d", seed, "-o", out, "--address", "lvs1=10.0.0.1", "--address", "LVS2=10.0.0.2"); code != exitOK {
		t.Fatalf("import heartbeat: %d\n%s%s", code, stdout, errs)
	}
	defaults := filepath.Join(t.TempDir(), "ipvsadm")
	write := func(s string) {
		if err := os.WriteFile(defaults, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# ipvsadm\nAUTO=\"false\"\nDAEMON=\"slave\"\nIFACE=\"eth1\"\n")
	if code, stdout, errs := vigil("import", "ldirectord", "-o", out, "--name", "ldirectord", "--ipvsadm", defaults, seed+"/ldirectord.cf"); code != exitError ||
		!strings.Contains(stdout+errs, defaults+":3: DAEMON") {
		t.Fatalf("DAEMON=slave: %d\n%s%s", code, stdout, errs)
	}
	if _, err := os.Stat(filepath.Join(out, "ldirectord.toml")); err == nil {
		t.Fatal("written despite the refusal")
	}
	write("# ipvsadm\nAUTO=\"false\"\nDAEMON=\"master\"\nIFACE=\"eth1\"\nSYNCID=\"7\"\n")
	if code, stdout, errs := vigil("import", "ldirectord", "-o", out, "--name", "ldirectord", "--ipvsadm", defaults, seed+"/ldirectord.cf"); code != exitOK ||
		!strings.Contains(stdout, defaults+":3: caveat") || !strings.Contains(stdout, defaults+":5: mapped      SYNCID") {
		t.Fatalf("DAEMON=master: %d\n%s%s", code, stdout, errs)
	}
	b, err := os.ReadFile(filepath.Join(out, "ldirectord.toml"))
	if err != nil || !strings.Contains(string(b), "[sync]\ninterface = \"eth1\"\nsync_id = 7\n") {
		t.Fatalf("ldirectord.toml (%v):\n%s", err, b)
	}
	if code, stdout, errs := vigil("import", "mon", "-o", out, seed+"/mon.cf"); code != exitOK {
		t.Fatalf("import mon: %d\n%s%s", code, stdout, errs)
	}
	if code, stdout, errs := vigil("config", "check", "-c", out, "--node", "lvs2"); code != exitOK {
		t.Errorf("config check with the [sync] table: %d\n%s%s", code, stdout, errs)
	}
}

// TestWatchStatusInterrupted: ^C during a frame ends the watch with exit
// 0 and without the frame's "canceled" error; a frame that failed before
// ^C keeps its exit code.
func TestWatchStatusInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	frames := 0
	code := watchStatus(ctx, time.Millisecond, false, func(ctx context.Context, w io.Writer) int {
		frames++
		if frames == 2 {
			cancel() // the operator's ^C, while this frame's request runs
			fmt.Fprintln(w, "cannot reach the daemon: context canceled")
			return exitError
		}
		fmt.Fprintln(w, "frame")
		return exitOK
	}, &out)
	if code != exitOK || out.String() != "frame\n" {
		t.Fatalf("^C during a frame: exit %d, output %q; want 0 and the first frame only", code, out.String())
	}

	ctx, cancel = context.WithCancel(context.Background())
	code = watchStatus(ctx, time.Hour, false, func(_ context.Context, w io.Writer) int {
		fmt.Fprintln(w, "cannot reach the daemon")
		return exitError
	}, cancelOnWrite(cancel)) // ^C once the failed frame is shown
	if code != exitError {
		t.Fatalf("^C after a failed frame: exit %d, want %d", code, exitError)
	}
}

type cancelOnWrite context.CancelFunc

func (c cancelOnWrite) Write(p []byte) (int, error) {
	c()
	return len(p), nil
}
