package main

import (
	"fmt"
	"io"
	"strings"
)

// command is one entry of the command table: `vigil help`, the bash
// completion and the man page are all generated from it, so they cannot
// disagree with each other.
type command struct {
	name  string   // as typed
	args  string   // synopsis after the name
	help  string   // one or more lines
	words []string // what completes after the name (fixed words)
	nodes bool     // completes node names after the name
	flags []string // its options, for completion
}

// opFlags are the options of every operator command (anywhere on the line).
var opFlags = []string{"-c", "-s", "--json"}

var commands = []command{
	{name: "daemon", help: "run the cluster daemon on this node", flags: []string{"-c", "--node", "--log-format", "--log-level"}},
	{name: "witness", help: "run the daemon of a witness node (votes, runs no resources)", flags: []string{"-c", "--node", "--log-format", "--log-level"}},
	{name: "status", help: "show the cluster, its nodes and heartbeat links (crm_mon-like;\n--json, --watch, -1 for a Nagios check, --stats)",
		flags: []string{"-c", "-s", "--json", "--watch", "-i", "-1", "--one-line", "--stats"}},
	{name: "move", args: "GROUP NODE", help: "move a group to a node and keep it there (unmove GROUP: let placement decide again)", nodes: true, flags: opFlags},
	{name: "unmove", args: "GROUP", help: "let placement decide where a moved group runs", flags: opFlags},
	{name: "standby", args: "NODE", help: "move every group off a node and keep them off (online NODE: undo)", nodes: true, flags: opFlags},
	{name: "online", args: "NODE", help: "let a node in standby run groups again", nodes: true, flags: opFlags},
	{name: "maintenance", args: "NODE", help: "stop managing a node's resources (ready NODE: undo)", nodes: true, flags: opFlags},
	{name: "ready", args: "NODE", help: "manage a node's resources again", nodes: true, flags: opFlags},
	{name: "cleanup", args: "GROUP [NODE]", help: "forget a group's failures (on NODE, or everywhere) so it may run there again", nodes: true, flags: opFlags},
	{name: "reload", help: "re-read the configuration and apply what changed, cluster-wide,\nwithout a restart (as SIGHUP to the daemon); an invalid one is refused",
		flags: opFlags},
	{name: "takeover", help: "two_node pairs: take over from the silent peer, which you have\nmade sure is off (the tie-breaker of last resort)", flags: opFlags},
	{name: "node", args: "add NAME HOST:PORT | remove NAME", help: "change the Raft voters (from any node; it runs on the leader)", words: []string{"add", "remove"}, flags: opFlags},
	{name: "config", args: "check", help: "validate the configuration in a directory", words: []string{"check"}, flags: []string{"-c", "--node", "-v", "--plugins", "--json"}},
	{name: "import", args: "heartbeat|ldirectord|mon|keepalived", help: "write Vigil's configuration from ha.cf/haresources/authkeys,\nldirectord.cf, mon.cf or keepalived.conf, with a report of every directive",
		words: []string{"heartbeat", "ldirectord", "mon", "keepalived"}, flags: []string{"-o", "-f", "-d", "--address", "--name", "--node", "--peer", "--peer-conf", "--ping-node", "--cluster", "--authkeys", "--json"}},
	{name: "resource", args: "run TYPE|GROUP/ID ACTION [NAME=VALUE...]", help: "run one operation (start, stop, monitor, status, reload, validate-all,\nmeta-data) through the resource's plugin, as the daemon would, with no\ndaemon; prints the OCF code, its meaning and the output; exits with the code",
		words: []string{"run"}, flags: []string{"-c", "--node", "--id", "--timeout", "--interval", "--plugin-dir", "-v", "--json"}},
	{name: "monitor", args: "run 'MONITOR [ARGS...]' [-- HOST...]", help: "run one mon monitor once, as mon would (argv, environment; the first\nline of output is the summary); exits with the monitor's status",
		words: []string{"run"}, flags: []string{"--mondir", "-g", "-s", "-e", "--description", "--timeout", "--plugin-dir", "--json"}},
	{name: "alert", args: "test [-s SVC] [-g GROUP] [-h HOSTS] [-t TIME] [-u] ALERT [ARGS...]", help: "send one alert as mon would (-s -g -h -t [-u] args, the monitor\noutput from stdin); exits with the alert script's status",
		words: []string{"test"}, flags: []string{"-s", "-g", "-h", "-t", "-u", "--type", "--retval", "--description", "-e", "--alertdir", "--timeout", "--plugin-dir", "--json"}},
	{name: "completion", args: "bash", help: "print the bash completion script", words: []string{"bash"}},
	{name: "man", help: "print the manual page (roff)"},
	{name: "version", help: "print the version"},
}

// usage is `vigil help`.
func usage() string {
	var b strings.Builder
	b.WriteString("Usage: vigil COMMAND [options]\n\nCommands:\n")
	for _, c := range commands {
		syn := strings.TrimSpace(c.name + " " + c.args)
		lines := strings.Split(c.help, "\n")
		if len(syn) > 20 {
			fmt.Fprintf(&b, "  %s\n", syn)
			syn = ""
		}
		for i, l := range lines {
			if i > 0 {
				syn = ""
			}
			fmt.Fprintf(&b, "  %-20s  %s\n", syn, l)
		}
	}
	b.WriteString("\nOptions may stand anywhere on the line; -- ends them. --json prints JSON, also on failure.\nRun 'vigil COMMAND -h' for a command's options.\n")
	return b.String()
}

