package director

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// StrayReply is how a director treats the replies of one NAT real server
// that match no IPVS connection. With stateless failover a director
// that takes over receives replies to requests the failed director
// forwarded: forwarded as they are, un-NATed, they reach the client from
// the real's address, the client answers with a reset, and the
// connection is lost. When the real serves one virtual service only
// (Virtual is set), the reply can only belong to it: the director
// rewrites its source to the virtual address and port, which is what
// IPVS would have done, and the client's next packet creates the
// connection entry (sloppy_tcp). Otherwise (a real of several virtuals,
// of a firewall mark, IPv6 or SCTP) the reply is dropped, and the real
// retransmits it after the client's next packet. IPVS's nat_icmp_send
// would drop them too, but also the replies to the director's own health
// checks of the real.
type StrayReply struct {
	L4      uint8          // unix.IPPROTO_TCP, _UDP or _SCTP
	Real    netip.AddrPort // the reply's source
	Virtual netip.AddrPort // its source when rewritten; zero: dropped
}

func (d StrayReply) String() string {
	if d.Virtual.IsValid() {
		return fmt.Sprintf("%s from %s as %s", l4Name(d.L4), d.Real, d.Virtual)
	}
	return fmt.Sprintf("%s from %s dropped", l4Name(d.L4), d.Real)
}

func l4Name(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	}
	return fmt.Sprint(p)
}

// StrayRepliesOf lists what a stateless service needs: one entry per NAT
// real with a port, for the service's protocol (tcp, udp and sctp for a
// firewall mark, which may carry any), rewritten to the service's
// address where SortStrayReplies finds that unambiguous. A real of a
// firewall-mark service without a port answers from whatever port the
// client asked for, which a rule cannot tell from the real's own
// traffic: it gets none.
func StrayRepliesOf(s *Service) []StrayReply {
	var l4 []uint8
	switch s.Key.Proto {
	case TCP:
		l4 = []uint8{unix.IPPROTO_TCP}
	case UDP:
		l4 = []uint8{unix.IPPROTO_UDP}
	default:
		l4 = []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP}
	}
	var out []StrayReply
	for ap, d := range s.Dests {
		if d.Forward != Masq || ap.Port() == 0 {
			continue
		}
		for _, p := range l4 {
			out = append(out, StrayReply{L4: p, Real: ap, Virtual: s.Key.Addr})
		}
	}
	return SortStrayReplies(out)
}

// SortStrayReplies sorts and merges in place: one entry per protocol and
// real, rewritten only when every service that has the real agrees on
// the virtual address, a rewritable one (IPv4 TCP or UDP, as the
// checksums nftables updates allow; a firewall mark has none).
func SortStrayReplies(ds []StrayReply) []StrayReply {
	slices.SortFunc(ds, func(a, b StrayReply) int {
		if c := a.Real.Compare(b.Real); c != 0 {
			return c
		}
		if c := cmp.Compare(a.L4, b.L4); c != 0 {
			return c
		}
		return a.Virtual.Compare(b.Virtual)
	})
	var out []StrayReply
	for _, d := range ds {
		if !d.Real.Addr().Is4() || !d.Virtual.Addr().Is4() || d.L4 == unix.IPPROTO_SCTP {
			d.Virtual = netip.AddrPort{}
		}
		if n := len(out); n > 0 && out[n-1].Real == d.Real && out[n-1].L4 == d.L4 {
			if out[n-1].Virtual != d.Virtual {
				out[n-1].Virtual = netip.AddrPort{}
			}
			continue
		}
		out = append(out, d)
	}
	return out
}

// StrayTable is the nftables table (family inet) that holds the rules.
const StrayTable = "vigil_stateless"

// strayPriority places the chain after IPVS's own forward hook, which
// rewrites the source of the replies it has a connection for (priority
// 100 in ip_vs_core.c): what still has a real's address as its source
// there matched none.
const strayPriority = 200

