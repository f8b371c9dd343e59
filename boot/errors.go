package boot

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error a loader returns wraps exactly one of these,
// with context, so callers can test with errors.Is.
var (
	// ErrTruncated: the image ends before a structure it declares.
	ErrTruncated = errors.New("image truncated")
	// ErrNotBzImage: no boot sector flag or "HdrS" magic, a zImage, or a
	// setup header whose fields contradict each other.
	ErrNotBzImage = errors.New("not a bzImage")
	// ErrBootProtocolTooOld: the boot protocol is older than MinProtocol.
	ErrBootProtocolTooOld = errors.New("boot protocol too old")
	// ErrNot64Bit: the kernel has no 64-bit entry (XLF_KERNEL_64 clear, or
	// an ELF32 kernel where the 64-bit boot protocol is asked for).
	ErrNot64Bit = errors.New("kernel is not 64-bit")
	// ErrUnknownCompression: the bzImage payload's magic bytes name no
	// compression the kernel supports.
	ErrUnknownCompression = errors.New("unknown payload compression")
	// ErrCorruptPayload: the payload does not decompress, or decompresses
	// to a size other than the one recorded after it.
	ErrCorruptPayload = errors.New("corrupt compressed payload")
	// ErrKernelTooLarge: the kernel, decompressed or not, does not fit in
	// guest RAM or exceeds MaxKernelSize.
	ErrKernelTooLarge = errors.New("kernel too large")
	// ErrNotELF: bad ELF magic, class, byte order, version or machine.
	ErrNotELF = errors.New("not an x86 ELF image")
	// ErrCorruptELF: an ELF header or program header that cannot be right
	// (file size above memory size, address overflow, no segments).
	ErrCorruptELF = errors.New("corrupt ELF image")
	// ErrNoPVHNote: PVH boot was asked for but the ELF has no
	// XEN_ELFNOTE_PHYS32_ENTRY note.
	ErrNoPVHNote = errors.New("no PVH entry note")
	// ErrCmdlineTooLong: the command line is longer than the kernel's
	// cmdline_size (or layout.CmdlineSize-1). It is never truncated.
	ErrCmdlineTooLong = errors.New("command line too long")
	// ErrBadCmdline: the command line contains a NUL byte.
	ErrBadCmdline = errors.New("command line contains NUL")
	// ErrInitrdTooLarge: no RAM below initrd_addr_max (or above 4 GiB,
	// where the kernel allows it) above the kernel can hold the initrd.
	ErrInitrdTooLarge = errors.New("initrd does not fit")
	// ErrOutOfRange: a write would fall outside guest RAM; see RangeError.
	ErrOutOfRange = errors.New("outside guest memory")
	// ErrOverlap: a kernel segment overlaps the loader's own boot data
	// below 1 MiB.
	ErrOverlap = errors.New("overlaps boot data")
	// ErrBadMemoryMap: the e820 map has no entries, too many, or an entry
	// that wraps around.
	ErrBadMemoryMap = errors.New("bad memory map")
	// ErrBadMode: a Mode that does not apply to the kernel given.
	ErrBadMode = errors.New("boot mode does not apply")
	// ErrBadAddress: a flat image address that real mode cannot reach.
	ErrBadAddress = errors.New("bad load address")
)

// RangeError reports a write of Size bytes at guest-physical Addr that does
// not lie inside guest RAM. It wraps ErrOutOfRange.
type RangeError struct {
	What string // what was being written, e.g. "initrd"
	Addr uint64
	Size uint64
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("%s at %#x, %d bytes: %v", e.What, e.Addr, e.Size, ErrOutOfRange)
}

func (e *RangeError) Unwrap() error { return ErrOutOfRange }
