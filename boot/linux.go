package boot

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"ember/layout"
)

// Mode says how LoadLinux boots a kernel.
type Mode int

const (
	// ModeAuto boots a bzImage by decompressing it on the host
	// (ModeDecompress) and a vmlinux ELF by the 64-bit boot protocol.
	ModeAuto Mode = iota
	// ModeBzImage loads the bzImage's protected-mode code at
	// layout.BzImageLoad and enters its 64-bit entry (load address + 0x200),
	// so that the kernel's own decompressor runs in the guest.
	ModeBzImage
	// ModeDecompress decompresses the bzImage payload on the host, loads
	// the vmlinux ELF inside at its physical addresses and enters
	// startup_64 at e_entry by the 64-bit boot protocol. On an emulated
	// CPU this skips minutes of guest-side decompression.
	ModeDecompress
	// ModePVH loads the vmlinux ELF (from a bzImage's payload or given as
	// it is) and enters its XEN_ELFNOTE_PHYS32_ENTRY in 32-bit protected
	// mode with RBX pointing at an hvm_start_info.
	ModePVH
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeBzImage:
		return "bzimage"
	case ModeDecompress:
		return "decompress"
	case ModePVH:
		return "pvh"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// CPUMode is the processor mode a guest must be started in.
type CPUMode int

const (
	// RealMode: 16-bit, CS = Entry.CS, IP = Entry.RIP.
	RealMode CPUMode = iota
	// ProtectedMode: 32-bit flat segments, paging off.
	ProtectedMode
	// LongMode: 64-bit, paging on with identity maps, flat GDT.
	LongMode
)

func (m CPUMode) String() string {
	switch m {
	case RealMode:
		return "real mode"
	case ProtectedMode:
		return "32-bit protected mode"
	case LongMode:
		return "64-bit long mode"
	}
	return fmt.Sprintf("CPUMode(%d)", int(m))
}

// Entry tells the caller how to start the boot vCPU and what went where.
// Addresses are guest-physical; a zero address means "not used".
type Entry struct {
	Mode CPUMode
	RIP  uint64
	CS   uint16 // real mode only: the code segment (base CS << 4)
	RSI  uint64 // 64-bit boot protocol: the zero page
	RBX  uint64 // PVH: the hvm_start_info

	ZeroPage    uint64
	StartInfo   uint64
	Cmdline     uint64
	CmdlineLen  uint64 // without the NUL
	Initrd      uint64
	InitrdSize  uint64
	KernelStart uint64
	KernelEnd   uint64 // first address after the kernel and the room it needs

	Protocol    uint16      // boot protocol of a bzImage, else 0
	Compression Compression // payload compression decoded on the host
}

func (e *Entry) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v at %#x", e.Mode, e.RIP)
	if e.Mode == RealMode {
		fmt.Fprintf(&b, " (CS %#04x)", e.CS)
	}
	fmt.Fprintf(&b, ", kernel %#x-%#x", e.KernelStart, e.KernelEnd)
	if e.Protocol != 0 {
		fmt.Fprintf(&b, ", protocol %d.%02d", e.Protocol>>8, e.Protocol&0xff)
	}
	if e.Compression != CompressionUnknown {
		fmt.Fprintf(&b, ", %v payload decompressed on host", e.Compression)
	}
	if e.ZeroPage != 0 {
		fmt.Fprintf(&b, ", zero page %#x", e.ZeroPage)
	}
	if e.StartInfo != 0 {
		fmt.Fprintf(&b, ", hvm_start_info %#x", e.StartInfo)
	}
	if e.Cmdline != 0 {
		fmt.Fprintf(&b, ", cmdline %#x (%d bytes)", e.Cmdline, e.CmdlineLen)
	}
	if e.InitrdSize != 0 {
		fmt.Fprintf(&b, ", initrd %#x (%d bytes)", e.Initrd, e.InitrdSize)
	}
	return b.String()
}

// LinuxConfig is what LoadLinux loads.
type LinuxConfig struct {
	Kernel  []byte // a bzImage, or a vmlinux ELF
	Initrd  []byte // optional
	Cmdline string
	Mode    Mode
	// E820 is the guest's memory map. If nil, MemoryMap(mem.Size()) is
	// used. Every write LoadLinux makes must fall in one of its RAM
	// entries.
	E820 []E820Entry
}

