package fwcfg

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// read selects key and reads n bytes, a byte at a time, as firmware does.
func read(f *FWCfg, key uint16, n int) []byte {
	f.Write(0, binary.LittleEndian.AppendUint16(nil, key))
	out := make([]byte, n)
	for i := range out {
		f.Read(1, out[i:i+1])
	}
	return out
}

// TestItems: what a guest reads for each kind of item.
func TestItems(t *testing.T) {
	f := New(Config{Logger: quiet})
	f.SetU64(KeyRAMSize, 256<<20)
	f.SetU16(KeyNBCPUs, 4)
	e820 := E820([]E820Entry{{0, 0x9fc00, 1}, {0x100000, 255 << 20, 1}})
	if err := f.AddFile("etc/e820", e820); err != nil {
		t.Fatal(err)
	}
	if err := f.AddFile("etc/boot-fail-wait", []byte{5, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  uint16
		want []byte
	}{
		{"signature", KeySignature, []byte("QEMU")},
		{"ID: traditional interface, no DMA", KeyID, []byte{1, 0, 0, 0}},
		{"RAM size", KeyRAMSize, binary.LittleEndian.AppendUint64(nil, 256<<20)},
		{"CPUs", KeyNBCPUs, []byte{4, 0}},
		{"etc/e820 (the first file)", KeyFileFirst, e820},
		{"past the end reads zeros", KeyNBCPUs, []byte{4, 0, 0, 0}},
		{"an unknown key reads zeros", 0x1234, []byte{0, 0}},
	} {
		if got := read(f, tt.key, len(tt.want)); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: % x, want % x", tt.name, got, tt.want)
		}
	}
	dir := read(f, KeyFileDir, 4+2*64)
	if n := binary.BigEndian.Uint32(dir); n != 2 {
		t.Fatalf("directory lists %d files, want 2", n)
	}
	// Name order: etc/boot-fail-wait (key 0x21) before etc/e820 (0x20).
	for i, w := range []struct {
		name string
		key  uint16
		size uint32
	}{{"etc/boot-fail-wait", 0x21, 4}, {"etc/e820", 0x20, uint32(len(e820))}} {
		e := dir[4+64*i:]
		name := string(bytes.TrimRight(e[8:64], "\x00"))
		if binary.BigEndian.Uint32(e) != w.size || binary.BigEndian.Uint16(e[4:]) != w.key || name != w.name {
			t.Errorf("entry %d: size %d key %#x name %q, want %+v", i, binary.BigEndian.Uint32(e), binary.BigEndian.Uint16(e[4:]), name, w)
		}
	}
}

// TestReselectRestarts: selecting an item again reads it from the start;
// a wider read takes the next bytes in order.
func TestReselectRestarts(t *testing.T) {
	f := New(Config{Logger: quiet})
	read(f, KeySignature, 2)
	if got := read(f, KeySignature, 4); string(got) != "QEMU" {
		t.Errorf("reselected signature %q", got)
	}
	f.Write(0, []byte{0, 0})
	b := make([]byte, 4)
	f.Read(1, b)
	if string(b) != "QEMU" {
		t.Errorf("a 4-byte read gives %q", b)
	}
}

func TestAddFileRefusals(t *testing.T) {
	f := New(Config{Logger: quiet})
	for _, name := range []string{"", string(make([]byte, 56))} {
		if f.AddFile(name, nil) == nil {
			t.Errorf("AddFile(%q) accepted", name)
		}
	}
	if f.AddFile("a", nil) != nil || f.AddFile("a", nil) == nil {
		t.Error("a second file of the same name was accepted")
	}
}
