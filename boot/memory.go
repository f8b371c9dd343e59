package boot

import (
	"fmt"
	"io"

	"ember/layout"
)

// Memory is guest memory as the loaders see it: WriteAt's offset is a
// guest-physical address. Size is the amount of guest RAM in bytes; the RAM
// is laid out as MemoryMap(Size()) describes (RAM from 3 GiB on lives at
// 4 GiB). A write outside the RAM must return an error; the loaders check
// every write themselves first as well.
type Memory interface {
	io.WriterAt
	Size() uint64
}

// E820 entry types (ACPI address range types).
const (
	E820RAM      = 1
	E820Reserved = 2
	E820ACPI     = 3
	E820NVS      = 4
	E820Unusable = 5
)

// E820MaxEntries is the room in boot_params.e820_table
// (E820_MAX_ENTRIES_ZEROPAGE).
const E820MaxEntries = 128

// E820Entry is one range of the BIOS memory map (struct boot_e820_entry).
type E820Entry struct {
	Addr uint64
	Size uint64
	Type uint32
}

// End returns the first address after the entry.
func (e E820Entry) End() uint64 { return e.Addr + e.Size }

// Layout constants of MemoryMap.
const (
	pageSize = 0x1000
)

// MemoryMap returns the e820 map of a guest with ramSize bytes of RAM laid
// out the usual way: RAM 0 - 0x9fc00, reserved 0x9fc00 - 1 MiB (EBDA, VGA,
// BIOS), RAM from 1 MiB up to min(ramSize, 3 GiB), a hole for 32-bit MMIO
// from 3 GiB to 4 GiB, and the rest of the RAM from 4 GiB on.
func MemoryMap(ramSize uint64) []E820Entry {
	var m []E820Entry
	m = append(m, E820Entry{0, min(ramSize, layout.EBDA), E820RAM})
	if ramSize <= layout.EBDA {
		return m
	}
	m = append(m, E820Entry{layout.EBDA, layout.HighRAM - layout.EBDA, E820Reserved})
	if ramSize > layout.HighRAM {
		m = append(m, E820Entry{layout.HighRAM, min(ramSize, layout.MMIOHoleStart) - layout.HighRAM, E820RAM})
	}
	if ramSize > layout.MMIOHoleStart {
		m = append(m, E820Entry{layout.MMIOHoleEnd, ramSize - layout.MMIOHoleStart, E820RAM})
	}
	return m
}

// backing returns the address ranges that exist in a guest with ramSize
// bytes of RAM, whatever their e820 type: [0, min(size, 3G)) and the rest
// from 4 GiB on. Flat and ELF test images may be written anywhere in them.
func backing(ramSize uint64) []E820Entry {
	m := []E820Entry{{0, min(ramSize, layout.MMIOHoleStart), E820RAM}}
	if ramSize > layout.MMIOHoleStart {
		m = append(m, E820Entry{layout.MMIOHoleEnd, ramSize - layout.MMIOHoleStart, E820RAM})
	}
	return m
}

func checkMemoryMap(m []E820Entry) error {
	if len(m) == 0 || len(m) > E820MaxEntries {
		return fmt.Errorf("%d entries (1..%d allowed): %w", len(m), E820MaxEntries, ErrBadMemoryMap)
	}
	for i, e := range m {
		if e.End() < e.Addr {
			return fmt.Errorf("entry %d (%#x+%#x) wraps: %w", i, e.Addr, e.Size, ErrBadMemoryMap)
		}
	}
	return nil
}

// inRAM reports whether [addr, addr+size) lies inside one RAM entry of m.
func inRAM(m []E820Entry, addr, size uint64) bool {
	end := addr + size
	if end < addr || end > 1<<63 { // WriteAt takes an int64
		return false
	}
	for _, e := range m {
		if e.Type == E820RAM && addr >= e.Addr && end <= e.End() {
			return true
		}
	}
	return false
}

// guest is Memory plus the map that writes are checked against.
type guest struct {
	mem Memory
	ram []E820Entry
}

// write copies data to guest-physical addr after checking the range.
func (g guest) write(what string, addr uint64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if !inRAM(g.ram, addr, uint64(len(data))) {
		return &RangeError{What: what, Addr: addr, Size: uint64(len(data))}
	}
	if _, err := g.mem.WriteAt(data, int64(addr)); err != nil {
		return fmt.Errorf("writing %s at %#x: %w", what, addr, err)
	}
	return nil
}

// zero clears size bytes at guest-physical addr after checking the range.
func (g guest) zero(what string, addr, size uint64) error {
	if size == 0 {
		return nil
	}
	if !inRAM(g.ram, addr, size) {
		return &RangeError{What: what, Addr: addr, Size: size}
	}
	const chunk = 64 << 10
	buf := make([]byte, min(size, chunk))
	for size > 0 {
		n := min(size, chunk)
		if _, err := g.mem.WriteAt(buf[:n], int64(addr)); err != nil {
			return fmt.Errorf("clearing %s at %#x: %w", what, addr, err)
		}
		addr += n
		size -= n
	}
	return nil
}
