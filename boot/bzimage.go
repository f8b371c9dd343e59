package boot

import (
	"encoding/binary"
	"fmt"

	"ember/layout"
)

// Offsets in the bzImage file (and in struct boot_params, where the setup
// header is copied to the same place), from the Linux x86 boot protocol.
const (
	offSetupSects      = 0x1f1
	offSyssize         = 0x1f4
	offVidMode         = 0x1fa
	offBootFlag        = 0x1fe
	offJump            = 0x200
	offHeader          = 0x202
	offVersion         = 0x206
	offKernelVersion   = 0x20e
	offTypeOfLoader    = 0x210
	offLoadflags       = 0x211
	offCode32Start     = 0x214
	offRamdiskImage    = 0x218
	offRamdiskSize     = 0x21c
	offHeapEndPtr      = 0x224
	offCmdLinePtr      = 0x228
	offInitrdAddrMax   = 0x22c
	offKernelAlignment = 0x230
	offRelocatable     = 0x234
	offMinAlignment    = 0x235
	offXLoadflags      = 0x236
	offCmdlineSize     = 0x238
	offPayloadOffset   = 0x248
	offPayloadLength   = 0x24c
	offPrefAddress     = 0x258
	offInitSize        = 0x260
	offHandoverOffset  = 0x264
	offKernelInfo      = 0x268
	setupHeaderLimit   = 0x290 // the setup header can never reach past this

	// boot_params fields outside the setup header.
	offExtRamdiskImage = 0x0c0
	offExtRamdiskSize  = 0x0c4
	offExtCmdLinePtr   = 0x0c8
	offE820Entries     = 0x1e8
	offE820Table       = 0x2d0
	e820EntrySize      = 20
	zeroPageSize       = 4096

	bootFlagMagic = 0xaa55
	hdrSMagic     = 0x53726448 // "HdrS"
)

// loadflags and xloadflags bits.
const (
	LoadedHigh = 1 << 0 // LOADED_HIGH: protected-mode code at 0x100000
	KASLRFlag  = 1 << 1
	QuietFlag  = 1 << 5
	CanUseHeap = 1 << 7 // CAN_USE_HEAP: heap_end_ptr is valid

	XLFKernel64           = 1 << 0 // 64-bit entry at load address + 0x200
	XLFCanBeLoadedAbove4G = 1 << 1
	XLFEFIHandover32      = 1 << 2
	XLFEFIHandover64      = 1 << 3
	XLFEFIKexec           = 1 << 4
)

// MinProtocol is the oldest boot protocol the loader takes: 2.12, the first
// with xloadflags, which is how a kernel says it has a 64-bit entry.
const MinProtocol = 0x020c

// defaultCmdlineSize is COMMAND_LINE_SIZE on x86, used where no setup header
// says otherwise (a bare vmlinux).
const defaultCmdlineSize = 2048

// defaultInitrdAddrMax is what x86-64 kernels declare in initrd_addr_max,
// used for a bare vmlinux that has no setup header to say it.
const defaultInitrdAddrMax = 0x7fffffff

// SetupHeader holds the fields of a bzImage's setup header (struct
// setup_header) that a loader reads.
type SetupHeader struct {
	SetupSects       uint8  // 0x1f1, 0 already replaced by 4
	Syssize          uint32 // 0x1f4, protected-mode size in 16-byte units
	Version          uint16 // 0x206, (major << 8) | minor
	KernelVersion    string // the string kernel_version (0x20e) points to
	Loadflags        uint8  // 0x211
	Code32Start      uint32 // 0x214
	InitrdAddrMax    uint32 // 0x22c, highest address the initrd may occupy
	KernelAlignment  uint32 // 0x230
	Relocatable      bool   // 0x234
	MinAlignment     uint8  // 0x235, log2
	XLoadflags       uint16 // 0x236
	CmdlineSize      uint32 // 0x238, maximum length without the NUL
	PayloadOffset    uint32 // 0x248, from the start of protected-mode code
	PayloadLength    uint32 // 0x24c
	PrefAddress      uint64 // 0x258
	InitSize         uint32 // 0x260, memory needed from the runtime start
	HandoverOffset   uint32 // 0x264
	KernelInfoOffset uint32 // 0x268 (protocol 2.15+)
}

