// Command monrec is the recording monitor and alert of test/mondiff: run
// as a monitor (no MON_ALERTTYPE) it counts the service's runs, records its argv,
// environment and stdin, and exits as the case's plan says for this run;
// run as an alert it records the same, tagged with the run whose output
// it carries (else the run of its service that last started). It finds its side's
// directory (the one holding "mondiff.side") above its own path, so it
// needs nothing from the environment it records.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var runRE = regexp.MustCompile(`\brun=(\d+)`)

// Event is one recorded call.
type Event struct {
	Kind  string            `json:"kind"` // monitor or alert
	Name  string            `json:"name"`
	Key   string            `json:"key"` // MON_GROUP:MON_SERVICE
	Run   int               `json:"run"`
	Argv  []string          `json:"argv"`
	Env   map[string]string `json:"env"`
	Stdin string            `json:"stdin"`
	Exit  int               `json:"exit"`
}

// ignored are variables the starting process, not mon, puts in.
var ignored = map[string]bool{"PATH": true, "PWD": true, "SHLVL": true, "_": true, "OLDPWD": true}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "monrec:", err)
		os.Exit(99)
	}
}

func run() error {
	self := os.Args[0]
	side := filepath.Dir(self)
	for {
		if _, err := os.Stat(filepath.Join(side, "mondiff.side")); err == nil {
			break
		}
		up := filepath.Dir(side)
		if up == side {
			return fmt.Errorf("no mondiff.side above %s", self)
		}
		side = up
	}
	name := filepath.Base(self)
	ev := Event{Kind: "alert", Name: name, Argv: os.Args[1:], Env: map[string]string{}}
	// mon sets MON_ALERTTYPE for alerts only (monitors may be named
	// anything: dialin.monitor.wrap).
	if _, ok := os.LookupEnv("MON_ALERTTYPE"); !ok {
		ev.Kind = "monitor"
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if !ignored[k] {
			ev.Env[k] = v
		}
	}
	ev.Key = os.Getenv("MON_GROUP") + ":" + os.Getenv("MON_SERVICE")
	in, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	if err != nil {
		return err
	}
	ev.Stdin = string(in)
	counter := filepath.Join(side, "n", ev.Key)
	b, _ := os.ReadFile(counter)
	ev.Run, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	out := ""
	if ev.Kind == "monitor" {
		ev.Run++
		if err := os.WriteFile(counter, []byte(strconv.Itoa(ev.Run)), 0o644); err != nil {
			return err
		}
		// The plan: one "CODE[:SUMMARY]" a run, the last repeating.
		plan, _ := os.ReadFile(filepath.Join(side, "plan", ev.Key))
		steps := strings.Fields(string(plan))
		step := "0"
		if len(steps) > 0 {
			step = steps[min(ev.Run, len(steps))-1]
		}
		code, summary, ok := strings.Cut(step, ":")
		if ev.Exit, err = strconv.Atoi(code); err != nil {
			return fmt.Errorf("plan %s: %q", ev.Key, step)
		}
		if !ok && ev.Exit != 0 {
			summary = "fail" + code
		}
		out = strings.ReplaceAll(summary, "+", " ") + "\ndetail " + code
		// The run travels in the output, so that an alert knows its run
		// however late it starts (mon's loop may start the next run
		// first); a case that compares whole outputs asks for none.
		if _, err := os.Stat(filepath.Join(side, "untagged", ev.Key)); err != nil {
			out += fmt.Sprintf(" run=%d", ev.Run)
		}
		out += "\n"
	} else if m := runRE.FindStringSubmatch(ev.Stdin); m != nil {
		// A failure alert carries its run's output; an upalert the
		// failing run's before it.
		ev.Run, _ = strconv.Atoi(m[1])
		if os.Getenv("MON_ALERTTYPE") == "up" {
			ev.Run++
		}
	}
	js, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	f := filepath.Join(side, "events", fmt.Sprintf("%s-%d-%d-%d.json", ev.Kind, ev.Run, os.Getpid(), time.Now().UnixNano()))
	if err := os.WriteFile(f+".tmp", js, 0o644); err != nil {
		return err
	}
	if err := os.Rename(f+".tmp", f); err != nil {
		return err
	}
	os.Stdout.WriteString(out)
	os.Exit(ev.Exit)
	return nil
}
