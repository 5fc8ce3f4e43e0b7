package lab_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/api"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/test/lab"
)

// webviewPNG, when set, is where TestWebView writes its screenshot
// (`make webview-png` regenerates docs/webview.png with it).
const webviewPNG = "VIGIL_WEBVIEW_PNG"

// TestWebView is the live web view (issue 25 item 4) in a real browser,
// Debian's chromium, headless, driven over the DevTools protocol: the
// seed's director pair with a witness (VIP, ldirectord::www through the
// userspace director, mon watching the real servers), web_view on every
// node's metrics listener, the page opened on n2.
//   - The page loads and shows the cluster: nodes, the group on n1, the
//     virtual service with both real servers up (checked by the standby
//     too).
//   - The keyboard reaches the groups: Tab from the top of the page, and
//     the skip link then Tab; the focused row is outlined.
//   - n1 crashes: the page shows lvs running on n2 within a second of the
//     cluster committing n2's report that it runs it, and the failover in
//     its timeline; mon's watches appear (mon runs with the group).
func TestWebView(t *testing.T) {
	l := needLab(t)
	if _, err := os.Stat("/usr/lib/mon/mon.d/http.monitor"); err != nil {
		t.Fatal("Debian's mon is not installed (make deps installs it): ", err)
	}
	alerts := filepath.Join(l.Dir, "alerts.log")
	var mon strings.Builder
	for i := range 2 {
		fmt.Fprintf(&mon, `[[watch]]
group = "rs%d"
  [[watch.service]]
  name = "http"
  interval = "1s"
  monitor = "http.monitor -p 80 -u /.testpage -t 5"
    [[watch.service.period]]
    alert = ["file.alert %s"]
`, i+1, alerts)
	}
	fmt.Fprintf(&mon, "[hostgroup]\nrs1 = [%q]\nrs2 = [%q]\n", lab.RealIP1, lab.RealIP2)
	res := strings.Replace(lab.LVSResources(), "\n]\n", "\n  { type = \"mon\", params = { config = \"lvs\" }, interval = \"500ms\" },\n]\n", 1)
	// Every node's own loopback (each is a namespace of its own).
	extra := fmt.Sprintf("metrics_listen = \"127.0.0.1:9470\"\nweb_view = true\n[[alert]]\nevents = [\"node\", \"failover\"]\nsend = [\"file.alert %s\"]\n", alerts)
	c := &lab.Cluster{Name: "lvslab", Keepalive: coreKeepalive, Deadtime: coreDeadtime, Secret: "lab-secret-0123456789abcdef", Extra: extra,
		Resources: res, Files: map[string]string{"www.toml": lab.WWW(), "lvs.toml": mon.String()}, Nodes: []lab.NodeSpec{{Name: "n3", Role: "witness"}}}
	nodes := l.Trio(vigilBin, c, true, nil)
	l.AddWebServer("rs1", lab.RealIP1)
	l.AddWebServer("rs2", lab.RealIP2)
	l.AddWebServer("sorry", lab.SorryIP)

	b, err := l.StartBrowser("n2", 1100, 900)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Navigate("http://127.0.0.1:9470/web/"); err != nil {
		t.Fatal(err)
	}
	// page polls an expression in the page until it is true.
	page := func(what string, timeout time.Duration, expr string) {
		t.Helper()
		// The page updates itself: polling it is reading, not pacing.
		if err, ok := testutil.EventuallyOK(timeout, func() (error, bool) {
			var ok bool
			err := b.Eval(expr, &ok)
			return err, ok
		}); !ok {
			var text string
			_ = b.Eval("document.body.innerText", &text)
			t.Fatalf("%s: not shown after %s (%v); the page says:\n%s", what, timeout, err, text)
		}
	}
	row := func(key string) string { return fmt.Sprintf("document.querySelector('[data-key=%q]')", key) }
	page("the page, live", 20*time.Second, `document.getElementById("conn").textContent === "live" && document.title === "Vigil lvslab — n2"`)
	page("lvs running on n1", 20*time.Second, row("group/lvs")+`?.dataset.shown === "n1:running"`)
	page("the nodes", 5*time.Second, `["n1","n2","n3"].every(n => document.querySelector('[data-key="node/'+n+'"]')?.dataset.cluster === "online")`)
	svc := row("service/ldirectord_www TCP " + lab.VIP + ":80")
	page("both real servers up on the standby", 15*time.Second, svc+`?.innerText.split("\n").filter(l => /\bup\b/.test(l)).length === 2`)

	// The keyboard: Tab from the top reaches the group's row (through
	// the skip link, the section links and the nodes' rows).
	focused := func() string {
		var key string
		if err := b.Eval(`document.activeElement.dataset.key || document.activeElement.id || document.activeElement.textContent`, &key); err != nil {
			t.Fatal(err)
		}
		return key
	}
	var path []string
	for len(path) < 30 && (len(path) == 0 || path[len(path)-1] != "group/lvs") {
		if err := b.Key("Tab", false); err != nil {
			t.Fatal(err)
		}
		path = append(path, focused())
	}
	if path[len(path)-1] != "group/lvs" {
		t.Fatalf("Tab never reached the group: %q", path)
	}
	if path[0] != "Skip to groups" {
		t.Errorf("the first Tab goes to %q, want the skip link", path[0])
	}
	var outline string
	if err := b.Eval(`getComputedStyle(document.activeElement).outlineStyle + " " + getComputedStyle(document.activeElement).outlineWidth`, &outline); err != nil || outline != "solid 3px" {
		t.Errorf("the focused row's outline: %q %v, want it visible", outline, err)
	}
	var label string
	if err := b.Eval(`document.activeElement.getAttribute("aria-label")`, &label); err != nil || label != "Group lvs: running on n1, preferred n1" {
		t.Errorf("the group row's label: %q %v", label, err)
	}
	t.Logf("Tab order to the group: %q", path)
	// The skip link, on a fresh page: Tab, Enter, Tab.
	if err := b.Navigate("http://127.0.0.1:9470/web/"); err != nil {
		t.Fatal(err)
	}
	page("the page again", 10*time.Second, row("group/lvs")+`?.dataset.shown === "n1:running"`)
	for _, k := range []string{"Tab", "Enter", "Tab"} {
		if err := b.Key(k, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := focused(); got != "group/lvs" {
		t.Errorf("skip link, Enter, Tab: focus on %q, want the group", got)
	}

	// The failover, as the page shows it.
	l.Crash(nodes["n1"])
	st, err := nodes["n2"].WaitStatus(15*time.Second, func(s *api.Status) bool { return groupOn(s, "lvs") == "n2" })
	if err != nil {
		t.Fatalf("lvs not running on n2 after n1's crash: %v\n%s", err, rendered(st))
	}
	took := group(st, "lvs").Reports["n2"].At
	page("lvs running on n2", 5*time.Second, row("group/lvs")+`?.dataset.shown === "n2:running"`)
	var since string
	if err := b.Eval(row("group/lvs")+`.dataset.shownSince`, &since); err != nil {
		t.Fatal(err)
	}
	var shownMs int64
	if _, err := fmt.Sscan(since, &shownMs); err != nil {
		t.Fatalf("shown since %q: %v", since, err)
	}
	lag := time.UnixMilli(shownMs).Sub(took)
	t.Logf("the page showed lvs on n2 %v after the cluster committed n2's report", lag.Round(time.Millisecond))
	if lag > time.Second {
		t.Errorf("the page showed the failover %v after it happened, want within 1s", lag)
	}
	page("the failover in the timeline", 5*time.Second, `[...document.querySelectorAll("#events li")].some(li => li.dataset.kind === "failover" && li.textContent.includes("lvs: n1 → n2"))`)
	page("n1 offline", 5*time.Second, row("node/n1")+`?.dataset.cluster === "offline"`)
	// mon runs with the group: its watches show once n2 runs it.
	page("mon's watches", 10*time.Second, `document.querySelectorAll("#watch-rows tr").length === 2`)
	page("n2 directing with both reals up", 10*time.Second, svc+`?.innerText.includes("directing") && `+svc+`.innerText.split("\n").filter(l => /\bup\b/.test(l)).length === 2`)

	png, err := b.Screenshot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(l.Dir, "webview.png")
	if p := os.Getenv(webviewPNG); p != "" {
		out = p
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}
