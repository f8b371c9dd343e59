package hv

import (
	"encoding/binary"
	"sync"
)

// PCI configuration mechanism #1 ports.
const (
	pciConfigAddress = 0xcf8
	pciConfigData    = 0xcfc
)

// Identity of the host bridge at 00:00.0: Intel's 440FX, the host bridge
// every PC guest knows (QEMU's pc machine presents the same).
const (
	hostBridgeVendor = 0x8086
	hostBridgeDevice = 0x1237
	classHostBridge  = 0x060000 // base class 06 (bridge), subclass 00 (host)
)

// PCIHost is the PCI host bridge: configuration mechanism #1 on ports
// 0xCF8/0xCFC and the configuration space of bus 0. Only the host bridge
// itself (00:00.0) exists so far; every other function reads as absent
// (all ones), which is how a guest learns a slot is empty.
type PCIHost struct {
	mu      sync.Mutex
	address uint32
	bridge  [256]byte
}

// NewPCIHost returns a host bridge with an empty bus behind it.
func NewPCIHost() *PCIHost {
	h := &PCIHost{}
	le := binary.LittleEndian
	le.PutUint16(h.bridge[0x00:], hostBridgeVendor)
	le.PutUint16(h.bridge[0x02:], hostBridgeDevice)
	le.PutUint32(h.bridge[0x08:], classHostBridge<<8|0x02) // class code, revision 2
	h.bridge[0x0e] = 0x00                                  // header type 0, single function
	return h
}

// ConfigRead reads size bytes of the configuration space of bus:dev.fn at reg.
func (h *PCIHost) ConfigRead(bus, dev, fn uint8, reg uint16, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if bus != 0 || dev != 0 || fn != 0 || int(reg)+len(data) > len(h.bridge) {
		fillOnes(data)
		return
	}
	copy(data, h.bridge[reg:])
}

// ConfigWrite writes the configuration space of bus:dev.fn at reg. The host
// bridge's registers are read-only except the command register's bits a
// driver toggles, which are kept so they read back.
func (h *PCIHost) ConfigWrite(bus, dev, fn uint8, reg uint16, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if bus != 0 || dev != 0 || fn != 0 {
		return
	}
	for i, b := range data {
		if r := int(reg) + i; r == 0x04 || r == 0x05 {
			h.bridge[r] = b
		}
	}
}

// decode splits the latched CONFIG_ADDRESS: enable bit 31, bus 23:16,
// device 15:11, function 10:8, register 7:2.
func (h *PCIHost) decode() (enabled bool, bus, dev, fn uint8, reg uint16) {
	a := h.address
	return a&(1<<31) != 0, uint8(a >> 16), uint8(a>>11) & 0x1f, uint8(a>>8) & 7, uint16(a & 0xfc)
}

// pciAddressPort is CONFIG_ADDRESS (0xCF8): a full 32-bit write latches the
// address; narrower accesses go to the legacy ports below it and are ignored.
type pciAddressPort struct{ h *PCIHost }

func (p pciAddressPort) Read(off uint64, data []byte) {
	if off != 0 || len(data) != 4 {
		fillOnes(data)
		return
	}
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	binary.LittleEndian.PutUint32(data, p.h.address)
}

func (p pciAddressPort) Write(off uint64, data []byte) {
	if off != 0 || len(data) != 4 {
		return
	}
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	p.h.address = binary.LittleEndian.Uint32(data) &^ 3
}

// pciDataPort is CONFIG_DATA (0xCFC-0xCFF): accesses of any size at any of the
// four bytes reach the register CONFIG_ADDRESS selects, at that byte offset.
type pciDataPort struct{ h *PCIHost }

func (p pciDataPort) target(off uint64) (bool, uint8, uint8, uint8, uint16) {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	ok, bus, dev, fn, reg := p.h.decode()
	return ok, bus, dev, fn, reg + uint16(off)
}

func (p pciDataPort) Read(off uint64, data []byte) {
	ok, bus, dev, fn, reg := p.target(off)
	if !ok {
		fillOnes(data)
		return
	}
	p.h.ConfigRead(bus, dev, fn, reg, data)
}

func (p pciDataPort) Write(off uint64, data []byte) {
	if ok, bus, dev, fn, reg := p.target(off); ok {
		p.h.ConfigWrite(bus, dev, fn, reg, data)
	}
}

func fillOnes(data []byte) {
	for i := range data {
		data[i] = 0xff
	}
}
