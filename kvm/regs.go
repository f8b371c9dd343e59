package kvm

// Regs is struct kvm_regs: the general-purpose registers, RIP and RFLAGS.
type Regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

// Segment is struct kvm_segment: a segment register in its descriptor-cache
// form (base, limit and attributes already unpacked), as KVM_SET_SREGS takes it.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8 // default operand size: 1 for 32-bit code/data
	S        uint8 // 1 for code/data, 0 for system segments
	L        uint8 // 64-bit code segment
	G        uint8 // limit in 4 KiB units
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable is struct kvm_dtable: the GDTR or IDTR.
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// SRegs is struct kvm_sregs: segment and descriptor-table registers, control
// registers, EFER, the APIC base and the pending-interrupt bitmap.
type SRegs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	InterruptBitmap        [4]uint64 // (KVM_NR_INTERRUPTS + 63) / 64
}

// FPU is struct kvm_fpu: the x87 and SSE state.
type FPU struct {
	FPR        [8][16]uint8
	FCW        uint16
	FSW        uint16
	FTWX       uint8
	_          uint8
	LastOpcode uint16
	LastIP     uint64
	LastDP     uint64
	XMM        [16][16]uint8
	MXCSR      uint32
	_          uint32
}

// XSave is struct kvm_xsave: the legacy 4 KiB XSAVE area.
type XSave struct {
	Region [1024]uint32
}

// XCR is one extended control register in struct kvm_xcrs.
type XCR struct {
	XCR   uint32
	_     uint32
	Value uint64
}

// XCRs is struct kvm_xcrs: the extended control registers (XCR0).
type XCRs struct {
	NrXCRs uint32
	Flags  uint32
	XCRs   [16]XCR // KVM_MAX_XCRS
	_      [16]uint64
}

// LAPICState is struct kvm_lapic_state: the local APIC's 1 KiB register page.
type LAPICState struct {
	Regs [1024]byte
}

// VCPUEvents is struct kvm_vcpu_events: pending and injected exceptions,
// interrupts and NMIs, the SIPI vector and SMM state.
type VCPUEvents struct {
	Exception struct {
		Injected     uint8
		Nr           uint8
		HasErrorCode uint8
		Pending      uint8
		ErrorCode    uint32
	}
	Interrupt struct {
		Injected uint8
		Nr       uint8
		Soft     uint8
		Shadow   uint8
	}
	NMI struct {
		Injected uint8
		Pending  uint8
		Masked   uint8
		_        uint8
	}
	SIPIVector uint32
	Flags      uint32 // KVM_VCPUEVENT_VALID_*
	SMI        struct {
		SMM          uint8
		Pending      uint8
		SMMInsideNMI uint8
		LatchedInit  uint8
	}
	TripleFault struct {
		Pending uint8
	}
	_                   [26]uint8
	ExceptionHasPayload uint8
	ExceptionPayload    uint64
}

// Flags of VCPUEvents.Flags saying which optional fields are valid.
const (
	VCPUEventValidNMIPending  = 0x01
	VCPUEventValidSIPIVector  = 0x02
	VCPUEventValidShadow      = 0x04
	VCPUEventValidSMM         = 0x08
	VCPUEventValidPayload     = 0x10
	VCPUEventValidTripleFault = 0x20
)

// MPState is a vCPU's multiprocessing state (struct kvm_mp_state).
type MPState uint32

// The MP states an x86 vCPU can be in.
const (
	MPStateRunnable      MPState = 0
	MPStateUninitialized MPState = 1 // an AP waiting for INIT
	MPStateInitReceived  MPState = 2 // an AP waiting for SIPI
	MPStateHalted        MPState = 3
	MPStateSIPIReceived  MPState = 4
)

// GuestDebug is struct kvm_guest_debug for x86: control flags and debug registers.
type GuestDebug struct {
	Control  uint32 // GuestDebug* flags
	_        uint32
	DebugReg [8]uint64
}

// Flags of GuestDebug.Control.
const (
	GuestDebugEnable     = 0x00000001
	GuestDebugSingleStep = 0x00000002
	GuestDebugUseSWBP    = 0x00010000
	GuestDebugUseHWBP    = 0x00020000
	GuestDebugInjectDB   = 0x00040000
	GuestDebugInjectBP   = 0x00080000
	GuestDebugBlockIRQ   = 0x00100000
)

// Translation is struct kvm_translation: the result of KVM_TRANSLATE.
type Translation struct {
	LinearAddress   uint64
	PhysicalAddress uint64
	Valid           uint8
	Writeable       uint8
	UserMode        uint8
	_               [5]uint8
}

// SyncRegs is the x86 struct kvm_sync_regs shared through kvm_run when
// KVM_CAP_SYNC_REGS is present: registers KVM copies in and out around KVM_RUN,
// sparing a GET/SET ioctl pair per exit.
type SyncRegs struct {
	Regs   Regs
	SRegs  SRegs
	Events VCPUEvents
}

// Which parts of SyncRegs are valid (kvm_valid_regs) or dirty (kvm_dirty_regs).
const (
	SyncRegsGPRs   = 1 << 0
	SyncRegsSRegs  = 1 << 1
	SyncRegsEvents = 1 << 2
)
