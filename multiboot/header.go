package multiboot

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
)

// Magic values of the specification.
const (
	// HeaderMagic starts the multiboot header in a kernel image.
	HeaderMagic = 0x1BADB002
	// BootMagic is what a multiboot loader leaves in EAX, so that the
	// kernel knows EBX points at a multiboot information structure.
	BootMagic = 0x2BADB002
	// SearchLimit is how far into the image the header may lie: it must
	// be contained completely in the first SearchLimit bytes, 4-byte
	// aligned.
	SearchLimit = 8192
)

// Header flags. Bits 0-15 are requirements: a loader that does not know
// one that is set must refuse the kernel. Bits 16-31 are optional features
// a loader may ignore; of those, this one knows FlagAddresses.
const (
	// FlagPageAlign asks for boot modules aligned on 4 KiB pages. Load
	// always aligns them.
	FlagPageAlign = 1 << 0
	// FlagMemoryInfo asks for mem_lower/mem_upper (and, if there is one,
	// the memory map). Load always gives both.
	FlagMemoryInfo = 1 << 1
	// FlagVideoMode asks for video mode information and carries the
	// kernel's preferred mode in the header. ember has no display; Load
	// honours the flag with the EGA text mode the specification lets a
	// loader choose whatever was preferred (80x25 at 0xb8000, framebuffer
	// type 2), so that a kernel that asks can still boot: what it writes
	// there lands in RAM nobody shows.
	FlagVideoMode = 1 << 2
	// FlagAddresses says the header's address fields (header_addr,
	// load_addr, load_end_addr, bss_end_addr, entry_addr) say where the
	// image goes, the "a.out kludge": the image need not be ELF.
	FlagAddresses = 1 << 16

	// requiredMask covers the requirement bits; supportedRequired the ones
	// Load meets.
	requiredMask      = 0xffff
	supportedRequired = FlagPageAlign | FlagMemoryInfo | FlagVideoMode
)

// Header sizes: the magic, flags and checksum; with the address fields
// (which also hold their place when only FlagVideoMode is set); with the
// video mode fields.
const (
	headerBaseSize    = 12
	headerAddrSize    = 32
	headerVideoSize   = 48
	fourGiB           = 1 << 32
	pageSize          = 4096
	elfHeaderSize     = 52
	elfProgHeaderSize = 32
)

// Header is a decoded multiboot header.
type Header struct {
	// Offset is where the header (its magic) starts in the image file.
	Offset int
	Flags  uint32
	// The address fields, meaningful when Flags has FlagAddresses: the
	// physical addresses of the header itself, of the first byte loaded,
	// after the last byte loaded (0: the rest of the file), after the bss
	// (0: no bss), and of the entry point.
	HeaderAddr, LoadAddr, LoadEndAddr, BSSEndAddr, EntryAddr uint32
	// The preferred video mode, meaningful when Flags has FlagVideoMode:
	// ModeType 0 is a linear graphics mode, 1 EGA text; 0 in Width,
	// Height or Depth means no preference.
	ModeType, Width, Height, Depth uint32
}

// size returns how many bytes of the image the header takes.
func (h *Header) size() int {
	switch {
	case h.Flags&FlagVideoMode != 0:
		return headerVideoSize
	case h.Flags&FlagAddresses != 0:
		return headerAddrSize
	}
	return headerBaseSize
}

// Segment is one piece of the kernel that Load copies into guest RAM.
type Segment struct {
	// Addr is the guest-physical address of Data's first byte.
	Addr uint32
	// Data aliases the image file.
	Data []byte
	// MemSize is the size of the segment in memory: Data followed by
	// zeros (the bss) up to MemSize, which is at least len(Data).
	MemSize uint64
}

// End returns the first address after the segment, bss included.
func (s Segment) End() uint64 { return uint64(s.Addr) + s.MemSize }