// linuxImage is what LoadLinux knows about the kernel, whatever its form.
type linuxImage struct {
	bz            *BzImage // nil for a bare vmlinux
	elf           *ELF     // nil for the plain bzImage path
	cmdlineMax    uint64
	initrdAddrMax uint64
	above4G       bool
}

// LoadLinux checks that cfg.Kernel is a Linux kernel, loads it, the initrd
// and the command line into mem, writes the boot parameters (a zero page,
// or an hvm_start_info for PVH) and returns the entry state.
func LoadLinux(mem Memory, cfg LinuxConfig) (*Entry, error) {
	ram := cfg.E820
	if ram == nil {
		ram = MemoryMap(mem.Size())
	}
	if err := checkMemoryMap(ram); err != nil {
		return nil, err
	}
	g := guest{mem, ram}
	img, e, err := prepareKernel(cfg, min(uint64(MaxKernelSize), mem.Size()))
	if err != nil {
		return nil, err
	}

	// Where the kernel goes, and how much room it needs there.
	if img.elf != nil {
		lo, hi := img.elf.span()
		if lo < layout.HighRAM {
			return nil, fmt.Errorf("kernel segment at %#x is below 1 MiB: %w", lo, ErrOverlap)
		}
		e.KernelStart, e.KernelEnd = lo, hi
		if img.bz != nil {
			// init_size counts from the runtime start: leave it free.
			e.KernelEnd = max(hi, lo+uint64(img.bz.Header.InitSize))
		}
		e.RIP = img.elf.Entry
		if e.Mode == ProtectedMode {
			e.RIP = uint64(img.elf.PVHEntry)
		}
	} else {
		h := &img.bz.Header
		e.KernelStart = layout.BzImageLoad
		e.KernelEnd = max(layout.BzImageLoad+uint64(len(img.bz.Kernel)),
			h.runtimeStart(layout.BzImageLoad)+uint64(h.InitSize))
		e.RIP = layout.BzImageLoad + 0x200
	}
	if !inRAM(ram, e.KernelStart, e.KernelEnd-e.KernelStart) {
		return nil, fmt.Errorf("kernel needs %#x-%#x: %w", e.KernelStart, e.KernelEnd,
			&RangeError{What: "kernel", Addr: e.KernelStart, Size: e.KernelEnd - e.KernelStart})
	}

	// Command line: an error if too long, never truncated.
	if strings.IndexByte(cfg.Cmdline, 0) >= 0 {
		return nil, ErrBadCmdline
	}
	if n := uint64(len(cfg.Cmdline)); n > img.cmdlineMax {
		return nil, fmt.Errorf("%d bytes, kernel takes %d: %w", n, img.cmdlineMax, ErrCmdlineTooLong)
	}
	e.Cmdline, e.CmdlineLen = layout.Cmdline, uint64(len(cfg.Cmdline))

	if len(cfg.Initrd) > 0 {
		addr, err := placeInitrd(ram, uint64(len(cfg.Initrd)), e.KernelEnd, img.initrdAddrMax, img.above4G)
		if err != nil {
			return nil, err
		}
		e.Initrd, e.InitrdSize = addr, uint64(len(cfg.Initrd))
	}

	// All checks passed: write.
	if img.elf != nil {
		if err := img.elf.load(g); err != nil {
			return nil, err
		}
	} else if err := g.write("bzImage kernel", layout.BzImageLoad, img.bz.Kernel); err != nil {
		return nil, err
	}
	if err := g.write("command line", layout.Cmdline, append([]byte(cfg.Cmdline), 0)); err != nil {
		return nil, err
	}
	if err := g.write("initrd", e.Initrd, cfg.Initrd); err != nil {
		return nil, err
	}
	if e.Mode == ProtectedMode {
		e.StartInfo, e.RBX = layout.PVHStartInfo, layout.PVHStartInfo
		return e, writeStartInfo(g, e, ram)
	}
	e.ZeroPage, e.RSI = layout.ZeroPage, layout.ZeroPage
	zp, err := zeroPage(img, e, ram)
	if err != nil {
		return nil, err
	}
	return e, g.write("zero page", layout.ZeroPage, zp)
}

