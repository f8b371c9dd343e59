package virtiotest

import (
	"encoding/binary"
	"fmt"
)

// Fuzz inputs of the device packages' fuzz targets (FuzzTransmit,
// FuzzInflate, FuzzStats) share one layout, so a corpus entry reads the
// same in each and one encoder serves their seeds:
//
//	byte 0          how many chains the driver offers (modulo size+1)
//	byte 1          flags, which the target reads itself (EVENT_IDX, ...)
//	size records    the descriptor table, FuzzRecLen bytes a descriptor
//	the rest        raw bytes the target places in guest memory
//
// A record is the descriptor's address (its low 16 bits, then bits 16–17
// in byte 7: the targets' guest RAM is small), its length (16 bits), its
// flags (3 bits), its next index, and the head the driver offers at the
// record's place in the available ring (modulo 2×size, so some heads are
// out of range).

// FuzzRecLen is the size of one descriptor record of a fuzz input.
const FuzzRecLen = 8

// FuzzHeaderLen is the size of a fuzz input's header for a queue of size
// descriptors: the count and flags bytes and the table.
func FuzzHeaderLen(size int) int { return 2 + size*FuzzRecLen }

// FuzzRec is one descriptor record of a fuzz input, for seeds.
type FuzzRec struct {
	Addr        uint32 // bits 0–17 are kept
	Len         uint16
	Flags, Next uint8
	Head        uint8 // the head offered at this record's place
}

// FuzzInput encodes a fuzz input for a queue of size descriptors: count
// chains offered, the flags byte, recs (the rest of the table zero), then
// raw.
func FuzzInput(count, flags byte, size int, raw []byte, recs ...FuzzRec) []byte {
	b := make([]byte, FuzzHeaderLen(size))
	b[0], b[1] = count, flags
	for i, r := range recs {
		e := b[2+i*FuzzRecLen:]
		binary.LittleEndian.PutUint16(e, uint16(r.Addr))
		binary.LittleEndian.PutUint16(e[2:], r.Len)
		e[4], e[5], e[6], e[7] = r.Flags, r.Next, r.Head, byte(r.Addr>>16)
	}
	return append(b, raw...)
}

// LoadFuzzInput writes the descriptor table of fuzz input in (at least
// FuzzHeaderLen(size) bytes) for a queue of size descriptors, offers the
// chains it counts and returns how many it offered.
func (d *Driver) LoadFuzzInput(in []byte, size int) (int, error) {
	if len(in) < FuzzHeaderLen(size) {
		return 0, fmt.Errorf("virtiotest: fuzz input of %d bytes, shorter than its header (%d)", len(in), FuzzHeaderLen(size))
	}
	offered := int(in[0]) % (size + 1)
	for i := range size {
		r := in[2+i*FuzzRecLen:][:FuzzRecLen]
		desc := Desc{
			Addr:  uint64(binary.LittleEndian.Uint16(r)) | uint64(r[7]&3)<<16,
			Len:   uint32(binary.LittleEndian.Uint16(r[2:])),
			Flags: uint16(r[4] & 7),
			Next:  uint16(r[5]),
		}
		if err := d.SetDesc(uint16(i), desc); err != nil {
			return 0, err
		}
		if i < offered {
			if err := d.Offer(uint16(int(r[6]) % (2 * size))); err != nil {
				return 0, err
			}
		}
	}
	return offered, nil
}

// FirstDiff returns the first index at which a and b differ (the shorter
// one's length if one is a prefix of the other), for test failures.
func FirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
