package multiboot

import "errors"

// Sentinel errors. Every error Parse and Load return wraps exactly one of
// these, with context (which field, which segment, which address), so that a
// caller can tell the refusals apart with errors.Is and a user reads why.
var (
	// ErrNoHeader: no 4-byte-aligned multiboot magic (0x1BADB002) in the
	// image's first 8192 bytes. The image is not a multiboot kernel.
	ErrNoHeader = errors.New("no multiboot header")
	// ErrBadChecksum: a magic was found, but magic + flags + checksum is
	// not 0 modulo 2^32 there (nor at any later magic).
	ErrBadChecksum = errors.New("multiboot header checksum mismatch")
	// ErrTruncated: the header its flags describe does not fit in the
	// first 8192 bytes or in the file, or an ELF structure or segment runs
	// past the end of the file.
	ErrTruncated = errors.New("image truncated")
	// ErrUnsupportedFlags: the header sets a required flag (bits 0-15)
	// this loader does not know; the specification says the loader must
	// then refuse the kernel.
	ErrUnsupportedFlags = errors.New("unsupported required multiboot flags")
	// ErrBadAddresses: the header's address fields (flag 16, the a.out
	// kludge) contradict each other or the file: load_addr above
	// header_addr, a load that starts before the file or ends after it,
	// bss_end_addr below the loaded data, the header outside the loaded
	// part, or an end beyond 4 GiB.
	ErrBadAddresses = errors.New("inconsistent multiboot address fields")
	// ErrBadEntry: the entry point is not inside the bytes loaded from the
	// file, so the kernel could not start.
	ErrBadEntry = errors.New("entry point outside the loaded image")
	// ErrNotELF32: the header does not give the load addresses (flag 16
	// clear), so the image must be a little-endian ELF32 i386 executable,
	// and it is not (an ELF64 included: multiboot v1 kernels are 32-bit).
	ErrNotELF32 = errors.New("not an ELF32 i386 executable")
	// ErrCorruptELF: an ELF32 executable whose program headers cannot be
	// right: a wrong e_phentsize, no PT_LOAD segment, p_filesz above
	// p_memsz, a segment that wraps past 4 GiB.
	ErrCorruptELF = errors.New("corrupt ELF image")
	// ErrOverlap: two segments overlap, or a segment overlaps what the
	// loader itself puts into RAM (the GDT and TSS x86.Setup writes, the
	// multiboot information).
	ErrOverlap = errors.New("overlapping load ranges")
	// ErrOutsideRAM: a segment (with its bss), or the multiboot
	// information, does not lie inside one RAM entry of the memory map:
	// beyond the end of RAM, in the legacy area below 1 MiB, in the MMIO
	// hole.
	ErrOutsideRAM = errors.New("outside guest RAM")
	// ErrNoRoom: the modules do not fit in RAM below 4 GiB next to the
	// kernel, or the multiboot information (memory map, module list,
	// command lines) exceeds its layout.MultibootInfoSize bytes.
	ErrNoRoom = errors.New("no room in guest RAM")
	// ErrBadCmdline: a command line (the kernel's or a module's) contains
	// a NUL byte, which would cut it short in the guest.
	ErrBadCmdline = errors.New("command line contains NUL")
	// ErrBadMemoryMap: the memory map given in Config has no entries, more
	// than boot.E820MaxEntries, an entry that wraps, or a RAM entry that
	// guest memory does not back.
	ErrBadMemoryMap = errors.New("bad memory map")
)
