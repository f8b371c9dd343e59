package acrn

// Guest flags: the vm_flag bits of VMCreation and the guest_flags of
// VMConfigHeader (GUEST_FLAG_* in acrn_common.h). Bits 0-6 are those of ACRN
// v2.6, the release seed 000 documents; bits 7-14 were added later and are
// listed for completeness.
const (
	GuestFlagSecureWorldEnabled  = 1 << 0                      // GUEST_FLAG_SECURE_WORLD_ENABLED: Trusty; may make Trusty hypercalls
	GuestFlagLAPICPassthrough    = 1 << 1                      // GUEST_FLAG_LAPIC_PASSTHROUGH
	GuestFlagIOCompletionPolling = 1 << 2                      // GUEST_FLAG_IO_COMPLETION_POLLING: hypervisor polls I/O requests
	GuestFlagHideMTRR            = 1 << 3                      // GUEST_FLAG_HIDE_MTRR
	GuestFlagRT                  = 1 << 4                      // GUEST_FLAG_RT: real-time VM
	GuestFlagNVMXEnabled         = 1 << 5                      // GUEST_FLAG_NVMX_ENABLED: nested virtualization
	GuestFlagSecurityVM          = 1 << 6                      // GUEST_FLAG_SECURITY_VM: TPM2/SMBIOS fixups
	GuestFlagVCATEnabled         = 1 << 7                      // GUEST_FLAG_VCAT_ENABLED (ACRN v2.7+)
	GuestFlagStaticVM            = 1 << 8                      // GUEST_FLAG_STATIC_VM (ACRN v3.0+)
	GuestFlagTEE                 = 1 << 9                      // GUEST_FLAG_TEE (ACRN v3.0+)
	GuestFlagREE                 = 1 << 10                     // GUEST_FLAG_REE (ACRN v3.0+)
	GuestFlagPMUPassthrough      = 1 << 11                     // GUEST_FLAG_PMU_PASSTHROUGH (ACRN v3.0+)
	GuestFlagVHWP                = 1 << 12                     // GUEST_FLAG_VHWP (ACRN v3.2+)
	GuestFlagVTM                 = 1 << 13                     // GUEST_FLAG_VTM (ACRN v3.2+)
	GuestFlagStateless           = 1 << 14                     // GUEST_FLAG_STATELESS (ACRN v3.3+)
	GuestFlagsAllowingHypercalls = GuestFlagSecureWorldEnabled // GUEST_FLAGS_ALLOWING_HYPERCALLS (vmcall.c): non-Service VMs with these flags may make hypercalls
)

// InvalidVMID is ACRN_INVALID_VMID, the VMID no VM has.
const InvalidVMID = 0xffff

// InvalidHPA is ACRN_INVALID_HPA, returned by HC_VM_GPA2HPA for an unmapped
// GPA.
const InvalidHPA = ^uint64(0)

// Hypervisor API version returned by HC_GET_API_VERSION (API_MAJOR_VERSION and
// API_MINOR_VERSION in ACRN v2.6's Makefile).
const (
	APIMajorVersion = 1
	APIMinorVersion = 0
)

// Upcall vectors. Seed 003 and ACRN v2.6 (HYPERVISOR_CALLBACK_HSM_VECTOR) fix
// the default at 0xF3; seed 000's text for hcall_set_callback_vector says
// 0xF7, a stale comment the v2.6 source itself corrects to 0xF3.
const (
	// CallbackVectorDefault is the vector injected into the Service VM's
	// vCPU0 when an I/O request is pending, until HC_SET_CALLBACK_VECTOR
	// names another.
	CallbackVectorDefault = 0xF3
	// CallbackVectorMin is VECTOR_DYNAMIC_START: HC_SET_CALLBACK_VECTOR
	// refuses a lower vector with -EINVAL.
	CallbackVectorMin = 0x20
	// CallbackVectorMax is NR_MAX_VECTOR: HC_SET_CALLBACK_VECTOR refuses a
	// higher vector with -EINVAL.
	CallbackVectorMax = 0xFF
)

