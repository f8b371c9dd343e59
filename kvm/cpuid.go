package kvm

import "unsafe"

// CPUIDEntry is struct kvm_cpuid_entry2: the answer to one CPUID leaf/subleaf.
type CPUIDEntry struct {
	Function uint32
	Index    uint32
	Flags    uint32 // CPUIDFlag*
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	padding  [3]uint32 // zero in every entry KVM writes
}

// Flags of CPUIDEntry.Flags.
const (
	CPUIDFlagSignificantIndex = 1 << 0 // the leaf has subleaves selected by ECX
)

// cpuid2 is a struct kvm_cpuid2 with room for n entries, laid out in one buffer.
type cpuid2 struct {
	buf []byte
}

const cpuidHeaderSize = 8 // nent, padding

func newCPUID2(n int) cpuid2 {
	// Allocate as uint64 so the buffer is 8-byte aligned like the C struct.
	words := (cpuidHeaderSize + n*int(unsafe.Sizeof(CPUIDEntry{})) + 7) / 8
	w := make([]uint64, words)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), words*8)
	*(*uint32)(unsafe.Pointer(&b[0])) = uint32(n)
	return cpuid2{buf: b}
}

func cpuid2From(entries []CPUIDEntry) cpuid2 {
	c := newCPUID2(len(entries))
	copy(c.slice(), entries)
	return c
}

func (c cpuid2) ptr() unsafe.Pointer { return unsafe.Pointer(&c.buf[0]) }
func (c cpuid2) n() int              { return int(*(*uint32)(unsafe.Pointer(&c.buf[0]))) }

func (c cpuid2) slice() []CPUIDEntry {
	max := (len(c.buf) - cpuidHeaderSize) / int(unsafe.Sizeof(CPUIDEntry{}))
	n := min(c.n(), max)
	return unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&c.buf[cpuidHeaderSize])), n)
}

func (c cpuid2) entries() []CPUIDEntry {
	return append([]CPUIDEntry(nil), c.slice()...)
}
