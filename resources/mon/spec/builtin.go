package spec

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/vigil-ha/vigil/monitors"
)

// BuiltinFlags are a built-in monitor's options, spelled as the mon
// scripts' flags: -p port, -u url, -m regex, -s status, -v virtual host,
// -q query name, -T query type, -e expected address.
type BuiltinFlags struct {
	Port, URL, VHost     string
	Match                *regexp.Regexp
	Status               []monitors.StatusRange
	QName, QType, Expect string
}

// ParseBuiltin reads the flags of built-in monitor name.
func ParseBuiltin(name string, args []string) (BuiltinFlags, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f BuiltinFlags
	defPort := map[string]string{"http": "80", "https": "443", "dns": "53", "smtp": "25"}[name]
	fs.StringVar(&f.Port, "p", defPort, "")
	fs.StringVar(&f.URL, "u", "/", "")
	match := fs.String("m", "", "")
	status := fs.String("s", "", "")
	fs.StringVar(&f.VHost, "v", "", "")
	fs.StringVar(&f.QName, "q", "", "")
	fs.StringVar(&f.QType, "T", "A", "")
	fs.StringVar(&f.Expect, "e", "", "")
	if err := fs.Parse(args); err != nil {
		return f, fmt.Errorf("%s: %v", name, err)
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	if name != "ping" && f.Port == "" {
		return f, fmt.Errorf("%s: -p PORT is required", name)
	}
	if *match != "" {
		re, err := regexp.Compile(*match)
		if err != nil {
			return f, fmt.Errorf("%s -m: %v", name, err)
		}
		f.Match = re
	}
	for _, s := range strings.Split(*status, ",") {
		if s == "" {
			continue
		}
		r, err := monitors.ParseStatus(s)
		if err != nil {
			return f, fmt.Errorf("%s -s: %v", name, err)
		}
		f.Status = append(f.Status, r)
	}
	if name == "dns" && (!monitors.ValidDNSType(f.QType) || f.QName == "") {
		return f, fmt.Errorf("dns: want -q NAME and a -T of A, AAAA, NS, CNAME, SOA, MX, TXT")
	}
	return f, nil
}
