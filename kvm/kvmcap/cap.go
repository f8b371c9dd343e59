package kvmcap

import (
	"maps"
	"slices"

	"ember/internal/enumname"
)

// Cap is a KVM capability number, the argument of KVM_CHECK_EXTENSION and
// KVM_ENABLE_CAP (KVM_CAP_* in include/uapi/linux/kvm.h).
type Cap uint32

// The capabilities that matter on x86 and the generic ones; architecture-specific
// capabilities of other architectures are left out.
const (
	IRQChip                  Cap = 0   // KVM_CAP_IRQCHIP
	HLT                      Cap = 1   // KVM_CAP_HLT
	MMUShadowCacheControl    Cap = 2   // KVM_CAP_MMU_SHADOW_CACHE_CONTROL
	UserMemory               Cap = 3   // KVM_CAP_USER_MEMORY
	SetTssAddr               Cap = 4   // KVM_CAP_SET_TSS_ADDR
	Vapic                    Cap = 6   // KVM_CAP_VAPIC
	ExtCPUID                 Cap = 7   // KVM_CAP_EXT_CPUID
	Clocksource              Cap = 8   // KVM_CAP_CLOCKSOURCE
	NrVCPUs                  Cap = 9   // KVM_CAP_NR_VCPUS
	NrMemslots               Cap = 10  // KVM_CAP_NR_MEMSLOTS
	PIT                      Cap = 11  // KVM_CAP_PIT
	NopIoDelay               Cap = 12  // KVM_CAP_NOP_IO_DELAY
	PvMMU                    Cap = 13  // KVM_CAP_PV_MMU
	MpState                  Cap = 14  // KVM_CAP_MP_STATE
	CoalescedMmio            Cap = 15  // KVM_CAP_COALESCED_MMIO
	SyncMMU                  Cap = 16  // KVM_CAP_SYNC_MMU
	Iommu                    Cap = 18  // KVM_CAP_IOMMU
	DestroyMemoryRegionWorks Cap = 21  // KVM_CAP_DESTROY_MEMORY_REGION_WORKS
	UserNMI                  Cap = 22  // KVM_CAP_USER_NMI
	SetGuestDebug            Cap = 23  // KVM_CAP_SET_GUEST_DEBUG
	ReinjectControl          Cap = 24  // KVM_CAP_REINJECT_CONTROL
	IRQRouting               Cap = 25  // KVM_CAP_IRQ_ROUTING
	IRQInjectStatus          Cap = 26  // KVM_CAP_IRQ_INJECT_STATUS
	AssignDevIRQ             Cap = 29  // KVM_CAP_ASSIGN_DEV_IRQ
	JoinMemoryRegionsWorks   Cap = 30  // KVM_CAP_JOIN_MEMORY_REGIONS_WORKS
	Mce                      Cap = 31  // KVM_CAP_MCE
	IRQFD                    Cap = 32  // KVM_CAP_IRQFD
	PIT2                     Cap = 33  // KVM_CAP_PIT2
	SetBootCpuId             Cap = 34  // KVM_CAP_SET_BOOT_CPU_ID
	PITState2                Cap = 35  // KVM_CAP_PIT_STATE2
	IOEventFD                Cap = 36  // KVM_CAP_IOEVENTFD
	SetIdentityMapAddr       Cap = 37  // KVM_CAP_SET_IDENTITY_MAP_ADDR
	XenHvm                   Cap = 38  // KVM_CAP_XEN_HVM
	AdjustClock              Cap = 39  // KVM_CAP_ADJUST_CLOCK
	InternalErrorData        Cap = 40  // KVM_CAP_INTERNAL_ERROR_DATA
	VCPUEvents               Cap = 41  // KVM_CAP_VCPU_EVENTS
	Hyperv                   Cap = 44  // KVM_CAP_HYPERV
	HypervVapic              Cap = 45  // KVM_CAP_HYPERV_VAPIC
	HypervSpin               Cap = 46  // KVM_CAP_HYPERV_SPIN
	PciSegment               Cap = 47  // KVM_CAP_PCI_SEGMENT
	IntrShadow               Cap = 49  // KVM_CAP_INTR_SHADOW
	Debugregs                Cap = 50  // KVM_CAP_DEBUGREGS
	X86RobustSinglestep      Cap = 51  // KVM_CAP_X86_ROBUST_SINGLESTEP
	EnableCap                Cap = 54  // KVM_CAP_ENABLE_CAP
	Xsave                    Cap = 55  // KVM_CAP_XSAVE
	XCRs                     Cap = 56  // KVM_CAP_XCRS
	AsyncPf                  Cap = 59  // KVM_CAP_ASYNC_PF
	TSCControl               Cap = 60  // KVM_CAP_TSC_CONTROL
	GetTSCKhz                Cap = 61  // KVM_CAP_GET_TSC_KHZ
	MaxVCPUs                 Cap = 66  // KVM_CAP_MAX_VCPUS
	OneReg                   Cap = 70  // KVM_CAP_ONE_REG
	TSCDeadlineTimer         Cap = 72  // KVM_CAP_TSC_DEADLINE_TIMER
	SyncRegs                 Cap = 74  // KVM_CAP_SYNC_REGS
	Pci23                    Cap = 75  // KVM_CAP_PCI_2_3
	KvmclockCtrl             Cap = 76  // KVM_CAP_KVMCLOCK_CTRL
	SignalMSI                Cap = 77  // KVM_CAP_SIGNAL_MSI
	ReadonlyMem              Cap = 81  // KVM_CAP_READONLY_MEM
	IRQFDResample            Cap = 82  // KVM_CAP_IRQFD_RESAMPLE
	DeviceCtrl               Cap = 89  // KVM_CAP_DEVICE_CTRL
	ExtEmulCPUID             Cap = 95  // KVM_CAP_EXT_EMUL_CPUID
	HypervTime               Cap = 96  // KVM_CAP_HYPERV_TIME
	IOAPICPolarityIgnored    Cap = 97  // KVM_CAP_IOAPIC_POLARITY_IGNORED
	EnableCapVm              Cap = 98  // KVM_CAP_ENABLE_CAP_VM
	IOEventFDNoLength        Cap = 100 // KVM_CAP_IOEVENTFD_NO_LENGTH
	VmAttributes             Cap = 101 // KVM_CAP_VM_ATTRIBUTES
	CheckExtensionVm         Cap = 105 // KVM_CAP_CHECK_EXTENSION_VM
	DisableQuirks            Cap = 116 // KVM_CAP_DISABLE_QUIRKS
	X86SMM                   Cap = 117 // KVM_CAP_X86_SMM
	MultiAddressSpace        Cap = 118 // KVM_CAP_MULTI_ADDRESS_SPACE
	GuestDebugHwBps          Cap = 119 // KVM_CAP_GUEST_DEBUG_HW_BPS
	GuestDebugHwWps          Cap = 120 // KVM_CAP_GUEST_DEBUG_HW_WPS
	SplitIRQChip             Cap = 121 // KVM_CAP_SPLIT_IRQCHIP
	IOEventFDAnyLength       Cap = 122 // KVM_CAP_IOEVENTFD_ANY_LENGTH
	HypervSynic              Cap = 123 // KVM_CAP_HYPERV_SYNIC
	VCPUAttributes           Cap = 127 // KVM_CAP_VCPU_ATTRIBUTES
	MaxVCPUID                Cap = 128 // KVM_CAP_MAX_VCPU_ID
	X2apicApi                Cap = 129 // KVM_CAP_X2APIC_API
	MSIDevid                 Cap = 131 // KVM_CAP_MSI_DEVID
	ImmediateExit            Cap = 136 // KVM_CAP_IMMEDIATE_EXIT
	X86DisableExits          Cap = 143 // KVM_CAP_X86_DISABLE_EXITS
	HypervSynic2             Cap = 148 // KVM_CAP_HYPERV_SYNIC2
	HypervVpIndex            Cap = 149 // KVM_CAP_HYPERV_VP_INDEX
	GetMSRFeatures           Cap = 153 // KVM_CAP_GET_MSR_FEATURES
	HypervEventfd            Cap = 154 // KVM_CAP_HYPERV_EVENTFD
	HypervTlbflush           Cap = 155 // KVM_CAP_HYPERV_TLBFLUSH
	NestedState              Cap = 157 // KVM_CAP_NESTED_STATE
	MSRPlatformInfo          Cap = 159 // KVM_CAP_MSR_PLATFORM_INFO
	HypervSendIpi            Cap = 161 // KVM_CAP_HYPERV_SEND_IPI
	CoalescedPio             Cap = 162 // KVM_CAP_COALESCED_PIO
	HypervEnlightenedVmcs    Cap = 163 // KVM_CAP_HYPERV_ENLIGHTENED_VMCS
	ExceptionPayload         Cap = 164 // KVM_CAP_EXCEPTION_PAYLOAD
	ManualDirtyLogProtect    Cap = 166 // KVM_CAP_MANUAL_DIRTY_LOG_PROTECT
	HypervCPUID              Cap = 167 // KVM_CAP_HYPERV_CPUID
	ManualDirtyLogProtect2   Cap = 168 // KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
	PMUEventFilter           Cap = 173 // KVM_CAP_PMU_EVENT_FILTER
	HypervDirectTlbflush     Cap = 175 // KVM_CAP_HYPERV_DIRECT_TLBFLUSH
	HaltPoll                 Cap = 182 // KVM_CAP_HALT_POLL
	AsyncPfInt               Cap = 183 // KVM_CAP_ASYNC_PF_INT
	LastCpu                  Cap = 184 // KVM_CAP_LAST_CPU
	SmallerMaxphyaddr        Cap = 185 // KVM_CAP_SMALLER_MAXPHYADDR
	StealTime                Cap = 187 // KVM_CAP_STEAL_TIME
	X86UserSpaceMSR          Cap = 188 // KVM_CAP_X86_USER_SPACE_MSR
	X86MSRFilter             Cap = 189 // KVM_CAP_X86_MSR_FILTER
	EnforcePvFeatureCPUID    Cap = 190 // KVM_CAP_ENFORCE_PV_FEATURE_CPUID
	SysHypervCPUID           Cap = 191 // KVM_CAP_SYS_HYPERV_CPUID
	DirtyLogRing             Cap = 192 // KVM_CAP_DIRTY_LOG_RING
	X86BusLockExit           Cap = 193 // KVM_CAP_X86_BUS_LOCK_EXIT
	SetGuestDebug2           Cap = 195 // KVM_CAP_SET_GUEST_DEBUG2
	SgxAttribute             Cap = 196 // KVM_CAP_SGX_ATTRIBUTE
	VmCopyEncContextFrom     Cap = 197 // KVM_CAP_VM_COPY_ENC_CONTEXT_FROM
	PtpKvm                   Cap = 198 // KVM_CAP_PTP_KVM
	HypervEnforceCPUID       Cap = 199 // KVM_CAP_HYPERV_ENFORCE_CPUID
	Sregs2                   Cap = 200 // KVM_CAP_SREGS2
	ExitHypercall            Cap = 201 // KVM_CAP_EXIT_HYPERCALL
	BinaryStatsFd            Cap = 203 // KVM_CAP_BINARY_STATS_FD
	ExitOnEmulationFailure   Cap = 204 // KVM_CAP_EXIT_ON_EMULATION_FAILURE
	VmMoveEncContextFrom     Cap = 206 // KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM
	VmGPABits                Cap = 207 // KVM_CAP_VM_GPA_BITS
	Xsave2                   Cap = 208 // KVM_CAP_XSAVE2
	SysAttributes            Cap = 209 // KVM_CAP_SYS_ATTRIBUTES
	PMUCapability            Cap = 212 // KVM_CAP_PMU_CAPABILITY
	DisableQuirks2           Cap = 213 // KVM_CAP_DISABLE_QUIRKS2
	VmTSCControl             Cap = 214 // KVM_CAP_VM_TSC_CONTROL
	SystemEventData          Cap = 215 // KVM_CAP_SYSTEM_EVENT_DATA
	X86TripleFaultEvent      Cap = 218 // KVM_CAP_X86_TRIPLE_FAULT_EVENT
	X86NotifyVmexit          Cap = 219 // KVM_CAP_X86_NOTIFY_VMEXIT
	VmDisableNxHugePages     Cap = 220 // KVM_CAP_VM_DISABLE_NX_HUGE_PAGES
	DirtyLogRingAcqRel       Cap = 223 // KVM_CAP_DIRTY_LOG_RING_ACQ_REL
)

