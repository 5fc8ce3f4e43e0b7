package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseLine parses a command's options wherever they stand on the line
// (`vigil move lvs lvs2 -c DIR` as well as `vigil move -c DIR lvs lvs2`);
// fs.Args() then holds the other arguments in order. Go's flag package
// stops at the first argument that is not an option, so the line is
// parsed in turns; "--" ends the options (what follows is taken as it
// is). Every command parses with it, so none takes options only in front.
func parseLine(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if endedByDashes(fs, args, len(args)-len(rest)) {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	// Leaves the flags as they are and fs.Args() = pos.
	return fs.Parse(append([]string{"--"}, pos...))
}

// endedByDashes reports whether the flag package stopped after consuming
// a "--" of its own (not the value of an option, as in `-c --`).
func endedByDashes(fs *flag.FlagSet, args []string, consumed int) bool {
	if consumed == 0 || args[consumed-1] != "--" {
		return false
	}
	if consumed < 2 {
		return true
	}
	prev := strings.TrimLeft(args[consumed-2], "-")
	if !strings.HasPrefix(args[consumed-2], "-") || strings.Contains(prev, "=") {
		return true
	}
	f := fs.Lookup(prev)
	if f == nil {
		return true
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag() // a bool takes no value: the "--" was the end
}

// wantsJSON reports whether the line asks for --json, read before the
// options are parsed: a line that fails to parse still answers in JSON.
func wantsJSON(args []string) bool { return hasOption(args, "json") }

// hasOption reports whether the boolean option name (or one of its
// aliases) is set on the line, before "--".
func hasOption(args []string, names ...string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		for _, n := range names {
			switch a {
			case "-" + n, "--" + n, "-" + n + "=true", "--" + n + "=true":
				return true
			}
		}
	}
	return false
}

// jsonError is what --json prints when a command fails: scripts always
// get JSON on stdout, with the message an operator would read and the
// exit code.
type jsonError struct {
	Error string `json:"error"`
	Exit  int    `json:"exit"`
	// Errors are the lines of Error where it lists several (config
	// check: one a file:line).
	Errors []string `json:"errors,omitempty"`
}

// fail reports err as `vigil CMD: err` on stderr, or as a JSON object on
// stdout with --json, and returns code.
func fail(stdout, stderr io.Writer, asJSON bool, cmd string, err error, code int) int {
	if asJSON {
		writeJSON(stdout, jsonError{Error: err.Error(), Exit: code})
		return code
	}
	fmt.Fprintf(stderr, "vigil %s: %v\n", cmd, err)
	return code
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// parseCommand parses a command's line with parseLine and reports whether
// to go on, and otherwise the exit code: 0 after -h, 1 for a bad line,
// told as JSON with --json (the flag package's own message is silenced
// then). With noArgs, any argument that is not an option is refused.
func parseCommand(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, asJSON, noArgs bool, name string) (int, bool) {
	if code, ok := parseOneShot(fs, args, stdout, stderr, asJSON, name, exitError); !ok {
		return code, false
	}
	if noArgs && fs.NArg() > 0 {
		return fail(stdout, stderr, asJSON, name, fmt.Errorf("unexpected argument %q: this command takes only options (vigil %s -h)", fs.Arg(0), name), exitError), false
	}
	return exitOK, true
}
