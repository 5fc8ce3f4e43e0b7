package legacy

import (
	"strconv"
	"strings"
)

// ImportIpvsadmDefaults reads Debian's /etc/default/ipvsadm, where the
// ipvsadm init script finds the sync daemon it starts (`ipvsadm
// --start-daemon DAEMON --mcast-interface IFACE --syncid SYNCID`), and
// returns the ldirectord instance's [sync] table for it ("" when DAEMON
// is none or unset). The file is shell: KEY="value" lines and comments;
// other lines are reported, not guessed at. In Vigil the role follows the
// group (master where the instance directs, backup where it stands by),
// so master and backup both become one [sync] table.
func ImportIpvsadmDefaults(file string, data []byte) (string, *Report) {
	r := &Report{}
	vals, at := map[string]string{}, map[string]int{}
	for n, text := range lines(data) {
		line := strings.TrimSpace(text)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(k, " \t$`") {
			r.add(file, n, firstWord(line), Unsupported, "not a KEY=value line: the init script's shell would run it; not imported")
			continue
		}
		v = strings.TrimSpace(v)
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			v = strings.Trim(v, `'`)
		}
		vals[k], at[k] = v, n
	}
	daemon := vals["DAEMON"]
	switch daemon {
	case "", "none":
		if daemon != "" {
			r.add(file, at["DAEMON"], "DAEMON", Mapped, "none: no sync daemon, no [sync] table")
		}
		return "", r
	case "master", "backup":
	default:
		r.add(file, at["DAEMON"], "DAEMON", Invalid, "must be none, master or backup, not %q (the init script would pass it to ipvsadm, which refuses it)", daemon)
		return "", r
	}
	iface := vals["IFACE"]
	if iface == "" || len(iface) > 15 || strings.ContainsAny(iface, " /") {
		line, ok := at["IFACE"]
		if !ok {
			line = at["DAEMON"] // missing: where the daemon is asked for
		}
		r.add(file, line, "IFACE", Invalid, "the sync daemon needs an interface name (at most 15 bytes), not %q", iface)
		return "", r
	}
	var t tomlWriter
	t.WriteString("\n")
	t.comment("From %s (DAEMON=%s): the kernel's connection sync. The master daemon runs where\nthis instance directs, the backup where it stands by.", file, daemon)
	t.WriteString("[sync]\n")
	t.kv("", "interface", iface)
	r.add(file, at["DAEMON"], "DAEMON", Caveat, "%s: the role now follows the group (master where it runs, backup elsewhere)", daemon)
	r.add(file, at["IFACE"], "IFACE", Mapped, "[sync] interface")
	if s, ok := vals["SYNCID"]; ok {
		id, err := strconv.Atoi(s)
		switch {
		case err != nil || id < 0 || id > 255:
			r.add(file, at["SYNCID"], "SYNCID", Invalid, "must be 0..255, not %q", s)
			return "", r
		case id == 0:
			r.add(file, at["SYNCID"], "SYNCID", Caveat, "0 (no filtering by sync id): Vigil derives one from the cluster and group names instead")
		default:
			t.kv("", "sync_id", id)
			r.add(file, at["SYNCID"], "SYNCID", Mapped, "[sync] sync_id")
		}
	}
	if a := vals["AUTO"]; a != "" {
		r.add(file, at["AUTO"], "AUTO", Unsupported, "the director starts with its group, not at boot")
	}
	return t.String(), r
}

// firstWord names a line in a report by its start (bounded).
func firstWord(line string) string {
	w, _, _ := strings.Cut(line, " ")
	if len(w) > 40 {
		w = w[:40] + "…"
	}
	return w
}