// Sizes of the VM-management structures.
const (
	VMCreationSize     = 48  // sizeof(struct acrn_vm_creation)
	GPRegsSize         = 128 // sizeof(struct acrn_gp_regs)
	DescriptorPtrSize  = 16  // sizeof(struct acrn_descriptor_ptr), packed
	RegsSize           = 288 // sizeof(struct acrn_regs)
	VCPURegsSize       = 296 // sizeof(struct acrn_vcpu_regs)
	VMConfigHeaderSize = 72  // sizeof(struct acrn_vm_config_header)
)

// VMCreation is struct acrn_vm_creation, the parameter of HC_CREATE_VM and of
// the HSM's ACRN_IOCTL_CREATE_VM. The hypervisor fills in VMID and VCPUNum.
//
// UUID is uuid[16] in ACRN v2.6 and in the seed. Newer Linux headers (seed
// 001) call the bytes "empty space never to be used again"; ACRN v3 reuses
// them as name[16]. The layout is the same in all three.
type VMCreation struct {
	VMID        uint16 // out: the new VM's ID
	Reserved0   uint16
	VCPUNum     uint16 // out: the number of vCPUs the hypervisor created
	Reserved1   uint16
	UUID        [16]byte
	VMFlag      uint64 // GuestFlag* bits
	IOReqBuf    uint64 // Service VM GPA of the VM's IORequestBuffer
	CPUAffinity uint64 // bitmap of physical CPUs the vCPUs run on
}

// GPRegs is struct acrn_gp_regs, the general-purpose registers in the order
// of the VMX exit-qualification register index (SDM Vol. 3C 27-6).
type GPRegs struct {
	RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
}

// DescriptorPtr is struct acrn_descriptor_ptr, a GDTR/IDTR image (packed:
// Base sits at byte 2).
type DescriptorPtr struct {
	Limit    uint16
	Base     uint64
	Reserved [3]uint16
}

// Regs is struct acrn_regs, the initial register state of a vCPU.
type Regs struct {
	GPRs       GPRegs
	GDT        DescriptorPtr
	IDT        DescriptorPtr
	RIP        uint64
	CSBase     uint64
	CR0        uint64
	CR4        uint64
	CR3        uint64
	IA32EFER   uint64
	RFlags     uint64
	Reserved64 [4]uint64
	CSAR       uint32 // CS access rights, VMCS format
	CSLimit    uint32
	Reserved32 [3]uint32
	CSSel      uint16 // the selectors' order must not change (acrn_common.h)
	SSSel      uint16
	DSSel      uint16
	ESSel      uint16
	FSSel      uint16
	GSSel      uint16
	LDTSel     uint16
	TRSel      uint16
	_          [4]byte
}

// VCPURegs is struct acrn_vcpu_regs, the parameter of HC_SET_VCPU_REGS and
// ACRN_IOCTL_SET_VCPU_REGS (seed 000's text calls it the parameter of
// "HC_SET_VCPU_STATE").
type VCPURegs struct {
	VCPUID   uint16
	Reserved [3]uint16
	VCPURegs Regs
}

// VM load orders, enum acrn_vm_load_order in acrn_common.h (v2.6 names).
const (
	PreLaunchedVM  = 0 // PRE_LAUNCHED_VM: started by the hypervisor, LAPIC passthrough
	SOSVM          = 1 // SOS_VM: the Service VM (SERVICE_VM in ACRN v2.7+)
	PostLaunchedVM = 2 // POST_LAUNCHED_VM: created by the device model via HC_CREATE_VM
)

// MaxVMOSNameLen is MAX_VM_OS_NAME_LEN, the length of VMConfigHeader.Name in
// ACRN v2.6 (v3 shrank it to MAX_VM_NAME_LEN 16 and dropped the UUID).
const MaxVMOSNameLen = 32

// VMConfigHeader is struct acrn_vm_config_header (ACRN v2.6), the public
// prefix of each entry of the VM configuration array PlatformInfo points to;
// the rest of an entry is opaque, PlatformSW.VMConfigSize bytes in all.
type VMConfigHeader struct {
	LoadOrder   uint32 // enum acrn_vm_load_order
	Name        [MaxVMOSNameLen]byte
	UUID        [16]byte
	Reserved    [2]byte
	Severity    uint8
	_           [1]byte
	CPUAffinity uint64
	GuestFlags  uint64
}
