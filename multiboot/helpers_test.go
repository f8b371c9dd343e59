package multiboot

import (
	"bytes"
	"encoding/binary"
	"testing"

	"ember/memory"
)

// header returns a multiboot header with flags, a valid checksum and the
// given fields after it (the address fields, then the video fields).
func header(flags uint32, fields ...uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, HeaderMagic)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint32(b, checksum(flags))
	for _, f := range fields {
		b = binary.LittleEndian.AppendUint32(b, f)
	}
	return b
}

// checksum returns the checksum field that goes with flags.
func checksum(flags uint32) uint32 { return -(HeaderMagic + flags) }

// The a.out-kludge test kernel: 0x40 bytes of text, the header, more text;
// loaded at aoutLoad with a 0x3000-byte bss.
const (
	aoutLoad   = 0x200000
	aoutPre    = 0x40
	aoutHeader = aoutLoad + aoutPre
	aoutEntry  = aoutHeader + headerAddrSize
	aoutBSS    = 0x3000
)

var aoutText = bytes.Repeat([]byte("\x90\xeb\xfe\xf4"), 64) // 256 bytes after the header

// aout is the a.out-kludge test kernel with its address fields, flags added.
func aout(flags uint32, headerAddr, loadAddr, loadEnd, bssEnd, entry uint32) []byte {
	b := bytes.Repeat([]byte{0xcc}, aoutPre)
	b = append(b, header(FlagAddresses|flags, headerAddr, loadAddr, loadEnd, bssEnd, entry)...)
	return append(b, aoutText...)
}

// aoutSize is the size of the a.out-kludge test kernel's file.
const aoutSize = aoutPre + headerAddrSize + 256

// aoutAt is aout with consistent fields for a load at addr: the whole file
// loaded, a bss after it, the entry just after the header.
func aoutAt(addr uint32) []byte {
	return aout(0, addr+aoutPre, addr, addr+aoutSize, addr+aoutSize+aoutBSS, addr+aoutPre+headerAddrSize)
}

func goodAout() []byte { return aoutAt(aoutLoad) }

// seg is an ELF32 PT_LOAD segment of a test kernel.
type seg struct {
	typ          uint32 // 0 means PT_LOAD
	paddr, vaddr uint32 // vaddr 0 means paddr
	data         []byte
	memsz        uint32 // 0 means len(data)
}

// elf32 builds an i386 ELF executable: the ELF header, the program headers,
// the multiboot header mb, then each segment's data.
func elf32(entry uint32, mb []byte, segs ...seg) []byte {
	le := binary.LittleEndian
	h := make([]byte, elfHeaderSize)
	copy(h, "\x7fELF\x01\x01\x01")
	le.PutUint16(h[16:], etExec)
	le.PutUint16(h[18:], em386)
	le.PutUint32(h[20:], 1)
	le.PutUint32(h[24:], entry)
	le.PutUint32(h[28:], elfHeaderSize)
	le.PutUint16(h[40:], elfHeaderSize)
	le.PutUint16(h[42:], elfProgHeaderSize)
	le.PutUint16(h[44:], uint16(len(segs)))
	off := uint32(elfHeaderSize + len(segs)*elfProgHeaderSize + len(mb))
	var ph, data []byte
	for _, s := range segs {
		p := make([]byte, elfProgHeaderSize)
		typ, vaddr, memsz := s.typ, s.vaddr, s.memsz
		if typ == 0 {
			typ = ptLoad
		}
		if vaddr == 0 {
			vaddr = s.paddr
		}
		if memsz == 0 {
			memsz = uint32(len(s.data))
		}
		le.PutUint32(p, typ)
		le.PutUint32(p[4:], off+uint32(len(data)))
		le.PutUint32(p[8:], vaddr)
		le.PutUint32(p[12:], s.paddr)
		le.PutUint32(p[16:], uint32(len(s.data)))
		le.PutUint32(p[20:], memsz)
		le.PutUint32(p[24:], 5)
		ph = append(ph, p...)
		data = append(data, s.data...)
	}
	return append(append(append(h, ph...), mb...), data...)
}

// The ELF32 test kernel: text at 1 MiB, data with a bss at 2 MiB.
const (
	elfText  = 0x100000
	elfData  = 0x200000
	elfEntry = elfText + 4
	elfBSS   = 0x2000
)

var elfTextBytes, elfDataBytes = []byte("\x90\x90\x90\x90\xfa\xf4\xeb\xfd"), []byte("data segment")

func goodELF() []byte {
	return elf32(elfEntry, header(FlagPageAlign|FlagMemoryInfo),
		seg{paddr: elfText, data: elfTextBytes},
		seg{paddr: elfData, data: elfDataBytes, memsz: uint32(len(elfDataBytes)) + elfBSS})
}

// mutate returns a copy of b with each f applied.
func mutate(b []byte, fs ...func([]byte)) []byte {
	b = append([]byte(nil), b...)
	for _, f := range fs {
		f(b)
	}
	return b
}

func put32(off int, v uint32) func([]byte) {
	return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
}

func put16(off int, v uint16) func([]byte) {
	return func(b []byte) { binary.LittleEndian.PutUint16(b[off:], v) }
}

func putByte(off int, v byte) func([]byte) { return func(b []byte) { b[off] = v } }

// newRAM returns size bytes of guest RAM laid out as a PC's, filled with
// 0xaa so that what Load clears and what it leaves alone can be told apart.
func newRAM(t testing.TB, size uint64) *memory.Guest {
	t.Helper()
	return newRegions(t, memory.PCLayout(size)...)
}

func newRegions(t testing.TB, rs ...memory.Range) *memory.Guest {
	t.Helper()
	mem, err := memory.New(rs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	fill(mem)
	return mem
}

// pattern is a page of fill's bytes.
var pattern = bytes.Repeat([]byte{0xaa}, 4096)

func fill(mem *memory.Guest) {
	for _, r := range mem.Regions() {
		for h := r.Host; len(h) > 0; {
			h = h[copy(h, pattern):]
		}
	}
}

// untouched reports whether every byte of RAM still holds fill's pattern.
func untouched(mem *memory.Guest) bool {
	for _, r := range mem.Regions() {
		for h := r.Host; len(h) > 0; {
			n := min(len(h), len(pattern))
			if !bytes.Equal(h[:n], pattern[:n]) {
				return false
			}
			h = h[n:]
		}
	}
	return true
}

func read(t testing.TB, mem *memory.Guest, addr, n uint64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := mem.ReadAt(b, int64(addr)); err != nil {
		t.Fatal(err)
	}
	return b
}

func u32(t testing.TB, mem *memory.Guest, addr uint64) uint64 {
	t.Helper()
	return uint64(binary.LittleEndian.Uint32(read(t, mem, addr, 4)))
}

// cstring reads the NUL-terminated string at addr (at most 4 KiB).
func cstring(t testing.TB, mem *memory.Guest, addr uint64) string {
	t.Helper()
	var b []byte
	for i := uint64(0); i < 4096; i++ {
		c := read(t, mem, addr+i, 1)[0]
		if c == 0 {
			return string(b)
		}
		b = append(b, c)
	}
	t.Fatalf("no NUL in 4 KiB at %#x", addr)
	return ""
}
