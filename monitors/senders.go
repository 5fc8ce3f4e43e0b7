package monitors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// SendFunc delivers one alert with the words that follow a sender's name
// on an alert line.
type SendFunc func(ctx context.Context, args []string, a Alert) error

// Senders is the one alert path of the whole system: mon's alert lines
// and the daemon's event routes both name a sender and its arguments
// ("mail ops@example.com", "file.alert /var/log/ha", "plugin:pager
// team=ops"), and this delivers through it.
type Senders struct {
	// AlertDir is where mon alert scripts are looked up by name.
	AlertDir []string
	// SMTPRelay (host:port) and MailFrom serve the built-in mail.
	SMTPRelay, MailFrom string
	// Log receives the built-in log alert.
	Log *slog.Logger
	// Plugin delivers plugin:NAME alerts; nil refuses them.
	Plugin func(ctx context.Context, name string, args []string, a Alert) error
	// Builtin are more built-in senders by name (mon's ipvs).
	Builtin map[string]SendFunc
}

// Send delivers a through the sender name names.
func (s Senders) Send(ctx context.Context, name string, args []string, a Alert) error {
	if f := s.Builtin[name]; f != nil {
		return f(ctx, args, a)
	}
	switch {
	case name == "log":
		if s.Log != nil {
			s.Log.Warn("alert", "type", a.Type, "kind", a.Kind, "group", a.Group, "service", a.Service,
				"summary", a.Summary, "hosts", strings.Join(a.Hosts, " "))
		}
		return nil
	case name == "mail":
		return Mail{Relay: s.SMTPRelay, From: s.MailFrom, To: args}.Send(ctx, a)
	case name == "webhook":
		if len(args) != 1 {
			return fmt.Errorf("webhook wants one argument, the URL")
		}
		return Webhook{URL: args[0]}.Send(ctx, a)
	case strings.HasPrefix(name, "plugin:"):
		if s.Plugin == nil {
			return fmt.Errorf("alert plugins are not available here")
		}
		return s.Plugin(ctx, strings.TrimPrefix(name, "plugin:"), args, a)
	}
	path, err := Find(s.AlertDir, name)
	if err != nil {
		return err
	}
	return AlertScript(ctx, path, args, a)
}

// Known reports whether name is a built-in sender (not a script to look
// up in AlertDir), for configuration checks.
func (s Senders) Known(name string) bool {
	switch {
	case s.Builtin[name] != nil, name == "log", name == "mail", name == "webhook", strings.HasPrefix(name, "plugin:"):
		return true
	}
	return false
}

// ErrNotFound: Find found no such script.
var ErrNotFound = errors.New("not found")

// Find looks name up in dirs (first match wins, as mon's mondir and
// alertdir); an absolute path is taken as it is.
func Find(dirs []string, name string) (string, error) {
	if err := ScriptName(name); err != nil {
		return "", err
	}
	if filepath.IsAbs(name) {
		return name, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s %w in %s", name, ErrNotFound, strings.Join(dirs, ":"))
}
