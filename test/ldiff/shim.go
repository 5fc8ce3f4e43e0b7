// Package ldiff holds the differential test of Vigil's ldirectord
// against Debian's real ldirectord (issue 23; ldiff_test.go) and the
// recording ipvsadm it runs ldirectord with (cmd/ipvsadm).
package ldiff

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The recording ipvsadm: ldirectord runs ./ipvsadm when started with -d
// and the file exists in its working directory (ldirectord 4.12, line
// 913), so each case's directory holds a symlink named ipvsadm to
// cmd/ipvsadm. It logs every
// invocation to ipvsadm.log and keeps the table ipvsadm would program in
// ipvsadm.json, applying ipvsadm's own rules (a gate or ipip real takes
// the service's port; -a of an existing real and -e/-d of a missing one
// fail), and lists it in `ipvsadm -L -n [--thresholds]`'s format, which
// ldirectord parses to decide its next call.

const (
	shimLog   = "ipvsadm.log"
	shimState = "ipvsadm.json"
)

// shimTable is the recorded table, in a form both sides normalise to.
type shimTable struct {
	Services []*shimService `json:"services"`
}

type shimService struct {
	Proto      string      `json:"proto"` // tcp, udp, fwm
	Addr       string      `json:"addr"`  // "10.0.0.1:80", "[fd00::1]:80" or the mark
	V6         bool        `json:"v6,omitempty"`
	Scheduler  string      `json:"scheduler"`
	Persistent int         `json:"persistent,omitempty"`
	Netmask    string      `json:"netmask,omitempty"`
	Dests      []*shimDest `json:"dests"`
}

type shimDest struct {
	Addr    string `json:"addr"`
	Forward string `json:"forward"` // gate, masq, ipip
	Weight  int    `json:"weight"`
	Upper   int    `json:"upper"`
	Lower   int    `json:"lower"`
}

func (t *shimTable) find(proto, addr string, v6 bool) (int, *shimService) {
	for i, s := range t.Services {
		if s.Proto == proto && s.Addr == addr && s.V6 == v6 {
			return i, s
		}
	}
	return -1, nil
}

func (s *shimService) find(addr string) (int, *shimDest) {
	for i, d := range s.Dests {
		if d.Addr == addr {
			return i, d
		}
	}
	return -1, nil
}

// ShimMain is ipvsadm: it returns the exit code.
func ShimMain(args []string, stdout, stderr io.Writer) int {
	if f, err := os.OpenFile(shimLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(f, strings.Join(args, " "))
		f.Close()
	}
	var t shimTable
	if b, err := os.ReadFile(shimState); err == nil {
		if err := json.Unmarshal(b, &t); err != nil {
			fmt.Fprintln(stderr, "ipvsadm shim: state:", err)
			return 2
		}
	}
	changed, err := shimRun(&t, args, stdout)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if changed {
		b, _ := json.Marshal(&t)
		tmp := shimState + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil || os.Rename(tmp, shimState) != nil {
			fmt.Fprintln(stderr, "ipvsadm shim: cannot save the table")
			return 2
		}
	}
	return 0
}