// BzImage is a parsed bzImage. Its slices alias the data given to
// ParseBzImage.
type BzImage struct {
	Header SetupHeader
	// Kernel is the protected-mode code: the file from (setup_sects+1)*512
	// on, which the plain boot path loads at layout.BzImageLoad.
	Kernel []byte
	// Payload is the compressed kernel (with its 4-byte size trailer).
	Payload []byte
	// Compression is what the payload's magic bytes say.
	Compression Compression

	setup []byte // file bytes 0x1f1 up to the end of the setup header
}

// ParseBzImage checks that data is a 64-bit bzImage with boot protocol 2.12
// or later and returns its setup header and payload.
func ParseBzImage(data []byte) (*BzImage, error) {
	if len(data) < offVersion+2 {
		return nil, fmt.Errorf("bzImage of %d bytes has no setup header: %w", len(data), ErrTruncated)
	}
	le := binary.LittleEndian
	if flag := le.Uint16(data[offBootFlag:]); flag != bootFlagMagic {
		return nil, fmt.Errorf("boot_flag %#04x, want %#04x: %w", flag, bootFlagMagic, ErrNotBzImage)
	}
	if magic := le.Uint32(data[offHeader:]); magic != hdrSMagic {
		return nil, fmt.Errorf("header magic %#08x, want \"HdrS\": %w", magic, ErrNotBzImage)
	}
	h := SetupHeader{Version: le.Uint16(data[offVersion:])}
	if h.Version < MinProtocol {
		return nil, fmt.Errorf("protocol %d.%02d, need %d.%02d: %w",
			h.Version>>8, h.Version&0xff, MinProtocol>>8, MinProtocol&0xff, ErrBootProtocolTooOld)
	}
	// The jump at 0x200 (0xEB, rel8) doubles as the header's length.
	if data[offJump] != 0xeb || data[offJump+1] >= 0x80 {
		return nil, fmt.Errorf("no short jump at 0x200: %w", ErrNotBzImage)
	}
	hdrEnd := offHeader + int(data[offJump+1])
	if hdrEnd < offHandoverOffset || hdrEnd > setupHeaderLimit {
		return nil, fmt.Errorf("setup header ends at %#x, protocol %#x needs %#x: %w",
			hdrEnd, h.Version, offHandoverOffset, ErrNotBzImage)
	}
	if len(data) < hdrEnd {
		return nil, fmt.Errorf("setup header ends at %#x, file has %d bytes: %w", hdrEnd, len(data), ErrTruncated)
	}
	h.SetupSects = data[offSetupSects]
	if h.SetupSects == 0 {
		h.SetupSects = 4
	}
	h.Syssize = le.Uint32(data[offSyssize:])
	h.Loadflags = data[offLoadflags]
	h.Code32Start = le.Uint32(data[offCode32Start:])
	h.InitrdAddrMax = le.Uint32(data[offInitrdAddrMax:])
	h.KernelAlignment = le.Uint32(data[offKernelAlignment:])
	h.Relocatable = data[offRelocatable] != 0
	h.MinAlignment = data[offMinAlignment]
	h.XLoadflags = le.Uint16(data[offXLoadflags:])
	h.CmdlineSize = le.Uint32(data[offCmdlineSize:])
	h.PayloadOffset = le.Uint32(data[offPayloadOffset:])
	h.PayloadLength = le.Uint32(data[offPayloadLength:])
	h.PrefAddress = le.Uint64(data[offPrefAddress:])
	h.InitSize = le.Uint32(data[offInitSize:])
	if hdrEnd >= offHandoverOffset+4 {
		h.HandoverOffset = le.Uint32(data[offHandoverOffset:])
	}
	if hdrEnd >= offKernelInfo+4 {
		h.KernelInfoOffset = le.Uint32(data[offKernelInfo:])
	}

	if h.Loadflags&LoadedHigh == 0 {
		return nil, fmt.Errorf("LOADED_HIGH clear (a zImage): %w", ErrNotBzImage)
	}
	if h.XLoadflags&XLFKernel64 == 0 {
		return nil, fmt.Errorf("xloadflags %#x lack XLF_KERNEL_64: %w", h.XLoadflags, ErrNot64Bit)
	}
	if h.KernelAlignment == 0 || h.KernelAlignment&(h.KernelAlignment-1) != 0 {
		return nil, fmt.Errorf("kernel_alignment %#x is not a power of two: %w", h.KernelAlignment, ErrNotBzImage)
	}
	if h.PrefAddress < layout.HighRAM || h.PrefAddress%pageSize != 0 {
		return nil, fmt.Errorf("pref_address %#x is below 1 MiB or unaligned: %w", h.PrefAddress, ErrNotBzImage)
	}
	if h.InitSize == 0 {
		return nil, fmt.Errorf("init_size is zero: %w", ErrNotBzImage)
	}

	setupSize := (int(h.SetupSects) + 1) * 512
	if len(data) <= setupSize {
		return nil, fmt.Errorf("setup code needs %d bytes, file has %d: %w", setupSize, len(data), ErrTruncated)
	}
	kernel := data[setupSize:]
	if pm := uint64(h.Syssize) * 16; uint64(len(kernel)) < pm {
		return nil, fmt.Errorf("protected-mode code is %d bytes, syssize says %d: %w", len(kernel), pm, ErrTruncated)
	}
	if h.PayloadOffset == 0 || h.PayloadLength == 0 {
		return nil, fmt.Errorf("no payload (offset %#x, length %#x): %w", h.PayloadOffset, h.PayloadLength, ErrNotBzImage)
	}
	pend := uint64(h.PayloadOffset) + uint64(h.PayloadLength)
	if pend > uint64(len(kernel)) {
		return nil, fmt.Errorf("payload %#x+%#x runs past the protected-mode code (%#x bytes): %w",
			h.PayloadOffset, h.PayloadLength, len(kernel), ErrTruncated)
	}
	h.KernelVersion = kernelVersion(data, int(le.Uint16(data[offKernelVersion:])), setupSize)

	img := &BzImage{
		Header:  h,
		Kernel:  kernel,
		Payload: kernel[h.PayloadOffset:pend],
		setup:   data[offSetupSects:hdrEnd],
	}
	img.Compression = DetectCompression(img.Payload)
	return img, nil
}

// kernelVersion returns the printable string kernel_version points at (it
// is an offset from 0x200 into the setup code), or "" if there is none.
func kernelVersion(data []byte, ptr, setupSize int) string {
	if ptr == 0 {
		return ""
	}
	off := ptr + 0x200
	if off >= setupSize || off >= len(data) {
		return ""
	}
	end := off
	for end < len(data) && end < off+256 && data[end] != 0 {
		if data[end] < 0x20 || data[end] > 0x7e {
			return ""
		}
		end++
	}
	return string(data[off:end])
}

// runtimeStart is where the kernel's decompressor puts the kernel when the
// protected-mode code is loaded at load (boot.rst, init_size): a relocatable
// kernel aligns its load address up to kernel_alignment but never goes below
// pref_address (LOAD_PHYSICAL_ADDR); a fixed one runs at pref_address.
func (h *SetupHeader) runtimeStart(load uint64) uint64 {
	if !h.Relocatable {
		return h.PrefAddress
	}
	a := uint64(h.KernelAlignment)
	return max((load+a-1)&^(a-1), h.PrefAddress)
}
