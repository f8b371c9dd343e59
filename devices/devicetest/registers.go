package devicetest

import "encoding/binary"

// RegisterFile is what a device model offers a guest's loads and stores:
// devices.Device's access methods.
type RegisterFile interface {
	Read(offset uint64, data []byte)
	Write(offset uint64, data []byte)
}

// Registers makes a device's little-endian registers read and write like
// a guest's 32- and 64-bit accesses, so a test says tu.W64(reg, v) rather
// than filling byte slices.
type Registers struct{ Dev RegisterFile }

// R32 is a 32-bit load at off.
func (r Registers) R32(off uint64) uint32 {
	var b [4]byte
	r.Dev.Read(off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

// R64 is a 64-bit load at off.
func (r Registers) R64(off uint64) uint64 {
	var b [8]byte
	r.Dev.Read(off, b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// W32 is a 32-bit store of v at off.
func (r Registers) W32(off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	r.Dev.Write(off, b[:])
}

// W64 is a 64-bit store of v at off.
func (r Registers) W64(off, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	r.Dev.Write(off, b[:])
}