// Image is a parsed multiboot kernel: its header, the segments Load copies
// into RAM, and the entry point.
type Image struct {
	Header Header
	// ELF says the segments come from ELF32 program headers; otherwise
	// from the header's address fields.
	ELF      bool
	Segments []Segment // sorted by address, not overlapping
	Entry    uint32    // guest-physical
}

// span returns the first address of the kernel and the first after it,
// bss included.
func (img *Image) span() (lo, hi uint64) {
	lo = fourGiB
	for _, s := range img.Segments {
		lo, hi = min(lo, uint64(s.Addr)), max(hi, s.End())
	}
	return lo, hi
}

var le = binary.LittleEndian

// HasHeader reports whether image carries a multiboot header with a valid
// checksum in its first SearchLimit bytes: the test a caller uses to tell a
// multiboot kernel from a Linux one before choosing a loader. A kernel that
// has one may still be refused by Parse.
func HasHeader(image []byte) bool {
	_, err := findHeader(image)
	return err == nil
}

// findHeader returns the offset of the first 4-byte-aligned magic in the
// search window whose checksum holds.
func findHeader(image []byte) (int, error) {
	limit := min(len(image), SearchLimit)
	bad := -1
	for off := 0; off+headerBaseSize <= limit; off += 4 {
		if le.Uint32(image[off:]) != HeaderMagic {
			continue
		}
		flags, sum := le.Uint32(image[off+4:]), le.Uint32(image[off+8:])
		if HeaderMagic+flags+sum == 0 {
			return off, nil
		}
		if bad < 0 {
			bad = off
		}
	}
	if bad >= 0 {
		return 0, fmt.Errorf("magic at %#x: %w", bad, ErrBadChecksum)
	}
	return 0, fmt.Errorf("no magic in the first %d bytes (of %d): %w", limit, len(image), ErrNoHeader)
}

// Parse finds and checks the multiboot header of a kernel image and works
// out what goes where: from the header's address fields if it has
// FlagAddresses, from the ELF32 program headers (PT_LOAD segments at
// p_paddr, entry at e_entry) otherwise. The image is hostile: every field is
// checked against the file and the others, and the Segments returned alias
// image. Parse does not know guest RAM; Load checks the segments against it.
func Parse(image []byte) (*Image, error) {
	off, err := findHeader(image)
	if err != nil {
		return nil, fmt.Errorf("multiboot: %w", err)
	}
	img := &Image{Header: Header{Offset: off, Flags: le.Uint32(image[off+4:])}}
	h := &img.Header
	if end := off + h.size(); end > len(image) || end > SearchLimit {
		return nil, fmt.Errorf("multiboot: header at %#x with flags %#x needs %d bytes, past the first %d bytes or the file (%d bytes): %w",
			off, h.Flags, h.size(), SearchLimit, len(image), ErrTruncated)
	}
	if u := h.Flags & requiredMask &^ supportedRequired; u != 0 {
		return nil, fmt.Errorf("multiboot: header flags %#x require %#x: %w", h.Flags, u, ErrUnsupportedFlags)
	}
	if h.size() >= headerAddrSize {
		f := image[off+headerBaseSize:]
		h.HeaderAddr, h.LoadAddr, h.LoadEndAddr = le.Uint32(f), le.Uint32(f[4:]), le.Uint32(f[8:])
		h.BSSEndAddr, h.EntryAddr = le.Uint32(f[12:]), le.Uint32(f[16:])
	}
	if h.size() >= headerVideoSize {
		f := image[off+headerAddrSize:]
		h.ModeType, h.Width, h.Height, h.Depth = le.Uint32(f), le.Uint32(f[4:]), le.Uint32(f[8:]), le.Uint32(f[12:])
	}
	if h.Flags&FlagAddresses != 0 {
		err = img.fromAddresses(image)
	} else {
		img.ELF = true
		err = img.fromELF(image)
	}
	if err != nil {
		return nil, fmt.Errorf("multiboot: %w", err)
	}
	sort.Slice(img.Segments, func(i, j int) bool { return img.Segments[i].Addr < img.Segments[j].Addr })
	for i := 1; i < len(img.Segments); i++ {
		if p, s := img.Segments[i-1], img.Segments[i]; p.End() > uint64(s.Addr) {
			return nil, fmt.Errorf("multiboot: segment %#x-%#x overlaps segment %#x-%#x: %w",
				p.Addr, p.End(), s.Addr, s.End(), ErrOverlap)
		}
	}
	return img, nil
}

