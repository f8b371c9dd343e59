package edu

import "encoding/binary"

// Configuration space layout: a type 0 header and the MSI capability.
const (
	regCommand     = 0x04
	regStatusCfg   = 0x06
	regBAR0        = 0x10
	regCapPtr      = 0x34
	regIntLine     = 0x3c
	regIntPin      = 0x3d
	msiCap         = 0x40 // where QEMU puts it: the first free offset
	msiControl     = msiCap + 2
	msiAddrLo      = msiCap + 4
	msiAddrHi      = msiCap + 8
	msiData        = msiCap + 12
	capIDMSI       = 0x05
	msiEnable      = 1 << 0
	msi64Bit       = 1 << 7
	cmdMemory      = 1 << 1
	cmdBusMaster   = 1 << 2
	cmdINTxDisable = 1 << 10
	statusCapList  = 1 << 4
	classOther     = 0xff0000 // base class 0xff: a device of no defined class, as QEMU's edu
)

// writable are the configuration bytes a driver may change and which of
// their bits: the command register, BAR0 (its size bits read back zero),
// the interrupt line, and the MSI capability's enable bit, address and
// data.
var writable = func() [256]byte {
	var w [256]byte
	put16 := func(off int, m uint16) { binary.LittleEndian.PutUint16(w[off:], m) }
	put32 := func(off int, m uint32) { binary.LittleEndian.PutUint32(w[off:], m) }
	put16(regCommand, cmdMemory|cmdBusMaster|cmdINTxDisable)
	put32(regBAR0, ^uint32(BARSize-1))
	w[regIntLine] = 0xff
	put16(msiControl, msiEnable)
	put32(msiAddrLo, 0xfffffffc)
	put32(msiAddrHi, 0xffffffff)
	put16(msiData, 0xffff)
	return w
}()

// initSpace writes the configuration space at power-on: memory decoding on,
// as firmware leaves a function whose BAR it assigned; bus mastering off.
func (d *Device) initSpace() {
	d.space = [256]byte{}
	s := d.space[:]
	le := binary.LittleEndian
	le.PutUint16(s[0x00:], VendorID)
	le.PutUint16(s[0x02:], DeviceID)
	le.PutUint16(s[regCommand:], cmdMemory)
	le.PutUint16(s[regStatusCfg:], statusCapList)
	le.PutUint32(s[0x08:], classOther<<8|0x10) // class, revision 0x10
	le.PutUint32(s[regBAR0:], d.cfg.BAR)       // 32-bit memory BAR, not prefetchable
	le.PutUint16(s[0x2c:], 0x1af4)             // subsystem vendor, as QEMU's default
	le.PutUint16(s[0x2e:], 0x1100)             // subsystem
	s[regCapPtr] = msiCap
	s[regIntLine] = d.cfg.Line
	s[regIntPin] = 1 // INTA#
	s[msiCap] = capIDMSI
	le.PutUint16(s[msiControl:], msi64Bit) // one vector, 64-bit addresses, no masking
}

// ConfigRead reads the configuration space at reg; bytes past its 256 read
// as all ones.
func (d *Device) ConfigRead(_, _, _ uint8, reg uint16, data []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range data {
		data[i] = 0xff
		if r := int(reg) + i; r < len(d.space) {
			data[i] = d.space[r]
		}
	}
}

// ConfigWrite writes the configuration space at reg, the writable bits
// only. A write that moves BAR0 calls Config.MoveBAR.
func (d *Device) ConfigWrite(_, _, _ uint8, reg uint16, data []byte) {
	d.mu.Lock()
	old := d.bar()
	for i, b := range data {
		if r := int(reg) + i; r < len(d.space) {
			d.space[r] = d.space[r]&^writable[r] | b&writable[r]
		}
	}
	if d.cmd()&cmdINTxDisable != 0 {
		d.setLine(false)
	} else if d.intStatus != 0 && !d.msiEnabled() {
		d.setLine(true)
	}
	moved := d.bar()
	d.mu.Unlock()
	if old != moved && d.cfg.MoveBAR != nil {
		d.cfg.MoveBAR(old, moved)
	}
}

func (d *Device) bar() uint32 { return binary.LittleEndian.Uint32(d.space[regBAR0:]) }

func (d *Device) cmd() uint16 { return d.le16(regCommand) }

func (d *Device) busMaster() bool { return d.cmd()&cmdBusMaster != 0 }

func (d *Device) msiEnabled() bool { return d.le16(msiControl)&msiEnable != 0 }

// msi returns the MSI capability's message, if MSI is enabled.
func (d *Device) msi() (addr uint64, data uint32, ok bool) {
	if !d.msiEnabled() {
		return 0, 0, false
	}
	le := binary.LittleEndian
	addr = uint64(le.Uint32(d.space[msiAddrHi:]))<<32 | uint64(le.Uint32(d.space[msiAddrLo:]))
	return addr, uint32(d.le16(msiData)), true
}