// prepareKernel parses the kernel (decompressing a bzImage payload when the
// mode asks for it) and returns it with the entry mode set.
func prepareKernel(cfg LinuxConfig, limit uint64) (*linuxImage, *Entry, error) {
	img := &linuxImage{cmdlineMax: defaultCmdlineSize, initrdAddrMax: defaultInitrdAddrMax}
	e := &Entry{Mode: LongMode}
	var vmlinux []byte
	if bytes.HasPrefix(cfg.Kernel, magicELF) {
		if cfg.Mode == ModeBzImage {
			return nil, nil, fmt.Errorf("%v with a vmlinux ELF: %w", cfg.Mode, ErrBadMode)
		}
		vmlinux = cfg.Kernel
	} else {
		bz, err := ParseBzImage(cfg.Kernel)
		if err != nil {
			return nil, nil, err
		}
		img.bz = bz
		e.Protocol = bz.Header.Version
		img.cmdlineMax = uint64(bz.Header.CmdlineSize) // protocol 2.06+
		img.initrdAddrMax = uint64(bz.Header.InitrdAddrMax)
		img.above4G = bz.Header.XLoadflags&XLFCanBeLoadedAbove4G != 0
		switch cfg.Mode {
		case ModeBzImage:
		case ModeAuto, ModeDecompress, ModePVH:
			out, c, err := decompress(bz.Payload, limit)
			if err != nil {
				return nil, nil, fmt.Errorf("bzImage payload: %w", err)
			}
			vmlinux, e.Compression = out, c
		default:
			return nil, nil, fmt.Errorf("%v: %w", cfg.Mode, ErrBadMode)
		}
	}
	img.cmdlineMax = min(img.cmdlineMax, layout.CmdlineSize-1)
	if vmlinux == nil {
		return img, e, nil
	}
	f, err := ParseELF(vmlinux)
	if err != nil {
		return nil, nil, fmt.Errorf("vmlinux: %w", err)
	}
	img.elf = f
	switch cfg.Mode {
	case ModeAuto, ModeDecompress:
		if !f.Is64 {
			return nil, nil, fmt.Errorf("vmlinux is ELF32: %w", ErrNot64Bit)
		}
	case ModePVH:
		if !f.HasPVH {
			return nil, nil, fmt.Errorf("vmlinux: %w", ErrNoPVHNote)
		}
		e.Mode = ProtectedMode
	default:
		return nil, nil, fmt.Errorf("%v: %w", cfg.Mode, ErrBadMode)
	}
	return img, e, nil
}

