package fwcfg

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"testing"

	"ember/memory"
)

var quiet = slog.New(slog.DiscardHandler)

// Guest-physical layout of the DMA tests: 64 KiB of RAM at 0 and 64 KiB at
// 4 GiB (for 64-bit addresses); the access structure and the buffer.
const (
	ramSize   = 64 << 10
	highRAM   = 4 << 30
	accessGPA = 0x1000
	bufGPA    = 0x2000
)

// newGuest returns the DMA tests' guest RAM.
func newGuest(t testing.TB) *memory.Guest {
	t.Helper()
	g, err := memory.New([]memory.Range{{GPA: 0, Size: ramSize}, {GPA: highRAM, Size: ramSize}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// startDMA writes a to guest memory at gpa and starts it the way firmware
// does on x86: the high half of the address register, then the low half,
// each a big-endian 4-byte port write.
func startDMA(t testing.TB, f *FWCfg, mem *memory.Guest, gpa uint64, a DMAAccess) {
	t.Helper()
	if _, err := mem.WriteAt(a.Bytes(), int64(gpa)); err != nil {
		t.Fatal(err)
	}
	f.Write(DMAOffset, binary.BigEndian.AppendUint32(nil, uint32(gpa>>32)))
	f.Write(DMAOffset+4, binary.BigEndian.AppendUint32(nil, uint32(gpa)))
}

// control reads back the control word of the access structure at gpa.
func control(t testing.TB, mem *memory.Guest, gpa uint64) uint32 {
	t.Helper()
	b := make([]byte, 4)
	if _, err := mem.ReadAt(b, int64(gpa)); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(b)
}

func sel(key uint16) uint32 { return uint32(key)<<16 | DMASelect }

// TestDMA: one DMA access per row, on a device with the signature, a
// read-only file and a writable one, after the guest may have selected and
// read part of an item through the ports.
func TestDMA(t *testing.T) {
	const (
		roFile = KeyFileFirst     // "etc/ro": "read-only"
		rwFile = KeyFileFirst + 1 // "etc/rw": 8 bytes of 0xaa
	)
	fill := func(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
	for _, tt := range []struct {
		name     string
		preKey   uint16 // selected through the port first
		preRead  int    // bytes then read through the data register
		access   DMAAccess
		want     uint32 // the control word afterwards
		wantBuf  []byte // the buffer afterwards (it starts as 0xee bytes)
		wantNext []byte // what the data register reads next
		wantRW   []byte // "etc/rw" afterwards
	}{
		{"read with select: the signature", 0, 0,
			DMAAccess{sel(KeySignature) | DMARead, 4, bufGPA}, 0, []byte("QEMU"), []byte{0}, nil},
		{"read past the item's end: zeros after it", 0, 0,
			DMAAccess{sel(KeySignature) | DMARead, 6, bufGPA}, 0, []byte("QEMU\x00\x00\xee"), nil, nil},
		{"read goes on from the data register's offset", KeySignature, 1,
			DMAAccess{DMARead, 2, bufGPA}, 0, []byte("EM\xee"), []byte("U"), nil},
		{"the data register goes on after a read", 0, 0,
			DMAAccess{sel(roFile) | DMARead, 4, bufGPA}, 0, []byte("read\xee"), []byte("-only"), nil},
		{"skip with select, then the data register", 0, 0,
			DMAAccess{sel(roFile) | DMASkip, 5, bufGPA}, 0, fill(0xee, 4), []byte("only\x00"), nil},
		{"skip past the end stops there", KeySignature, 0,
			DMAAccess{DMASkip, 100, bufGPA}, 0, nil, []byte{0, 0}, nil},
		{"select alone moves nothing", KeySignature, 2,
			DMAAccess{sel(roFile), 4, bufGPA}, 0, fill(0xee, 4), []byte("read"), nil},
		{"read takes precedence over write and skip", 0, 0,
			DMAAccess{sel(KeySignature) | DMARead | DMAWrite | DMASkip, 2, bufGPA}, 0, []byte("QE\xee"), []byte("M"), nil},
		{"read of a key with no item: zeros", 0, 0,
			DMAAccess{sel(0x1234) | DMARead, 3, bufGPA}, 0, []byte{0, 0, 0, 0xee}, nil, nil},
		{"zero length: nothing happens", 0, 0,
			DMAAccess{sel(KeySignature) | DMARead, 0, bufGPA}, 0, fill(0xee, 2), []byte("Q"), nil},
		{"write to a read-only item is refused", 0, 0,
			DMAAccess{sel(KeySignature) | DMAWrite, 4, bufGPA}, DMAError, nil, []byte("QEMU"), nil},
		{"write to a writable file", 0, 0,
			DMAAccess{sel(rwFile) | DMAWrite, 4, bufGPA}, 0, nil, []byte{0xaa}, []byte{0xee, 0xee, 0xee, 0xee, 0xaa, 0xaa, 0xaa, 0xaa}},
		{"write at the data register's offset", rwFile, 6,
			DMAAccess{DMAWrite, 2, bufGPA}, 0, nil, []byte{0}, []byte{0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xee, 0xee}},
		{"write past a writable file's end is refused whole", rwFile, 6,
			DMAAccess{DMAWrite, 3, bufGPA}, DMAError, nil, []byte{0xaa}, fill(0xaa, 8)},
		{"write from outside RAM is refused", 0, 0,
			DMAAccess{sel(rwFile) | DMAWrite, 4, 1 << 40}, DMAError, nil, nil, fill(0xaa, 8)},
		{"read into a buffer outside RAM", 0, 0,
			DMAAccess{sel(KeySignature) | DMARead, 4, 1 << 40}, DMAError, nil, []byte("QEMU"), nil},
		{"read into a buffer that runs past RAM's end", 0, 0,
			DMAAccess{sel(KeySignature) | DMARead, 4, ramSize - 2}, DMAError, nil, []byte("QEMU"), nil},
		{"read into a buffer whose end wraps around", 0, 0,
			DMAAccess{sel(KeySignature) | DMARead, 0x10, 1<<64 - 8}, DMAError, nil, []byte("QEMU"), nil},
		{"read into the high RAM region, a 64-bit address", 0, 0,
			DMAAccess{sel(KeySignature) | DMARead, 4, highRAM + 0x10}, 0, nil, []byte{0}, nil},
		{"undefined control bits: refused before the select", KeySignature, 1,
			DMAAccess{sel(roFile) | DMARead | 1<<5, 4, bufGPA}, DMAError, fill(0xee, 4), []byte("EMU"), nil},
		{"the guest's error bit is ignored", 0, 0,
			DMAAccess{sel(KeySignature) | DMARead | DMAError, 1, bufGPA}, 0, []byte("Q\xee"), nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem := newGuest(t)
			f := New(Config{Memory: mem, Logger: quiet})
			if err := f.AddFile("etc/ro", []byte("read-only")); err != nil {
				t.Fatal(err)
			}
			var calls [][]byte
			if err := f.AddWritableFile("etc/rw", fill(0xaa, 8), func(b []byte) { calls = append(calls, b) }); err != nil {
				t.Fatal(err)
			}
			mem.WriteAt(fill(0xee, 64), bufGPA)
			read(f, tt.preKey, tt.preRead)
			startDMA(t, f, mem, accessGPA, tt.access)
			if got := control(t, mem, accessGPA); got != tt.want {
				t.Errorf("control %#x, want %#x", got, tt.want)
			}
			if tt.wantBuf != nil {
				got := make([]byte, len(tt.wantBuf))
				mem.ReadAt(got, bufGPA)
				if !bytes.Equal(got, tt.wantBuf) {
					t.Errorf("buffer % x, want % x", got, tt.wantBuf)
				}
			}
			if tt.wantNext != nil {
				got := make([]byte, len(tt.wantNext))
				f.Read(1, got)
				if !bytes.Equal(got, tt.wantNext) {
					t.Errorf("data register then reads %q, want %q", got, tt.wantNext)
				}
			}
			rw, _ := f.File("etc/rw")
			want := tt.wantRW
			if want == nil {
				want = fill(0xaa, 8)
			}
			if !bytes.Equal(rw, want) {
				t.Errorf("etc/rw is % x, want % x", rw, want)
			}
			if wrote := !bytes.Equal(want, fill(0xaa, 8)); wrote != (len(calls) == 1) || wrote && !bytes.Equal(calls[0], want) {
				t.Errorf("write callback got %x, want one call with % x iff the file changed", calls, want)
			}
		})
	}
}

// TestDMAHighAddressPart: the access structure's own address has a high
// half (written first), and the register is zero again after each
// transfer, so a later low-half write alone means an address below 4 GiB.
func TestDMAHighAddressPart(t *testing.T) {
	mem := newGuest(t)
	f := New(Config{Memory: mem, Logger: quiet})
	high := uint64(highRAM + 0x100)
	startDMA(t, f, mem, high, DMAAccess{sel(KeySignature) | DMARead, 4, bufGPA})
	if got := control(t, mem, high); got != 0 {
		t.Fatalf("control %#x after a DMA with its structure above 4 GiB", got)
	}
	mem.WriteAt(DMAAccess{sel(KeyID) | DMARead, 4, bufGPA + 8}.Bytes(), accessGPA)
	f.Write(DMAOffset+4, binary.BigEndian.AppendUint32(nil, accessGPA))
	got := make([]byte, 12)
	mem.ReadAt(got, bufGPA)
	if want := []byte("QEMU\x00\x00\x00\x00\x03\x00\x00\x00"); !bytes.Equal(got, want) || control(t, mem, accessGPA) != 0 {
		t.Errorf("buffer % x, control %#x; want % x, 0", got, control(t, mem, accessGPA), want)
	}
	// One 8-byte write (MMIO) is a whole address.
	mem.WriteAt(DMAAccess{sel(KeySignature) | DMARead, 2, bufGPA + 0x20}.Bytes(), int64(high))
	f.Write(DMAOffset, binary.BigEndian.AppendUint64(nil, high))
	mem.ReadAt(got[:2], bufGPA+0x20)
	if string(got[:2]) != "QE" {
		t.Errorf("8-byte address write: buffer %q", got[:2])
	}
}

// TestDMAAccessStructureOutsideRAM: a structure the device cannot read is
// not answered, and nothing else changes.
func TestDMAAccessStructureOutsideRAM(t *testing.T) {
	mem := newGuest(t)
	f := New(Config{Memory: mem, Logger: quiet})
	for _, addr := range []uint64{ramSize - 8, 1 << 40, 1<<64 - 4} {
		read(f, KeySignature, 1)
		f.Write(DMAOffset, binary.BigEndian.AppendUint32(nil, uint32(addr>>32)))
		f.Write(DMAOffset+4, binary.BigEndian.AppendUint32(nil, uint32(addr)))
		b := make([]byte, 3)
		f.Read(1, b)
		if string(b) != "EMU" {
			t.Errorf("structure at %#x: the data register then reads %q", addr, b)
		}
	}
}

// TestDMARegisterAndID: reading the DMA address register returns the
// signature "QEMU CFG" at any width, and KeyID advertises DMA only when the
// device has guest memory to do it with.
func TestDMARegisterAndID(t *testing.T) {
	f := New(Config{Memory: newGuest(t), Logger: quiet})
	for _, tt := range []struct {
		off  uint64
		size int
		want string
	}{
		{DMAOffset, 4, "QEMU"}, {DMAOffset + 4, 4, " CFG"}, {DMAOffset + 1, 1, "E"}, {DMAOffset + 6, 2, "FG"},
	} {
		b := make([]byte, tt.size)
		f.Read(tt.off, b)
		if string(b) != tt.want {
			t.Errorf("read %d bytes at %#x: %q, want %q", tt.size, tt.off, b, tt.want)
		}
	}
	if id := read(f, KeyID, 4); !bytes.Equal(id, []byte{3, 0, 0, 0}) {
		t.Errorf("ID with DMA: % x", id)
	}
	noDMA := New(Config{Logger: quiet})
	if id := read(noDMA, KeyID, 4); !bytes.Equal(id, []byte{1, 0, 0, 0}) {
		t.Errorf("ID without guest memory: % x", id)
	}
	b := make([]byte, 4)
	noDMA.Read(DMAOffset, b)
	if !bytes.Equal(b, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("DMA register without guest memory reads % x", b)
	}
}

func TestParseDMAAccess(t *testing.T) {
	a := DMAAccess{Control: sel(0x19) | DMARead, Length: 0x1234, Address: 0x1122334455667788}
	b := a.Bytes()
	if want := []byte{0, 0x19, 0, 0x0a, 0, 0, 0x12, 0x34, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}; !bytes.Equal(b, want) {
		t.Errorf("Bytes: % x, want % x", b, want)
	}
	if got, err := ParseDMAAccess(b); err != nil || got != a || got.Key() != 0x19 {
		t.Errorf("ParseDMAAccess: %+v, %v", got, err)
	}
	if _, err := ParseDMAAccess(b[:15]); err == nil {
		t.Error("a 15-byte structure parsed")
	}
}
