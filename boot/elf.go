package boot

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"ember/layout"
)

// ELF constants (from the ELF specification and <elf.h>).
const (
	elfClass32  = 1
	elfClass64  = 2
	elfDataLSB  = 1
	elfVersion  = 1
	etExec      = 2
	etDyn       = 3
	em386       = 3
	emX86_64    = 62
	ptLoad      = 1
	ptNote      = 4
	ehdr32Size  = 52
	ehdr64Size  = 64
	phdr32Size  = 32
	phdr64Size  = 56
	pnXNum      = 0xffff
	noteHdrSize = 12

	// xenElfnotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit
	// physical entry point of a PVH kernel, in a note named "Xen".
	xenElfnotePhys32Entry = 18
)

// Segment is one PT_LOAD program header. Data aliases the file and holds the
// first Filesz bytes; the rest up to Memsz is zero.
type Segment struct {
	Paddr  uint64
	Vaddr  uint64
	Filesz uint64
	Memsz  uint64
	Flags  uint32
	Data   []byte
}

// ELF is a parsed x86 or x86-64 ELF executable.
type ELF struct {
	Is64     bool   // ELFCLASS64 and EM_X86_64; else ELFCLASS32 and EM_386
	Entry    uint64 // e_entry
	Segments []Segment
	// PVHEntry is the XEN_ELFNOTE_PHYS32_ENTRY note's value; HasPVH says
	// whether there is one.
	PVHEntry uint32
	HasPVH   bool
}

// ParseELF checks that data is a little-endian x86 or x86-64 executable and
// returns its loadable segments and PVH entry note. Every offset and size is
// checked against the file.
func ParseELF(data []byte) (*ELF, error) {
	if len(data) < 16 || !bytes.HasPrefix(data, magicELF) {
		return nil, fmt.Errorf("no ELF magic: %w", ErrNotELF)
	}
	class, order, version := data[4], data[5], data[6]
	if class != elfClass32 && class != elfClass64 {
		return nil, fmt.Errorf("ELF class %d: %w", class, ErrNotELF)
	}
	if order != elfDataLSB {
		return nil, fmt.Errorf("ELF byte order %d, want little-endian: %w", order, ErrNotELF)
	}
	if version != elfVersion {
		return nil, fmt.Errorf("ELF version %d: %w", version, ErrNotELF)
	}
	f := &ELF{Is64: class == elfClass64}
	hsize, psize := ehdr32Size, phdr32Size
	if f.Is64 {
		hsize, psize = ehdr64Size, phdr64Size
	}
	if len(data) < hsize {
		return nil, fmt.Errorf("ELF header needs %d bytes, file has %d: %w", hsize, len(data), ErrTruncated)
	}
	le := binary.LittleEndian
	typ, machine := le.Uint16(data[16:]), le.Uint16(data[18:])
	if typ != etExec && typ != etDyn {
		return nil, fmt.Errorf("ELF type %d is not an executable: %w", typ, ErrNotELF)
	}
	wantMachine := uint16(em386)
	if f.Is64 {
		wantMachine = emX86_64
	}
	if machine != wantMachine {
		return nil, fmt.Errorf("ELF machine %d for class %d: %w", machine, class, ErrNotELF)
	}
	var phoff uint64
	var phentsize, phnum int
	if f.Is64 {
		f.Entry = le.Uint64(data[24:])
		phoff = le.Uint64(data[32:])
		phentsize, phnum = int(le.Uint16(data[54:])), int(le.Uint16(data[56:]))
	} else {
		f.Entry = uint64(le.Uint32(data[24:]))
		phoff = uint64(le.Uint32(data[28:]))
		phentsize, phnum = int(le.Uint16(data[42:])), int(le.Uint16(data[44:]))
	}
	if phentsize != psize {
		return nil, fmt.Errorf("e_phentsize %d, want %d: %w", phentsize, psize, ErrCorruptELF)
	}
	if phnum == 0 || phnum == pnXNum {
		return nil, fmt.Errorf("e_phnum %d: %w", phnum, ErrCorruptELF)
	}
	phend := phoff + uint64(phnum*psize)
	if phend < phoff || phend > uint64(len(data)) {
		return nil, fmt.Errorf("program headers %#x+%d*%d run past the file (%d bytes): %w",
			phoff, phnum, psize, len(data), ErrTruncated)
	}
	for i := range phnum {
		ph := data[phoff+uint64(i*psize):]
		var typ, flags uint32
		var off, vaddr, paddr, filesz, memsz uint64
		if f.Is64 {
			typ, flags = le.Uint32(ph), le.Uint32(ph[4:])
			off, vaddr, paddr = le.Uint64(ph[8:]), le.Uint64(ph[16:]), le.Uint64(ph[24:])
			filesz, memsz = le.Uint64(ph[32:]), le.Uint64(ph[40:])
		} else {
			typ, flags = le.Uint32(ph), le.Uint32(ph[24:])
			off, vaddr, paddr = uint64(le.Uint32(ph[4:])), uint64(le.Uint32(ph[8:])), uint64(le.Uint32(ph[12:]))
			filesz, memsz = uint64(le.Uint32(ph[16:])), uint64(le.Uint32(ph[20:]))
		}
		if typ != ptLoad && typ != ptNote {
			continue
		}
		end := off + filesz
		if end < off || end > uint64(len(data)) {
			return nil, fmt.Errorf("segment %d at %#x+%#x runs past the file (%d bytes): %w", i, off, filesz, len(data), ErrTruncated)
		}
		if typ == ptNote {
			if err := f.parseNotes(data[off:end]); err != nil {
				return nil, fmt.Errorf("note segment %d: %w", i, err)
			}
			continue
		}
		if filesz > memsz {
			return nil, fmt.Errorf("segment %d: p_filesz %#x > p_memsz %#x: %w", i, filesz, memsz, ErrCorruptELF)
		}
		if paddr+memsz < paddr {
			return nil, fmt.Errorf("segment %d: p_paddr %#x + p_memsz %#x wraps: %w", i, paddr, memsz, ErrCorruptELF)
		}
		if memsz == 0 {
			continue
		}
		f.Segments = append(f.Segments, Segment{
			Paddr: paddr, Vaddr: vaddr, Filesz: filesz, Memsz: memsz, Flags: flags, Data: data[off:end],
		})
	}
	if len(f.Segments) == 0 {
		return nil, fmt.Errorf("no loadable segment: %w", ErrCorruptELF)
	}
	return f, nil
}

