package pci

import "encoding/binary"

// Which BAR is which: BAR0 holds every virtio structure in memory space;
// BAR1, if the function has one (Config.PortBAR), holds a second
// notification region in I/O space.
const (
	memBAR  = 0
	portBAR = 1
)

// ioSpaceBAR is the read-only low bit of an I/O BAR (PCI 3.0, §6.2.5.1).
const ioSpaceBAR = 1

// baseRegister is one BAR as configuration space shows it: where the
// driver put it and whether it is being sized.
type baseRegister struct {
	reg    int    // the register's offset in configuration space
	size   uint32 // a power of two; 0: the function has no such BAR
	flags  uint32 // the read-only low bits: 0 for 32-bit memory, ioSpaceBAR
	addr   uint32
	sizing bool // the driver wrote all ones: reads give the size
}

// value is what the register reads: the size mask while it is being sized,
// else the address, each with the read-only low bits.
func (b *baseRegister) value() uint32 {
	if b.sizing {
		return ^(b.size - 1) | b.flags
	}
	return b.addr | b.flags
}

// write takes the register's new value (the whole 32 bits, as configuration
// space now holds them): all ones starts a size probe; anything else is an
// address, aligned down to the size. It returns the old and new addresses.
func (b *baseRegister) write(v uint32) [2]uint32 {
	old := b.addr
	if b.size == 0 {
		return [2]uint32{old, old}
	}
	if v|b.flags == 0xffffffff {
		b.sizing = true
		return [2]uint32{old, old}
	}
	b.sizing = false
	b.addr = v &^ (b.size - 1)
	return [2]uint32{old, b.addr}
}

// store writes the BAR's address, with its low bits, into its register in
// space, so that a write of part of the register merges with the address
// (reads go through overlay, which shows the size while it is sized).
func (b *baseRegister) store(space []byte) {
	binary.LittleEndian.PutUint32(space[b.reg:], b.addr|b.flags)
}

// overlay puts the BAR's value into data, a read of configuration space at
// reg, where the two overlap.
func (b *baseRegister) overlay(reg uint16, data []byte) {
	var v [4]byte
	binary.LittleEndian.PutUint32(v[:], b.value())
	for i := range data {
		if r := int(reg) + i; r >= b.reg && r < b.reg+4 {
			data[i] = v[r-b.reg]
		}
	}
}

// touches says whether a write of n bytes at reg reaches the register.
func (b *baseRegister) touches(reg uint16, n int) bool {
	return int(reg) < b.reg+4 && int(reg)+n > b.reg
}
