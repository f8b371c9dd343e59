package pc

import (
	"encoding/binary"
	"sync"

	"ember/acrn/iorequest"
	"ember/devices"
	"ember/ioreq"
)

// PCIHostRange is the configuration space the host bridge claims on the I/O
// request path: function 00:00.0.
var PCIHostRange = ioreq.Range{Type: iorequest.ReqPCICfg, Start: ioreq.PCIAddress(0, 0, 0, 0), End: ioreq.PCIAddress(0, 0, 0, 0xfff)}

// Identity of the host bridge at 00:00.0: Intel's 440FX, the host bridge
// every PC guest knows (QEMU's pc machine presents the same).
const (
	hostBridgeVendor = 0x8086
	hostBridgeDevice = 0x1237
	classHostBridge  = 0x060000 // base class 06 (bridge), subclass 00 (host)
)

// PCIHost is the PCI host bridge's configuration space (function 00:00.0).
// The I/O request path decodes configuration mechanism #1 on ports
// 0xCF8/0xCFC into PCICFG requests; other functions are other clients' or,
// unclaimed, read as absent (all ones), which is how a guest learns a slot is
// empty.
type PCIHost struct {
	mu     sync.Mutex
	bridge [256]byte
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
		devices.FillOnes(data)
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
