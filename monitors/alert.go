package monitors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"time"
)

// Alert types, as mon names them in MON_ALERTTYPE.
const (
	AlertFailure = "failure"
	AlertUp      = "up"
	AlertStartup = "startup"
	AlertTest    = "test"
)

// Alert is one thing to tell an operator, in mon's terms: a service of a
// host group failed (or recovered). Events from elsewhere (a node died,
// a real server left a virtual service) are put in the same shape so
// that every sender serves the whole system: Group and Service then name
// where it happened, Hosts what it concerns.
type Alert struct {
	Type        string    `json:"type"` // AlertFailure, AlertUp, …
	Kind        string    `json:"kind"` // "service" (mon), "node", "resource", "realserver", …
	Node        string    `json:"node,omitempty"`
	Group       string    `json:"group"`
	Service     string    `json:"service"`
	Description string    `json:"description,omitempty"`
	Hosts       []string  `json:"hosts"`
	Time        time.Time `json:"time"`
	// Summary is one line (the failed hosts, for a mon monitor); Output
	// is the summary line followed by the detail, as the monitor printed
	// it. An upalert carries the last failing run's.
	Summary string `json:"summary"`
	Output  string `json:"output,omitempty"`
	Retval  int    `json:"retval"`
	// Env is more NAME=value for alert scripts (mon's MON_LAST_*,
	// MON_STATEDIR, the service's own variables); they replace ScriptEnv's
	// own, and a bare NAME removes one.
	Env []string `json:"-"`
}

// Up reports whether the alert tells of a recovery.
func (a Alert) Up() bool { return a.Type == AlertUp }

// summary is what mon prints for an empty summary.
func (a Alert) summary() string {
	if strings.TrimSpace(a.Summary) == "" {
		return "(NO SUMMARY)"
	}
	return a.Summary
}

// ScriptArgs is the argv mon 1.3.6 gives an alert script (LEGACY §4.3):
// -s SERVICE -g GROUP -h "HOST …" -t TIME, then -u for an upalert, then
// the configured arguments. There is no -l.
func ScriptArgs(a Alert, args []string) []string {
	argv := []string{"-s", a.Service, "-g", a.Group, "-h", strings.Join(a.Hosts, " "), "-t", strconv.FormatInt(a.Time.Unix(), 10)}
	if a.Up() {
		argv = append(argv, "-u")
	}
	return append(argv, args...)
}

// ScriptEnv is the environment mon gives an alert script, on top of a
// minimal PATH.
func ScriptEnv(a Alert) []string {
	opstatus := "0"
	if a.Up() {
		opstatus = "1"
	}
	env := []string{
		BasePath,
		"MON_ALERTTYPE=" + a.Type,
		"MON_RETVAL=" + strconv.Itoa(a.Retval),
		"MON_OPSTATUS=" + opstatus,
		"MON_GROUP=" + a.Group,
		"MON_SERVICE=" + a.Service,
		"MON_DESCRIPTION=" + a.Description,
		"MON_LAST_SUMMARY=" + a.summary(),
		"MON_LAST_OUTPUT=" + a.Output,
		"MON_FIRST_SUCCESS=", // always empty in mon 1.3.6
	}
	// a.Env comes last and wins: a variable it names replaces the one
	// above, and a bare NAME (no '=') removes it, for what mon leaves
	// unset (MON_LAST_OUTPUT before a service's first run).
	if len(a.Env) == 0 {
		return env
	}
	over := map[string]bool{}
	for _, kv := range a.Env {
		k, _, _ := strings.Cut(kv, "=")
		over[k] = true
	}
	out := env[:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !over[k] {
			out = append(out, kv)
		}
	}
	for _, kv := range a.Env {
		if strings.Contains(kv, "=") {
			out = append(out, kv)
		}
	}
	return out
}

// AlertScript runs a mon alert script unchanged: ScriptArgs, ScriptEnv,
// the monitor's whole output on stdin. mon ignores the exit status; so
// does this, but a script that cannot start or outlives ctx is an error.
func AlertScript(ctx context.Context, path string, args []string, a Alert) error {
	_, err := RunAlertScript(ctx, path, args, a)
	return err
}

// RunAlertScript is AlertScript that also returns the run, exit status
// and output, for `vigil alert test`.
func RunAlertScript(ctx context.Context, path string, args []string, a Alert) (Run, error) {
	return Exec(ctx, path, ScriptArgs(a, args), ScriptEnv(a), a.Output)
}

// Mail sends alerts by SMTP through Relay, in the shape of mon's
// mail.alert ("ALERT group/service: summary (time)", the members and
// the detail).
type Mail struct {
	Relay string // host:port
	From  string
	To    []string
	Helo  string // default: this host's name
}

// Send delivers one alert within ctx's deadline.
func (m Mail) Send(ctx context.Context, a Alert) error {
	if len(m.To) == 0 {
		return errors.New("mail: no recipients")
	}
	conn, err := dial(ctx, "tcp", m.Relay)
	if err != nil {
		return fmt.Errorf("mail via %s: %w", m.Relay, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline(ctx, 30*time.Second))
	host, _, _ := net.SplitHostPort(m.Relay)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("mail via %s: %w", m.Relay, err)
	}
	helo := m.Helo
	if helo == "" {
		helo, _ = os.Hostname()
	}
	steps := []func() error{
		func() error { return c.Hello(helo) },
		func() error { return c.Mail(m.From) },
	}
	for _, to := range m.To {
		steps = append(steps, func() error { return c.Rcpt(to) })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("mail via %s: %w", m.Relay, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("mail via %s: %w", m.Relay, err)
	}
	if _, err := w.Write(m.message(a)); err != nil {
		return fmt.Errorf("mail via %s: %w", m.Relay, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("mail via %s: %w", m.Relay, err)
	}
	return c.Quit()
}

func (m Mail) message(a Alert) []byte {
	kind := "ALERT"
	if a.Up() {
		kind = "UPALERT"
	}
	t := a.Time.Local().Format("Mon Jan _2 15:04:05 2006")
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\nTo: %s\nSubject: %s %s/%s: %s (%s)\nDate: %s\nX-Mailer: vigil\n\n",
		m.From, strings.Join(m.To, ", "), kind, a.Group, a.Service, a.summary(), t, a.Time.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Group                 : %s\nService               : %s\nTime noticed          : %s\nMembers               : %s\n",
		a.Group, a.Service, t, strings.Join(a.Hosts, " "))
	if a.Node != "" {
		fmt.Fprintf(&b, "Node                  : %s\n", a.Node)
	}
	b.WriteString("\nDetailed text (if any) follows:\n-------------------------------\n")
	_, detail, _ := strings.Cut(a.Output, "\n")
	b.WriteString(detail) // the SMTP writer adds CRs and dot-stuffing
	return b.Bytes()
}

// Webhook POSTs each alert as a JSON object (the Alert fields) to URL;
// any 2xx answer is a delivery.
type Webhook struct{ URL string }

// Send delivers one alert within ctx's deadline.
func (w Webhook) Send(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: %s", w.URL, resp.Status)
	}
	return nil
}
