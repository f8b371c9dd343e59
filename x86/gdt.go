package x86

import (
	"encoding/binary"

	"ember/kvm"
	"ember/layout"
)

// Descriptor type values (the 4-bit type field with S=1 for code/data).
const (
	typeCodeER  = 0xb // execute/read, accessed
	typeDataRW  = 0x3 // read/write, accessed
	typeTSSBusy = 0xb // busy 32/64-bit TSS (S=0)
)

// segment describes one flat segment in both forms KVM and the CPU need.
type segment struct {
	sel    uint16
	typ    uint8
	s, dpl uint8
	db, l  uint8
	base   uint64
	limit  uint32 // in bytes-1, or pages-1 when g is set
	g      uint8
}

func flat(sel uint16, typ, dpl, db, l uint8) segment {
	return segment{sel: sel, typ: typ, s: 1, dpl: dpl, db: db, l: l, limit: 0xfffff, g: 1}
}

// kvm returns the segment in KVM's unpacked descriptor-cache form.
func (s segment) kvm() kvm.Segment {
	limit := s.limit
	if s.g == 1 {
		limit = limit<<12 | 0xfff
	}
	return kvm.Segment{
		Base: s.base, Limit: limit, Selector: s.sel, Type: s.typ, Present: 1,
		DPL: s.dpl, DB: s.db, S: s.s, L: s.l, G: s.g,
	}
}

// descriptor returns the 8-byte GDT encoding of the segment.
func (s segment) descriptor() uint64 {
	d := uint64(s.limit & 0xffff)
	d |= (s.base & 0xffffff) << 16
	d |= uint64(s.typ&0xf) << 40
	d |= uint64(s.s&1) << 44
	d |= uint64(s.dpl&3) << 45
	d |= 1 << 47 // present
	d |= uint64((s.limit>>16)&0xf) << 48
	d |= uint64(s.l&1) << 53
	d |= uint64(s.db&1) << 54
	d |= uint64(s.g&1) << 55
	d |= ((s.base >> 24) & 0xff) << 56
	return d
}

// segments returns the code, data, user and TSS segments for a mode.
type segmentSet struct {
	code, other, data, user32, userData, user64, tss segment
}

func segmentsFor(long bool) segmentSet {
	code32 := func(sel uint16, dpl uint8) segment { return flat(sel, typeCodeER, dpl, 1, 0) }
	code64 := func(sel uint16, dpl uint8) segment { return flat(sel, typeCodeER, dpl, 0, 1) }
	set := segmentSet{
		data:     flat(SelData, typeDataRW, 0, 1, 0),
		user32:   code32(SelUserCode32, 3),
		userData: flat(SelUserData, typeDataRW, 3, 1, 0),
		user64:   code64(SelUserCode64, 3),
		tss:      segment{sel: SelTSS, typ: typeTSSBusy, base: layout.TSS, limit: tssSize - 1},
	}
	if long {
		set.code, set.other = code64(SelCode, 0), code32(SelCodeOther, 0)
	} else {
		set.code, set.other = code32(SelCode, 0), code64(SelCodeOther, 0)
	}
	return set
}

// gdtBytes encodes the GDT for a segment set: null, other code, code, data,
// user code32, user data, user code64, and the 16-byte TSS descriptor.
func (set segmentSet) gdtBytes() []byte {
	b := make([]byte, GDTEntries*8)
	put := func(sel uint16, d uint64) { binary.LittleEndian.PutUint64(b[sel&^7:], d) }
	for _, s := range []segment{set.other, set.code, set.data, set.user32, set.userData, set.user64, set.tss} {
		put(s.sel, s.descriptor())
	}
	// The upper half of a long-mode system descriptor holds base bits 32-63.
	put(SelTSS+8, set.tss.base>>32)
	return b
}

// tssSize is the size of a 64-bit TSS with no I/O permission bitmap.
const tssSize = 104

// tssBytes encodes a 64-bit TSS whose RSP0 (the stack used when an interrupt
// or exception takes ring-3 code to ring 0) is rsp0, with no I/O bitmap.
func tssBytes(rsp0 uint64) []byte {
	b := make([]byte, tssSize)
	binary.LittleEndian.PutUint64(b[4:], rsp0)
	binary.LittleEndian.PutUint16(b[102:], tssSize) // I/O map base past the end: no bitmap
	return b
}
