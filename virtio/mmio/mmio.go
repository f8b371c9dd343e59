// Package mmio is the virtio-mmio transport, version 2 (virtio 1.2, §4.2):
// a virtio.Device as a 4 KiB block of registers at a guest-physical address
// with one level-triggered interrupt line, for microVM kernels that take
// their devices from the command line (virtio_mmio.device=, CmdlineArg)
// rather than from PCI enumeration. Like virtio/pci it reaches the VM only
// through its Config, so it is tested without KVM.
package mmio

import (
	"fmt"
	"log/slog"
	"sync"

	"ember/devices"
	"ember/memory"
	"ember/virtio"
)

// Size is the register block's size: the registers up to 0x100, then the
// device configuration.
const Size = 0x1000

// Register offsets (§4.2.2).
const (
	regMagic            = 0x000
	regVersion          = 0x004
	regDeviceID         = 0x008
	regVendorID         = 0x00c
	regDeviceFeatures   = 0x010
	regDeviceFeatSel    = 0x014
	regDriverFeatures   = 0x020
	regDriverFeatSel    = 0x024
	regQueueSel         = 0x030
	regQueueNumMax      = 0x034
	regQueueNum         = 0x038
	regQueueReady       = 0x044
	regQueueNotify      = 0x050
	regInterruptStatus  = 0x060
	regInterruptACK     = 0x064
	regStatus           = 0x070
	regQueueDescLow     = 0x080
	regQueueDescHigh    = 0x084
	regQueueDriverLow   = 0x090
	regQueueDriverHigh  = 0x094
	regQueueDeviceLow   = 0x0a0
	regQueueDeviceHigh  = 0x0a4
	regShmLenLow        = 0x0b4
	regShmLenHigh       = 0x0b8
	regConfigGeneration = 0x0fc
	regConfig           = 0x100

	magic    = 0x74726976 // "virt"
	version  = 2          // virtio 1.x register layout
	vendorID = 0x4d424d45 // "EMBM"

	interruptUsed   = 1 // InterruptStatus: a used buffer notification
	interruptConfig = 2 // InterruptStatus: the configuration changed
)

// Config connects a Transport to its VM.
type Config struct {
	Mem *memory.Guest
	// IRQ is the device's interrupt line, level-triggered: high while
	// InterruptStatus is non-zero.
	IRQ    devices.IRQLine
	Logger *slog.Logger
}

// Transport is one virtio device behind virtio-mmio registers: a
// devices.Device to register at its base address.
type Transport struct {
	dev virtio.Device
	cfg Config
	log *slog.Logger

	// lifecycle serialises status changes (Activate, Reset); mu guards the
	// registers and is never held while the device is called, which may
	// call interrupt until its Reset returns.
	lifecycle sync.Mutex
	mu        sync.Mutex
	regs      virtio.Regs
	isr       uint32
}

// New returns the transport for dev, reset.
func New(dev virtio.Device, cfg Config) (*Transport, error) {
	if n := len(dev.QueueSizes()); n == 0 || n > 64 {
		return nil, fmt.Errorf("virtio-mmio: %d queues", n)
	}
	t := &Transport{dev: dev, cfg: cfg, log: cfg.Logger}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.regs.Init(dev.QueueSizes())
	if es, ok := dev.(virtio.EventSource); ok {
		es.SetEvents(virtio.TransportEvents{Mu: &t.mu, Regs: &t.regs, Log: t.log, Name: "virtio-mmio", Type: dev.Type(),
			ConfigInterrupt: func() { t.raise(interruptConfig) }})
	}
	return t, nil
}

// CmdlineArg is the kernel command-line argument that tells Linux (built
// with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES) of a device at base on GSI irq.
func CmdlineArg(base uint64, irq uint32) string {
	return fmt.Sprintf("virtio_mmio.device=%dK@%#x:%d", Size/1024, base, irq)
}
