package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/testutil"
)

func vigil(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestConfigCheck(t *testing.T) {
	code, out, errs := vigil("config", "check", "-c", testutil.ConfigCopy(t, "../../etc/vigil"), "--node", "lvs1")
	if code != exitOK || !strings.Contains(out, `OK — cluster "lvs", 2 nodes (this node lvs1), 2 heartbeat media, 1 groups`) {
		t.Errorf("example config: code %d\n%s%s", code, out, errs)
	}
	dir := t.TempDir()
	ha, _ := os.ReadFile("../../etc/vigil/ha.toml")
	bad := strings.Replace(string(ha), `deadtime  = "1s"`, `deadtime  = "400ms"`, 1) + "\nbogus = true\n"
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

func TestStatusUnreachable(t *testing.T) {
	code, _, errs := vigil("status", "-s", filepath.Join(t.TempDir(), "none.sock"))
	if code != exitUnreachable || !strings.Contains(errs, "daemon unreachable") {
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
