package cabi

import (
	"errors"
	"testing"
)

// TestStructCodec: a struct encodes little-endian in its C size and decodes
// back; a buffer shorter than the size is ErrShortBuffer either way.
func TestStructCodec(t *testing.T) {
	type pair struct {
		A uint32
		B uint16
		_ uint16
	}
	const size = 8
	in := pair{A: 0x04030201, B: 0x0605}
	tests := []struct {
		name string
		buf  int
		ok   bool
	}{
		{"exact", size, true},
		{"longer", size + 4, true},
		{"short", size - 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := make([]byte, tt.buf)
			err := EncodeStruct(b, &in, size, "pair")
			var out pair
			derr := DecodeStruct(b, &out, size, "pair")
			if !tt.ok {
				if !errors.Is(err, ErrShortBuffer) || !errors.Is(derr, ErrShortBuffer) {
					t.Fatalf("encode %v, decode %v; want ErrShortBuffer", err, derr)
				}
				return
			}
			if err != nil || derr != nil {
				t.Fatalf("encode %v, decode %v", err, derr)
			}
			if b[0] != 1 || b[4] != 5 || out != in {
				t.Errorf("bytes %x, decoded %+v; want little-endian %+v back", b, out, in)
			}
		})
	}
}
