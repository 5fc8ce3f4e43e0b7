package monitors

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS sends one query for Name (type Type, default A) over UDP to Addr and
// passes on a NOERROR answer with at least one record of that type; when
// Expect is set, one A/AAAA answer must be that address (ldirectord's
// receive for service dns). keepalived's DNS_CHECK defaults to SOA of ".".
type DNS struct {
	Addr   string
	Name   string
	Type   string // A, AAAA, NS, CNAME, SOA, MX, TXT
	Expect string
}

var dnsTypes = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA, "NS": dnsmessage.TypeNS, "CNAME": dnsmessage.TypeCNAME,
	"SOA": dnsmessage.TypeSOA, "MX": dnsmessage.TypeMX, "TXT": dnsmessage.TypeTXT,
}

// ValidDNSType reports whether t is a query type DNS checks can send.
func ValidDNSType(t string) bool { _, ok := dnsTypes[strings.ToUpper(t)]; return ok || t == "" }

func (c DNS) String() string { return fmt.Sprintf("dns %s %s %s", c.Addr, c.qtype(), c.Name) }

func (c DNS) qtype() string {
	if c.Type == "" {
		return "A"
	}
	return strings.ToUpper(c.Type)
}

func (c DNS) Check(ctx context.Context) Result {
	start := time.Now()
	name := c.Name
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	qn, err := dnsmessage.NewName(name)
	if err != nil {
		return failed(start, "dns", err)
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	qt := dnsTypes[c.qtype()]
	q, err := (&dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qn, Type: qt, Class: dnsmessage.ClassINET}},
	}).Pack()
	if err != nil {
		return failed(start, "dns", err)
	}
	conn, err := dial(ctx, "udp", c.Addr)
	if err != nil {
		return failed(start, "dns", err)
	}
	defer conn.Close()
	if _, err := conn.Write(q); err != nil {
		return failed(start, "dns", err)
	}
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return failed(start, "dns", err)
		}
		var m dnsmessage.Message
		if m.Unpack(buf[:n]) != nil || m.ID != id || !m.Response {
			continue // not our answer: keep waiting until the deadline
		}
		return c.judge(start, m, qt)
	}
}

func (c DNS) judge(start time.Time, m dnsmessage.Message, qt dnsmessage.Type) Result {
	if m.RCode != dnsmessage.RCodeSuccess {
		return Result{Summary: "dns: " + m.RCode.String(), Latency: time.Since(start)}
	}
	var want netip.Addr
	if c.Expect != "" {
		want, _ = netip.ParseAddr(c.Expect)
	}
	found := 0
	for _, a := range m.Answers {
		if a.Header.Type != qt {
			continue
		}
		found++
		if !want.IsValid() {
			continue
		}
		var got netip.Addr
		switch r := a.Body.(type) {
		case *dnsmessage.AResource:
			got = netip.AddrFrom4(r.A)
		case *dnsmessage.AAAAResource:
			got = netip.AddrFrom16(r.AAAA)
		}
		if got == want {
			return passed(start, "dns: "+want.String())
		}
	}
	switch {
	case found == 0:
		return Result{Summary: fmt.Sprintf("dns: no %s record for %s", c.qtype(), c.Name), Latency: time.Since(start)}
	case want.IsValid():
		return Result{Summary: fmt.Sprintf("dns: %s not among the answers", c.Expect), Latency: time.Since(start)}
	}
	return passed(start, fmt.Sprintf("dns: %d answers", found))
}
