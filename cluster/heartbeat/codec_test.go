package heartbeat

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func testCodec(t testing.TB, cluster, secret string) *Codec {
	c, err := NewCodec(cluster, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func reason(err error) DropReason {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return Accepted
}

func TestRoundTrip(t *testing.T) {
	c := testCodec(t, "lvs", "secret-secret-secret")
	for _, m := range []*Message{
		{Node: "lvs1", Incarnation: 1, Seq: 1},
		{Node: "lvs2", Incarnation: 1<<63 + 5, Seq: 1<<64 - 1, View: []ViewEntry{{"lvs1", StateUp}, {"witness", StateDead}, {"n3", StateInit}}},
		{Node: "lvs3", Incarnation: 3, Seq: 4, Applied: 1 << 40, OverrunUS: 70000,
			Echo: []Echo{{Node: "lvs1", Incarnation: 9, Seq: 12, AgeUS: 1500}, {Node: "w", Seq: 0, AgeUS: MaxAge}}},
		{Node: "lvs4", Incarnation: 5, Seq: 6, Lapsed: true, View: []ViewEntry{{"lvs1", StateDead}}},
	} {
		pkt, err := c.Append(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(pkt)
		if err != nil {
			t.Fatal(err)
		}
		m.Cluster = "lvs"
		if len(m.View) == 0 {
			m.View = nil
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	c := testCodec(t, "lvs", "secret-secret-secret")
	good, err := c.Append(nil, &Message{Node: "lvs1", Incarnation: 7, Seq: 9, View: []ViewEntry{{"lvs2", StateUp}}})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x40; return b }
	foreign, _ := testCodec(t, "web", "secret-secret-secret").Append(nil, &Message{Node: "n1", Seq: 1})
	wrongKey, _ := testCodec(t, "lvs", "another-secret-entirely").Append(nil, &Message{Node: "lvs1", Seq: 1})
	cases := []struct {
		name string
		pkt  []byte
		want DropReason
	}{
		{"empty", nil, DropMalformed},
		{"short", good[:20], DropMalformed},
		{"oversized", make([]byte, MaxPacket+1), DropMalformed},
		{"bad magic", flip(0), DropVersion},
		{"future version", func() []byte { b := bytes.Clone(good); b[3] = 2; return b }(), DropVersion},
		{"foreign cluster", foreign, DropForeign},
		{"wrong secret", wrongKey, DropBadMAC},
		{"flipped seq", flip(len(good) - macLen - 20), DropBadMAC},
		{"flipped mac", flip(len(good) - 1), DropBadMAC},
		{"truncated mac", good[:len(good)-1], DropBadMAC},
		{"cluster length past end", func() []byte { b := bytes.Clone(good); b[6] = 200; return b }(), DropMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Decode(tc.pkt)
			if got := reason(err); got != tc.want {
				t.Errorf("got %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

// TestAuthenticatedGarbage checks that a packet with a valid MAC but a
// broken body (a buggy or hostile peer holding the secret) is refused as
// malformed, not accepted or panicked on.
func TestAuthenticatedGarbage(t *testing.T) {
	c := testCodec(t, "lvs", "secret-secret-secret")
	head := append([]byte{'V', 'G', 'L', Version, typeBeat, 0, 3}, "lvs"...)
	for _, body := range [][]byte{
		{},            // no node
		{0},           // zero-length node
		{4, 'n', '1'}, // node runs past end
		append([]byte{2, 'n', '1'}, make([]byte, 15)...),                                       // seq truncated
		append(append([]byte{2, 'n', '1'}, make([]byte, 16)...), tagView, 0, 9, 1),             // TLV past end
		append(append([]byte{2, 'n', '1'}, make([]byte, 16)...), tagView, 0, 2, 3, 0),          // view count > entries
		append(append([]byte{2, 'n', '1'}, make([]byte, 16)...), tagApplied, 0, 4, 0, 0, 0, 1), // applied index not 8 bytes
		append(append([]byte{2, 'n', '1'}, make([]byte, 16)...), tagEcho, 0, 4, 1, 1, 'a', 0),  // echo entry truncated
		append(append([]byte{2, 'n', '1'}, make([]byte, 16)...), tagLapsed, 0, 1, 1),           // the lapsed flag carries no value
	} {
		pkt := append(bytes.Clone(head), body...)
		pkt = signed(c, pkt)
		if _, err := c.Decode(pkt); reason(err) != DropMalformed {
			t.Errorf("body %v: got %v, want malformed", body, err)
		}
	}
	// An unknown TLV from a newer version is skipped.
	pkt := append(bytes.Clone(head), append(append([]byte{2, 'n', '1'}, make([]byte, 16)...), 99, 0, 2, 0xAA, 0xBB)...)
	if m, err := c.Decode(signed(c, pkt)); err != nil || m.Node != "n1" {
		t.Errorf("unknown TLV: got %v, %v", m, err)
	}
}

func signed(c *Codec, body []byte) []byte {
	mac := c.mac()
	mac.Write(body)
	return mac.Sum(body)
}

func BenchmarkEncode(b *testing.B) {
	c := testCodec(b, "lvs", "secret-secret-secret")
	m := &Message{Node: "lvs1", Incarnation: 1, View: []ViewEntry{{"lvs2", StateUp}, {"lvs3", StateUp}}}
	buf := make([]byte, 0, MaxPacket)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.Seq++
		if _, err := c.Append(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	c := testCodec(b, "lvs", "secret-secret-secret")
	pkt, _ := c.Append(nil, &Message{Node: "lvs1", Incarnation: 1, Seq: 1, View: []ViewEntry{{"lvs2", StateUp}, {"lvs3", StateUp}}})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.Decode(pkt); err != nil {
			b.Fatal(err)
		}
	}
}