// names maps every named capability to its KVM_CAP_ name.
var names = map[Cap]string{
	IRQChip:                  "KVM_CAP_IRQCHIP",
	HLT:                      "KVM_CAP_HLT",
	MMUShadowCacheControl:    "KVM_CAP_MMU_SHADOW_CACHE_CONTROL",
	UserMemory:               "KVM_CAP_USER_MEMORY",
	SetTssAddr:               "KVM_CAP_SET_TSS_ADDR",
	Vapic:                    "KVM_CAP_VAPIC",
	ExtCPUID:                 "KVM_CAP_EXT_CPUID",
	Clocksource:              "KVM_CAP_CLOCKSOURCE",
	NrVCPUs:                  "KVM_CAP_NR_VCPUS",
	NrMemslots:               "KVM_CAP_NR_MEMSLOTS",
	PIT:                      "KVM_CAP_PIT",
	NopIoDelay:               "KVM_CAP_NOP_IO_DELAY",
	PvMMU:                    "KVM_CAP_PV_MMU",
	MpState:                  "KVM_CAP_MP_STATE",
	CoalescedMmio:            "KVM_CAP_COALESCED_MMIO",
	SyncMMU:                  "KVM_CAP_SYNC_MMU",
	Iommu:                    "KVM_CAP_IOMMU",
	DestroyMemoryRegionWorks: "KVM_CAP_DESTROY_MEMORY_REGION_WORKS",
	UserNMI:                  "KVM_CAP_USER_NMI",
	SetGuestDebug:            "KVM_CAP_SET_GUEST_DEBUG",
	ReinjectControl:          "KVM_CAP_REINJECT_CONTROL",
	IRQRouting:               "KVM_CAP_IRQ_ROUTING",
	IRQInjectStatus:          "KVM_CAP_IRQ_INJECT_STATUS",
	AssignDevIRQ:             "KVM_CAP_ASSIGN_DEV_IRQ",
	JoinMemoryRegionsWorks:   "KVM_CAP_JOIN_MEMORY_REGIONS_WORKS",
	Mce:                      "KVM_CAP_MCE",
	IRQFD:                    "KVM_CAP_IRQFD",
	PIT2:                     "KVM_CAP_PIT2",
	SetBootCpuId:             "KVM_CAP_SET_BOOT_CPU_ID",
	PITState2:                "KVM_CAP_PIT_STATE2",
	IOEventFD:                "KVM_CAP_IOEVENTFD",
	SetIdentityMapAddr:       "KVM_CAP_SET_IDENTITY_MAP_ADDR",
	XenHvm:                   "KVM_CAP_XEN_HVM",
	AdjustClock:              "KVM_CAP_ADJUST_CLOCK",
	InternalErrorData:        "KVM_CAP_INTERNAL_ERROR_DATA",
	VCPUEvents:               "KVM_CAP_VCPU_EVENTS",
	Hyperv:                   "KVM_CAP_HYPERV",
	HypervVapic:              "KVM_CAP_HYPERV_VAPIC",
	HypervSpin:               "KVM_CAP_HYPERV_SPIN",
	PciSegment:               "KVM_CAP_PCI_SEGMENT",
	IntrShadow:               "KVM_CAP_INTR_SHADOW",
	Debugregs:                "KVM_CAP_DEBUGREGS",
	X86RobustSinglestep:      "KVM_CAP_X86_ROBUST_SINGLESTEP",
	EnableCap:                "KVM_CAP_ENABLE_CAP",
	Xsave:                    "KVM_CAP_XSAVE",
	XCRs:                     "KVM_CAP_XCRS",
	AsyncPf:                  "KVM_CAP_ASYNC_PF",
	TSCControl:               "KVM_CAP_TSC_CONTROL",
	GetTSCKhz:                "KVM_CAP_GET_TSC_KHZ",
	MaxVCPUs:                 "KVM_CAP_MAX_VCPUS",
	OneReg:                   "KVM_CAP_ONE_REG",
	TSCDeadlineTimer:         "KVM_CAP_TSC_DEADLINE_TIMER",
	SyncRegs:                 "KVM_CAP_SYNC_REGS",
	Pci23:                    "KVM_CAP_PCI_2_3",
	KvmclockCtrl:             "KVM_CAP_KVMCLOCK_CTRL",
	SignalMSI:                "KVM_CAP_SIGNAL_MSI",
	ReadonlyMem:              "KVM_CAP_READONLY_MEM",
	IRQFDResample:            "KVM_CAP_IRQFD_RESAMPLE",
	DeviceCtrl:               "KVM_CAP_DEVICE_CTRL",
	ExtEmulCPUID:             "KVM_CAP_EXT_EMUL_CPUID",
	HypervTime:               "KVM_CAP_HYPERV_TIME",
	IOAPICPolarityIgnored:    "KVM_CAP_IOAPIC_POLARITY_IGNORED",
	EnableCapVm:              "KVM_CAP_ENABLE_CAP_VM",
	IOEventFDNoLength:        "KVM_CAP_IOEVENTFD_NO_LENGTH",
	VmAttributes:             "KVM_CAP_VM_ATTRIBUTES",
	CheckExtensionVm:         "KVM_CAP_CHECK_EXTENSION_VM",
	DisableQuirks:            "KVM_CAP_DISABLE_QUIRKS",
	X86SMM:                   "KVM_CAP_X86_SMM",
	MultiAddressSpace:        "KVM_CAP_MULTI_ADDRESS_SPACE",
	GuestDebugHwBps:          "KVM_CAP_GUEST_DEBUG_HW_BPS",
	GuestDebugHwWps:          "KVM_CAP_GUEST_DEBUG_HW_WPS",
	SplitIRQChip:             "KVM_CAP_SPLIT_IRQCHIP",
	IOEventFDAnyLength:       "KVM_CAP_IOEVENTFD_ANY_LENGTH",
	HypervSynic:              "KVM_CAP_HYPERV_SYNIC",
	VCPUAttributes:           "KVM_CAP_VCPU_ATTRIBUTES",
	MaxVCPUID:                "KVM_CAP_MAX_VCPU_ID",
	X2apicApi:                "KVM_CAP_X2APIC_API",
	MSIDevid:                 "KVM_CAP_MSI_DEVID",
	ImmediateExit:            "KVM_CAP_IMMEDIATE_EXIT",
	X86DisableExits:          "KVM_CAP_X86_DISABLE_EXITS",
	HypervSynic2:             "KVM_CAP_HYPERV_SYNIC2",
	HypervVpIndex:            "KVM_CAP_HYPERV_VP_INDEX",
	GetMSRFeatures:           "KVM_CAP_GET_MSR_FEATURES",
	HypervEventfd:            "KVM_CAP_HYPERV_EVENTFD",
	HypervTlbflush:           "KVM_CAP_HYPERV_TLBFLUSH",
	NestedState:              "KVM_CAP_NESTED_STATE",
	MSRPlatformInfo:          "KVM_CAP_MSR_PLATFORM_INFO",
	HypervSendIpi:            "KVM_CAP_HYPERV_SEND_IPI",
	CoalescedPio:             "KVM_CAP_COALESCED_PIO",
	HypervEnlightenedVmcs:    "KVM_CAP_HYPERV_ENLIGHTENED_VMCS",
	ExceptionPayload:         "KVM_CAP_EXCEPTION_PAYLOAD",
	ManualDirtyLogProtect:    "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT",
	HypervCPUID:              "KVM_CAP_HYPERV_CPUID",
	ManualDirtyLogProtect2:   "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2",
	PMUEventFilter:           "KVM_CAP_PMU_EVENT_FILTER",
	HypervDirectTlbflush:     "KVM_CAP_HYPERV_DIRECT_TLBFLUSH",
	HaltPoll:                 "KVM_CAP_HALT_POLL",
	AsyncPfInt:               "KVM_CAP_ASYNC_PF_INT",
	LastCpu:                  "KVM_CAP_LAST_CPU",
	SmallerMaxphyaddr:        "KVM_CAP_SMALLER_MAXPHYADDR",
	StealTime:                "KVM_CAP_STEAL_TIME",
	X86UserSpaceMSR:          "KVM_CAP_X86_USER_SPACE_MSR",
	X86MSRFilter:             "KVM_CAP_X86_MSR_FILTER",
	EnforcePvFeatureCPUID:    "KVM_CAP_ENFORCE_PV_FEATURE_CPUID",
	SysHypervCPUID:           "KVM_CAP_SYS_HYPERV_CPUID",
	DirtyLogRing:             "KVM_CAP_DIRTY_LOG_RING",
	X86BusLockExit:           "KVM_CAP_X86_BUS_LOCK_EXIT",
	SetGuestDebug2:           "KVM_CAP_SET_GUEST_DEBUG2",
	SgxAttribute:             "KVM_CAP_SGX_ATTRIBUTE",
	VmCopyEncContextFrom:     "KVM_CAP_VM_COPY_ENC_CONTEXT_FROM",
	PtpKvm:                   "KVM_CAP_PTP_KVM",
	HypervEnforceCPUID:       "KVM_CAP_HYPERV_ENFORCE_CPUID",
	Sregs2:                   "KVM_CAP_SREGS2",
	ExitHypercall:            "KVM_CAP_EXIT_HYPERCALL",
	BinaryStatsFd:            "KVM_CAP_BINARY_STATS_FD",
	ExitOnEmulationFailure:   "KVM_CAP_EXIT_ON_EMULATION_FAILURE",
	VmMoveEncContextFrom:     "KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM",
	VmGPABits:                "KVM_CAP_VM_GPA_BITS",
	Xsave2:                   "KVM_CAP_XSAVE2",
	SysAttributes:            "KVM_CAP_SYS_ATTRIBUTES",
	PMUCapability:            "KVM_CAP_PMU_CAPABILITY",
	DisableQuirks2:           "KVM_CAP_DISABLE_QUIRKS2",
	VmTSCControl:             "KVM_CAP_VM_TSC_CONTROL",
	SystemEventData:          "KVM_CAP_SYSTEM_EVENT_DATA",
	X86TripleFaultEvent:      "KVM_CAP_X86_TRIPLE_FAULT_EVENT",
	X86NotifyVmexit:          "KVM_CAP_X86_NOTIFY_VMEXIT",
	VmDisableNxHugePages:     "KVM_CAP_VM_DISABLE_NX_HUGE_PAGES",
	DirtyLogRingAcqRel:       "KVM_CAP_DIRTY_LOG_RING_ACQ_REL",
}

// String returns the capability's KVM_CAP_ name, or its number if unnamed here.
func (c Cap) String() string { return enumname.Of(names, c, "KVM_CAP_") }

// ByName looks a capability up by its KVM_CAP_ name (with or without the prefix).
func ByName(name string) (Cap, bool) {
	for c, n := range names {
		if n == name || n == "KVM_CAP_"+name {
			return c, true
		}
	}
	return 0, false
}

// All returns every capability this package names, in numeric order: what
// a program that lists a host's capabilities asks KVM about.
func All() []Cap {
	return slices.Sorted(maps.Keys(names))
}
