// Package testdev models QEMU's pc-testdev, the ISA device kvm-unit-tests
// relies on (QEMU's -device pc-testdev) to check a hypervisor's instruction
// emulation, TLB handling and interrupt routing. Its registers, as QEMU
// places them:
//
//   - ports 0xe0-0xe3 (PortData): one 32-bit little-endian register. An
//     access of n bytes at offset o writes or reads bytes o to o+n-1 of it,
//     so string I/O (rep insb/outsb) and partial accesses have something to
//     check; bytes past the register's end are dropped on writes and read
//     as zero.
//   - ports 0xe8-0xeb (PortDataBytes): the same register again. QEMU splits
//     every access there into 1-byte ones; the result is the same.
//   - ports 0xe4-0xe7 (PortFlush): a 4-byte write of a guest-physical
//     address asks the host to drop its mappings of that page (Config.Flush),
//     so the guest's next access faults into the hypervisor again; other
//     sizes are ignored. Reads return zero.
//   - ports 0x2000-0x2017 (PortIRQ): one byte per ISA interrupt line, 0 to
//     23. A 1-byte write of a non-zero value raises the line, of zero lowers
//     it. QEMU splits a wider write into 1-byte ones, so an outl of 1 to
//     0x200b raises line 11 and lowers lines 12 to 14 (kvm-unit-tests'
//     realmode does that); lines past 23 are dropped. Reads return zero.
//   - MMIO 0xff000000-0xff00ffff (IOMemBase): 64 KiB of plain memory that
//     traps on every access (QEMU's iomem), for checking the emulation of
//     instructions that touch MMIO. Bytes past its end are dropped and read
//     as zero.
//
// It is a test device: it lets the guest drive any ISA interrupt line
// (lines a real device also drives included, as in QEMU) and ask the host to
// change its page protections, so a machine has it only when asked for
// (package pc's Config.TestDevices).
//
// Concurrency: safe for concurrent use.
package testdev

import (
	"log/slog"
	"sync"

	"ember/devices"
)

// Where QEMU's pc-testdev is.
const (
	PortData      = 0xe0
	PortFlush     = 0xe4
	PortDataBytes = 0xe8
	PortIRQ       = 0x2000
	IRQLines      = 24
	IOMemBase     = 0xff000000
	IOMemSize     = 0x10000
	portLen       = 4
)

// Config configures a Device.
type Config struct {
	// IRQ returns ISA interrupt line n, 0 <= n < IRQLines; nil, or a nil
	// line, leaves the line unconnected.
	IRQ func(n int) devices.IRQLine
	// Flush drops the host's mappings of the guest page at the
	// page-aligned guest-physical address gpa, so the guest's next access
	// to it faults into the hypervisor; nil does nothing. It must not call
	// back into the device.
	Flush func(gpa uint64)
	// Logger receives unsupported accesses; nil means slog.Default().
	Logger *slog.Logger
}

// Device is one pc-testdev.
type Device struct {
	flush func(uint64)
	irqs  [IRQLines]devices.IRQLine

	mu        sync.Mutex
	data      [portLen]byte // the 0xe0/0xe8 register
	iomem     []byte
	anomalies *devices.Anomalies
}

// New returns a device with its register and memory zeroed.
func New(cfg Config) *Device {
	d := &Device{
		flush:     cfg.Flush,
		iomem:     make([]byte, IOMemSize),
		anomalies: devices.NewAnomalies(cfg.Logger, "pc-testdev"),
	}
	for n := range d.irqs {
		d.irqs[n] = devices.NoIRQ{}
		if cfg.IRQ != nil {
			if l := cfg.IRQ(n); l != nil {
				d.irqs[n] = l
			}
		}
	}
	return d
}

// Region is one range the device answers: a base and size, on the port or
// the MMIO bus, and the devices.Device whose offsets start at Base.
type Region struct {
	Name       string
	Base, Size uint64
	MMIO       bool
	Dev        devices.Device
}

// Regions lists the device's ranges, for the machine to claim.
func (d *Device) Regions() []Region {
	return []Region{
		{"pc-testdev-ioport", PortData, portLen, false, dataPort{d}},
		{"pc-testdev-flush-page", PortFlush, portLen, false, flushPort{d}},
		{"pc-testdev-ioport-byte", PortDataBytes, portLen, false, dataPort{d}},
		{"pc-testdev-irq-line", PortIRQ, IRQLines, false, irqPort{d}},
		{"pc-testdev-iomem", IOMemBase, IOMemSize, true, ioMem{d}},
	}
}

// window copies between an access and the bytes of buf from off on:
// dropped past buf's end on writes, zeros on reads.
func window(buf []byte, off uint64, data []byte, write bool) {
	var b []byte
	if off < uint64(len(buf)) {
		b = buf[off:]
	}
	if write {
		copy(b, data)
		return
	}
	n := copy(data, b)
	clear(data[n:])
}

// dataPort is the 32-bit register at 0xe0 and, byte by byte, at 0xe8.
type dataPort struct{ d *Device }

func (p dataPort) Read(off uint64, data []byte) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	window(p.d.data[:], off, data, false)
}

func (p dataPort) Write(off uint64, data []byte) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	window(p.d.data[:], off, data, true)
}

// flushPort takes the address of a page to flush.
type flushPort struct{ d *Device }

func (p flushPort) Read(_ uint64, data []byte) { clear(data) }

func (p flushPort) Write(off uint64, data []byte) {
	if off != 0 || len(data) != 4 {
		p.d.mu.Lock()
		p.d.anomalies.Report("unsupported flush port access", "offset", off, "size", len(data))
		p.d.mu.Unlock()
		return
	}
	if p.d.flush != nil {
		p.d.flush(devices.Uint(data) &^ 0xfff)
	}
}

// irqPort has one byte per interrupt line.
type irqPort struct{ d *Device }

func (p irqPort) Read(_ uint64, data []byte) { clear(data) }

func (p irqPort) Write(off uint64, data []byte) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	if off >= IRQLines {
		p.d.anomalies.Report("unsupported IRQ port access", "offset", off, "size", len(data))
		return
	}
	for i, b := range data[:min(uint64(len(data)), IRQLines-off)] {
		p.d.irqs[off+uint64(i)].SetLevel(b != 0)
	}
}

// ioMem is the MMIO window.
type ioMem struct{ d *Device }

func (m ioMem) Read(off uint64, data []byte) {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	window(m.d.iomem, off, data, false)
}

func (m ioMem) Write(off uint64, data []byte) {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	window(m.d.iomem, off, data, true)
}
