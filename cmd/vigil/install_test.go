package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `make install` into a staging root: every file in place with its mode,
// a fresh random secret, an existing configuration kept, units systemd
// accepts, a man page groff renders without warnings, a completion script
// bash runs.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed (the README's commands use it): ", err)
	}
	root := t.TempDir()
	install := func() string {
		t.Helper()
		out, err := exec.Command("make", "-C", "../..", "--no-print-directory", "install", "DESTDIR="+root).CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		return string(out)
	}
	install()
	for path, mode := range map[string]os.FileMode{
		"usr/sbin/vigil": 0o755, "etc/vigil/authkeys": 0o600, "etc/vigil/ha.toml": 0o644, "etc/vigil/resources.toml": 0o644,
		"lib/systemd/system/vigil.service": 0o644, "lib/systemd/system/vigil-witness.service": 0o644,
		"usr/share/bash-completion/completions/vigil": 0o644, "usr/share/man/man8/vigil.8.gz": 0o644,
		"usr/share/doc/vigil/examples/pair-witness/ha.toml": 0o644, "usr/lib/vigil/plugins": os.ModeDir | 0o755,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil || fi.Mode()&(os.ModeDir|os.ModePerm) != mode {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode(), err, mode)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(root, "usr/share/doc/vigil/examples/*/authkeys")); len(matches) > 0 {
		t.Errorf("example secrets installed: %v", matches)
	}
	keys, _ := os.ReadFile(filepath.Join(root, "etc/vigil/authkeys"))
	example, _ := os.ReadFile("../../etc/vigil/authkeys")
	if string(keys) == string(example) || !strings.HasPrefix(string(keys), "auth 1\n1 sha256 ") || len(keys) < 80 {
		t.Errorf("installed authkeys is not a fresh secret")
	}
	bin := filepath.Join(root, "usr/sbin/vigil")
	if out, err := exec.Command(bin, "config", "check", "-c", filepath.Join(root, "etc/vigil"), "--node", "lvs1").CombinedOutput(); err != nil {
		t.Errorf("installed configuration: %v\n%s", err, out)
	}
	// A second install leaves an existing configuration alone.
	if err := os.WriteFile(filepath.Join(root, "etc/vigil/ha.toml"), []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := install(); !strings.Contains(out, "configuration left as it is") {
		t.Errorf("second install:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/vigil/ha.toml")); string(b) != "# mine\n" {
		t.Error("second install overwrote ha.toml")
	}

	// Completion: commands, fixed words, node names from ha.toml.
	complete := func(line string) string {
		t.Helper()
		script := `source "$1"; read -ra COMP_WORDS <<<"$2"; [ "${2: -1}" = " " ] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _vigil; echo "${COMPREPLY[*]}"`
		cmd := exec.Command("bash", "-c", script, "bash", filepath.Join(root, "usr/share/bash-completion/completions/vigil"), line)
		cmd.Env = append(os.Environ(), "VIGIL_CONFIG_DIR=../../etc/vigil")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("completion of %q: %v\n%s", line, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for line, want := range map[string]string{"vigil re": "ready reload resource", "vigil resource ": "run", "vigil monitor ": "run", "vigil alert ": "test", "vigil import ": "heartbeat ldirectord mon keepalived",
		"vigil standby ": "lvs1 lvs2", "vigil status --j": "--json"} {
		if got := complete(line); got != want {
			t.Errorf("complete %q: %q, want %q", line, got, want)
		}
	}

	// The man page renders without warnings and documents every command.
	if _, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command("sh", "-c", `gzip -dc "$1" | groff -man -Tutf8 -ww -P -cbou`, "sh", filepath.Join(root, "usr/share/man/man8/vigil.8.gz"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("groff: %v\n%s", err, stderr.String())
		}
		for _, c := range commands {
			if !strings.Contains(string(out), "\n       "+c.name) {
				t.Errorf("man page lacks %s", c.name)
			}
		}
	} else {
		t.Log("groff not installed: man page rendering not checked")
	}
	// systemd accepts the units (ExecStart pointed at the staged binary).
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		dir := t.TempDir()
		var units []string
		for _, u := range []string{"vigil.service", "vigil-witness.service"} {
			b, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system", u))
			p := filepath.Join(dir, u)
			os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/sbin/vigil", bin)), 0o644)
			units = append(units, p)
		}
		out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		// verify also loads units installed on the machine (Debian's
		// ldirectord unit warns about its KillMode): only what it says
		// about ours counts.
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			switch {
			case line == "":
			case strings.Contains(line, dir) || strings.Contains(line, "vigil"):
				t.Errorf("systemd-analyze verify: %s", line)
			default:
				t.Logf("systemd-analyze verify, about another unit: %s", line)
			}
		}
	} else {
		t.Log("systemd-analyze not installed: units not verified")
	}
}

// Every command in the table is one run knows, and the other way round.
func TestCommandTable(t *testing.T) {
	for _, c := range commands {
		if _, _, errs := vigil(c.name, "-h"); strings.Contains(errs, "unknown command") {
			t.Errorf("%s is in the table but run does not know it", c.name)
		}
	}
	for _, name := range []string{"unmove", "reload", "completion"} {
		if !strings.Contains(usage(), "\n  "+name) {
			t.Errorf("usage lacks %s", name)
		}
	}
}
