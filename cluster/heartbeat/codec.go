// Package heartbeat sends and receives authenticated heartbeats over any
// number of media (UDP unicast, broadcast, multicast, serial lines) at once.
// It knows nothing of what a heartbeat means: membership decides that.
package heartbeat

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
)

// Wire format, version 1 (all integers big-endian):
//
//	magic "VGL" | version u8 | type u8 | flags u8
//	cluster: len u8 + bytes | node: len u8 + bytes
//	incarnation u64 | seq u64
//	TLV*: tag u8 | len u16 | value      (unknown tags are skipped)
//	HMAC-SHA256 (32 bytes) over everything before it
//
// TLVs let later versions add fields (Raft term/leader, resource state)
// that older nodes skip instead of rejecting the whole packet.
const (
	Version    = 1
	typeBeat   = 1
	macLen     = sha256.Size
	MaxPacket  = 1400 // fits an Ethernet frame with IP/UDP headers
	maxName    = 63
	headerLen  = 6
	tagView    = 1
	tagApplied = 2 // u64: the sender's last applied Raft index
	tagEcho    = 3 // count u8, then per node: name, incarnation u64, seq u64, age_us u32
	tagOverrun = 4 // u32: the sender's release overrun in microseconds
	tagLapsed  = 5 // empty: the sender's hold lapsed (Message.Lapsed)
	viewMaxLen = 255
)

var magic = [3]byte{'V', 'G', 'L'}

// PeerState is a node's state as one node sees it; it travels in views.
type PeerState uint8

const (
	StateInit PeerState = iota // not heard from yet, within initdead
	StateUp
	StateDead
)

