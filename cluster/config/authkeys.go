package config

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// Secret is the cluster secret. It prints, logs and marshals as
// "[redacted]", so it cannot leak through a log line or a status dump.
type Secret struct{ b []byte }

// NewSecret wraps key material.
func NewSecret(b []byte) Secret { return Secret{b: bytes.Clone(b)} }

// Bytes returns the key material; use it only to derive keys.
func (s Secret) Bytes() []byte { return s.b }

// Empty reports whether no secret is set.
func (s Secret) Empty() bool { return len(s.b) == 0 }

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return "config.Secret{[redacted]}" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Authkeys is the parsed authkeys file.
type Authkeys struct {
	KeyID  int
	Method string
	Secret Secret
}

// ReadAuthkeys reads an authkeys file in heartbeat's format, so that an
// existing /etc/ha.d/authkeys works unchanged:
//
//	auth 1
//	1 sha256 a-long-random-secret
//
// Whatever method is named, heartbeats are authenticated with HMAC-SHA256
// keyed from the secret; sha1/md5 are accepted for compatibility, crc is
// refused because it has no secret. Like heartbeat, a file readable by group
// or others is refused; Vigil also refuses group/other write permission,
// since whoever can change the key can join the cluster.
func ReadAuthkeys(path string) (*Authkeys, []string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, &Error{File: path, Msg: fmt.Sprintf("cannot read the cluster secret: %v", err)}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, nil, &Error{File: path, Msg: fmt.Sprintf("mode %04o lets group or others access the cluster secret; run: chmod 600 %s", perm, path)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &Error{File: path, Msg: fmt.Sprintf("cannot read the cluster secret: %v", err)}
	}
	return ParseAuthkeys(path, data)
}

// maxAuthkeysLine bounds one line of authkeys: a secret is a few dozen
// characters.
const maxAuthkeysLine = 64 << 10

// ParseAuthkeys reads an authkeys file's contents (path names it in errors).
func ParseAuthkeys(path string, data []byte) (*Authkeys, []string, error) {
	var errs Errors
	var warns []string
	bad := func(line int, key, f string, a ...any) {
		errs = append(errs, &Error{File: path, Line: line, Key: key, Msg: fmt.Sprintf(f, a...)})
	}
	selected, selLine := -1, 0
	keys := map[int]*Authkeys{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxAuthkeysLine)
	ln := 0
	for sc.Scan() {
		ln++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "auth" {
			if len(f) != 2 {
				bad(ln, "auth", "expected \"auth N\" with one key number")
				continue
			}
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 0 || n > 15 {
				bad(ln, "auth", "%q is not a key number 0..15", f[1])
				continue
			}
			selected, selLine = n, ln
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n < 0 || n > 15 {
			bad(ln, "", "expected \"auth N\" or \"N method secret\", got %q", f[0])
			continue
		}
		if selected < 0 {
			bad(ln, f[0], "key line before \"auth N\": heartbeat requires auth to come first")
			continue
		}
		if len(f) < 2 {
			bad(ln, f[0], "missing method (sha256, sha1 or md5) and secret")
			continue
		}
		method := f[1]
		switch method {
		case "sha256", "sha1", "md5":
		case "crc":
			bad(ln, f[0], "crc authenticates nothing; Vigil requires a secret (use: %d sha256 SECRET)", n)
			continue
		default:
			bad(ln, f[0], "unknown method %q (use sha256)", method)
			continue
		}
		if len(f) < 3 {
			bad(ln, f[0], "method %s needs a secret", method)
			continue
		}
		// The secret is the rest of the line, as heartbeat reads it.
		rest := strings.TrimSpace(line)
		rest = strings.TrimSpace(strings.TrimPrefix(rest, f[0]))
		rest = strings.TrimSpace(strings.TrimPrefix(rest, method))
		if _, dup := keys[n]; dup {
			bad(ln, f[0], "key %d is defined twice", n)
			continue
		}
		keys[n] = &Authkeys{KeyID: n, Method: method, Secret: NewSecret([]byte(rest))}
		if len(rest) < 16 {
			warns = append(warns, fmt.Sprintf("%s:%d: key %d is only %d characters long; use at least 16 random characters", path, ln, n, len(rest)))
		}
	}
	if err := sc.Err(); err != nil {
		// Never a silent end of the file: the rest would be ignored.
		bad(ln+1, "", "cannot read past this line: %v (a line may hold at most %d bytes)", err, maxAuthkeysLine)
	}
	if len(errs) > 0 {
		return nil, warns, errs
	}
	if selected < 0 {
		return nil, warns, &Error{File: path, Key: "auth", Msg: "no \"auth N\" line selects a key"}
	}
	ak, ok := keys[selected]
	if !ok {
		return nil, warns, &Error{File: path, Line: selLine, Key: "auth", Msg: fmt.Sprintf("auth %d selects a key that is not defined", selected)}
	}
	return ak, warns, nil
}
