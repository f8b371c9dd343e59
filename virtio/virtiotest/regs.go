package virtiotest

import "encoding/binary"

// Registers is a device's register block as a driver accesses it: a
// virtio-pci function's BAR0 or a virtio-mmio device's registers, read and
// written as little-endian integers of 1 to 8 bytes.
type Registers struct {
	Dev interface {
		Read(off uint64, data []byte)
		Write(off uint64, data []byte)
	}
}

// Get reads n bytes at off.
func (r Registers) Get(off uint64, n int) uint64 {
	var b [8]byte
	r.Dev.Read(off, b[:n])
	return binary.LittleEndian.Uint64(b[:])
}

// Set writes the low n bytes of v at off.
func (r Registers) Set(off, v uint64, n int) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	r.Dev.Write(off, b[:n])
}

// Offsets in struct virtio_pci_common_cfg (virtio 1.2, §4.1.4.3), as a
// driver knows them: for tests that drive a virtio-pci function's BAR0.
const (
	CommonDriverFeatureSelect = 0x08
	CommonDriverFeature       = 0x0c
	CommonDeviceStatus        = 0x14
	CommonQueueSelect         = 0x16
	CommonQueueSize           = 0x18
	CommonQueueMSIXVector     = 0x1a
	CommonQueueEnable         = 0x1c
	CommonQueueDesc           = 0x20
	CommonQueueDriver         = 0x28
	CommonQueueDevice         = 0x30
)
