package heartbeat

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestCOBSRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := [][]byte{{}, {0}, {0, 0}, {1}, bytes.Repeat([]byte{1}, 254), bytes.Repeat([]byte{1}, 255), bytes.Repeat([]byte{0}, 300)}
	for i := 0; i < 200; i++ {
		b := make([]byte, r.IntN(1500))
		for j := range b {
			if r.IntN(4) > 0 {
				b[j] = byte(r.IntN(256))
			}
		}
		cases = append(cases, b)
	}
	for _, src := range cases {
		enc := cobsEncode(nil, src)
		if bytes.IndexByte(enc, 0) >= 0 {
			t.Fatalf("encoding of %d bytes contains a zero", len(src))
		}
		dec, ok := cobsDecode(nil, enc)
		if !ok || !bytes.Equal(dec, src) {
			t.Fatalf("round trip of %x failed: %x ok=%v", src, dec, ok)
		}
	}
}

func FuzzCOBSDecode(f *testing.F) {
	f.Add([]byte{3, 1, 2, 2, 3})
	f.Add([]byte{0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		b = bytes.ReplaceAll(b, []byte{0}, []byte{1})
		dec, ok := cobsDecode(nil, b)
		if ok && !bytes.Equal(cobsEncode(nil, dec), b) && len(b) > 0 && b[len(b)-1] != 0xFF {
			// Only canonical encodings must round trip; a trailing 0xFF
			// block is a legal non-canonical form.
			if again, ok2 := cobsDecode(nil, cobsEncode(nil, dec)); !ok2 || !bytes.Equal(again, dec) {
				t.Fatalf("decode/encode mismatch for %x", b)
			}
		}
	})
}
