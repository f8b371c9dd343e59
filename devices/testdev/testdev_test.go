package testdev

import (
	"bytes"
	"log/slog"
	"testing"

	"ember/devices"
	"ember/devices/devicetest"
)

var quiet = slog.New(slog.DiscardHandler)

// region returns the device's range at base.
func region(t *testing.T, d *Device, base uint64) devices.Device {
	t.Helper()
	for _, r := range d.Regions() {
		if r.Base == base {
			return r.Dev
		}
	}
	t.Fatalf("no region at %#x", base)
	return nil
}

// TestRegionsAreQEMUs: the ranges kvm-unit-tests expects, each on its bus.
func TestRegionsAreQEMUs(t *testing.T) {
	want := []struct {
		base, size uint64
		mmio       bool
	}{{0xe0, 4, false}, {0xe4, 4, false}, {0xe8, 4, false}, {0x2000, 24, false}, {0xff000000, 0x10000, true}}
	rs := New(Config{Logger: quiet}).Regions()
	if len(rs) != len(want) {
		t.Fatalf("%d regions, want %d", len(rs), len(want))
	}
	for i, r := range rs {
		if r.Base != want[i].base || r.Size != want[i].size || r.MMIO != want[i].mmio || r.Dev == nil {
			t.Errorf("region %d: %+v, want %+v", i, r, want[i])
		}
	}
}

// TestDataRegister: the 32-bit register behind 0xe0 and 0xe8, as a
// sequence of guest accesses and what each read returns.
func TestDataRegister(t *testing.T) {
	d := New(Config{Logger: quiet})
	type access struct {
		port  uint64
		off   uint64
		write bool
		data  []byte // written, or expected from a read
	}
	for i, a := range []access{
		{PortData, 0, false, []byte{0, 0, 0, 0}},                  // zero at reset
		{PortData, 0, true, []byte{0x78, 0x56, 0x34, 0x12}},       // outl 0x12345678
		{PortData, 0, false, []byte{0x78, 0x56, 0x34, 0x12}},      // inl
		{PortData, 1, false, []byte{0x56}},                        // inb 0xe1
		{PortData, 2, false, []byte{0x34, 0x12}},                  // inw 0xe2
		{PortDataBytes, 3, false, []byte{0x12}},                   // the same register at 0xeb
		{PortDataBytes, 2, true, []byte{0xcd, 0xab}},              // outw 0xea
		{PortData, 0, false, []byte{0x78, 0x56, 0xcd, 0xab}},      // both halves
		{PortData, 0, true, []byte{'a'}},                          // rep outsb: each byte at 0xe0
		{PortData, 0, true, []byte{'b'}},                          //
		{PortData, 0, false, []byte{'b', 0x56, 0xcd, 0xab}},       // the last byte written stays
		{PortData, 2, true, []byte{1, 2, 3, 4}},                   // past the end: dropped
		{PortData, 2, false, []byte{1, 2, 0, 0}},                  // and read as zero
		{PortDataBytes, 0, true, []byte{0xef, 0xbe, 0xad, 0xde}},  // outl 0xe8
		{PortData, 0, false, []byte{0xef, 0xbe, 0xad, 0xde}},      //
		{PortData, 7, false, []byte{0, 0}},                        // an offset past it all
		{PortData, 1 << 62, true, []byte{9}},                      // a huge offset: no panic
		{PortDataBytes, 0, false, []byte{0xef, 0xbe, 0xad, 0xde}}, // nothing changed
	} {
		dev := region(t, d, a.port)
		if a.write {
			dev.Write(a.off, a.data)
			continue
		}
		got := make([]byte, len(a.data))
		dev.Read(a.off, got)
		if !bytes.Equal(got, a.data) {
			t.Errorf("access %d: read %d bytes at %#x+%d: % x, want % x", i, len(got), a.port, a.off, got, a.data)
		}
	}
}

