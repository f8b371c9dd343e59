package virtiotest

import (
	"bytes"
	"errors"
	"testing"

	"ember/memory"
	"ember/virtio"
)

// TestLoadFuzzInput: what FuzzInput encodes, LoadFuzzInput lays out as the
// device then sees it — the count taken modulo size+1, addresses cut to 18
// bits, heads modulo 2×size (an out-of-range head is the device's to
// refuse), the raw bytes left after the header — and an input shorter than
// its header is an error, not a panic.
func TestLoadFuzzInput(t *testing.T) {
	const size = 4
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 256 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	host := mem.Regions()[0].Host

	raw := []byte("raw bytes")
	in := FuzzInput(size+1+3, 0x5a, size, raw, // 8 chains: 3 offered
		FuzzRec{Addr: 0x2000, Len: 5},
		FuzzRec{Addr: 0x4_f000, Len: 7, Flags: virtio.DescWrite, Head: 2*size + 1}, // bit 18 dropped; head 1
		FuzzRec{Head: size + 1}, // head 5: out of range
	)
	if len(in) != FuzzHeaderLen(size)+len(raw) || in[1] != 0x5a || !bytes.Equal(in[FuzzHeaderLen(size):], raw) {
		t.Fatalf("input %x: want a %d-byte header with flags 0x5a, then %q", in, FuzzHeaderLen(size), raw)
	}
	drv, err := New(mem, Config{Base: 0x1000, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	offered, err := drv.LoadFuzzInput(in, size)
	if err != nil || offered != 3 {
		t.Fatalf("LoadFuzzInput = %d, %v; want 3 chains offered", offered, err)
	}

	c, err := drv.Queue.Pop(mem)
	if err != nil || c.Head != 0 || len(c.Readable) != 1 || len(c.Writable) != 0 ||
		len(c.Readable[0]) != 5 || &c.Readable[0][0] != &host[0x2000] {
		t.Fatalf("first chain %+v, %v: want head 0, 5 readable bytes at 0x2000", c, err)
	}
	c, err = drv.Queue.Pop(mem)
	if err != nil || c.Head != 1 || len(c.Writable) != 1 || len(c.Writable[0]) != 7 || &c.Writable[0][0] != &host[0xf000] {
		t.Fatalf("second chain %+v, %v: want head 1, 7 writable bytes at 0xf000", c, err)
	}
	var ce *virtio.ChainError
	if _, err := drv.Queue.Pop(mem); !errors.As(err, &ce) || ce.Head != size+1 {
		t.Fatalf("third chain: %v; want a chain error for head %d", err, size+1)
	}

	if _, err := drv.LoadFuzzInput(in[:FuzzHeaderLen(size)-1], size); err == nil {
		t.Error("LoadFuzzInput took an input shorter than its header")
	}
}
