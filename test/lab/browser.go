package lab

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Browser is Debian's chromium, headless, driven over the DevTools
// protocol on a pipe (--remote-debugging-pipe: it reads commands on fd 3
// and writes answers and events on fd 4, each a JSON text ended by a NUL
// byte), so that no websocket client is needed. It runs in a namespace of
// the lab and has one page.
type Browser struct {
	proc    *Proc
	w       *os.File
	session string

	mu      sync.Mutex
	next    int
	waiting map[int]chan cdpAnswer
	err     error // the pipe broke
}

type cdpAnswer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Chromium is the browser the lab drives (`make deps` installs it).
const Chromium = "chromium"

// StartBrowser starts chromium in namespace node with a page of width ×
// height CSS pixels, and attaches to the page.
func (l *Lab) StartBrowser(node string, width, height int) (*Browser, error) {
	l.t.Helper()
	path, err := exec.LookPath(Chromium)
	if err != nil {
		return nil, fmt.Errorf("lab: the browser tests need Debian's chromium (make deps): %w", err)
	}
	// fd 3 (cmdR) is what chromium reads, fd 4 (outW) what it writes.
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		return nil, err
	}
	profile := filepath.Join(l.Dir, "chromium-"+node)
	args := []string{path, "--headless", "--remote-debugging-pipe", "--user-data-dir=" + profile,
		"--no-sandbox", // it runs as root in the lab
		"--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--metrics-recording-only",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--force-color-profile=srgb",
		"--lang=en-GB", fmt.Sprintf("--window-size=%d,%d", width, height), "about:blank"}
	b := &Browser{w: cmdW, waiting: map[int]chan cdpAnswer{}}
	b.proc = l.StartCmd(node, "chromium-"+node, func(c *exec.Cmd) {
		c.ExtraFiles = []*os.File{cmdR, outW}
		// Its own process group: Close ends the renderer and the other
		// helpers chromium forks with it.
		c.SysProcAttr.Setpgid = true
		c.Env = append(os.Environ(), "HOME="+profile)
	}, args...)
	cmdR.Close()
	outW.Close()
	go b.read(outR)
	l.t.Cleanup(b.Close)

	var target struct {
		TargetInfos []struct {
			TargetID string `json:"targetId"`
			Type     string `json:"type"`
		} `json:"targetInfos"`
	}
	if err := b.call("", "Target.getTargets", nil, &target); err != nil {
		return nil, err
	}
	id := ""
	for _, t := range target.TargetInfos {
		if t.Type == "page" {
			id = t.TargetID
		}
	}
	if id == "" {
		var created struct {
			TargetID string `json:"targetId"`
		}
		if err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
			return nil, err
		}
		id = created.TargetID
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": id, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	b.session = attached.SessionID
	if err := b.Call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// read hands each answer to its caller; events are not used.
func (b *Browser) read(r *os.File) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.err = fmt.Errorf("lab: chromium's DevTools pipe: %w", err)
			for id, ch := range b.waiting {
				close(ch)
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID int `json:"id"`
			cdpAnswer
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.cdpAnswer
		}
	}
}

// callTimeout bounds one DevTools command (a screenshot of a loaded
// machine included).
const callTimeout = 20 * time.Second

func (b *Browser) call(session, method string, params any, out any) error {
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return b.err
	}
	b.next++
	id := b.next
	ch := make(chan cdpAnswer, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := b.w.Write(append(data, 0)); err != nil {
		return fmt.Errorf("lab: chromium %s: %w", method, err)
	}
	select {
	case a, ok := <-ch:
		if !ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.err
		}
		if a.Error != nil {
			return fmt.Errorf("lab: chromium %s: %s (%d)", method, a.Error.Message, a.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(a.Result, out)
		}
		return nil
	case <-time.After(callTimeout):
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
		return fmt.Errorf("lab: chromium %s: no answer in %s", method, callTimeout)
	}
}

// Call sends a DevTools command to the page and decodes its result into
// out (if not nil).
func (b *Browser) Call(method string, params any, out any) error {
	return b.call(b.session, method, params, out)
}

// Navigate loads url in the page.
func (b *Browser) Navigate(url string) error {
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.Call("Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("lab: chromium: %s: %s", url, r.ErrorText)
	}
	return nil
}

// Eval evaluates a JavaScript expression in the page and decodes its
// value (JSON-serialisable) into out.
func (b *Browser) Eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.Call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("lab: chromium: %s: %s %s", expr, r.Exception.Text, r.Exception.Exception.Description)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// Key presses and releases a key ("Tab", "Enter") as a keyboard would,
// with shift held if asked.
func (b *Browser) Key(key string, shift bool) error {
	codes := map[string]int{"Tab": 9, "Enter": 13, "ArrowDown": 40, "ArrowUp": 38}
	mods := 0
	if shift {
		mods = 8
	}
	for _, typ := range []string{"rawKeyDown", "keyUp"} {
		p := map[string]any{"type": typ, "key": key, "code": key, "windowsVirtualKeyCode": codes[key], "nativeVirtualKeyCode": codes[key], "modifiers": mods}
		if err := b.Call("Input.dispatchKeyEvent", p, nil); err != nil {
			return err
		}
	}
	return nil
}

// Screenshot returns the whole page (not only the window) as PNG.
func (b *Browser) Screenshot() ([]byte, error) {
	var m struct {
		Content struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	if err := b.Call("Page.getLayoutMetrics", nil, &m); err != nil {
		return nil, err
	}
	var r struct {
		Data string `json:"data"`
	}
	clip := map[string]any{"x": 0, "y": 0, "width": m.Content.Width, "height": m.Content.Height, "scale": 1}
	if err := b.Call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true, "clip": clip}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// Close ends the browser: it is asked to close, then killed (its process
// group, by the browser's PID) if it has not exited in time.
func (b *Browser) Close() {
	if b.proc == nil || b.proc.Exited() {
		return
	}
	_ = b.call("", "Browser.close", nil, nil)
	b.w.Close()
	select {
	case <-b.proc.done:
	case <-time.After(5 * time.Second):
	}
	// The helpers it forked are in its process group.
	_ = syscall.Kill(-b.proc.Cmd.Process.Pid, syscall.SIGKILL)
	b.proc.Kill()
}
