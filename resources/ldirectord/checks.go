package ldirectord

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/resources/ldirectord/spec"
)

// probe is the health check of one real server as one virtual defines it.
// ldirectord checks each distinct real (same address and check settings)
// once per cycle even when several virtuals list it: sig is that identity.
type probe struct {
	sig      string
	host     string // the real server's address, without port
	check    monitors.Check
	timeout  time.Duration
	interval time.Duration
	failures int
	// maint are the files that take the real out (ldirectord's
	// maintenancedir): while one exists the real is down, unchecked.
	maint []string
}

// probeFor builds the check of real r of virtual v (both normalised).
// A nil check means checktype "off": the real is never added. res holds
// the receive regexps compiled so far in this pass: 10,000 reals that
// share one receive string share one compiled regexp (safe for
// concurrent use).
func probeFor(v *spec.Virtual, r *spec.Real, res map[string]*regexp.Regexp) probe {
	rap, _ := netip.ParseAddrPort(r.Address)
	host := rap.Addr().String()
	port := int(rap.Port())
	switch { // ldirectord's ld_checkport: the virtual's, else the real's
	case v.CheckPort != 0:
		port = v.CheckPort
	case r.CheckPort != 0:
		port = r.CheckPort
	}
	target := net.JoinHostPort(host, strconv.Itoa(port))
	request, receive := v.Request, v.Receive
	if r.Request != "" {
		request = r.Request
	}
	if r.Receive != "" {
		receive = r.Receive
	}
	p := probe{host: host, timeout: v.CheckTimeout.D(), interval: v.CheckInterval.D(), failures: v.FailureCount}
	if v.MaintenanceDir != "" {
		rport := int(rap.Port())
		if r.CheckPort != 0 {
			rport = r.CheckPort // the port the real= line gave
		}
		p.maint = []string{filepath.Join(v.MaintenanceDir, net.JoinHostPort(host, strconv.Itoa(rport))), filepath.Join(v.MaintenanceDir, host)}
		if rap.Addr().Is6() { // ldirectord writes a v6 real as [addr]:port
			p.maint[0] = filepath.Join(v.MaintenanceDir, "["+host+"]:"+strconv.Itoa(rport))
		}
	}
	switch v.CheckType { // "off" leaves check nil
	case "on":
		p.check = monitors.Always{}
	case "ping":
		p.check = monitors.Ping{Addr: host}
	case "connect":
		if v.Protocol == "udp" {
			p.check = monitors.Ping{Addr: host} // ldirectord: connect on udp means ping
		} else {
			p.check = monitors.TCP{Addr: target}
		}
	case "external", "external-perl":
		vip, vport := strconv.Itoa(int(v.FWMark)), "0"
		if v.FWMark == 0 {
			ap, _ := netip.ParseAddrPort(v.Address)
			vip, vport = ap.Addr().String(), strconv.Itoa(int(ap.Port()))
		}
		rport := int(rap.Port())
		if r.CheckPort != 0 {
			rport = r.CheckPort // the port the real= line gave, as ldirectord passes it
		}
		p.check = monitors.External{Command: v.CheckCommand, Args: []string{vip, vport, host, strconv.Itoa(rport)}}
		if v.CheckType == "external-perl" {
			// ldirectord evaluates the file inside itself with these
			// arguments as @ARGV; exit(N) is the result, a die is down.
			// perl running it as a script gives the same exit codes.
			p.check = monitors.External{Command: "perl", Args: []string{v.CheckCommand, vip, vport, host, strconv.Itoa(rport)}}
		}
	case "negotiate", "combined":
		p.timeout = v.NegotiateTimeout.D()
		switch v.Service {
		case "http", "https", "http_proxy":
			h := monitors.HTTP{Addr: target, TLS: v.Service == "https", Method: v.HTTPMethod, Path: request,
				Host: v.VirtualHost, Digest: v.Digest, Insecure: v.TLSVerify != "chain", ChainOnly: v.TLSVerify == "chain",
				ConnectTimeout: v.ConnectTimeout.D()}
			if receive != "" {
				if res[receive] == nil {
					res[receive] = regexp.MustCompile(receive) // validated by spec
				}
				h.Receive = res[receive]
			}
			for _, s := range v.Status {
				sr, _ := monitors.ParseStatus(s)
				h.Status = append(h.Status, sr)
			}
			p.check = h
		case "dns":
			p.check = monitors.DNS{Addr: target, Name: request, Type: v.DNSType, Expect: receive}
		case "smtp", "submission":
			p.check = monitors.SMTP{Addr: target}
		default: // none: ldirectord marks the real up without asking
			p.check = monitors.Always{}
		}
		if v.CheckType == "combined" {
			p.check = &combined{negotiate: p.check, connect: monitors.TCP{Addr: target}, connects: v.Connects,
				negotiateTimeout: p.timeout, connectTimeout: v.CheckTimeout.D(), done: startCombined}
			p.timeout = max(p.timeout, v.CheckTimeout.D())
		}
	}
	p.sig = fmt.Sprintf("%s|%s|%s|%s|%v|%s|%s|%s|%v|%s|%s|%d|%d", v.CheckType, v.Service, target, request, receive,
		v.HTTPMethod, v.VirtualHost, v.Digest, v.Status, p.timeout, p.interval, p.failures, v.Connects)
	p.sig += "|" + v.TLSVerify + "|" + strings.Join(p.maint, "|")
	if v.CheckType == "external" || v.CheckType == "external-perl" {
		p.sig += "|" + v.CheckCommand + "|" + v.Address + "|" + r.Address
	}
	return p
}

// startCombined makes a combined check negotiate first, as ldirectord
// does (its count starts at 999999).
const startCombined = math.MaxInt

// combined is ldirectord's checktype=N: a negotiate check, then N connect
// checks, then a negotiate check again; a failed connect check is
// followed at once by a negotiate check, and a failed negotiate check by
// another (ldirectord's _check_real and its num_connects).
type combined struct {
	negotiate, connect               monitors.Check
	connects                         int
	negotiateTimeout, connectTimeout time.Duration

	mu   sync.Mutex
	done int // connect checks passed since the last negotiate check passed
}

func (c *combined) String() string {
	return fmt.Sprintf("combined %s, negotiate every %d: %s", c.connect, c.connects, c.negotiate)
}

func (c *combined) Check(ctx context.Context) monitors.Result {
	c.mu.Lock()
	negotiate := c.done >= c.connects
	c.mu.Unlock()
	check, timeout := c.connect, c.connectTimeout
	if negotiate {
		check, timeout = c.negotiate, c.negotiateTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	res := check.Check(cctx)
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case negotiate && res.OK:
		c.done = 0
	case !negotiate && res.OK:
		c.done++
	case !negotiate:
		c.done = startCombined
	}
	return res
}

// inMaintenance names the maintenance file that exists for the real, or
// "".
func (p *probe) inMaintenance() string {
	for _, f := range p.maint {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return ""
}
