// Package bench is ember's benchmark harness: it measures ember and its
// baselines — a raw-ioctl C loop (the physical limit on the host) and QEMU
// from Debian — side by side on the same guest bytes in the same run, and
// reports ratios, since absolute times drift on noisy machines.
//
// The guests are the 64 KiB reset-vector images of package guest
// (guest/src/bench_*.S). QEMU maps them as -bios on -M microvm; ember and the
// C baseline load them at ImageBase and start the CPU at F000:FFF0 in real
// mode, where a real PC starts. Their loop count is a 32-bit word at
// CountOffset, which Patch sets.
package bench

import (
	"encoding/binary"
	"fmt"

	"ember/x86"
)

// Layout of a bench image.
const (
	ImageSize   = 0x10000 // every bench image is 64 KiB
	ImageBase   = 0xf0000 // where ember and the C baseline load it (QEMU's isa-bios alias)
	CountOffset = 0xfff8  // the patched 32-bit little-endian count
	MagicOffset = 0xfffc  // "EMBB": marks an image that has a count word
	Unroll      = 16      // the exit guests write this many times per loop turn
)

// Magic is what a bench image holds at MagicOffset.
const Magic = "EMBB"

// Entry is the CPU state a bench image starts in: real mode, CS base 0xF0000, IP 0xFFF0.
var Entry = x86.Entry{Mode: x86.RealMode, RIP: ImageBase + 0xfff0}

// Patch returns a copy of image with its count word set to count. It refuses
// anything that is not a bench image.
func Patch(image []byte, count uint32) ([]byte, error) {
	if len(image) != ImageSize {
		return nil, fmt.Errorf("bench: image is %d bytes, want %d", len(image), ImageSize)
	}
	if string(image[MagicOffset:MagicOffset+4]) != Magic {
		return nil, fmt.Errorf("bench: image has no %q marker at %#x", Magic, MagicOffset)
	}
	out := append([]byte(nil), image...)
	binary.LittleEndian.PutUint32(out[CountOffset:], count)
	return out, nil
}

// PatchExits returns a copy of an exit-loop image that makes exactly n exits
// before the exit-port write; n must be a multiple of Unroll.
func PatchExits(image []byte, n int) ([]byte, error) {
	if n < 0 || n%Unroll != 0 || n > 1<<31 {
		return nil, fmt.Errorf("bench: exit count %d is not a non-negative multiple of %d", n, Unroll)
	}
	return Patch(image, uint32(n))
}

// Count reads the count word of a bench image.
func Count(image []byte) uint32 {
	return binary.LittleEndian.Uint32(image[CountOffset:])
}
