package script

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// The adapters are called in-process here for the exhaustive tables; the
// same code runs behind a real plugin process with the Debian agents in
// plugins/builtin.

func writeScript(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), mode); err != nil {
		t.Fatal(err)
	}
}

// Every row of LEGACY.md §2.5's table of ResourceManager status results.
func TestStatusRunning(t *testing.T) {
	for out, want := range map[string]bool{
		"foo is running":               true,
		"foo Running":                  true,
		"foo is not running":           false,
		"foo is NOT   RUNNING":         false,
		"OK":                           true,
		"foo is stopped":               false,
		"":                             false,
		"foo notrunning":               true,
		"NOT OK":                       true,
		"ok":                           false,
		"foo dead but pid file exists": false,
		"INFO:  Running OK":            true,
		"INFO:  Resource is stopped":   false,
	} {
		if got := StatusRunning(out); got != want {
			t.Errorf("StatusRunning(%q) = %v, want %v", out, got, want)
		}
	}
}

func TestHeartbeatConventions(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "argv")
	hb := &Heartbeat{HADir: filepath.Join(dir, "ha.d"), InitDir: filepath.Join(dir, "init.d")}
	// Status exits 3 while printing "running": the text wins (§2.5).
	rec := fmt.Sprintf(`echo "$0 $*|$HA_CURHOST|$HA_RESOURCEDIR" >> %s
case "$@" in *status) [ -f %[2]s.on ] && { echo "svc Running"; exit 3; }; echo "svc is stopped";; esac
case "$@" in *start) touch %[2]s.on;; *stop) rm -f %[2]s.on;; esac
exit 0
`, record, filepath.Join(dir, "state"))
	writeScript(t, filepath.Join(hb.HADir, "resource.d", "svc"), rec, 0o755)
	writeScript(t, filepath.Join(hb.InitDir, "svc"), "exit 9\n", 0o755)         // shadowed by resource.d
	writeScript(t, filepath.Join(hb.HADir, "resource.d", "lsbonly"), "", 0o644) // not executable: skipped
	writeScript(t, filepath.Join(hb.InitDir, "lsbonly"), rec, 0o755)

	ctx := context.Background()
	in := &pb.Instance{Id: "svc", Type: "svc", Args: []string{"first", "a1"}}
	mustCode := func(res *pb.Result, err error, want pb.Code) {
		t.Helper()
		if err != nil || res.Code != want {
			t.Fatalf("%v %v, want %s", res, err, want)
		}
	}
	res, err := hb.Start(ctx, in)
	mustCode(res, err, pb.Code_SUCCESS)
	res, err = hb.Monitor(ctx, in)
	mustCode(res, err, pb.Code_SUCCESS)
	res, err = hb.Start(ctx, in) // start again: the script's to make idempotent
	mustCode(res, err, pb.Code_SUCCESS)
	res, err = hb.Stop(ctx, in)
	mustCode(res, err, pb.Code_SUCCESS)
	res, err = hb.Start(ctx, &pb.Instance{Type: "lsbonly"})
	mustCode(res, err, pb.Code_SUCCESS)

	b, _ := os.ReadFile(record)
	host, _ := os.Hostname()
	rd := filepath.Join(hb.HADir, "resource.d")
	want := strings.Join([]string{
		rd + "/svc first a1 start", rd + "/svc first a1 status",
		rd + "/svc first a1 start", rd + "/svc first a1 stop",
		hb.InitDir + "/lsbonly start",
	}, "|"+strings.ToLower(host)+"|"+rd+"\n") + "|" + strings.ToLower(host) + "|" + rd + "\n"
	if string(b) != want {
		t.Fatalf("calls:\n%s\nwant:\n%s", b, want)
	}

	writeScript(t, filepath.Join(rd, "broken"), "echo oops >&2; exit 4\n", 0o755)
	res, err = hb.Stop(ctx, &pb.Instance{Type: "broken"})
	if err != nil || res.Code != pb.Code_ERR_GENERIC || res.Reason != "stop exited 4: oops" {
		t.Fatalf("failed stop: %v %v", res, err)
	}
	res, _ = hb.Monitor(ctx, &pb.Instance{Type: "missing"})
	if res.Code != pb.Code_NOT_RUNNING || !strings.Contains(res.Reason, "Cannot locate resource script missing") {
		t.Fatalf("missing script status: %v", res)
	}
	res, _ = hb.Validate(ctx, &pb.Instance{Type: "svc", Params: map[string]string{"a-b": "1"}})
	if res.Code != pb.Code_ERR_CONFIGURED {
		t.Fatalf("bad env name: %v", res)
	}
}

