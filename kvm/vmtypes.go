package kvm

import "ember/kvm/kvmcap"

// userspaceMemoryRegion is struct kvm_userspace_memory_region.
type userspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

// Flags of a memory region (KVM_MEM_*).
const (
	MemLogDirtyPages = 1 << 0 // track writes for KVM_GET_DIRTY_LOG
	MemReadonly      = 1 << 1 // guest writes exit as MMIO (needs kvmcap.ReadonlyMem)
)

// irqLevel is struct kvm_irq_level.
type irqLevel struct {
	IRQ   uint32
	Level uint32
}

// IRQ chip ids for GetIRQChip/SetIRQChip (KVM_IRQCHIP_*).
const (
	IRQChipPICMaster = 0
	IRQChipPICSlave  = 1
	IRQChipIOAPIC    = 2
)

// IRQChip is struct kvm_irqchip: the state of one in-kernel interrupt
// controller, selected by ChipID. Chip holds struct kvm_pic_state (16 bytes) or
// struct kvm_ioapic_state (216 bytes) in its C layout.
type IRQChip struct {
	ChipID uint32
	_      uint32
	Chip   [512]byte
}

// PITConfig is struct kvm_pit_config, the argument of KVM_CREATE_PIT2.
type PITConfig struct {
	Flags uint32 // PITSpeakerDummy
	_     [15]uint32
}

// PITSpeakerDummy makes KVM emulate the PC speaker port 0x61 as a dummy.
const PITSpeakerDummy = 1

// PITChannelState is struct kvm_pit_channel_state.
type PITChannelState struct {
	Count         uint32
	LatchedCount  uint16
	CountLatched  uint8
	StatusLatched uint8
	Status        uint8
	ReadState     uint8
	WriteState    uint8
	WriteLatch    uint8
	RWMode        uint8
	Mode          uint8
	BCD           uint8
	Gate          uint8
	CountLoadTime int64
}

// PITState2 is struct kvm_pit_state2: the three i8254 channels.
type PITState2 struct {
	Channels [3]PITChannelState
	Flags    uint32
	_        [9]uint32
}

// Types of an IRQ routing entry (KVM_IRQ_ROUTING_*).
const (
	IRQRoutingIRQChip = 1
	IRQRoutingMSI     = 2
	IRQRoutingHvSint  = 4 // KVM_IRQ_ROUTING_HV_SINT
)

// IRQRoutingEntry is struct kvm_irq_routing_entry: where a GSI is delivered,
// to a pin of an in-kernel irqchip, as an MSI, or to a Hyper-V SynIC's
// synthetic interrupt source. Use IRQChipRoute, MSIRoute and HvSintRoute to
// build one.
type IRQRoutingEntry struct {
	GSI   uint32
	Type  uint32
	Flags uint32
	_     uint32
	U     [8]uint32 // irqchip {irqchip, pin}, msi {address_lo, address_hi, data, devid} or hv_sint {vcpu, sint}
}

// IRQChipRoute routes gsi to pin of an in-kernel irqchip (IRQChipPIC*/IRQChipIOAPIC).
func IRQChipRoute(gsi, chip, pin uint32) IRQRoutingEntry {
	e := IRQRoutingEntry{GSI: gsi, Type: IRQRoutingIRQChip}
	e.U[0], e.U[1] = chip, pin
	return e
}

// MSIRoute routes gsi to an MSI with the given address and data.
func MSIRoute(gsi uint32, address uint64, data uint32) IRQRoutingEntry {
	e := IRQRoutingEntry{GSI: gsi, Type: IRQRoutingMSI}
	e.U[0], e.U[1], e.U[2] = uint32(address), uint32(address>>32), data
	return e
}

// HvSintRoute routes gsi to synthetic interrupt source sint (0-15) of the
// Hyper-V SynIC of the vCPU whose Hyper-V VP index is vpIndex: raising the
// GSI (an irqfd, KVM_IRQ_LINE) sets the SINT, which the SynIC delivers as the
// vector the guest programmed into its SINTx MSR. KVM refuses the route
// (EINVAL) unless the VM has an in-kernel irqchip, and raising it fails
// unless that vCPU's SynIC is enabled (KVM_CAP_HYPERV_SYNIC/SYNIC2).
func HvSintRoute(gsi, vpIndex, sint uint32) IRQRoutingEntry {
	e := IRQRoutingEntry{GSI: gsi, Type: IRQRoutingHvSint}
	e.U[0], e.U[1] = vpIndex, sint
	return e
}

// MSI is struct kvm_msi, the argument of KVM_SIGNAL_MSI.
type MSI struct {
	AddressLo uint32
	AddressHi uint32
	Data      uint32
	Flags     uint32 // MSIValidDevID
	DevID     uint32
	_         [12]uint8
}

// MSIValidDevID says MSI.DevID is valid.
const MSIValidDevID = 1

// IOEventFD is struct kvm_ioeventfd: a guest write to Addr (of Len bytes,
// optionally only of DataMatch) signals the eventfd Fd inside the kernel,
// with no exit to user space.
type IOEventFD struct {
	DataMatch uint64
	Addr      uint64
	Len       uint32
	Fd        int32
	Flags     uint32 // IOEventFD*
	_         [36]uint8
}

// Flags of IOEventFD.Flags.
const (
	IOEventFDDataMatch = 1 << 0
	IOEventFDPIO       = 1 << 1
	IOEventFDDeassign  = 1 << 2
)

// IRQFD is struct kvm_irqfd: a write to the eventfd Fd raises GSI inside the
// kernel. With IRQFDResample, the line is level-triggered: it stays raised until
// the guest acknowledges it (EOI), and KVM then signals ResampleFd.
type IRQFD struct {
	Fd         uint32
	GSI        uint32
	Flags      uint32 // IRQFD*
	ResampleFd uint32
	_          [16]uint8
}

// Flags of IRQFD.Flags.
const (
	IRQFDDeassign = 1 << 0
	IRQFDResample = 1 << 1
)

// EnableCap is struct kvm_enable_cap, the argument of KVM_ENABLE_CAP.
type EnableCap struct {
	Cap   kvmcap.Cap
	Flags uint32
	Args  [4]uint64
	_     [64]uint8
}

// ClockData is struct kvm_clock_data: the VM's kvmclock.
type ClockData struct {
	Clock    uint64
	Flags    uint32
	_        uint32
	Realtime uint64
	HostTSC  uint64
	_        [4]uint32
}

// dirtyLog is struct kvm_dirty_log.
type dirtyLog struct {
	Slot   uint32
	_      uint32
	Bitmap uintptr
}
