package multiboot

import (
	"fmt"
	"strings"

	"ember/boot"
	"ember/kvm"
	"ember/layout"
	"ember/memory"
	"ember/x86"
)

// LoaderName is the boot_loader_name Load gives the kernel.
const LoaderName = "ember"

// Module is a boot module: a file the kernel gets in RAM with its own
// command line (an initrd, a program, a test's data).
type Module struct {
	Data []byte
	// Cmdline is the module's string. GRUB and QEMU start it with the
	// module's file name; Load passes it as it is given.
	Cmdline string
}

// Config is what Load gives the kernel besides its image.
type Config struct {
	// Cmdline is the kernel's command line. By the convention GRUB and
	// QEMU follow (and kvm-unit-tests relies on, taking its argv[0] from
	// it), its first word is the kernel's file name; Load passes it as it
	// is given, so a caller that wants the convention prepends the name.
	Cmdline string
	// Modules are loaded page-aligned above the kernel, in this order.
	Modules []Module
	// MemoryMap is the guest's memory map (e820 types), which the kernel
	// gets as its mmap and from which mem_lower and mem_upper are taken.
	// If nil, it is derived from guest RAM as ember describes a PC's: the
	// low RAM to layout.EBDA, the legacy area to 1 MiB reserved, every
	// other byte of RAM available. Segments, modules and the multiboot
	// information must lie in its RAM entries.
	MemoryMap []boot.E820Entry
}

// Boot is where Load put the kernel and its boot information, and how to
// start it.
type Boot struct {
	// Entry is the boot vCPU's start state, for x86.Setup (hv.VM.SetEntry):
	// 32-bit protected mode, paging off, flat 4 GiB code and data
	// segments, interrupts off, EIP at the kernel's entry, EAX = BootMagic
	// and EBX = Info, as the specification asks. ESP is x86's default
	// stack; the specification leaves it undefined, a kernel sets its own.
	Entry x86.Entry
	// Info is the guest-physical address of the multiboot information
	// structure (layout.MultibootInfo).
	Info uint64
	// KernelStart and KernelEnd bound the kernel's segments, bss included.
	KernelStart, KernelEnd uint64
	// Modules is where each of Config.Modules went, in order.
	Modules []memory.Range
}

// The multiboot information structure (version 0.6.96): its size with the
// framebuffer fields, the offsets of the fields Load fills, its flags, and
// the entries it points to.
const (
	infoSize        = 116
	infoFlags       = 0
	infoMemLower    = 4
	infoMemUpper    = 8
	infoCmdline     = 16
	infoModsCount   = 20
	infoModsAddr    = 24
	infoMmapLength  = 44
	infoMmapAddr    = 48
	infoLoaderName  = 64
	infoFBAddr      = 88
	infoFBPitch     = 96
	infoFBWidth     = 100
	infoFBHeight    = 104
	infoFBBpp       = 108
	infoFBType      = 109
	infoHasMemory   = 1 << 0
	infoHasCmdline  = 1 << 2
	infoHasMods     = 1 << 3
	infoHasMmap     = 1 << 6
	infoHasLoader   = 1 << 9
	infoHasFB       = 1 << 12
	modEntrySize    = 16 // mod_start, mod_end, string, reserved
	mmapEntrySize   = 24 // size (20, not counting itself), base_addr, length, type
	mmapEntryFollow = mmapEntrySize - 4
)

// The EGA text mode Load reports for FlagVideoMode: 80x25 characters of two
// bytes at the VGA text buffer, framebuffer type 2.
const (
	textBuffer = 0xb8000
	textCols   = 80
	textRows   = 25
	textType   = 2
)

// setupArea is what x86.Setup writes when it starts the vCPU, after Load:
// the GDT and the 104-byte TSS after it. No segment may lie there.
var setupArea = span{"the GDT and TSS x86.Setup writes", layout.GDT, layout.TSS + 104}

// span is a named range of guest-physical addresses, [lo, hi).
type span struct {
	what   string
	lo, hi uint64
}

func (s span) overlaps(o span) bool { return s.lo < o.hi && o.lo < s.hi }