// SetStrayReplies makes the nftables table StrayTable of the calling
// thread's network namespace hold exactly ds, in one transaction (the
// table is created, deleted and created again, so whatever a crashed
// earlier instance left is replaced); none deletes the table.
func SetStrayReplies(ds []StrayReply) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: StrayTable}
	c.AddTable(t) // so that the delete finds one
	c.DelTable(t)
	if len(ds) > 0 {
		c.AddTable(t)
		ch := c.AddChain(&nftables.Chain{
			Name:     "forward",
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookForward,
			Priority: nftables.ChainPriorityRef(strayPriority),
		})
		for _, d := range ds {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: strayExprs(d)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table inet %s: %w", StrayTable, err)
	}
	return nil
}

// strayExprs is "meta nfproto ipv4 meta l4proto tcp ip saddr R th
// sport P counter" followed by "ip saddr set V tcp sport set Q" (the
// checksums updated as nft does) or "drop" (ipv6: ip6 saddr).
func strayExprs(d StrayReply) []expr.Any {
	nfproto, off := byte(unix.NFPROTO_IPV4), uint32(12) // iphdr.saddr
	if d.Real.Addr().Is6() && !d.Real.Addr().Is4In6() {
		nfproto, off = unix.NFPROTO_IPV6, 8 // ipv6hdr.saddr
	}
	addr := d.Real.Addr().Unmap().AsSlice()
	es := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{d.L4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(addr))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, d.Real.Port())},
		&expr.Counter{},
	}
	if !d.Virtual.IsValid() {
		return append(es, &expr.Verdict{Kind: expr.VerdictDrop})
	}
	l4csum := uint32(16) // tcphdr.check
	if d.L4 == unix.IPPROTO_UDP {
		l4csum = 6 // udphdr.check
	}
	va := d.Virtual.Addr().AsSlice()
	return append(es,
		&expr.Immediate{Register: 1, Data: va},
		// iphdr.check at 10; the pseudo-header flag updates the L4 checksum.
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4,
			CsumType: expr.CsumTypeInet, CsumOffset: 10, CsumFlags: unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR},
		&expr.Immediate{Register: 1, Data: binary.BigEndian.AppendUint16(nil, d.Virtual.Port())},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2,
			CsumType: expr.CsumTypeInet, CsumOffset: l4csum},
	)
}

// StrayReplies reads back the table's rules and how many packets each has
// matched (nil, nil when there is none: SetStrayReplies writes no empty
// table).
func StrayReplies() (map[StrayReply]uint64, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: StrayTable}
	rules, err := c.GetRules(t, &nftables.Chain{Name: "forward", Table: t})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("nftables table inet %s: %w", StrayTable, err)
	}
	if len(rules) == 0 {
		return nil, nil
	}
	out := map[StrayReply]uint64{}
	for _, r := range rules {
		d, n, ok := parseStray(r.Exprs)
		if !ok {
			return nil, fmt.Errorf("nftables table inet %s: a rule not written by Vigil", StrayTable)
		}
		out[d] = n
	}
	return out, nil
}

// parseStray is strayExprs read back.
func parseStray(es []expr.Any) (d StrayReply, packets uint64, ok bool) {
	var cmps, imms [][]byte
	for _, e := range es {
		switch e := e.(type) {
		case *expr.Cmp:
			cmps = append(cmps, e.Data)
		case *expr.Immediate:
			imms = append(imms, e.Data)
		case *expr.Counter:
			packets = e.Packets
		}
	}
	if len(cmps) != 4 || len(cmps[1]) != 1 || len(cmps[3]) != 2 || (len(imms) != 0 && (len(imms) != 2 || len(imms[1]) != 2)) {
		return d, 0, false
	}
	a, okA := netip.AddrFromSlice(cmps[2])
	if !okA {
		return d, 0, false
	}
	d = StrayReply{L4: cmps[1][0], Real: netip.AddrPortFrom(a, binary.BigEndian.Uint16(cmps[3]))}
	if len(imms) == 2 {
		v, okV := netip.AddrFromSlice(imms[0])
		if !okV {
			return d, 0, false
		}
		d.Virtual = netip.AddrPortFrom(v, binary.BigEndian.Uint16(imms[1]))
	}
	return d, packets, true
}
