package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// When is a parsed Time::Period spec (mon's `period`): sub-periods joined
// by commas, any of which may match; within one, every scale must match.
// Scales supported: wd/wday, hr/hour, min/minute, sec/second, md/mday,
// mo/month, yd/yday. Values are discrete and inclusive ("hr {9am-4pm}"
// is 9:00:00 to 16:59:59) and a range whose start is after its end wraps.
type When struct {
	never bool
	subs  []map[string][]rng // scale → allowed ranges
}

type rng struct{ lo, hi int }

var scaleNames = map[string]string{
	"wd": "wd", "wday": "wd", "hr": "hr", "hour": "hr", "min": "min", "minute": "min",
	"sec": "sec", "second": "sec", "md": "md", "mday": "md", "mo": "mo", "month": "mo", "yd": "yd", "yday": "yd",
}

var (
	scaleRE = regexp.MustCompile(`^\s*([a-z]+)\s*\{([^}]*)\}`)
	dashRE  = regexp.MustCompile(`\s*-\s*`)
)

// ParsePeriod reads a Time::Period spec; "" means always, "none" never.
func ParsePeriod(s string) (When, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return When{}, nil
	}
	if s == "none" {
		return When{never: true}, nil
	}
	var w When
	for _, sub := range strings.Split(s, ",") {
		m := map[string][]rng{}
		rest := strings.TrimSpace(sub)
		if rest == "" {
			return When{}, fmt.Errorf("malformed period %q: empty sub-period", s)
		}
		for rest != "" {
			g := scaleRE.FindStringSubmatch(rest)
			if g == nil {
				return When{}, fmt.Errorf("malformed period %q: want scale {range …}", s)
			}
			scale, ok := scaleNames[g[1]]
			if !ok {
				return When{}, fmt.Errorf("malformed period %q: unsupported scale %q (wd hr min sec md mo yd)", s, g[1])
			}
			// "9am - 4pm" → "9am-4pm", then one range per word.
			body := dashRE.ReplaceAllString(strings.TrimSpace(g[2]), "-")
			for _, r := range strings.Fields(body) {
				lo, hi, _ := strings.Cut(r, "-")
				if hi == "" {
					hi = lo
				}
				a, err := scaleValue(scale, lo)
				if err != nil {
					return When{}, fmt.Errorf("malformed period %q: %v", s, err)
				}
				b, err := scaleValue(scale, hi)
				if err != nil {
					return When{}, fmt.Errorf("malformed period %q: %v", s, err)
				}
				m[scale] = append(m[scale], rng{a, b})
			}
			rest = strings.TrimSpace(rest[len(g[0]):])
		}
		w.subs = append(w.subs, m)
	}
	return w, nil
}

var (
	weekdays = []string{"su", "mo", "tu", "we", "th", "fr", "sa"}
	months   = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	hourRE   = regexp.MustCompile(`^(\d{1,2})(am|pm|noon)?$`)
)

func scaleValue(scale, v string) (int, error) {
	bounds := map[string][2]int{"wd": {1, 7}, "hr": {0, 23}, "min": {0, 59}, "sec": {0, 59}, "md": {1, 31}, "mo": {1, 12}, "yd": {1, 366}}[scale]
	n, err := strconv.Atoi(v)
	switch {
	case err == nil:
	case scale == "wd" && len(v) >= 2:
		for i, d := range weekdays {
			if v[:2] == d {
				return i + 1, nil
			}
		}
	case scale == "mo" && len(v) >= 3:
		for i, d := range months {
			if v[:3] == d {
				return i + 1, nil
			}
		}
	case scale == "hr":
		m := hourRE.FindStringSubmatch(v)
		if m == nil {
			break
		}
		n, _ = strconv.Atoi(m[1])
		switch {
		case m[2] == "noon" && n == 12:
		case (m[2] == "am" || m[2] == "pm") && n >= 1 && n <= 12:
			n %= 12
			if m[2] == "pm" {
				n += 12
			}
		default:
			return 0, fmt.Errorf("bad hour %q", v)
		}
		err = nil
	}
	if err != nil || n < bounds[0] || n > bounds[1] {
		return 0, fmt.Errorf("bad %s value %q", scale, v)
	}
	return n, nil
}

// Contains reports whether t falls in the period.
func (w When) Contains(t time.Time) bool {
	if w.never {
		return false
	}
	if len(w.subs) == 0 {
		return true
	}
	now := map[string]int{"wd": int(t.Weekday()) + 1, "hr": t.Hour(), "min": t.Minute(), "sec": t.Second(),
		"md": t.Day(), "mo": int(t.Month()), "yd": t.YearDay()}
	for _, sub := range w.subs {
		ok := true
		for scale, rs := range sub {
			if !inAny(now[scale], rs) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func inAny(v int, rs []rng) bool {
	for _, r := range rs {
		if r.lo <= r.hi && v >= r.lo && v <= r.hi || r.lo > r.hi && (v >= r.lo || v <= r.hi) {
			return true
		}
	}
	return false
}
