package acrn

// Structures and ioctl numbers of the HSM (/dev/acrn_hsm) user-space ABI,
// <linux/acrn.h> (seed 001). ember's control plane is no HSM, but a device
// model written against that header passes these structures, and ember's
// tests compile the real header to pin them.

// Sizes of the HSM-only structures.
const (
	IOReqNotifySize = 8  // sizeof(struct acrn_ioreq_notify)
	IOEventFDSize   = 32 // sizeof(struct acrn_ioeventfd)
	IRQFDSize       = 24 // sizeof(struct acrn_irqfd)
)

// IOReqNotify is struct acrn_ioreq_notify, the argument of
// ACRN_IOCTL_NOTIFY_REQUEST_FINISH; the HSM turns it into
// HC_NOTIFY_REQUEST_FINISH(VMID, VCPU).
type IOReqNotify struct {
	VMID     uint16
	Reserved uint16
	VCPU     uint32
}

// IOEventFD flags: IOEventFD.Flags.
const (
	IOEventFDFlagPIO       = 0x01 // ACRN_IOEVENTFD_FLAG_PIO: Addr is a port, not an MMIO address
	IOEventFDFlagDataMatch = 0x02 // ACRN_IOEVENTFD_FLAG_DATAMATCH: only writes of Data signal
	IOEventFDFlagDeassign  = 0x04 // ACRN_IOEVENTFD_FLAG_DEASSIGN: remove the matching ioeventfd
)

// IOEventFD is struct acrn_ioeventfd, the argument of ACRN_IOCTL_IOEVENTFD:
// a guest write to [Addr, Addr+Len) signals the eventfd FD instead of
// becoming an I/O request for a client.
type IOEventFD struct {
	FD       uint32
	Flags    uint32 // IOEventFDFlag*
	Addr     uint64
	Len      uint32
	Reserved uint32
	Data     uint64
}

// IRQFDFlagDeassign is ACRN_IRQFD_FLAG_DEASSIGN: remove the irqfd on FD.
const IRQFDFlagDeassign = 0x01

// IRQFD is struct acrn_irqfd, the argument of ACRN_IOCTL_IRQFD: a signal on
// the eventfd FD injects MSI into the VM.
type IRQFD struct {
	FD    int32
	Flags uint32 // IRQFDFlag*
	MSI   MSIEntry
}

// Linux _IOC encoding on x86: dir<<30 | size<<16 | type<<8 | nr.
const (
	iocNone  = 0
	iocWrite = 1 << 30
	iocRead  = 2 << 30
	iocType  = IoctlType << 8
)

// IoctlType is ACRN_IOCTL_TYPE, the ioctl type byte of /dev/acrn_hsm.
const IoctlType = 0xA2

// HSM ioctl request numbers, ACRN_IOCTL_* in <linux/acrn.h>. Each names the
// structure it takes; the request number encodes that structure's size.
const (
	IoctlCreateVM            = iocRead | iocWrite | VMCreationSize<<16 | iocType | 0x10
	IoctlDestroyVM           = iocNone | iocType | 0x11
	IoctlStartVM             = iocNone | iocType | 0x12
	IoctlPauseVM             = iocNone | iocType | 0x13
	IoctlResetVM             = iocNone | iocType | 0x15
	IoctlSetVCPURegs         = iocWrite | VCPURegsSize<<16 | iocType | 0x16
	IoctlInjectMSI           = iocWrite | MSIEntrySize<<16 | iocType | 0x23
	IoctlVMIntrMonitor       = iocWrite | 8<<16 | iocType | 0x24 // unsigned long: a user address
	IoctlSetIRQLine          = iocWrite | 8<<16 | iocType | 0x25 // __u64: IRQLineOps.Param
	IoctlNotifyRequestFinish = iocWrite | IOReqNotifySize<<16 | iocType | 0x31
	IoctlCreateIOReqClient   = iocNone | iocType | 0x32
	IoctlAttachIOReqClient   = iocNone | iocType | 0x33
	IoctlDestroyIOReqClient  = iocNone | iocType | 0x34
	IoctlClearVMIOReq        = iocNone | iocType | 0x35
	IoctlSetMemseg           = iocWrite | VMMemmapSize<<16 | iocType | 0x41
	IoctlUnsetMemseg         = iocWrite | VMMemmapSize<<16 | iocType | 0x42
	IoctlSetPtdevIntr        = iocWrite | PtdevIRQSize<<16 | iocType | 0x53
	IoctlResetPtdevIntr      = iocWrite | PtdevIRQSize<<16 | iocType | 0x54
	IoctlAssignPCIDev        = iocWrite | PCIDevSize<<16 | iocType | 0x55
	IoctlDeassignPCIDev      = iocWrite | PCIDevSize<<16 | iocType | 0x56
	IoctlAssignMMIODev       = iocWrite | MMIODevSize<<16 | iocType | 0x57
	IoctlDeassignMMIODev     = iocWrite | MMIODevSize<<16 | iocType | 0x58
	IoctlCreateVDev          = iocWrite | VDevSize<<16 | iocType | 0x59
	IoctlDestroyVDev         = iocWrite | VDevSize<<16 | iocType | 0x5A
	IoctlPMGetCPUState       = iocRead | iocWrite | 8<<16 | iocType | 0x60 // __u64: a PMCmd in, the result out
	IoctlIOEventFD           = iocWrite | IOEventFDSize<<16 | iocType | 0x70
	IoctlIRQFD               = iocWrite | IRQFDSize<<16 | iocType | 0x71
)