// fromAddresses lays the image out by the header's address fields. The
// header sits at file offset Offset and is loaded at HeaderAddr, so loading
// starts HeaderAddr-LoadAddr bytes before it in the file, and continues to
// LoadEndAddr (or the end of the file); the bss follows, to BSSEndAddr.
func (img *Image) fromAddresses(image []byte) error {
	h := &img.Header
	if h.LoadAddr > h.HeaderAddr {
		return fmt.Errorf("load_addr %#x is above header_addr %#x: %w", h.LoadAddr, h.HeaderAddr, ErrBadAddresses)
	}
	before := uint64(h.HeaderAddr - h.LoadAddr)
	if before > uint64(h.Offset) {
		return fmt.Errorf("header_addr %#x - load_addr %#x puts the load %#x bytes before the header, which is at file offset %#x: %w",
			h.HeaderAddr, h.LoadAddr, before, h.Offset, ErrBadAddresses)
	}
	start := uint64(h.Offset) - before
	size := uint64(len(image)) - start
	if h.LoadEndAddr != 0 {
		if h.LoadEndAddr < h.LoadAddr {
			return fmt.Errorf("load_end_addr %#x is below load_addr %#x: %w", h.LoadEndAddr, h.LoadAddr, ErrBadAddresses)
		}
		size = uint64(h.LoadEndAddr - h.LoadAddr)
		if start+size > uint64(len(image)) {
			return fmt.Errorf("load_addr %#x to load_end_addr %#x is %#x bytes from file offset %#x, past the end of the file (%#x bytes): %w",
				h.LoadAddr, h.LoadEndAddr, size, start, len(image), ErrBadAddresses)
		}
	}
	loadEnd := uint64(h.LoadAddr) + size
	if loadEnd > fourGiB {
		return fmt.Errorf("%#x bytes from load_addr %#x end past 4 GiB: %w", size, h.LoadAddr, ErrBadAddresses)
	}
	if uint64(h.HeaderAddr)+uint64(h.size()) > loadEnd {
		return fmt.Errorf("header at %#x is not inside the loaded part %#x-%#x: %w", h.HeaderAddr, h.LoadAddr, loadEnd, ErrBadAddresses)
	}
	memEnd := loadEnd
	if h.BSSEndAddr != 0 {
		if uint64(h.BSSEndAddr) < loadEnd {
			return fmt.Errorf("bss_end_addr %#x is below the end of the loaded part %#x: %w", h.BSSEndAddr, loadEnd, ErrBadAddresses)
		}
		memEnd = uint64(h.BSSEndAddr)
	}
	if h.EntryAddr < h.LoadAddr || uint64(h.EntryAddr) >= loadEnd {
		return fmt.Errorf("entry_addr %#x, loaded part %#x-%#x: %w", h.EntryAddr, h.LoadAddr, loadEnd, ErrBadEntry)
	}
	img.Segments = []Segment{{Addr: h.LoadAddr, Data: image[start : start+size], MemSize: memEnd - uint64(h.LoadAddr)}}
	img.Entry = h.EntryAddr
	return nil
}

// ELF constants of the System V ABI and its i386 supplement.
const (
	elfClass32 = 1
	elfDataLSB = 1
	elfVersion = 1
	etExec     = 2
	em386      = 3
	ptLoad     = 1
)

var elfMagic = []byte("\x7fELF")