// TestIRQLines: a byte written at 0x2000+n sets line n to "value != 0"; a
// wider write is one such write per byte, as QEMU splits it.
func TestIRQLines(t *testing.T) {
	var lines [IRQLines]devicetest.IRQ
	d := New(Config{IRQ: func(n int) devices.IRQLine { return &lines[n] }, Logger: quiet})
	p := region(t, d, PortIRQ)
	for _, tt := range []struct {
		name string
		off  uint64
		data []byte
		line int
		want []bool // the line's history afterwards
	}{
		{"raise line 0", 0, []byte{1}, 0, []bool{true}},
		{"raise line 14 with any non-zero value", 14, []byte{0x80}, 14, []bool{true}},
		{"lower line 14", 14, []byte{0}, 14, []bool{true, false}},
		{"line 23, the last", 23, []byte{1}, 23, []bool{true}},
		{"offset 24: no line", 24, []byte{1}, 23, []bool{true}},
		{"a word write sets two lines: the first", 3, []byte{1, 0}, 3, []bool{true}},
		{"a word write sets two lines: the second", 3, []byte{0, 1}, 4, []bool{false, true}},
		{"outl 1 at 11 raises 11", 11, []byte{1, 0, 0, 0}, 11, []bool{true}},
		{"outl 1 at 11 lowers 12", 11, []byte{1, 0, 0, 0}, 12, []bool{false, false}},
		{"a dword at line 22 stops at line 23", 22, []byte{0, 1, 1, 1}, 23, []bool{true, true}},
		{"a huge offset is ignored", 1 << 40, []byte{1}, 0, []bool{true}},
	} {
		p.Write(tt.off, tt.data)
		if got := lines[tt.line].History(); !equalBools(got, tt.want) {
			t.Errorf("%s: line %d history %v, want %v", tt.name, tt.line, got, tt.want)
		}
	}
	for _, n := range []int{1, 2, 5, 15, 16, 21} {
		if h := lines[n].History(); len(h) != 0 {
			t.Errorf("line %d moved: %v", n, h)
		}
	}
	b := []byte{0xff}
	p.Read(0, b)
	if b[0] != 0 {
		t.Errorf("IRQ port reads %#x", b[0])
	}
	// Unconnected lines are fine too.
	region(t, New(Config{Logger: quiet}), PortIRQ).Write(5, []byte{1})
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFlushPort: a 4-byte write asks the host to flush the page that holds
// the address; other accesses ask nothing.
func TestFlushPort(t *testing.T) {
	var flushed []uint64
	d := New(Config{Flush: func(gpa uint64) { flushed = append(flushed, gpa) }, Logger: quiet})
	p := region(t, d, PortFlush)
	p.Write(0, []byte{0x34, 0x12, 0x40, 0x00}) // outl 0x401234
	p.Write(0, []byte{0x00, 0x20})             // outw: ignored
	p.Write(1, []byte{0, 0, 0, 0})             // misaligned: ignored
	p.Write(0, []byte{0xff, 0xff, 0xff, 0xff})
	if want := []uint64{0x401000, 0xfffff000}; !equalUints(flushed, want) {
		t.Errorf("flushed %#x, want %#x", flushed, want)
	}
	b := []byte{1, 2, 3, 4}
	p.Read(0, b)
	if !bytes.Equal(b, make([]byte, 4)) {
		t.Errorf("flush port reads % x", b)
	}
	region(t, New(Config{Logger: quiet}), PortFlush).Write(0, []byte{0, 0x10, 0, 0}) // no Flush: nothing
}

func equalUints(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestIOMem: the MMIO window keeps what is written, at any size, to its
// last byte, and no further.
func TestIOMem(t *testing.T) {
	m := region(t, New(Config{Logger: quiet}), IOMemBase)
	for _, tt := range []struct {
		name string
		off  uint64
		data []byte
		read []byte // what a read of len(read) bytes at off returns afterwards
	}{
		{"quadword", 0x10, []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{"byte into it", 0x13, []byte{0xaa}, []byte{0xaa, 5}},
		{"word", 0x100, []byte{0x34, 0x12}, []byte{0x34, 0x12, 0}},
		{"last byte", IOMemSize - 1, []byte{0x5a}, []byte{0x5a}},
		{"across the end: the rest dropped", IOMemSize - 2, []byte{1, 2, 3, 4}, []byte{1, 2, 0, 0}},
		{"past the end", IOMemSize + 8, []byte{1}, []byte{0}},
		{"a huge offset", 1 << 63, []byte{1}, []byte{0}},
	} {
		m.Write(tt.off, tt.data)
		got := make([]byte, len(tt.read))
		m.Read(tt.off, got)
		if !bytes.Equal(got, tt.read) {
			t.Errorf("%s: read % x, want % x", tt.name, got, tt.read)
		}
	}
}
