package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// The README states commands; this keeps them true. Every line of a code
// block that is a command (not a file's content or a command's output) is
// one of:
//   - vigil: its command and fixed words are in the command table, and
//     every option it shows is one the command parses (read from the
//     command's own -help) and the table completes; a safe one (config
//     check of a directory in the repository, version) is run;
//   - make: the target is in the Makefile (inline `make X` in the prose
//     too);
//   - illustrative: a command whose first word is in readmeIllustrative,
//     which says why it is not run.
//
// Links to files must resolve inside the repository (a clone has nothing
// else), and the Go version the README asks for is go.mod's.

// readmeIllustrative are the commands the README shows but the test does
// not run, with the reason.
var readmeIllustrative = map[string]string{
	"systemctl": "starts or reloads the installed service on the host",
	"chmod":     "changes the checkout's files (the test copies the examples with their modes instead: testutil.ConfigCopy)",
	"go":        "go tool pprof needs a running daemon with metrics_pprof",
	"curl":      "needs a running daemon with metrics_listen",
	"printf":    "feeds stdin to the vigil command after the pipe, which is checked",
}

// readmeOutput are lines of an indented block that are a command's output
// shown without its prompt.
var readmeOutput = []string{"VIGIL WARNING - "}

type readmeLine struct {
	n    int
	text string
}

// readmeCommands returns the command lines of the README's code blocks:
// indented blocks, and fenced blocks marked sh, shell or console. In a
// block with "# " prompts, only the prompt lines are commands (the rest is
// their output); a line ending in a backslash continues on the next.
func readmeCommands(t *testing.T, lines []string) []readmeLine {
	t.Helper()
	var out []readmeLine
	var block []readmeLine
	flush := func() {
		prompts := slices.ContainsFunc(block, func(l readmeLine) bool { return strings.HasPrefix(l.text, "# ") })
		for i := 0; i < len(block); i++ {
			l := block[i]
			for strings.HasSuffix(l.text, `\`) && i+1 < len(block) {
				i++
				l.text = strings.TrimSuffix(l.text, `\`) + " " + strings.TrimSpace(block[i].text)
			}
			switch {
			case prompts && !strings.HasPrefix(l.text, "# "):
			case slices.ContainsFunc(readmeOutput, func(p string) bool { return strings.HasPrefix(l.text, p) }):
			default:
				l.text = strings.TrimPrefix(l.text, "# ")
				out = append(out, l)
			}
		}
		block = nil
	}
	fenced, commands := false, false
	prevBlank := true
	for i, line := range lines {
		n := i + 1
		if info, ok := strings.CutPrefix(line, "```"); ok {
			if fenced {
				flush()
			}
			fenced = !fenced
			commands = fenced && slices.Contains([]string{"sh", "shell", "console"}, strings.TrimSpace(info))
			prevBlank = false
			continue
		}
		switch {
		case fenced:
			if commands && strings.TrimSpace(line) != "" {
				block = append(block, readmeLine{n, strings.TrimSpace(line)})
			}
		case strings.HasPrefix(line, "    ") && (prevBlank || block != nil):
			if strings.TrimSpace(line) != "" {
				block = append(block, readmeLine{n, line[4:]})
			}
		case strings.TrimSpace(line) == "" && block != nil:
			// A blank line inside an indented block: it goes on if the
			// next line is indented too.
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    ") {
				continue
			}
			flush()
		default:
			flush()
		}
		prevBlank = strings.TrimSpace(line) == ""
	}
	flush()
	return out
}

// shellWords splits a line as the shell would for the README's purpose:
// quotes group words and are dropped.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// pipeline splits a line at the " | " that separate commands: outside
// quotes and outside the brackets of a synopsis ([-c DIR | -s SOCKET]).
func pipeline(s string) []string {
	var parts []string
	depth, quote, start := 0, byte(0), 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '[' || c == '(':
			depth++
		case c == ']' || c == ')':
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], " | "):
			parts = append(parts, strings.TrimSpace(s[start:i]))
			start = i + 3
		}
	}
	return append(parts, strings.TrimSpace(s[start:]))
}

var flagLine = regexp.MustCompile(`(?m)^  -(\S+)`)

// parsedFlags are the options `vigil ARGS... -help` lists.
func parsedFlags(t *testing.T, args ...string) []string {
	t.Helper()
	_, out, errs := vigil(append(args, "-help")...)
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(out+errs, -1) {
		names = append(names, m[1])
	}
	return names
}

