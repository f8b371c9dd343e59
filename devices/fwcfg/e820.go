package fwcfg

import "encoding/binary"

// E820Entry is one entry of the "etc/e820" file: a range of guest-physical
// memory and its type (1 = RAM, 2 = reserved).
type E820Entry struct {
	Addr, Size uint64
	Type       uint32
}

// E820 encodes entries as QEMU's "etc/e820" file: 20 bytes each, little
// endian, address, length, type.
func E820(entries []E820Entry) []byte {
	var b []byte
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint64(b, e.Addr)
		b = binary.LittleEndian.AppendUint64(b, e.Size)
		b = binary.LittleEndian.AppendUint32(b, e.Type)
	}
	return b
}