func (s PeerState) String() string {
	switch s {
	case StateInit:
		return "init"
	case StateUp:
		return "up"
	case StateDead:
		return "dead"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ViewEntry is one node in the sender's view of the cluster.
type ViewEntry struct {
	Node  string    `json:"node"`
	State PeerState `json:"state"`
}

// Echo tells a node which of its heartbeats the sender heard last: the
// node's lease is renewed from the time it sent that beat (see package
// lease). Seq 0 means "not renewing"; Age is how long ago the sender
// received the last beat it did renew from.
type Echo struct {
	Node        string
	Incarnation uint64
	Seq         uint64
	AgeUS       uint32 // saturates: MaxAge means never
}

// MaxAge is an Echo age meaning "never heard".
const MaxAge = ^uint32(0)

// Message is one heartbeat.
type Message struct {
	Cluster     string
	Node        string
	Incarnation uint64 // changes on every daemon start
	Seq         uint64 // increases with every heartbeat of one incarnation
	View        []ViewEntry
	Applied     uint64 // last Raft index the sender applied
	Echo        []Echo
	// OverrunUS is how long past the end of its lease the sender may
	// still hold resources, in microseconds: releasing all it holds
	// takes longer than its stop budget. Others wait that much longer
	// before taking its groups.
	OverrunUS uint32
	// Lapsed says that the sender, a node of a two_node pair, holds no
	// lease and will hold none until its peer renews it again: not on
	// its tie-breakers alone (docs/SAFETY.md, rules 6 and 7). Older
	// nodes skip the tag: for them nothing changes.
	Lapsed bool
}

// DropReason says why a packet was refused.
type DropReason int

const (
	Accepted          DropReason = iota
	DropMalformed                // truncated, oversized, bad lengths or framing
	DropVersion                  // not our magic or an unsupported version
	DropForeign                  // another cluster's heartbeat
	DropBadMAC                   // authentication failed: wrong or no secret
	DropReplay                   // sequence not newer than one already seen
	DropStale                    // from an older incarnation of the sender
	DropUnknownNode              // authenticated, but the node is not configured
	DropDuplicateSelf            // our own name with another incarnation
	// DropFiltered counts what the kernel dropped on the socket: not a
	// heartbeat of this cluster (the socket filter), or no room in the
	// receive buffer. The engine never sees those packets, so the kernel's
	// per-socket drop counter is reported under this reason.
	DropFiltered
	numDropReasons
)

var dropNames = [...]string{"accepted", "malformed", "version", "foreign_cluster", "bad_mac", "replay", "stale", "unknown_node", "duplicate_self", "filtered"}

func (r DropReason) String() string {
	if r >= 0 && int(r) < len(dropNames) {
		return dropNames[r]
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// DropReasons lists every reason a packet can be dropped for.
func DropReasons() []DropReason {
	out := make([]DropReason, 0, numDropReasons-1)
	for r := DropMalformed; r < numDropReasons; r++ {
		out = append(out, r)
	}
	return out
}

// DecodeError is a refused packet, with the reason it is counted under.
type DecodeError struct {
	Reason DropReason
	Detail string
}

func (e *DecodeError) Error() string { return e.Reason.String() + ": " + e.Detail }

func drop(r DropReason, f string, a ...any) error {
	return &DecodeError{Reason: r, Detail: fmt.Sprintf(f, a...)}
}

// Codec encodes and authenticates heartbeats of one cluster. It is safe
// for concurrent use.
type Codec struct {
	cluster string
	key     []byte
	// macs keeps keyed HMACs for reuse: a new one costs two allocations
	// and two extra SHA-256 blocks, on every packet sent and received.
	macs sync.Pool
}

// NewCodec derives the heartbeat key from the cluster secret with HKDF, so
// the raw secret is never used directly on the wire and a future Raft key
// derived from the same secret stays independent.
func NewCodec(cluster string, secret []byte) (*Codec, error) {
	if len(secret) == 0 {
		return nil, fmt.Errorf("heartbeat: empty cluster secret")
	}
	if len(cluster) == 0 || len(cluster) > maxName {
		return nil, fmt.Errorf("heartbeat: cluster name must be 1..%d bytes", maxName)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "vigil heartbeat v1 "+cluster, 32)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: derive key: %w", err)
	}
	c := &Codec{cluster: cluster, key: key}
	c.macs.New = func() any { return hmac.New(sha256.New, c.key) }
	return c, nil
}

// Append encodes m, authenticated, onto buf.
func (c *Codec) Append(buf []byte, m *Message) ([]byte, error) {
	if len(m.Node) == 0 || len(m.Node) > maxName {
		return nil, fmt.Errorf("heartbeat: node name must be 1..%d bytes", maxName)
	}
	if len(m.View) > viewMaxLen {
		return nil, fmt.Errorf("heartbeat: view of %d nodes is too large", len(m.View))
	}
	start := len(buf)
	buf = append(buf, magic[0], magic[1], magic[2], Version, typeBeat, 0)
	buf = append(buf, byte(len(c.cluster)))
	buf = append(buf, c.cluster...)
	buf = append(buf, byte(len(m.Node)))
	buf = append(buf, m.Node...)
	buf = binary.BigEndian.AppendUint64(buf, m.Incarnation)
	buf = binary.BigEndian.AppendUint64(buf, m.Seq)
	if len(m.View) > 0 {
		buf = append(buf, tagView, 0, 0)
		lenAt := len(buf) - 2
		buf = append(buf, byte(len(m.View)))
		for _, v := range m.View {
			if len(v.Node) == 0 || len(v.Node) > maxName {
				return nil, fmt.Errorf("heartbeat: view node name must be 1..%d bytes", maxName)
			}
			buf = append(buf, byte(len(v.Node)))
			buf = append(buf, v.Node...)
			buf = append(buf, byte(v.State))
		}
		binary.BigEndian.PutUint16(buf[lenAt:], uint16(len(buf)-lenAt-2))
	}
	if m.Applied != 0 {
		buf = append(buf, tagApplied, 0, 8)
		buf = binary.BigEndian.AppendUint64(buf, m.Applied)
	}
	if m.OverrunUS != 0 {
		buf = append(buf, tagOverrun, 0, 4)
		buf = binary.BigEndian.AppendUint32(buf, m.OverrunUS)
	}
	if m.Lapsed {
		buf = append(buf, tagLapsed, 0, 0)
	}
	if len(m.Echo) > 0 {
		if len(m.Echo) > viewMaxLen {
			return nil, fmt.Errorf("heartbeat: %d echoes is too many", len(m.Echo))
		}
		buf = append(buf, tagEcho, 0, 0)
		lenAt := len(buf) - 2
		buf = append(buf, byte(len(m.Echo)))
		for _, e := range m.Echo {
			if len(e.Node) == 0 || len(e.Node) > maxName {
				return nil, fmt.Errorf("heartbeat: echo node name must be 1..%d bytes", maxName)
			}
			buf = append(buf, byte(len(e.Node)))
			buf = append(buf, e.Node...)
			buf = binary.BigEndian.AppendUint64(buf, e.Incarnation)
			buf = binary.BigEndian.AppendUint64(buf, e.Seq)
			buf = binary.BigEndian.AppendUint32(buf, e.AgeUS)
		}
		binary.BigEndian.PutUint16(buf[lenAt:], uint16(len(buf)-lenAt-2))
	}
	mac := c.mac()
	mac.Write(buf[start:])
	buf = mac.Sum(buf)
	c.macs.Put(mac)
	if len(buf)-start > MaxPacket {
		return nil, fmt.Errorf("heartbeat: packet of %d bytes exceeds %d", len(buf)-start, MaxPacket)
	}
	return buf, nil
}

// reader is a bounds-checked cursor: every read reports failure instead of
// panicking, so no byte sequence can crash the decoder.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) n(k int) []byte {
	if r.bad || k < 0 || len(r.b) < k {
		r.bad = true
		return nil
	}
	v := r.b[:k]
	r.b = r.b[k:]
	return v
}

func (r *reader) u8() byte {
	if v := r.n(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.n(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.n(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.n(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) name() string {
	l := int(r.u8())
	if l == 0 || l > maxName {
		r.bad = true
		return ""
	}
	return string(r.n(l))
}

// Decode checks and parses one packet. Packets of another cluster are
// recognised before authentication (so they are reported as foreign rather
// than as forgeries), everything else only after the MAC checks out.
func (c *Codec) Decode(pkt []byte) (*Message, error) {
	if len(pkt) > MaxPacket {
		return nil, drop(DropMalformed, "%d bytes exceeds %d", len(pkt), MaxPacket)
	}
	if len(pkt) < headerLen+2+macLen {
		return nil, drop(DropMalformed, "short packet of %d bytes", len(pkt))
	}
	if pkt[0] != magic[0] || pkt[1] != magic[1] || pkt[2] != magic[2] {
		return nil, drop(DropVersion, "not a Vigil heartbeat")
	}
	if pkt[3] != Version || pkt[4] != typeBeat {
		return nil, drop(DropVersion, "version %d type %d not supported", pkt[3], pkt[4])
	}
	body, sum := pkt[:len(pkt)-macLen], pkt[len(pkt)-macLen:]
	r := &reader{b: body[headerLen:]}
	cluster := r.name()
	if r.bad {
		return nil, drop(DropMalformed, "bad cluster name")
	}
	if cluster != c.cluster {
		return nil, drop(DropForeign, "cluster %q", cluster)
	}
	mac := c.mac()
	mac.Write(body)
	var sumBuf [sha256.Size]byte
	ok := hmac.Equal(mac.Sum(sumBuf[:0]), sum)
	c.macs.Put(mac)
	if !ok {
		return nil, drop(DropBadMAC, "authentication failed")
	}
	m := &Message{Cluster: cluster}
	m.Node = r.name()
	m.Incarnation = r.u64()
	m.Seq = r.u64()
	for !r.bad && len(r.b) > 0 {
		tag := r.u8()
		val := &reader{b: r.n(int(r.u16()))}
		if r.bad {
			break
		}
		switch tag {
		case tagView:
			cnt := int(val.u8())
			m.View = make([]ViewEntry, 0, cnt)
			for i := 0; i < cnt && !val.bad; i++ {
				m.View = append(m.View, ViewEntry{Node: val.name(), State: PeerState(val.u8())})
			}
			if val.bad || len(val.b) != 0 {
				return nil, drop(DropMalformed, "bad view")
			}
		case tagApplied:
			m.Applied = val.u64()
			if val.bad || len(val.b) != 0 {
				return nil, drop(DropMalformed, "bad applied index")
			}
		case tagOverrun:
			m.OverrunUS = val.u32()
			if val.bad || len(val.b) != 0 {
				return nil, drop(DropMalformed, "bad release overrun")
			}
		case tagLapsed:
			m.Lapsed = true
			if len(val.b) != 0 {
				return nil, drop(DropMalformed, "bad lapsed flag")
			}
		case tagEcho:
			cnt := int(val.u8())
			m.Echo = make([]Echo, 0, cnt)
			for i := 0; i < cnt && !val.bad; i++ {
				m.Echo = append(m.Echo, Echo{Node: val.name(), Incarnation: val.u64(), Seq: val.u64(), AgeUS: val.u32()})
			}
			if val.bad || len(val.b) != 0 {
				return nil, drop(DropMalformed, "bad echo")
			}
		}
	}
	if r.bad {
		return nil, drop(DropMalformed, "truncated body")
	}
	return m, nil
}

// mac is a keyed HMAC, reset; Put it back when done.
func (c *Codec) mac() hash.Hash {
	h := c.macs.Get().(hash.Hash)
	h.Reset()
	return h
}