// placeInitrd finds the highest 4 KiB-aligned address at which size bytes
// fit in one RAM range above the kernel and end at or below addrMax (the
// highest byte the initrd may occupy). If nothing fits there and the kernel
// can take an initrd above 4 GiB, RAM above 4 GiB is tried.
func placeInitrd(ram []E820Entry, size, kernelEnd, addrMax uint64, above4G bool) (uint64, error) {
	if a, ok := topFit(ram, size, kernelEnd, addrMax+1); ok {
		return a, nil
	}
	if above4G {
		if a, ok := topFit(ram, size, layout.MMIOHoleEnd, ^uint64(0)); ok {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%d bytes above the kernel (%#x) and below %#x: %w", size, kernelEnd, addrMax+1, ErrInitrdTooLarge)
}

// topFit returns the highest page-aligned a with [a, a+size) inside one RAM
// entry and inside [floor, ceil).
func topFit(ram []E820Entry, size, floor, ceil uint64) (uint64, bool) {
	var best uint64
	found := false
	for _, r := range ram {
		if r.Type != E820RAM {
			continue
		}
		lo, hi := max(r.Addr, floor), min(r.End(), ceil)
		if hi <= lo || hi-lo < size {
			continue
		}
		a := (hi - size) &^ (pageSize - 1)
		if a < lo {
			continue
		}
		if !found || a > best {
			best, found = a, true
		}
	}
	return best, found
}

// zeroPage builds struct boot_params: the kernel's setup header (or, for a
// bare vmlinux, the few fields a 64-bit kernel reads) with the loader's
// fields filled in, and the e820 map.
func zeroPage(img *linuxImage, e *Entry, ram []E820Entry) ([]byte, error) {
	bz := img.bz
	zp := make([]byte, zeroPageSize)
	le := binary.LittleEndian
	if bz != nil {
		copy(zp[offSetupSects:], bz.setup)
	} else {
		le.PutUint16(zp[offBootFlag:], bootFlagMagic)
		le.PutUint32(zp[offHeader:], hdrSMagic)
		le.PutUint32(zp[offKernelAlignment:], 0x1000000)
		le.PutUint32(zp[offCmdlineSize:], defaultCmdlineSize)
		le.PutUint32(zp[offInitrdAddrMax:], defaultInitrdAddrMax)
		zp[offLoadflags] = LoadedHigh
	}
	zp[offTypeOfLoader] = 0xff // no assigned boot loader ID
	zp[offLoadflags] |= CanUseHeap
	zp[offLoadflags] &^= QuietFlag | KASLRFlag
	// The real-mode heap ends at 0xe000 from the real-mode code in a
	// protocol >= 2.02 LOADED_HIGH kernel; the field holds it less 0x200.
	le.PutUint16(zp[offHeapEndPtr:], 0xe000-0x200)
	le.PutUint16(zp[offVidMode:], 0xffff) // "normal"
	if img.elf == nil {
		// The plain path: where the protected-mode code was loaded.
		le.PutUint32(zp[offCode32Start:], layout.BzImageLoad)
	}
	le.PutUint32(zp[offCmdLinePtr:], uint32(e.Cmdline))
	le.PutUint32(zp[offExtCmdLinePtr:], uint32(e.Cmdline>>32))
	le.PutUint32(zp[offRamdiskImage:], uint32(e.Initrd))
	le.PutUint32(zp[offRamdiskSize:], uint32(e.InitrdSize))
	le.PutUint32(zp[offExtRamdiskImage:], uint32(e.Initrd>>32))
	le.PutUint32(zp[offExtRamdiskSize:], uint32(e.InitrdSize>>32))
	if len(ram) > E820MaxEntries {
		return nil, fmt.Errorf("%d e820 entries: %w", len(ram), ErrBadMemoryMap)
	}
	zp[offE820Entries] = uint8(len(ram))
	for i, r := range ram {
		o := offE820Table + i*e820EntrySize
		le.PutUint64(zp[o:], r.Addr)
		le.PutUint64(zp[o+8:], r.Size)
		le.PutUint32(zp[o+16:], r.Type)
	}
	return zp, nil
}

// hvm_start_info (Xen's arch-x86/hvm/start_info.h), version 1.
const (
	hvmStartMagic      = 0x336ec578
	hvmStartVersion    = 1
	hvmStartInfoSize   = 56
	hvmModlistSize     = 32
	hvmMemmapEntrySize = 24
)

// writeStartInfo writes hvm_start_info, its module list (the initrd) and its
// memory map for a PVH entry.
func writeStartInfo(g guest, e *Entry, ram []E820Entry) error {
	le := binary.LittleEndian
	si := make([]byte, hvmStartInfoSize)
	le.PutUint32(si[0:], hvmStartMagic)
	le.PutUint32(si[4:], hvmStartVersion)
	le.PutUint64(si[24:], e.Cmdline)
	le.PutUint64(si[40:], layout.PVHMemmap)
	le.PutUint32(si[48:], uint32(len(ram)))
	if e.InitrdSize > 0 {
		le.PutUint32(si[12:], 1)
		le.PutUint64(si[16:], layout.PVHModlist)
		mod := make([]byte, hvmModlistSize)
		le.PutUint64(mod[0:], e.Initrd)
		le.PutUint64(mod[8:], e.InitrdSize)
		if err := g.write("PVH module list", layout.PVHModlist, mod); err != nil {
			return err
		}
	}
	mm := make([]byte, len(ram)*hvmMemmapEntrySize)
	for i, r := range ram {
		o := i * hvmMemmapEntrySize
		le.PutUint64(mm[o:], r.Addr)
		le.PutUint64(mm[o+8:], r.Size)
		le.PutUint32(mm[o+16:], r.Type)
	}
	if err := g.write("PVH memory map", layout.PVHMemmap, mm); err != nil {
		return err
	}
	return g.write("hvm_start_info", layout.PVHStartInfo, si)
}
