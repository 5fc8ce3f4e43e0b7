package heartbeat

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder: it must never panic, and
// whatever it accepts must re-encode to the same packet.
func FuzzDecode(f *testing.F) {
	c := testCodec(f, "lvs", "fuzz-secret-fuzz-secret")
	for _, m := range []*Message{
		{Node: "lvs1", Incarnation: 1, Seq: 1},
		{Node: "lvs2", Incarnation: 2, Seq: 3, View: []ViewEntry{{"lvs1", StateUp}, {"lvs3", StateDead}}},
		{Node: "lvs1", Incarnation: 3, Seq: 4, Lapsed: true, Applied: 9, View: []ViewEntry{{"lvs2", StateDead}}},
	} {
		pkt, _ := c.Append(nil, m)
		f.Add(pkt)
	}
	f.Add([]byte("VGL\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		m, err := c.Decode(pkt)
		if err != nil {
			if reason(err) == Accepted {
				t.Fatalf("error without a drop reason: %v", err)
			}
			return
		}
		again, err := c.Append(nil, m)
		if err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
		// Unknown TLVs are skipped, so only compare when there were none.
		if len(again) == len(pkt) && !bytes.Equal(again, pkt) {
			t.Fatalf("re-encoding differs:\n%x\n%x", pkt, again)
		}
	})
}
