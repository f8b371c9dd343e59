package kvm

import "unsafe"

// MSREntry is struct kvm_msr_entry: one model-specific register and its value.
type MSREntry struct {
	Index uint32
	_     uint32
	Data  uint64
}

// msrs is a struct kvm_msrs with its entries, laid out in one 8-byte aligned buffer.
type msrs struct {
	w []uint64 // nmsrs|pad, then 2 words per entry
}

func msrsFrom(entries []MSREntry) msrs {
	m := msrs{w: make([]uint64, 1+2*len(entries))}
	*(*uint32)(unsafe.Pointer(&m.w[0])) = uint32(len(entries))
	copy(m.slice(), entries)
	return m
}

func (m msrs) ptr() unsafe.Pointer { return unsafe.Pointer(&m.w[0]) }

func (m msrs) slice() []MSREntry {
	n := (len(m.w) - 1) / 2
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*MSREntry)(unsafe.Pointer(&m.w[1])), n)
}