func shimRun(t *shimTable, args []string, stdout io.Writer) (bool, error) {
	var cmd, proto, addr, sched, netmask, raddr, fwd string
	persistent, weight, upper, lower := -1, -1, 0, 0
	v6, numeric, thresholds := false, false, false
	next := func(i *int) (string, error) {
		if *i+1 >= len(args) {
			return "", fmt.Errorf("option %s needs a value", args[*i])
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var err error
		switch a {
		case "-A", "-E", "-D", "-C", "-a", "-e", "-d", "-L", "-l":
			if cmd != "" {
				return false, errors.New("ipvsadm: multiple commands specified")
			}
			cmd = a
		case "-n":
			numeric = true
		case "--thresholds":
			thresholds = true
		case "-t", "-u", "-f":
			proto = map[string]string{"-t": "tcp", "-u": "udp", "-f": "fwm"}[a]
			addr, err = next(&i)
		case "-6":
			v6 = true
		case "-s":
			sched, err = next(&i)
		case "-p":
			// ipvsadm's -p takes an optional timeout (300).
			persistent = 300
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				// ipvsadm's string_to_number(optarg, 1, 86400*31).
				if persistent, err = strconv.Atoi(args[i]); err != nil || persistent < 1 || persistent > 86400*31 {
					return false, fmt.Errorf("ipvsadm: illegal timeout for persistent service")
				}
			}
		case "-M":
			netmask, err = next(&i)
		case "-r":
			raddr, err = next(&i)
		case "-g", "-m", "-i":
			fwd = map[string]string{"-g": "gate", "-m": "masq", "-i": "ipip"}[a]
		case "-w", "-x", "-y":
			var v string
			if v, err = next(&i); err == nil {
				var n int
				if n, err = strconv.Atoi(v); err != nil {
					return false, fmt.Errorf("ipvsadm: illegal %s value %q", a, v)
				}
				switch a {
				case "-w":
					weight = n
				case "-x":
					upper = n
				default:
					lower = n
				}
			}
		case "-o", "--ops":
		case "-b":
			_, err = next(&i)
		default:
			return false, fmt.Errorf("ipvsadm: unknown option %q", a)
		}
		if err != nil {
			return false, err
		}
	}
	switch cmd {
	case "-L", "-l":
		if !numeric {
			return false, errors.New("ipvsadm shim: only -L -n is recorded")
		}
		shimList(t, thresholds, stdout)
		return false, nil
	case "-C":
		t.Services = nil
		return true, nil
	case "":
		return false, errors.New("ipvsadm: no command")
	}
	if proto == "" {
		return false, errors.New("ipvsadm: service address required")
	}
	svcAddr, svcPort, err := shimService4(proto, addr)
	if err != nil {
		return false, err
	}
	i, s := t.find(proto, svcAddr, v6)
	switch cmd {
	case "-A", "-E":
		if cmd == "-A" && s != nil {
			return false, errors.New("Service already exists")
		}
		if cmd == "-E" && s == nil {
			return false, errors.New("No such service")
		}
		if s == nil {
			s = &shimService{Proto: proto, Addr: svcAddr, V6: v6, Scheduler: "wlc"}
			t.Services = append(t.Services, s)
		}
		if sched != "" {
			s.Scheduler = sched
		}
		s.Persistent = max(persistent, 0)
		s.Netmask = ""
		if persistent >= 0 {
			s.Netmask = netmask
			if s.Netmask == "" {
				s.Netmask = "255.255.255.255"
				if v6 || strings.HasPrefix(svcAddr, "[") {
					s.Netmask = "128"
				}
			}
		}
		return true, nil
	case "-D":
		if s == nil {
			return false, errors.New("No such service")
		}
		t.Services = append(t.Services[:i], t.Services[i+1:]...)
		return true, nil
	}
	if s == nil {
		return false, errors.New("No such service")
	}
	if raddr == "" {
		return false, errors.New("ipvsadm: real server address required")
	}
	rap, err := shimReal(raddr, svcPort)
	if err != nil {
		return false, err
	}
	if (cmd == "-a" || cmd == "-e") && proto != "fwm" && (fwd == "gate" || fwd == "ipip" || fwd == "") {
		// ipvsadm, for -a and -e only (gate is its default): "The
		// destination port must be equal to the service port if the
		// IP_VS_CONN_F_TUNNEL or IP_VS_CONN_F_DROUTE is set."
		rap = netip.AddrPortFrom(rap.Addr(), svcPort)
	}
	ra := rap.String()
	j, d := s.find(ra)
	switch cmd {
	case "-a":
		if d != nil {
			return false, errors.New("Destination already exists")
		}
		d = &shimDest{Addr: ra, Forward: "gate", Weight: 1}
		s.Dests = append(s.Dests, d)
	case "-e":
		if d == nil {
			return false, errors.New("No such destination")
		}
	case "-d":
		if d == nil {
			return false, errors.New("No such destination")
		}
		s.Dests = append(s.Dests[:j], s.Dests[j+1:]...)
		return true, nil
	}
	if fwd != "" {
		d.Forward = fwd
	}
	if weight >= 0 {
		d.Weight = weight
	}
	d.Upper, d.Lower = upper, lower
	return true, nil
}

// shimService4 normalises a service address; it returns the port (0 for
// a firewall mark).
func shimService4(proto, addr string) (string, uint16, error) {
	if proto == "fwm" {
		n, err := strconv.ParseUint(addr, 10, 32)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("ipvsadm: illegal fwmark %q", addr)
		}
		return strconv.FormatUint(n, 10), 0, nil
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("ipvsadm: illegal virtual server address[:port] specified: %q", addr)
	}
	return ap.String(), ap.Port(), nil
}

func shimReal(addr string, port uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("ipvsadm: illegal real server address[:port] specified: %q", addr)
	}
	return netip.AddrPortFrom(a, port), nil
}

// shimList prints the table as `ipvsadm -L -n` does (the parts ldirectord
// reads): three header lines, then services and their reals.
func shimList(t *shimTable, thresholds bool, w io.Writer) {
	fmt.Fprintln(w, "IP Virtual Server version 1.2.1 (size=4096)")
	if thresholds {
		fmt.Fprintln(w, "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn")
		fmt.Fprintln(w, "  -> RemoteAddress:Port")
	} else {
		fmt.Fprintln(w, "Prot LocalAddress:Port Scheduler Flags")
		fmt.Fprintln(w, "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn")
	}
	svcs := append([]*shimService(nil), t.Services...)
	sort.SliceStable(svcs, func(i, j int) bool { return svcs[i].Proto+svcs[i].Addr < svcs[j].Proto+svcs[j].Addr })
	for _, s := range svcs {
		line := fmt.Sprintf("%s  %s", strings.ToUpper(s.Proto), s.Addr)
		if s.V6 {
			line += " IPv6"
		}
		line += " " + s.Scheduler
		if s.Persistent > 0 {
			line += fmt.Sprintf(" persistent %d", s.Persistent)
			if s.Netmask != "255.255.255.255" && s.Netmask != "128" {
				line += " mask " + s.Netmask
			}
		}
		fmt.Fprintln(w, line)
		for _, d := range s.Dests {
			if thresholds {
				fmt.Fprintf(w, "  -> %-28s %-10d %-10d %-10d %d\n", d.Addr, d.Upper, d.Lower, 0, 0)
				continue
			}
			f := map[string]string{"gate": "Route", "masq": "Masq", "ipip": "Tunnel"}[d.Forward]
			fmt.Fprintf(w, "  -> %-28s %-7s %-6d %-10d %d\n", d.Addr, f, d.Weight, 0, 0)
		}
	}
}