func TestREADMECommands(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	targets := makeTargets(t)
	cmds := readmeCommands(t, lines)
	ran := 0
	for _, l := range cmds {
		for _, seg := range pipeline(l.text) {
			words := shellWords(seg)
			if len(words) == 0 {
				continue
			}
			switch first := words[0]; {
			case first == "vigil" || first == "bin/vigil":
				if checkVigil(t, l.n, words[1:]) {
					ran++
				}
			case first == "make":
				if len(words) < 2 || !slices.Contains(targets, words[1]) {
					t.Errorf("README.md:%d: %q: no such Makefile target", l.n, seg)
				}
			default:
				if readmeIllustrative[first] == "" {
					t.Errorf("README.md:%d: %q: a command the test neither checks nor lists as illustrative (readmeIllustrative)", l.n, seg)
				}
			}
		}
	}
	if len(cmds) < 30 || ran == 0 {
		t.Errorf("found %d command lines and ran %d: the README's blocks were not read as expected", len(cmds), ran)
	}
	// `make X` in the prose.
	for _, m := range regexp.MustCompile("`(?:[A-Z_]+=\\S+ )*make ([a-z][a-z0-9-]*)").FindAllStringSubmatch(string(data), -1) {
		if !slices.Contains(targets, m[1]) {
			t.Errorf("README.md: `make %s`: no such Makefile target", m[1])
		}
	}
	// Links to files.
	for i, line := range lines {
		for _, m := range regexp.MustCompile(`\]\(([^)#\s]+)[^)]*\)`).FindAllStringSubmatch(line, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join("../..", target)); err != nil || strings.HasPrefix(filepath.Clean(target), "..") {
				t.Errorf("README.md:%d: link to %s, which is not in the repository", i+1, target)
			}
		}
	}
	// The Go version.
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(mod)
	for _, m := range regexp.MustCompile(`Go ≥ (\S+)`).FindAllStringSubmatch(string(data), -1) {
		if goVersion == nil || m[1] != string(goVersion[1]) {
			t.Errorf("README asks for Go ≥ %s, go.mod for %s", m[1], goVersion[1])
		}
	}
}

// checkVigil checks one vigil command line of the README (args after
// "vigil") and runs it when it is safe; it reports whether it ran.
func checkVigil(t *testing.T, n int, args []string) bool {
	t.Helper()
	line := "vigil " + strings.Join(args, " ")
	if len(args) == 0 {
		t.Errorf("README.md:%d: %q: no command", n, line)
		return false
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		t.Errorf("README.md:%d: %q: no command %s in the command table", n, line, args[0])
		return false
	}
	c := commands[i]
	// The fixed words: one, or alternatives (heartbeat|ldirectord|...).
	kinds := []string{""}
	if len(c.words) > 0 {
		if len(args) < 2 {
			t.Errorf("README.md:%d: %q: %s takes one of %v", n, line, c.name, c.words)
			return false
		}
		kinds = strings.Split(args[1], "|")
		for _, w := range kinds {
			if !slices.Contains(c.words, w) {
				t.Errorf("README.md:%d: %q: %s takes one of %v, not %q", n, line, c.name, c.words, w)
			}
		}
	}
	var opts []string
	for _, a := range args[1:] {
		if a == "#" || strings.HasPrefix(a, "#") {
			break // a comment
		}
		a = strings.TrimLeft(a, "[(")
		if a == "--" {
			break // the options end
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimRight(a, "]),"), "=")
		opts = append(opts, name)
	}
	for _, kind := range kinds {
		cmdArgs := []string{c.name}
		if kind != "" {
			cmdArgs = append(cmdArgs, kind)
		}
		parsed := parsedFlags(t, cmdArgs...)
		for _, o := range opts {
			if !slices.Contains(parsed, strings.TrimLeft(o, "-")) {
				t.Errorf("README.md:%d: %q: `vigil %s` has no option %s (it has %v)", n, line, strings.Join(cmdArgs, " "), o, parsed)
			}
			if !slices.ContainsFunc(c.flags, func(f string) bool { return strings.TrimLeft(f, "-") == strings.TrimLeft(o, "-") }) {
				t.Errorf("README.md:%d: %q: option %s is not in the command table's flags for %s (completion)", n, line, o, c.name)
			}
		}
	}
	return runSafe(t, n, line, args)
}

// runSafe runs the README's commands that touch nothing outside the test:
// `vigil version`, and `vigil config check` of a configuration directory
// in the repository (copied first, as the README's chmod would make it
// readable only by its owner).
func runSafe(t *testing.T, n int, line string, args []string) bool {
	t.Helper()
	switch {
	case len(args) == 1 && args[0] == "version":
	case len(args) > 2 && args[0] == "config" && args[1] == "check":
		i := slices.Index(args, "-c")
		if i < 0 || i+1 >= len(args) || filepath.IsAbs(args[i+1]) || strings.ContainsAny(args[i+1], "[]") {
			return false // the installed /etc/vigil, or a synopsis
		}
		args = slices.Clone(args)
		args[i+1] = testutil.ConfigCopy(t, filepath.Join("../..", args[i+1]))
	default:
		return false
	}
	if code, out, errs := vigil(args...); code != exitOK {
		t.Errorf("README.md:%d: %q exits %d:\n%s%s", n, line, code, out, errs)
	}
	return true
}

// makeTargets are the Makefile's targets.
func makeTargets(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var targets []string
	target := regexp.MustCompile(`^([a-z][a-z0-9-]*):`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := target.FindStringSubmatch(sc.Text()); m != nil {
			targets = append(targets, m[1])
		}
	}
	return targets
}