// Load checks that kernel is a multiboot kernel it can start (Parse), that
// its segments lie in RAM clear of the loader's own data, places the modules
// and the multiboot information, and only then writes: the segments with
// their bss zeroed, the modules, and the information structure with the
// memory bounds and map, the command line, the module list and the boot
// loader's name. On an error nothing has been written.
//
//	b, err := multiboot.Load(vm.Memory(), kernel, multiboot.Config{Cmdline: "kernel.elf -v"})
//	if err != nil { ... }
//	vm.SetEntry(0, b.Entry)
func Load(mem *memory.Guest, kernel []byte, cfg Config) (*Boot, error) {
	img, err := Parse(kernel)
	if err != nil {
		return nil, err
	}
	ram := cfg.MemoryMap
	if ram == nil {
		ram = memoryMap(mem)
	}
	if err := checkMemoryMap(mem, ram); err != nil {
		return nil, fmt.Errorf("multiboot: %w", err)
	}
	if err := checkCmdlines(cfg); err != nil {
		return nil, fmt.Errorf("multiboot: %w", err)
	}

	// Where everything goes, checked before anything is written.
	busy := []span{setupArea}
	for _, s := range img.Segments {
		seg := span{"a kernel segment", uint64(s.Addr), s.End()}
		if !inRAM(ram, seg.lo, seg.hi) {
			return nil, fmt.Errorf("multiboot: the kernel segment at %#x-%#x (bss included) is not inside one RAM entry of the memory map: %w",
				seg.lo, seg.hi, ErrOutsideRAM)
		}
		if err := checkClear(seg, busy); err != nil {
			return nil, fmt.Errorf("multiboot: %w", err)
		}
		busy = append(busy, seg)
	}
	info, err := buildInfo(img, cfg, ram)
	if err != nil {
		return nil, fmt.Errorf("multiboot: %w", err)
	}
	infoSpan := span{"the multiboot information", layout.MultibootInfo, layout.MultibootInfo + uint64(len(info.bytes))}
	if !inRAM(ram, infoSpan.lo, infoSpan.hi) {
		return nil, fmt.Errorf("multiboot: %s at %#x-%#x is not inside one RAM entry of the memory map: %w",
			infoSpan.what, infoSpan.lo, infoSpan.hi, ErrOutsideRAM)
	}
	if err := checkClear(infoSpan, busy); err != nil {
		return nil, fmt.Errorf("multiboot: %w", err)
	}
	busy = append(busy, infoSpan)
	lo, hi := img.span()
	b := &Boot{Info: layout.MultibootInfo, KernelStart: lo, KernelEnd: hi}
	for i, m := range cfg.Modules {
		n := uint64(len(m.Data))
		a, ok := place(ram, busy, n, hi)
		if !ok {
			a, ok = place(ram, busy, n, layout.HighRAM)
		}
		if !ok {
			return nil, fmt.Errorf("multiboot: module %d (%d bytes) fits nowhere in RAM below 4 GiB clear of the kernel, the boot information and the modules before it: %w",
				i, n, ErrNoRoom)
		}
		busy = append(busy, span{fmt.Sprintf("module %d", i), a, a + max(n, 1)})
		b.Modules = append(b.Modules, memory.Range{GPA: a, Size: n})
	}
	info.setModules(b.Modules)

	// Write.
	for _, s := range img.Segments {
		write(mem, uint64(s.Addr), s.Data)
		zero(mem, uint64(s.Addr)+uint64(len(s.Data)), s.MemSize-uint64(len(s.Data)))
	}
	for i, m := range cfg.Modules {
		write(mem, b.Modules[i].GPA, m.Data)
	}
	write(mem, layout.MultibootInfo, info.bytes)
	b.Entry = x86.Entry{Mode: x86.ProtectedMode, RIP: uint64(img.Entry), Regs: kvm.Regs{RAX: BootMagic, RBX: b.Info}}
	return b, nil
}

// checkClear returns an ErrOverlap error if s overlaps any of busy.
func checkClear(s span, busy []span) error {
	for _, b := range busy {
		if s.overlaps(b) {
			return fmt.Errorf("%s (%#x-%#x) overlaps %s (%#x-%#x): %w", s.what, s.lo, s.hi, b.what, b.lo, b.hi, ErrOverlap)
		}
	}
	return nil
}

// place returns the lowest page-aligned address at or above from where n
// bytes lie inside one RAM entry of ram, below 4 GiB (a module's end must
// fit mod_end's 32 bits), clear of busy. An empty module takes the one
// address it points at, so that no two modules share one.
func place(ram []boot.E820Entry, busy []span, n, from uint64) (uint64, bool) {
	size := max(n, 1)
	a := alignUp(from)
	for a+size < fourGiB {
		var entry *boot.E820Entry
		for i := range ram {
			if r := &ram[i]; r.Type == boot.E820RAM && a >= r.Addr && a < r.End() {
				entry = r
				break
			}
		}
		if entry == nil || a+size > entry.End() {
			// Move to the next RAM entry that starts above a.
			next := uint64(fourGiB)
			for _, r := range ram {
				if r.Type == boot.E820RAM && r.Addr > a && r.Addr < next {
					next = r.Addr
				}
			}
			a = alignUp(next)
			continue
		}
		moved := false
		for _, b := range busy {
			if (span{lo: a, hi: a + size}).overlaps(b) {
				a, moved = alignUp(b.hi), true
				break
			}
		}
		if !moved {
			return a, true
		}
	}
	return 0, false
}