// writeCompletion prints a bash completion script: commands, their fixed
// words and options, and node names from ha.toml's [[nodes]].
func writeCompletion(w io.Writer) {
	var names []string
	var cases strings.Builder
	for _, c := range commands {
		names = append(names, c.name)
		words := append(append([]string{}, c.words...), c.flags...)
		fmt.Fprintf(&cases, "    %s)\n", c.name)
		if c.nodes {
			fmt.Fprintf(&cases, "      words=\"%s $(_vigil_nodes)\" ;;\n", strings.Join(words, " "))
		} else {
			fmt.Fprintf(&cases, "      words=%q ;;\n", strings.Join(words, " "))
		}
	}
	fmt.Fprintf(w, `# bash completion for vigil — generated by 'vigil completion bash'
_vigil_nodes() {
  sed -n 's/^[[:space:]]*name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "${VIGIL_CONFIG_DIR:-/etc/vigil}/ha.toml" 2>/dev/null
}
_vigil() {
  local cur=${COMP_WORDS[COMP_CWORD]} words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  case "${COMP_WORDS[1]}" in
%s  esac
  case "$cur" in
    -*) COMPREPLY=($(compgen -W "$words" -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "$(printf '%%s\n' $words | grep -v '^-')" -- "$cur"))
       [ ${#COMPREPLY[@]} -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
}
complete -F _vigil vigil
`, strings.Join(names, " "), cases.String())
}

// writeMan prints vigil(8) in roff.
func writeMan(w io.Writer) {
	esc := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\e`), "-", `\-`) }
	fmt.Fprintf(w, ".TH VIGIL 8 \"\" \"vigil %s\" \"System Administration\"\n", esc(version))
	fmt.Fprint(w, `.SH NAME
vigil \- cluster resource manager for Linux load\-balancer directors
.SH SYNOPSIS
.B vigil
.I COMMAND
[options]
.SH DESCRIPTION
Vigil runs resource groups (a floating address, an IPVS table managed like
ldirectord, mon\-like monitors, OCF and heartbeat scripts) on one node of a
cluster at a time. Membership comes from heartbeats over UDP and serial
links; which node runs which group is decided once, by Raft consensus.
Configuration lives in /etc/vigil: ha.toml, authkeys, resources.toml.
.SH COMMANDS
`)
	for _, c := range commands {
		fmt.Fprintf(w, ".TP\n.B %s", esc(c.name))
		if c.args != "" {
			fmt.Fprintf(w, " \\fI%s\\fR", esc(c.args))
		}
		fmt.Fprintf(w, "\n%s\n", esc(strings.ReplaceAll(c.help, "\n", " ")))
		if len(c.flags) > 0 {
			fmt.Fprintf(w, "Options: %s.\n", esc(strings.Join(c.flags, ", ")))
		}
	}
	fmt.Fprint(w, `.SH SIGNALS
SIGHUP reloads the configuration (as \fBvigil reload\fR); SIGTERM and SIGINT
hand the node's groups over to another node, then stop.
.SH FILES
/etc/vigil/ha.toml, /etc/vigil/authkeys (mode 0600), /etc/vigil/resources.toml,
/run/vigil/vigil.sock (control socket), /var/lib/vigil (state and Raft log).
.SH EXIT STATUS
0 success; 1 error; 2 no daemon answered. \fBstatus \-1\fR exits 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN (a bad command line).
\fBresource run\fR exits with the operation's OCF code (0 success,
1 generic error, 2 bad arguments, 3 unimplemented, 4 no permission,
5 not installed, 6 not configured, 7 not running, 8 running promoted,
9 failed promoted); its own failures use the same codes: 2 a bad command
line, 5 no such plugin, 6 a bad configuration or unknown GROUP/ID, 1 a plugin
that crashed or missed its deadline.
\fBmonitor run\fR and \fBalert test\fR exit with the monitor's or the alert
script's status, else 124 killed at the timeout, 125 a bad command line,
126 found but not runnable, 127 not found in mondir or alertdir
(\fBalert test\fR: 1 when mail, webhook or a plugin failed to deliver).
.SH SEE ALSO
The README of the Vigil sources; ha.cf(5), ldirectord(8), mon(8).
`)
}

// importArgs are the import kinds' synopses after their name.
var importArgs = map[string]string{"heartbeat": "", "ldirectord": "FILE", "mon": "FILE", "keepalived": "[FILE]"}

// synopsis is "vigil NAME ARGS" for a command's -h, from the table; name
// may carry its first word ("config check", "import mon").
func synopsis(name string) string {
	first, word, _ := strings.Cut(name, " ")
	for _, c := range commands {
		if c.name != first {
			continue
		}
		switch {
		case first == "import":
			return strings.TrimSpace("vigil " + name + " " + importArgs[word])
		case word != "":
			// the table's args start with the word ("run TYPE…", "check")
			return strings.TrimSpace("vigil " + first + " " + c.args)
		}
		return strings.TrimSpace("vigil " + name + " " + c.args)
	}
	return "vigil " + name
}

// commandHelp is the table's help of the command name starts with.
func commandHelp(name string) string {
	first, _, _ := strings.Cut(name, " ")
	for _, c := range commands {
		if c.name == first {
			return c.help
		}
	}
	return ""
}
