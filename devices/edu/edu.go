// Package edu models QEMU's "edu" educational PCI device (QEMU's
// docs/specs/edu.rst), which kvm-unit-tests' intel_iommu drives to check
// DMA and interrupt remapping: a PCI function 1234:11e8 with a 1 MiB BAR0
// of registers, a DMA engine with a 4 KiB buffer, INTx and a 64-bit MSI
// capability with one vector.
//
// Registers in BAR0 (4-byte accesses; 8-byte ones too from 0x80):
//
//	0x00 RO  identification 0x010000ed (version 1.0, 0xed)
//	0x04 RW  liveness: reads the bitwise NOT of what was written
//	0x08 RW  factorial: a write computes its factorial (mod 2^32)
//	0x20 RW  status: 0x01 computing (never seen: ember computes at once),
//	         0x80 raise interrupt 0x001 when a factorial is done
//	0x24 RO  interrupt status
//	0x60 WO  interrupt raise: ORed into the interrupt status
//	0x64 WO  interrupt acknowledge: cleared from the interrupt status
//	0x80 RW  DMA source address
//	0x88 RW  DMA destination address
//	0x90 RW  DMA count
//	0x98 RW  DMA command: 0x01 start, 0x02 direction (set: from the
//	         device's buffer to RAM), 0x04 raise interrupt 0x100 when done
//
// The buffer is at device address 0x40000 (BufferBase) in the DMA
// registers; the other side of a transfer is an address on the PCI bus
// (masked to 28 bits, as QEMU's default dma_mask), which goes through
// Config.DMA: guest RAM, or an IOMMU's translation of it. ember runs a DMA,
// and a factorial, at once, in the write that starts it (QEMU runs them on a
// timer and a thread), so the command's start bit reads back clear. A
// transfer whose buffer side is not inside the buffer (QEMU aborts the VM),
// a transfer without bus mastering, and a refused DMA are logged and
// dropped; the command completes either way.
//
// While the interrupt status is non-zero the device asserts INTA#, or, with
// MSI enabled, sends its message at each raise. Concurrency: safe for
// concurrent use; the interrupt and DMA callbacks are called with the
// device's mutex held (devices' lock order).
package edu

import (
	"encoding/binary"
	"log/slog"
	"sync"

	"ember/devices"
)

// Identity and sizes.
const (
	VendorID   = 0x1234
	DeviceID   = 0x11e8
	BARSize    = 1 << 20
	BufferBase = 0x40000
	BufferSize = 4096
	dmaMask    = 1<<28 - 1
	idValue    = 0x010000ed
)

// Registers and their bits.
const (
	regID        = 0x00
	regLiveness  = 0x04
	regFactorial = 0x08
	regStatus    = 0x20
	regIntStatus = 0x24
	regIntRaise  = 0x60
	regIntAck    = 0x64
	regDMASrc    = 0x80
	regDMADst    = 0x88
	regDMACount  = 0x90
	regDMACmd    = 0x98

	statusComputing = 0x01
	statusIRQFact   = 0x80
	cmdStart        = 0x01
	cmdFromDevice   = 0x02
	cmdIRQ          = 0x04
	intFactorial    = 0x001
	intDMA          = 0x100
)

// DMA is the device's view of the PCI bus's memory: guest RAM, or an
// IOMMU's translation of it. Errors are refusals (the transfer is dropped).
type DMA interface {
	DMARead(addr uint64, p []byte) error
	DMAWrite(addr uint64, p []byte) error
}

// Config configures a Device.
type Config struct {
	// BAR is BAR0's address at power-on, as firmware would assign it
	// (BARSize-aligned).
	BAR uint32
	// MoveBAR, if set, is called (without the device's lock) when the
	// guest moves BAR0.
	MoveBAR func(old, new uint32)
	// IRQ is the INTx line and Line its number (the Interrupt Line
	// register, what firmware would write there).
	IRQ  devices.IRQLine
	Line uint8
	// MSI sends a message with the MSI capability's address and data.
	MSI func(addr uint64, data uint32)
	// DMA is where transfers go.
	DMA DMA
	// Logger receives the anomalies; nil means slog.Default().
	Logger *slog.Logger
}

// Device is one edu function.
type Device struct {
	cfg Config

	mu        sync.Mutex
	anomalies *devices.Anomalies
	space     [256]byte // configuration space
	liveness  uint32
	factorial uint32
	status    uint32
	intStatus uint32
	dma       [4]uint64 // source, destination, count, command
	buffer    [BufferSize]byte
	line      bool // INTx asserted
}

// New returns a device at power-on.
func New(cfg Config) *Device {
	if cfg.IRQ == nil {
		cfg.IRQ = devices.NoIRQ{}
	}
	d := &Device{cfg: cfg, anomalies: devices.NewAnomalies(cfg.Logger, "edu")}
	d.initSpace()
	return d
}