// parseNotes walks the notes of a PT_NOTE segment looking for the PVH entry:
// each note is namesz, descsz, type (4 bytes each), then the name and the
// descriptor, each padded to 4 bytes.
func (f *ELF) parseNotes(b []byte) error {
	le := binary.LittleEndian
	for len(b) >= noteHdrSize {
		namesz, descsz, typ := uint64(le.Uint32(b)), uint64(le.Uint32(b[4:])), le.Uint32(b[8:])
		b = b[noteHdrSize:]
		nameEnd := (namesz + 3) &^ 3
		descEnd := nameEnd + (descsz+3)&^3
		if nameEnd > uint64(len(b)) || descEnd > uint64(len(b)) {
			return fmt.Errorf("note of %d+%d bytes with %d left: %w", namesz, descsz, len(b), ErrTruncated)
		}
		name, desc := b[:namesz], b[nameEnd:nameEnd+descsz]
		b = b[descEnd:]
		if typ != xenElfnotePhys32Entry || string(name) != "Xen\x00" {
			continue
		}
		var entry uint64
		switch descsz {
		case 4:
			entry = uint64(le.Uint32(desc))
		case 8:
			entry = le.Uint64(desc)
		default:
			return fmt.Errorf("PVH entry note of %d bytes: %w", descsz, ErrCorruptELF)
		}
		if entry > 0xffffffff {
			return fmt.Errorf("PVH entry %#x above 4 GiB: %w", entry, ErrCorruptELF)
		}
		f.PVHEntry, f.HasPVH = uint32(entry), true
	}
	return nil
}

// span returns the lowest and the first-after-highest physical address the
// segments occupy.
func (f *ELF) span() (lo, hi uint64) {
	lo = ^uint64(0)
	for _, s := range f.Segments {
		lo = min(lo, s.Paddr)
		hi = max(hi, s.Paddr+s.Memsz)
	}
	return lo, hi
}

// load writes every segment at its physical address and clears the part of
// it past the file data.
func (f *ELF) load(g guest) error {
	for i, s := range f.Segments {
		what := fmt.Sprintf("ELF segment %d", i)
		if !inRAM(g.ram, s.Paddr, s.Memsz) {
			return &RangeError{What: what, Addr: s.Paddr, Size: s.Memsz}
		}
		if err := g.write(what, s.Paddr, s.Data); err != nil {
			return err
		}
		if err := g.zero(what, s.Paddr+s.Filesz, s.Memsz-s.Filesz); err != nil {
			return err
		}
	}
	return nil
}

// LoadELF loads an ELF test guest: every PT_LOAD segment at its physical
// address, anywhere in the guest's memory. An ELF64 is entered in long mode
// at e_entry, an ELF32 in 32-bit protected mode. No boot parameters are
// written; for a Linux vmlinux use LoadLinux.
func LoadELF(mem Memory, data []byte) (*Entry, error) {
	f, err := ParseELF(data)
	if err != nil {
		return nil, err
	}
	if err := f.load(guest{mem, backing(mem.Size())}); err != nil {
		return nil, err
	}
	lo, hi := f.span()
	e := &Entry{Mode: LongMode, RIP: f.Entry, KernelStart: lo, KernelEnd: hi}
	if !f.Is64 {
		e.Mode = ProtectedMode
	}
	return e, nil
}

// LoadFlat loads a flat binary test guest at guest-physical addr and returns
// a real-mode entry at its first byte (CS = addr >> 4, IP = 0). addr must be
// 16-byte aligned and the image must end within the first MiB, which is all
// real mode reaches.
func LoadFlat(mem Memory, data []byte, addr uint64) (*Entry, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("empty flat image: %w", ErrTruncated)
	}
	end := addr + uint64(len(data))
	if addr%16 != 0 || end < addr || end > layout.HighRAM {
		return nil, fmt.Errorf("flat image at %#x, %d bytes: real mode needs 16-byte alignment below 1 MiB: %w",
			addr, len(data), ErrBadAddress)
	}
	if err := (guest{mem, backing(mem.Size())}).write("flat image", addr, data); err != nil {
		return nil, err
	}
	return &Entry{Mode: RealMode, CS: uint16(addr >> 4), KernelStart: addr, KernelEnd: end}, nil
}
