package acrn

// Operations on a virtual IRQ line: the op field of IRQLineOps (GSI_* in
// acrn_common.h).
const (
	GSISetHigh      = 0 // GSI_SET_HIGH: assert the line
	GSISetLow       = 1 // GSI_SET_LOW: deassert the line
	GSIRaisingPulse = 2 // GSI_RAISING_PULSE: assert then deassert (an edge)
	GSIFallingPulse = 3 // GSI_FALLING_PULSE: deassert then assert
)

// Types of passthrough interrupt: the type field of HCPtdevIRQ (IRQ_* in
// acrn_hv_defs.h) and of PtdevIRQ (ACRN_PTDEV_IRQ_* in <linux/acrn.h>).
const (
	PtdevIRQINTx = 0 // IRQ_INTX / ACRN_PTDEV_IRQ_INTX
	PtdevIRQMSI  = 1 // IRQ_MSI / ACRN_PTDEV_IRQ_MSI
	PtdevIRQMSIX = 2 // IRQ_MSIX / ACRN_PTDEV_IRQ_MSIX
)

// Interrupt monitor commands: the cmd field of IntrMonitor.
const (
	IntrCmdGetData  = 0 // INTR_CMD_GET_DATA: fill Buffer with (physical IRQ, count) pairs, set BufCnt
	IntrCmdDelayInt = 1 // INTR_CMD_DELAY_INT: delay injection by Buffer[0] ms; 0 cancels
)

// MaxPtdevNum is MAX_PTDEV_NUM, the number of passthrough devices whose
// interrupt counts fit in an IntrMonitor (two uint64s each).
const MaxPtdevNum = 24

// Sizes of the interrupt structures.
const (
	IRQLineOpsSize  = 8   // sizeof(struct acrn_irqline_ops)
	MSIEntrySize    = 16  // sizeof(struct acrn_msi_entry)
	IntrMonitorSize = 392 // sizeof(struct acrn_intr_monitor)
	HCPtdevIRQSize  = 24  // sizeof(struct hc_ptdev_irq), __aligned(8)
	PtdevIRQSize    = 20  // sizeof(struct acrn_ptdev_irq)
)

// IRQLineOps is struct acrn_irqline_ops. HC_SET_IRQLINE does not pass it by
// address: ACRN reinterprets param2 itself as the struct, so GSI is the low
// 32 bits of param2 and Op the high 32 (IRQLineOpsFromParam).
type IRQLineOps struct {
	GSI uint32
	Op  uint32 // GSI*
}

// IRQLineOpsFromParam decodes HC_SET_IRQLINE's param2, which carries the
// struct by value in little-endian order.
func IRQLineOpsFromParam(param2 uint64) IRQLineOps {
	return IRQLineOps{GSI: uint32(param2), Op: uint32(param2 >> 32)}
}

// Param packs o into the 64-bit value HC_SET_IRQLINE takes as param2 (and
// ACRN_IOCTL_SET_IRQLINE as its argument).
func (o IRQLineOps) Param() uint64 { return uint64(o.Op)<<32 | uint64(o.GSI) }

// MSIEntry is struct acrn_msi_entry, the parameter of HC_INJECT_MSI and
// ACRN_IOCTL_INJECT_MSI, and part of IRQFD.
type MSIEntry struct {
	MSIAddr uint64 // MSI address; bits 19:12 hold the destination APIC ID
	MSIData uint64 // MSI data; bits 7:0 hold the vector
}

// IntrMonitor is struct acrn_intr_monitor, the parameter of
// HC_VM_INTR_MONITOR.
type IntrMonitor struct {
	Cmd    uint32 // IntrCmd*
	BufCnt uint32 // uint64s in Buffer: capacity in (at most 48, else -EINVAL), count out
	Buffer [MaxPtdevNum * 2]uint64
}

// HCPtdevIRQ is struct hc_ptdev_irq (acrn_hv_defs.h), the parameter of
// HC_SET_PTDEV_INTR_INFO and HC_RESET_PTDEV_INTR_INFO: 24 bytes, with a bool
// PIC-pin flag. The HSM's ioctl form is PtdevIRQ, 20 bytes with a uint32 flag;
// the first 17 bytes mean the same.
type HCPtdevIRQ struct {
	Type    uint32 // PtdevIRQ*
	VirtBDF uint16
	PhysBDF uint16
	Intx    HCIntxInfo
	_       [4]byte
}

// HCIntxInfo is struct intx_info inside hc_ptdev_irq.
type HCIntxInfo struct {
	VirtPin  uint32 // virtual IOAPIC or PIC pin
	PhysPin  uint32 // physical IOAPIC pin
	PICPin   bool   // the virtual pin is a PIC pin
	Reserved [3]uint8
}

// PtdevIRQ is struct acrn_ptdev_irq (<linux/acrn.h>), the argument of
// ACRN_IOCTL_SET_PTDEV_INTR and ACRN_IOCTL_RESET_PTDEV_INTR.
type PtdevIRQ struct {
	Type    uint32 // PtdevIRQ*
	VirtBDF uint16
	PhysBDF uint16
	Intx    PtdevIntx
}

// PtdevIntx is the intx member of acrn_ptdev_irq.
type PtdevIntx struct {
	VirtPin  uint32
	PhysPin  uint32
	IsPICPin uint32
}