// fromELF lays the image out by its ELF32 program headers: each PT_LOAD
// segment at its physical address (p_paddr), its file bytes followed by
// zeros to p_memsz. The entry is e_entry; if that lies in no segment's
// physical range but in one's virtual range (a kernel linked to run
// higher-half that gives its virtual entry), it is translated to the
// physical address it is loaded at.
func (img *Image) fromELF(image []byte) error {
	if len(image) < elfHeaderSize || !bytes.HasPrefix(image, elfMagic) {
		return fmt.Errorf("no address fields (flag 16 clear) and no ELF header: %w", ErrNotELF32)
	}
	class, data, version := image[4], image[5], image[6]
	typ, machine := le.Uint16(image[16:]), le.Uint16(image[18:])
	switch {
	case class != elfClass32:
		return fmt.Errorf("ELF class %d: %w", class, ErrNotELF32)
	case data != elfDataLSB:
		return fmt.Errorf("ELF byte order %d, want little-endian: %w", data, ErrNotELF32)
	case version != elfVersion:
		return fmt.Errorf("ELF version %d: %w", version, ErrNotELF32)
	case typ != etExec:
		return fmt.Errorf("ELF type %d, want an executable (%d): %w", typ, etExec, ErrNotELF32)
	case machine != em386:
		return fmt.Errorf("ELF machine %d, want i386 (%d): %w", machine, em386, ErrNotELF32)
	}
	entry, phoff := le.Uint32(image[24:]), uint64(le.Uint32(image[28:]))
	phentsize, phnum := le.Uint16(image[42:]), uint64(le.Uint16(image[44:]))
	if phentsize != elfProgHeaderSize {
		return fmt.Errorf("e_phentsize %d, want %d: %w", phentsize, elfProgHeaderSize, ErrCorruptELF)
	}
	if end := phoff + phnum*elfProgHeaderSize; end > uint64(len(image)) {
		return fmt.Errorf("%d program headers at %#x run past the file (%#x bytes): %w", phnum, phoff, len(image), ErrTruncated)
	}
	type virt struct{ vaddr, paddr, filesz uint64 }
	var virts []virt
	for i := range phnum {
		ph := image[phoff+i*elfProgHeaderSize:]
		if le.Uint32(ph) != ptLoad {
			continue
		}
		off, vaddr, paddr := uint64(le.Uint32(ph[4:])), uint64(le.Uint32(ph[8:])), uint64(le.Uint32(ph[12:]))
		filesz, memsz := uint64(le.Uint32(ph[16:])), uint64(le.Uint32(ph[20:]))
		if filesz > memsz {
			return fmt.Errorf("segment %d: p_filesz %#x > p_memsz %#x: %w", i, filesz, memsz, ErrCorruptELF)
		}
		if off+filesz > uint64(len(image)) {
			return fmt.Errorf("segment %d: %#x bytes at file offset %#x run past the file (%#x bytes): %w",
				i, filesz, off, len(image), ErrTruncated)
		}
		if paddr+memsz > fourGiB {
			return fmt.Errorf("segment %d: p_paddr %#x + p_memsz %#x runs past 4 GiB: %w", i, paddr, memsz, ErrCorruptELF)
		}
		if memsz == 0 {
			continue
		}
		img.Segments = append(img.Segments, Segment{Addr: uint32(paddr), Data: image[off : off+filesz], MemSize: memsz})
		virts = append(virts, virt{vaddr, paddr, filesz})
	}
	if len(img.Segments) == 0 {
		return fmt.Errorf("no PT_LOAD segment among %d program headers: %w", phnum, ErrCorruptELF)
	}
	e := uint64(entry)
	for _, s := range img.Segments {
		if e >= uint64(s.Addr) && e < uint64(s.Addr)+uint64(len(s.Data)) {
			img.Entry = entry
			return nil
		}
	}
	for _, v := range virts {
		if e >= v.vaddr && e < v.vaddr+v.filesz {
			img.Entry = uint32(e - v.vaddr + v.paddr)
			return nil
		}
	}
	return fmt.Errorf("e_entry %#x is in no segment's file bytes: %w", entry, ErrBadEntry)
}