func TestOCFEnvironmentAndCodes(t *testing.T) {
	root := t.TempDir()
	envFile := filepath.Join(root, "env")
	agent := filepath.Join(root, "resource.d", "acme", "Thing")
	writeScript(t, agent, fmt.Sprintf(`env | grep -E '^(OCF_|PATH=)' | sort > %s
echo "$1" >> %s
[ -n "$OCF_RESKEY_code" ] && { echo "ocf-exit-reason:first" >&2; echo "ocf-exit-reason:the reason" >&2; exit $OCF_RESKEY_code; }
exit 0
`, envFile, envFile), 0o755)
	o := &OCF{Root: root}
	ctx := context.Background()
	in := &pb.Instance{Id: "t1", Type: "acme:Thing", Params: map[string]string{"ip": "10.0.0.3"}, TimeoutMs: 20000, IntervalMs: 10000}
	if res, err := o.Monitor(ctx, in); err != nil || res.Code != pb.Code_SUCCESS {
		t.Fatalf("%v %v", res, err)
	}
	b, _ := os.ReadFile(envFile)
	for _, want := range []string{"OCF_ROOT=" + root, "OCF_RA_VERSION_MAJOR=1", "OCF_RA_VERSION_MINOR=0",
		"OCF_RESOURCE_INSTANCE=t1", "OCF_RESOURCE_TYPE=Thing", "OCF_RESOURCE_PROVIDER=acme", "OCF_RESKEY_ip=10.0.0.3",
		"OCF_RESKEY_CRM_meta_timeout=20000", "OCF_RESKEY_CRM_meta_interval=10000", "OCF_EXIT_REASON_PREFIX=ocf-exit-reason:", "\nmonitor\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("agent environment lacks %q:\n%s", want, b)
		}
	}
	if _, err := o.Validate(ctx, in); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(envFile); !strings.Contains(string(b), "validate-all") {
		t.Errorf("validate ran %s", b)
	}
	for code := 0; code <= 12; code++ {
		in.Params["code"] = fmt.Sprint(code)
		res, err := o.Start(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want, reason := pb.Code(code), "the reason"
		if code > 9 {
			want = pb.Code_ERR_GENERIC
		}
		if res.Code != want || res.Reason != reason {
			t.Errorf("exit %d: %s %q, want %s %q", code, res.Code, res.Reason, want, reason)
		}
	}
	in.Params["code"] = ""
	if res, _ := o.Start(ctx, &pb.Instance{Id: "t", Type: "Thing"}); res.Code != pb.Code_ERR_INSTALLED {
		t.Errorf("bare type means provider heartbeat: %v", res)
	}
}

func TestLSBCodes(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, filepath.Join(dir, "svc"), `exit $CODE`+"\n", 0o755)
	l := &LSB{Dir: dir}
	ctx := context.Background()
	statusWant := map[int]pb.Code{0: pb.Code_SUCCESS, 1: pb.Code_NOT_RUNNING, 2: pb.Code_NOT_RUNNING,
		3: pb.Code_NOT_RUNNING, 4: pb.Code_ERR_GENERIC, 7: pb.Code_ERR_GENERIC, 150: pb.Code_ERR_GENERIC}
	startWant := map[int]pb.Code{0: pb.Code_SUCCESS, 1: pb.Code_ERR_GENERIC, 5: pb.Code_ERR_INSTALLED,
		6: pb.Code_ERR_CONFIGURED, 7: pb.Code_NOT_RUNNING, 8: pb.Code_ERR_GENERIC}
	for code, want := range statusWant {
		writeScript(t, filepath.Join(dir, "svc"), fmt.Sprintf("exit %d\n", code), 0o755)
		if res, err := l.Monitor(ctx, &pb.Instance{Type: "svc"}); err != nil || res.Code != want {
			t.Errorf("status exit %d: %v %v, want %s", code, res, err, want)
		}
	}
	for code, want := range startWant {
		writeScript(t, filepath.Join(dir, "svc"), fmt.Sprintf("exit %d\n", code), 0o755)
		if res, err := l.Start(ctx, &pb.Instance{Type: "svc"}); err != nil || res.Code != want {
			t.Errorf("start exit %d: %v %v, want %s", code, res, err, want)
		}
	}
	writeScript(t, filepath.Join(dir, "svc"), "exit 7\n", 0o755)
	if res, _ := l.Stop(ctx, &pb.Instance{Type: "svc"}); res.Code != pb.Code_SUCCESS {
		t.Errorf("stop of a stopped service: %v", res)
	}
}

// A script that outlives its timeout is killed with its children and the
// call reports DeadlineExceeded.
func TestScriptTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	writeScript(t, filepath.Join(dir, "slow"), fmt.Sprintf("sleep 100 & echo $! > %s; wait\n", pidFile), 0o755)
	l := &LSB{Dir: dir}
	start := time.Now()
	_, err := l.Start(context.Background(), &pb.Instance{Type: "slow", TimeoutMs: 300})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow script: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	b, _ := os.ReadFile(pidFile)
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid == 0 {
		t.Fatal("no child pid")
	}
	// The child was SIGKILLed; once its parent (the shell) is gone it is
	// reaped by init, so it is soon gone or a zombie (a SIGKILL takes
	// effect when the process next runs: on a loaded machine, a moment).
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("child %d, which survived the timeout, to be gone or a zombie (its state)", pid), func() (string, bool) {
		state := ""
		if syscall.Kill(pid, 0) == nil {
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if f := strings.Fields(string(st)); len(f) > 2 {
				state = f[2]
			}
		}
		return state, state == "" || state == "Z"
	})
}

