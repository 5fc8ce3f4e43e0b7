// Package monitors holds the health checks shared by the ldirectord and mon
// resources: TCP connect, HTTP/HTTPS negotiate (status, receive regex or
// keepalived genhash digest), DNS query, SMTP banner, ICMP ping and
// external (mon/ldirectord-style) scripts.
//
// Every check runs under the one deadline its context carries: a server
// that accepts and then trickles bytes fails when the deadline passes, not
// after some per-read timeout (keepalived issue 1822). Checks start no
// goroutines of their own and allocate little, so a director can run
// thousands a second on one core.
package monitors

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"
)

// Result is one check's outcome.
type Result struct {
	OK      bool
	Summary string // one line: why it failed, or what answered
	Detail  string
	Latency time.Duration
}

// Check is one health check of one target. Check must return by ctx's
// deadline.
type Check interface {
	Check(ctx context.Context) Result
	// String names the check and its target for logs ("http 10.0.0.2:80/").
	String() string
}

// Always is the check of ldirectord's checktype=on (and of negotiate with
// service none): the target is taken as up without being asked.
type Always struct{}

func (Always) Check(context.Context) Result { return Result{OK: true, Summary: "not checked"} }
func (Always) String() string               { return "on" }

func failed(start time.Time, what string, err error) Result {
	return Result{Summary: what + ": " + short(err), Latency: time.Since(start)}
}

func passed(start time.Time, summary string) Result {
	return Result{OK: true, Summary: summary, Latency: time.Since(start)}
}

// short trims the dial-and-syscall noise off net errors for one-line
// summaries ("dial tcp 10.0.0.2:80: connect: connection refused" →
// "connection refused").
func short(err error) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return "timed out"
	}
	s := err.Error()
	for _, cut := range []string{": connect: ", ": read: ", ": write: "} {
		if i := strings.LastIndex(s, cut); i >= 0 {
			s = s[i+len(cut):]
		}
	}
	return s
}

// deadline is ctx's deadline, or now+d when it has none, so that every
// socket operation of a check is bounded by the same instant.
func deadline(ctx context.Context, d time.Duration) time.Time {
	if t, ok := ctx.Deadline(); ok {
		return t
	}
	return time.Now().Add(d)
}