// Reset puts the device back to power-on, as a machine reset does; BAR0
// goes back to Config.BAR (through Config.MoveBAR if the guest had moved it).
func (d *Device) Reset() {
	d.mu.Lock()
	d.setLine(false)
	d.liveness, d.factorial, d.status, d.intStatus = 0, 0, 0, 0
	d.dma = [4]uint64{}
	d.buffer = [BufferSize]byte{}
	old := d.bar()
	d.initSpace()
	d.mu.Unlock()
	if old != d.cfg.BAR && d.cfg.MoveBAR != nil {
		d.cfg.MoveBAR(old, d.cfg.BAR)
	}
}

// Read reads the register at off in BAR0. Accesses of other sizes, and
// offsets with no register, read as all ones.
func (d *Device) Read(off uint64, data []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !sizeOK(off, len(data)) {
		devices.FillOnes(data)
		return
	}
	v := ^uint64(0)
	switch off {
	case regID:
		v = idValue
	case regLiveness:
		v = uint64(^d.liveness)
	case regFactorial:
		v = uint64(d.factorial)
	case regStatus:
		v = uint64(d.status)
	case regIntStatus:
		v = uint64(d.intStatus)
	case regDMASrc, regDMADst, regDMACount, regDMACmd:
		v = d.dma[(off-regDMASrc)/8]
	}
	devices.PutUint(data, v)
}

// sizeOK is QEMU's rule: 4-byte accesses, and 8-byte ones from 0x80.
func sizeOK(off uint64, size int) bool {
	return size == 4 || size == 8 && off >= regDMASrc
}

// Write writes the register at off in BAR0; other sizes and offsets are
// ignored.
func (d *Device) Write(off uint64, data []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !sizeOK(off, len(data)) {
		d.anomalies.Report("unsupported register access", "offset", off, "size", len(data))
		return
	}
	v := devices.Uint(data)
	switch off {
	case regLiveness:
		d.liveness = uint32(v)
	case regFactorial:
		d.factorial = factorial(uint32(v))
		if d.status&statusIRQFact != 0 {
			d.raise(intFactorial)
		}
	case regStatus:
		d.status = uint32(v) & statusIRQFact
	case regIntRaise:
		d.raise(uint32(v))
	case regIntAck:
		d.lower(uint32(v))
	case regDMASrc, regDMADst, regDMACount:
		if d.dma[3]&cmdStart == 0 {
			d.dma[(off-regDMASrc)/8] = v
		}
	case regDMACmd:
		if v&cmdStart != 0 {
			d.dma[3] = v
			d.transfer()
		}
	}
}

// factorial is n! mod 2^32 (0 from 34 on: 34! has 32 factors of two).
func factorial(n uint32) uint32 {
	if n >= 34 {
		return 0
	}
	f := uint32(1)
	for i := uint32(2); i <= n; i++ {
		f *= i
	}
	return f
}

// transfer runs the DMA the registers describe, then clears the start bit
// and raises interrupt 0x100 if asked.
func (d *Device) transfer() {
	src, dst, count, cmd := d.dma[0], d.dma[1], d.dma[2], d.dma[3]
	buf, bus := dst, src&dmaMask
	if cmd&cmdFromDevice != 0 {
		buf, bus = src, dst&dmaMask
	}
	switch {
	case buf < BufferBase || count > BufferSize || buf-BufferBase > BufferSize-count:
		d.anomalies.Report("DMA outside the device's buffer", "buffer", buf, "count", count)
	case !d.busMaster():
		d.anomalies.Report("DMA without bus mastering", "address", bus)
	default:
		p := d.buffer[buf-BufferBase : buf-BufferBase+count]
		var err error
		if cmd&cmdFromDevice != 0 {
			err = d.cfg.DMA.DMAWrite(bus, p)
		} else {
			err = d.cfg.DMA.DMARead(bus, p)
		}
		if err != nil {
			d.anomalies.Report("DMA refused", "address", bus, "count", count, "err", err)
		}
	}
	d.dma[3] &^= cmdStart
	if cmd&cmdIRQ != 0 {
		d.raise(intDMA)
	}
}

// raise ORs bits into the interrupt status and interrupts: an MSI with MSI
// enabled, else INTA# while the status is non-zero.
func (d *Device) raise(bits uint32) {
	d.intStatus |= bits
	if d.intStatus == 0 {
		return
	}
	if addr, data, ok := d.msi(); ok {
		if d.cfg.MSI != nil {
			d.cfg.MSI(addr, data)
		}
		return
	}
	d.setLine(true)
}

// lower clears bits from the interrupt status; INTA# drops when it is zero.
func (d *Device) lower(bits uint32) {
	d.intStatus &^= bits
	if d.intStatus == 0 {
		d.setLine(false)
	}
}

func (d *Device) setLine(high bool) {
	if high && d.cmd()&cmdINTxDisable != 0 {
		high = false
	}
	if d.line != high {
		d.line = high
		d.cfg.IRQ.SetLevel(high)
	}
}

func (d *Device) le16(off int) uint16 { return binary.LittleEndian.Uint16(d.space[off:]) }
