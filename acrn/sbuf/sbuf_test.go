package sbuf

import (
	"encoding/binary"
	"errors"
	"testing"

	"ember/acrn"
	"ember/memory"
)

func newMem(t *testing.T) *memory.Guest {
	t.Helper()
	mem, err := memory.New([]memory.Range{{GPA: 0, Size: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	return mem
}

func TestOpen(t *testing.T) {
	mem := newMem(t)
	for _, tt := range []struct {
		name   string
		gpa    uint64
		header []byte
		err    error
	}{
		{"valid", 0x1000, Header(4, EntrySize), nil},
		{"unaligned", 0x1004, Header(4, EntrySize), ErrInvalid},
		{"bad magic", 0x2000, make([]byte, HeadSize), ErrInvalid},
		{"one element", 0x3000, Header(1, EntrySize), ErrInvalid},
		{"elements smaller than a trace entry", 0x4000, Header(4, 16), ErrInvalid},
		{"element size not a multiple of 8", 0x5000, Header(4, 36), ErrInvalid},
		{"size overflows", 0x6000, Header(1<<28, 32), ErrInvalid},
		{"data beyond RAM", 1<<20 - HeadSize, Header(4, EntrySize), ErrInvalid},
	} {
		mem.WriteAt(tt.header, int64(tt.gpa))
		if _, err := Open(mem, tt.gpa); !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
}

// TestPut: records go in at tail until the ring is full (one element stays
// free), then are counted as overruns; a reader moving head makes room.
func TestPut(t *testing.T) {
	mem := newMem(t)
	mem.WriteAt(Header(3, EntrySize), 0)
	b, err := Open(mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	put := func(v uint64) bool { return b.Put(func(rec []byte) { le.PutUint64(rec, v) }) }
	for i, want := range []bool{true, true, false, false} {
		if got := put(uint64(i + 1)); got != want {
			t.Fatalf("record %d: Put = %v, want %v", i+1, got, want)
		}
	}
	hdr := make([]byte, HeadSize)
	mem.ReadAt(hdr, 0)
	if tail, over := le.Uint32(hdr[offTail:]), le.Uint32(hdr[offOverrun:]); tail != 2*EntrySize || over != 2 {
		t.Errorf("tail %d, overruns %d; want %d and 2", tail, over, 2*EntrySize)
	}
	rec := make([]byte, 8)
	mem.ReadAt(rec, HeadSize+EntrySize)
	if le.Uint64(rec) != 2 {
		t.Errorf("second record holds %d", le.Uint64(rec))
	}
	le.PutUint32(hdr[offHead:], EntrySize) // the reader took one
	mem.WriteAt(hdr[offHead:offHead+4], offHead)
	if !put(5) {
		t.Error("no room after the reader moved head")
	}
	le.PutUint32(hdr[offTail:], 7) // a Service VM bent tail
	mem.WriteAt(hdr[offTail:offTail+4], offTail)
	if put(6) {
		t.Error("Put wrote at a bent tail")
	}
}

// TestTable: a trace buffer is written only while registered and only for
// its CPU; Forget drops the buffers of one memory.
func TestTable(t *testing.T) {
	mem, other := newMem(t), newMem(t)
	mem.WriteAt(Header(4, EntrySize), 0x1000)
	other.WriteAt(Header(4, EntrySize), 0x1000)
	var tb Table
	n := 0
	fill := func([]byte) { n++ }
	tb.Trace(0, fill)
	tb.Set(Key{0, acrn.SbufTrace}, mem, 0x1000)
	tb.Set(Key{1, acrn.SbufTrace}, other, 0x1000)
	tb.Set(Key{0, acrn.SbufHVLog}, mem, 0x1000)
	if tb.Traces() != 2 {
		t.Errorf("%d trace buffers, want 2", tb.Traces())
	}
	tb.Trace(0, fill)
	tb.Trace(2, fill) // no buffer for CPU 2
	if n != 1 {
		t.Errorf("%d records written, want 1", n)
	}
	tb.Forget(mem)
	if tb.Traces() != 1 {
		t.Errorf("%d trace buffers after Forget, want 1", tb.Traces())
	}
	tb.Trace(0, fill)
	tb.Set(Key{1, acrn.SbufTrace}, other, 0) // removed
	if tb.Traces() != 0 || n != 1 {
		t.Errorf("%d trace buffers, %d records; want 0 and 1", tb.Traces(), n)
	}
}
