package pci

// PCI identity of a modern virtio function (virtio 1.2, §4.1.2).
const (
	VendorID       = 0x1af4 // Red Hat, Inc.: every virtio device
	deviceIDBase   = 0x1040 // modern device ID: 0x1040 + virtio device ID
	revisionModern = 1      // a transitional driver must not bind a legacy interface
)

// BAR0's layout: each region at a fixed offset, each a whole page so that
// no two share a mapping granule.
const (
	BARSize      = 0x8000
	commonOffset = 0x0000 // struct virtio_pci_common_cfg
	commonSize   = 0x38
	isrOffset    = 0x1000 // one byte, read-to-clear
	isrSize      = 1
	deviceOffset = 0x2000 // the device-specific configuration
	deviceSize   = 0x1000
	notifyOffset = 0x3000 // queue i notifies at notifyOffset + i*NotifyMultiplier
	notifySize   = 0x1000
	msixTableOff = 0x4000 // MSI-X table: 16 bytes per vector
	msixPBAOff   = 0x6000 // MSI-X pending bits
	// NotifyMultiplier is notify_off_multiplier: queue i's notification
	// address is 4*i bytes into the notify region (queue_notify_off = i).
	NotifyMultiplier = 4
	// PortBARSize is BAR1's size in I/O space: only notification
	// registers, queue i's at 4*i, for the 64 queues a function can have.
	PortBARSize = 0x100
)

// Configuration space offsets of the standard header (type 0) and of the
// capabilities ember lists.
const (
	regVendor    = 0x00
	regDevice    = 0x02
	regCommand   = 0x04
	regStatus    = 0x06
	regRevision  = 0x08
	regClass     = 0x09 // programming interface, subclass, base class
	regHeader    = 0x0e
	regBAR0      = 0x10
	regBAR1      = 0x14
	regSubVendor = 0x2c
	regSubsystem = 0x2e
	regCapPtr    = 0x34
	regIntLine   = 0x3c
	regIntPin    = 0x3d

	capCommon = 0x40 // the virtio capabilities, 16 bytes each (notify: 20)
	capNotify = 0x50
	capISR    = 0x64
	capDevice = 0x74
	capMSIX   = 0x84 // the MSI-X capability, 12 bytes
	// capNotifyPort is the notification capability for BAR1, listed
	// right after capCommon when the function has a BAR1.
	capNotifyPort = 0x90
	capEnd        = 0xa4

	statusCapList  = 1 << 4  // the status register's "capabilities list" bit
	commandIO      = 1 << 0  // I/O space enable
	commandMemory  = 1 << 1  // memory space enable
	commandNoINTx  = 1 << 10 // interrupt disable
	capIDVendor    = 0x09
	capIDMSIX      = 0x11
	msixEnable     = 1 << 15 // in the MSI-X message control
	msixMaskAll    = 1 << 14
	msixVectorMask = 1 // in a table entry's vector control
)

// virtio_pci_cap.cfg_type values (virtio 1.2, §4.1.4).
const (
	cfgCommon = 1
	cfgNotify = 2
	cfgISR    = 3
	cfgDevice = 4
)

// classOf is the PCI class code (base, sub, interface) for a virtio device
// type, as the specification suggests and QEMU presents: storage for block,
// network for net, communication for console, "other" otherwise.
func classOf(deviceType uint16) uint32 {
	switch deviceType {
	case 1: // net
		return 0x020000
	case 2: // block
		return 0x018000
	case 3: // console
		return 0x078000
	}
	return 0x00ff00
}