func alignUp(a uint64) uint64 { return (a + pageSize - 1) &^ (pageSize - 1) }

// checkCmdlines refuses command lines with a NUL byte.
func checkCmdlines(cfg Config) error {
	if strings.IndexByte(cfg.Cmdline, 0) >= 0 {
		return fmt.Errorf("kernel: %w", ErrBadCmdline)
	}
	for i, m := range cfg.Modules {
		if strings.IndexByte(m.Cmdline, 0) >= 0 {
			return fmt.Errorf("module %d: %w", i, ErrBadCmdline)
		}
	}
	return nil
}

// info is the multiboot information as it will be written at
// layout.MultibootInfo: the structure, then the memory map, the module list
// and the strings.
type info struct {
	bytes   []byte
	modsOff uint64 // offset of the module list in bytes
	modStrs []uint64
}

// buildInfo lays out the multiboot information for img, cfg and the memory
// map; the module addresses come later (setModules), once the modules are
// placed, since where they may go depends on how large this is.
func buildInfo(img *Image, cfg Config, ram []boot.E820Entry) (*info, error) {
	mmapOff := uint64(align8(infoSize))
	modsOff := mmapOff + uint64(len(ram))*mmapEntrySize
	strOff := modsOff + uint64(len(cfg.Modules))*modEntrySize
	strs := []string{cfg.Cmdline, LoaderName}
	for _, m := range cfg.Modules {
		strs = append(strs, m.Cmdline)
	}
	total := strOff
	for _, s := range strs {
		total += uint64(len(s)) + 1
	}
	if total > layout.MultibootInfoSize {
		return nil, fmt.Errorf("the multiboot information (%d memory map entries, %d modules, %d bytes of strings) needs %d bytes, has %d: %w",
			len(ram), len(cfg.Modules), total-strOff, total, layout.MultibootInfoSize, ErrNoRoom)
	}
	b := make([]byte, total)
	addrs := make([]uint64, len(strs))
	o := strOff
	for i, s := range strs {
		addrs[i] = layout.MultibootInfo + o
		o += uint64(copy(b[o:], s)) + 1
	}

	put := func(off int, v uint64) { le.PutUint32(b[off:], uint32(v)) }
	flags := uint64(infoHasMemory | infoHasCmdline | infoHasMods | infoHasMmap | infoHasLoader)
	lower, upper := memoryBounds(ram)
	put(infoMemLower, lower)
	put(infoMemUpper, upper)
	put(infoCmdline, addrs[0])
	put(infoModsCount, uint64(len(cfg.Modules)))
	put(infoModsAddr, layout.MultibootInfo+modsOff)
	put(infoMmapLength, uint64(len(ram))*mmapEntrySize)
	put(infoMmapAddr, layout.MultibootInfo+mmapOff)
	put(infoLoaderName, addrs[1])
	if img.Header.Flags&FlagVideoMode != 0 {
		flags |= infoHasFB
		le.PutUint64(b[infoFBAddr:], textBuffer)
		put(infoFBPitch, textCols*2)
		put(infoFBWidth, textCols)
		put(infoFBHeight, textRows)
		b[infoFBBpp], b[infoFBType] = 16, textType
	}
	put(infoFlags, flags)
	for i, r := range ram {
		e := b[mmapOff+uint64(i)*mmapEntrySize:]
		le.PutUint32(e, mmapEntryFollow)
		le.PutUint64(e[4:], r.Addr)
		le.PutUint64(e[12:], r.Size)
		le.PutUint32(e[20:], r.Type)
	}
	return &info{bytes: b, modsOff: modsOff, modStrs: addrs[2:]}, nil
}

// setModules fills the module list: each module's start, end (the first
// byte after it) and string.
func (in *info) setModules(mods []memory.Range) {
	for i, m := range mods {
		e := in.bytes[in.modsOff+uint64(i)*modEntrySize:]
		le.PutUint32(e, uint32(m.GPA))
		le.PutUint32(e[4:], uint32(m.End()))
		le.PutUint32(e[8:], uint32(in.modStrs[i]))
	}
}