func TestParseOCFMetaData(t *testing.T) {
	doc := `<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="ldirectord" version="1.0">
<version>1.0</version>
<shortdesc lang="en">Wrapper OCF Resource Agent for ldirectord</shortdesc>
<parameters>
<parameter name="configfile" required="1" unique="1"><shortdesc lang="en">configuration file path</shortdesc>
<content type="string" default="/etc/ha.d/ldirectord.cf" /></parameter>
</parameters>
<actions>
<action name="start" timeout="15" />
<action name="monitor" depth="0" timeout="20s" interval="10s" />
<action name="stop" timeout="2m" />
</actions>
</resource-agent>`
	m, err := ParseOCFMetaData(doc)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "ldirectord" || m.Description != "Wrapper OCF Resource Agent for ldirectord" || len(m.Parameters) != 1 ||
		!m.Parameters[0].Required || !m.Parameters[0].Unique || m.Parameters[0].Default != "/etc/ha.d/ldirectord.cf" {
		t.Fatalf("%+v", m)
	}
	got := fmt.Sprint(m.Actions[0].TimeoutMs, m.Actions[1].TimeoutMs, m.Actions[1].IntervalMs, m.Actions[2].TimeoutMs)
	if got != "15000 20000 10000 120000" {
		t.Fatalf("action times %s", got)
	}
	// OCF 1.1 marks: only the marked parameter reloads; without a reload
	// action nothing does.
	for doc, want := range map[string]string{
		`<resource-agent name="a"><parameters><parameter name="p" reloadable="1"/><parameter name="q"/></parameters><actions><action name="reload"/></actions></resource-agent>`: "true false",
		`<resource-agent name="a"><parameters><parameter name="p" reloadable="1"/><parameter name="q"/></parameters></resource-agent>`:                                           "false false",
	} {
		m, err := ParseOCFMetaData(doc)
		if err != nil || fmt.Sprint(m.Parameters[0].Reloadable, m.Parameters[1].Reloadable) != want {
			t.Errorf("%s: %v %v, want reloadable %s", doc, m, err, want)
		}
	}
	for _, bad := range []string{"", "not xml", "<resource-agent>", "<other name='x'/>"} {
		if _, err := ParseOCFMetaData(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseOCFMetaData(f *testing.F) {
	f.Add(`<resource-agent name="x"><parameters><parameter name="a"><content type="string"/></parameter></parameters><actions><action name="start" timeout="20s"/></actions></resource-agent>`)
	f.Add(`<resource-agent name="y" version="1"><actions><action name="stop" timeout="999999999999999999999"/></actions></resource-agent>`)
	f.Fuzz(func(t *testing.T, doc string) {
		m, err := ParseOCFMetaData(doc)
		if err == nil && m.Name == "" {
			t.Fatal("accepted without a name")
		}
	})
}

// The environment heartbeat 3.0.6 gives resource scripts (test/hbdiff
// compares it with the real daemon's): its directories, helpers on PATH,
// a debug log scripts may append to, the C locale.
func TestHeartbeatEnvironment(t *testing.T) {
	dir := t.TempDir()
	hb := &Heartbeat{HADir: filepath.Join(dir, "ha.d"), InitDir: filepath.Join(dir, "init.d")}
	out := filepath.Join(dir, "env")
	writeScript(t, filepath.Join(hb.HADir, "resource.d", "envdump"), "env > "+out+"\n", 0o755)
	if res, err := hb.Start(context.Background(), &pb.Instance{Type: "envdump", Params: map[string]string{"OCF_RESKEY_x": "1"}}); err != nil || res.Code != pb.Code_SUCCESS {
		t.Fatalf("%v %v", res, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"PATH=/usr/libexec/heartbeat:/usr/sbin:/usr/share/heartbeat:/usr/local/sbin:",
		"HA_DIR=" + hb.HADir + "\n", "HA_RESOURCEDIR=" + hb.HADir + "/resource.d\n", "HA_RCDIR=" + hb.HADir + "/rc.d\n",
		"HA_FUNCS=" + hb.HADir + "/shellfuncs\n", "HA_BIN=/usr/libexec/heartbeat\n", "HA_DEBUGLOG=/dev/null\n",
		"HA_DATEFMT=%Y/%m/%d_%T\t\n", "OCF_ROOT=/usr/lib/ocf\n", "OCF_AGENTS=/usr/lib/ocf/resource.d/heartbeat/\n",
		"LC_ALL=C\n", "HA_NICEFAILBACK=yes\n", "OCF_RESKEY_x=1\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("environment lacks %q:\n%s", want, b)
		}
	}
}