func align8(n int) int { return (n + 7) &^ 7 }

// memoryBounds returns mem_lower and mem_upper in KiB: the RAM from 0 (at
// most 640 KiB, as the specification says), and the RAM from 1 MiB up to
// the first hole, adjacent RAM entries joined.
func memoryBounds(ram []boot.E820Entry) (lower, upper uint64) {
	contiguous := func(from uint64) uint64 {
		end := from
		for grew := true; grew; {
			grew = false
			for _, r := range ram {
				if r.Type == boot.E820RAM && r.Addr <= end && r.End() > end {
					end, grew = r.End(), true
				}
			}
		}
		return end - from
	}
	lower = min(contiguous(0), 640<<10) >> 10
	upper = min(contiguous(layout.HighRAM)>>10, 0xffffffff)
	return lower, upper
}

// memoryMap describes guest RAM as ember describes a PC's (pc's etc/e820):
// the region at 0 split around the legacy area, layout.EBDA to 1 MiB
// reserved; every other region available.
func memoryMap(mem *memory.Guest) []boot.E820Entry {
	var m []boot.E820Entry
	for _, r := range mem.Regions() {
		if r.GPA != 0 || r.Size <= layout.EBDA {
			m = append(m, boot.E820Entry{Addr: r.GPA, Size: r.Size, Type: boot.E820RAM})
			continue
		}
		m = append(m, boot.E820Entry{Addr: 0, Size: layout.EBDA, Type: boot.E820RAM},
			boot.E820Entry{Addr: layout.EBDA, Size: min(r.Size, layout.HighRAM) - layout.EBDA, Type: boot.E820Reserved})
		if r.Size > layout.HighRAM {
			m = append(m, boot.E820Entry{Addr: layout.HighRAM, Size: r.Size - layout.HighRAM, Type: boot.E820RAM})
		}
	}
	return m
}

// checkMemoryMap refuses a map the kernel could not use or Load could not
// trust: no entries, too many, one that wraps, or RAM that mem lacks.
func checkMemoryMap(mem *memory.Guest, ram []boot.E820Entry) error {
	if len(ram) == 0 || len(ram) > boot.E820MaxEntries {
		return fmt.Errorf("%d entries (1 to %d): %w", len(ram), boot.E820MaxEntries, ErrBadMemoryMap)
	}
	for i, r := range ram {
		if r.End() < r.Addr {
			return fmt.Errorf("entry %d (%#x+%#x) wraps: %w", i, r.Addr, r.Size, ErrBadMemoryMap)
		}
		if r.Type == boot.E820RAM && !backed(mem, r.Addr, r.End()) {
			return fmt.Errorf("entry %d (%#x-%#x) is RAM that guest memory does not have: %w", i, r.Addr, r.End(), ErrBadMemoryMap)
		}
	}
	return nil
}

// backed reports whether guest memory covers [lo, hi), across adjacent
// regions if need be.
func backed(mem *memory.Guest, lo, hi uint64) bool {
	for _, r := range mem.Regions() { // in address order
		if lo >= hi {
			break
		}
		if r.GPA <= lo && lo < r.End() {
			lo = r.End()
		}
	}
	return lo >= hi
}

// inRAM reports whether [lo, hi) lies inside one RAM entry of ram.
func inRAM(ram []boot.E820Entry, lo, hi uint64) bool {
	for _, r := range ram {
		if r.Type == boot.E820RAM && lo >= r.Addr && hi <= r.End() {
			return true
		}
	}
	return false
}

// write copies data to guest-physical addr, across regions if need be. The
// range has been checked to be RAM that mem backs.
func write(mem *memory.Guest, addr uint64, data []byte) {
	each(mem, addr, uint64(len(data)), func(b []byte, off uint64) { copy(b, data[off:]) })
}

// zero clears n bytes at guest-physical addr, across regions if need be.
func zero(mem *memory.Guest, addr, n uint64) {
	each(mem, addr, n, func(b []byte, _ uint64) { clear(b) })
}

// each calls f with the host bytes of every region's part of [addr,
// addr+n) and that part's offset from addr.
func each(mem *memory.Guest, addr, n uint64, f func(b []byte, off uint64)) {
	end := addr + n
	for _, r := range mem.Regions() {
		lo, hi := max(addr, r.GPA), min(end, r.End())
		if lo < hi {
			f(r.Host[lo-r.GPA:hi-r.GPA], lo-addr)
		}
	}
}
