package kvm

import "fmt"

// Cap is a KVM capability number, the argument of KVM_CHECK_EXTENSION and
// KVM_ENABLE_CAP (KVM_CAP_* in include/uapi/linux/kvm.h).
type Cap uint32

// The capabilities that matter on x86 and the generic ones; architecture-specific
// capabilities of other architectures are left out.
const (
	CapIRQChip                  Cap = 0   // KVM_CAP_IRQCHIP
	CapHLT                      Cap = 1   // KVM_CAP_HLT
	CapMMUShadowCacheControl    Cap = 2   // KVM_CAP_MMU_SHADOW_CACHE_CONTROL
	CapUserMemory               Cap = 3   // KVM_CAP_USER_MEMORY
	CapSetTssAddr               Cap = 4   // KVM_CAP_SET_TSS_ADDR
	CapVapic                    Cap = 6   // KVM_CAP_VAPIC
	CapExtCPUID                 Cap = 7   // KVM_CAP_EXT_CPUID
	CapClocksource              Cap = 8   // KVM_CAP_CLOCKSOURCE
	CapNrVCPUs                  Cap = 9   // KVM_CAP_NR_VCPUS
	CapNrMemslots               Cap = 10  // KVM_CAP_NR_MEMSLOTS
	CapPIT                      Cap = 11  // KVM_CAP_PIT
	CapNopIoDelay               Cap = 12  // KVM_CAP_NOP_IO_DELAY
	CapPvMMU                    Cap = 13  // KVM_CAP_PV_MMU
	CapMpState                  Cap = 14  // KVM_CAP_MP_STATE
	CapCoalescedMmio            Cap = 15  // KVM_CAP_COALESCED_MMIO
	CapSyncMMU                  Cap = 16  // KVM_CAP_SYNC_MMU
	CapIommu                    Cap = 18  // KVM_CAP_IOMMU
	CapDestroyMemoryRegionWorks Cap = 21  // KVM_CAP_DESTROY_MEMORY_REGION_WORKS
	CapUserNMI                  Cap = 22  // KVM_CAP_USER_NMI
	CapSetGuestDebug            Cap = 23  // KVM_CAP_SET_GUEST_DEBUG
	CapReinjectControl          Cap = 24  // KVM_CAP_REINJECT_CONTROL
	CapIRQRouting               Cap = 25  // KVM_CAP_IRQ_ROUTING
	CapIRQInjectStatus          Cap = 26  // KVM_CAP_IRQ_INJECT_STATUS
	CapAssignDevIRQ             Cap = 29  // KVM_CAP_ASSIGN_DEV_IRQ
	CapJoinMemoryRegionsWorks   Cap = 30  // KVM_CAP_JOIN_MEMORY_REGIONS_WORKS
	CapMce                      Cap = 31  // KVM_CAP_MCE
	CapIRQFD                    Cap = 32  // KVM_CAP_IRQFD
	CapPIT2                     Cap = 33  // KVM_CAP_PIT2
	CapSetBootCpuId             Cap = 34  // KVM_CAP_SET_BOOT_CPU_ID
	CapPITState2                Cap = 35  // KVM_CAP_PIT_STATE2
	CapIOEventFD                Cap = 36  // KVM_CAP_IOEVENTFD
	CapSetIdentityMapAddr       Cap = 37  // KVM_CAP_SET_IDENTITY_MAP_ADDR
	CapXenHvm                   Cap = 38  // KVM_CAP_XEN_HVM
	CapAdjustClock              Cap = 39  // KVM_CAP_ADJUST_CLOCK
	CapInternalErrorData        Cap = 40  // KVM_CAP_INTERNAL_ERROR_DATA
	CapVCPUEvents               Cap = 41  // KVM_CAP_VCPU_EVENTS
	CapHyperv                   Cap = 44  // KVM_CAP_HYPERV
	CapHypervVapic              Cap = 45  // KVM_CAP_HYPERV_VAPIC
	CapHypervSpin               Cap = 46  // KVM_CAP_HYPERV_SPIN
	CapPciSegment               Cap = 47  // KVM_CAP_PCI_SEGMENT
	CapIntrShadow               Cap = 49  // KVM_CAP_INTR_SHADOW
	CapDebugregs                Cap = 50  // KVM_CAP_DEBUGREGS
	CapX86RobustSinglestep      Cap = 51  // KVM_CAP_X86_ROBUST_SINGLESTEP
	CapEnableCap                Cap = 54  // KVM_CAP_ENABLE_CAP
	CapXsave                    Cap = 55  // KVM_CAP_XSAVE
	CapXCRs                     Cap = 56  // KVM_CAP_XCRS
	CapAsyncPf                  Cap = 59  // KVM_CAP_ASYNC_PF
	CapTSCControl               Cap = 60  // KVM_CAP_TSC_CONTROL
	CapGetTSCKhz                Cap = 61  // KVM_CAP_GET_TSC_KHZ
	CapMaxVCPUs                 Cap = 66  // KVM_CAP_MAX_VCPUS
	CapOneReg                   Cap = 70  // KVM_CAP_ONE_REG
	CapTSCDeadlineTimer         Cap = 72  // KVM_CAP_TSC_DEADLINE_TIMER
	CapSyncRegs                 Cap = 74  // KVM_CAP_SYNC_REGS
	CapPci23                    Cap = 75  // KVM_CAP_PCI_2_3
	CapKvmclockCtrl             Cap = 76  // KVM_CAP_KVMCLOCK_CTRL
	CapSignalMSI                Cap = 77  // KVM_CAP_SIGNAL_MSI
	CapReadonlyMem              Cap = 81  // KVM_CAP_READONLY_MEM
	CapIRQFDResample            Cap = 82  // KVM_CAP_IRQFD_RESAMPLE
	CapDeviceCtrl               Cap = 89  // KVM_CAP_DEVICE_CTRL
	CapExtEmulCPUID             Cap = 95  // KVM_CAP_EXT_EMUL_CPUID
	CapHypervTime               Cap = 96  // KVM_CAP_HYPERV_TIME
	CapIOAPICPolarityIgnored    Cap = 97  // KVM_CAP_IOAPIC_POLARITY_IGNORED
	CapEnableCapVm              Cap = 98  // KVM_CAP_ENABLE_CAP_VM
	CapIOEventFDNoLength        Cap = 100 // KVM_CAP_IOEVENTFD_NO_LENGTH
	CapVmAttributes             Cap = 101 // KVM_CAP_VM_ATTRIBUTES
	CapCheckExtensionVm         Cap = 105 // KVM_CAP_CHECK_EXTENSION_VM
	CapDisableQuirks            Cap = 116 // KVM_CAP_DISABLE_QUIRKS
	CapX86SMM                   Cap = 117 // KVM_CAP_X86_SMM
	CapMultiAddressSpace        Cap = 118 // KVM_CAP_MULTI_ADDRESS_SPACE
	CapGuestDebugHwBps          Cap = 119 // KVM_CAP_GUEST_DEBUG_HW_BPS
	CapGuestDebugHwWps          Cap = 120 // KVM_CAP_GUEST_DEBUG_HW_WPS
	CapSplitIRQChip             Cap = 121 // KVM_CAP_SPLIT_IRQCHIP
	CapIOEventFDAnyLength       Cap = 122 // KVM_CAP_IOEVENTFD_ANY_LENGTH
	CapHypervSynic              Cap = 123 // KVM_CAP_HYPERV_SYNIC
	CapVCPUAttributes           Cap = 127 // KVM_CAP_VCPU_ATTRIBUTES
	CapMaxVCPUID                Cap = 128 // KVM_CAP_MAX_VCPU_ID
	CapX2apicApi                Cap = 129 // KVM_CAP_X2APIC_API
	CapMSIDevid                 Cap = 131 // KVM_CAP_MSI_DEVID
	CapImmediateExit            Cap = 136 // KVM_CAP_IMMEDIATE_EXIT
	CapX86DisableExits          Cap = 143 // KVM_CAP_X86_DISABLE_EXITS
	CapHypervSynic2             Cap = 148 // KVM_CAP_HYPERV_SYNIC2
	CapHypervVpIndex            Cap = 149 // KVM_CAP_HYPERV_VP_INDEX
	CapGetMSRFeatures           Cap = 153 // KVM_CAP_GET_MSR_FEATURES
	CapHypervEventfd            Cap = 154 // KVM_CAP_HYPERV_EVENTFD
	CapHypervTlbflush           Cap = 155 // KVM_CAP_HYPERV_TLBFLUSH
	CapNestedState              Cap = 157 // KVM_CAP_NESTED_STATE
	CapMSRPlatformInfo          Cap = 159 // KVM_CAP_MSR_PLATFORM_INFO
	CapHypervSendIpi            Cap = 161 // KVM_CAP_HYPERV_SEND_IPI
	CapCoalescedPio             Cap = 162 // KVM_CAP_COALESCED_PIO
	CapHypervEnlightenedVmcs    Cap = 163 // KVM_CAP_HYPERV_ENLIGHTENED_VMCS
	CapExceptionPayload         Cap = 164 // KVM_CAP_EXCEPTION_PAYLOAD
	CapManualDirtyLogProtect    Cap = 166 // KVM_CAP_MANUAL_DIRTY_LOG_PROTECT
	CapHypervCPUID              Cap = 167 // KVM_CAP_HYPERV_CPUID
	CapManualDirtyLogProtect2   Cap = 168 // KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
	CapPMUEventFilter           Cap = 173 // KVM_CAP_PMU_EVENT_FILTER
	CapHypervDirectTlbflush     Cap = 175 // KVM_CAP_HYPERV_DIRECT_TLBFLUSH
	CapHaltPoll                 Cap = 182 // KVM_CAP_HALT_POLL
	CapAsyncPfInt               Cap = 183 // KVM_CAP_ASYNC_PF_INT
	CapLastCpu                  Cap = 184 // KVM_CAP_LAST_CPU
	CapSmallerMaxphyaddr        Cap = 185 // KVM_CAP_SMALLER_MAXPHYADDR
	CapStealTime                Cap = 187 // KVM_CAP_STEAL_TIME
	CapX86UserSpaceMSR          Cap = 188 // KVM_CAP_X86_USER_SPACE_MSR
	CapX86MSRFilter             Cap = 189 // KVM_CAP_X86_MSR_FILTER
	CapEnforcePvFeatureCPUID    Cap = 190 // KVM_CAP_ENFORCE_PV_FEATURE_CPUID
	CapSysHypervCPUID           Cap = 191 // KVM_CAP_SYS_HYPERV_CPUID
	CapDirtyLogRing             Cap = 192 // KVM_CAP_DIRTY_LOG_RING
	CapX86BusLockExit           Cap = 193 // KVM_CAP_X86_BUS_LOCK_EXIT
	CapSetGuestDebug2           Cap = 195 // KVM_CAP_SET_GUEST_DEBUG2
	CapSgxAttribute             Cap = 196 // KVM_CAP_SGX_ATTRIBUTE
	CapVmCopyEncContextFrom     Cap = 197 // KVM_CAP_VM_COPY_ENC_CONTEXT_FROM
	CapPtpKvm                   Cap = 198 // KVM_CAP_PTP_KVM
	CapHypervEnforceCPUID       Cap = 199 // KVM_CAP_HYPERV_ENFORCE_CPUID
	CapSregs2                   Cap = 200 // KVM_CAP_SREGS2
	CapExitHypercall            Cap = 201 // KVM_CAP_EXIT_HYPERCALL
	CapBinaryStatsFd            Cap = 203 // KVM_CAP_BINARY_STATS_FD
	CapExitOnEmulationFailure   Cap = 204 // KVM_CAP_EXIT_ON_EMULATION_FAILURE
	CapVmMoveEncContextFrom     Cap = 206 // KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM
	CapVmGPABits                Cap = 207 // KVM_CAP_VM_GPA_BITS
	CapXsave2                   Cap = 208 // KVM_CAP_XSAVE2
	CapSysAttributes            Cap = 209 // KVM_CAP_SYS_ATTRIBUTES
	CapPMUCapability            Cap = 212 // KVM_CAP_PMU_CAPABILITY
	CapDisableQuirks2           Cap = 213 // KVM_CAP_DISABLE_QUIRKS2
	CapVmTSCControl             Cap = 214 // KVM_CAP_VM_TSC_CONTROL
	CapSystemEventData          Cap = 215 // KVM_CAP_SYSTEM_EVENT_DATA
	CapX86TripleFaultEvent      Cap = 218 // KVM_CAP_X86_TRIPLE_FAULT_EVENT
	CapX86NotifyVmexit          Cap = 219 // KVM_CAP_X86_NOTIFY_VMEXIT
	CapVmDisableNxHugePages     Cap = 220 // KVM_CAP_VM_DISABLE_NX_HUGE_PAGES
	CapDirtyLogRingAcqRel       Cap = 223 // KVM_CAP_DIRTY_LOG_RING_ACQ_REL
)

// capNames maps every named capability to its KVM_CAP_ name.
var capNames = map[Cap]string{
	CapIRQChip:                  "KVM_CAP_IRQCHIP",
	CapHLT:                      "KVM_CAP_HLT",
	CapMMUShadowCacheControl:    "KVM_CAP_MMU_SHADOW_CACHE_CONTROL",
	CapUserMemory:               "KVM_CAP_USER_MEMORY",
	CapSetTssAddr:               "KVM_CAP_SET_TSS_ADDR",
	CapVapic:                    "KVM_CAP_VAPIC",
	CapExtCPUID:                 "KVM_CAP_EXT_CPUID",
	CapClocksource:              "KVM_CAP_CLOCKSOURCE",
	CapNrVCPUs:                  "KVM_CAP_NR_VCPUS",
	CapNrMemslots:               "KVM_CAP_NR_MEMSLOTS",
	CapPIT:                      "KVM_CAP_PIT",
	CapNopIoDelay:               "KVM_CAP_NOP_IO_DELAY",
	CapPvMMU:                    "KVM_CAP_PV_MMU",
	CapMpState:                  "KVM_CAP_MP_STATE",
	CapCoalescedMmio:            "KVM_CAP_COALESCED_MMIO",
	CapSyncMMU:                  "KVM_CAP_SYNC_MMU",
	CapIommu:                    "KVM_CAP_IOMMU",
	CapDestroyMemoryRegionWorks: "KVM_CAP_DESTROY_MEMORY_REGION_WORKS",
	CapUserNMI:                  "KVM_CAP_USER_NMI",
	CapSetGuestDebug:            "KVM_CAP_SET_GUEST_DEBUG",
	CapReinjectControl:          "KVM_CAP_REINJECT_CONTROL",
	CapIRQRouting:               "KVM_CAP_IRQ_ROUTING",
	CapIRQInjectStatus:          "KVM_CAP_IRQ_INJECT_STATUS",
	CapAssignDevIRQ:             "KVM_CAP_ASSIGN_DEV_IRQ",
	CapJoinMemoryRegionsWorks:   "KVM_CAP_JOIN_MEMORY_REGIONS_WORKS",
	CapMce:                      "KVM_CAP_MCE",
	CapIRQFD:                    "KVM_CAP_IRQFD",
	CapPIT2:                     "KVM_CAP_PIT2",
	CapSetBootCpuId:             "KVM_CAP_SET_BOOT_CPU_ID",
	CapPITState2:                "KVM_CAP_PIT_STATE2",
	CapIOEventFD:                "KVM_CAP_IOEVENTFD",
	CapSetIdentityMapAddr:       "KVM_CAP_SET_IDENTITY_MAP_ADDR",
	CapXenHvm:                   "KVM_CAP_XEN_HVM",
	CapAdjustClock:              "KVM_CAP_ADJUST_CLOCK",
	CapInternalErrorData:        "KVM_CAP_INTERNAL_ERROR_DATA",
	CapVCPUEvents:               "KVM_CAP_VCPU_EVENTS",
	CapHyperv:                   "KVM_CAP_HYPERV",
	CapHypervVapic:              "KVM_CAP_HYPERV_VAPIC",
	CapHypervSpin:               "KVM_CAP_HYPERV_SPIN",
	CapPciSegment:               "KVM_CAP_PCI_SEGMENT",
	CapIntrShadow:               "KVM_CAP_INTR_SHADOW",
	CapDebugregs:                "KVM_CAP_DEBUGREGS",
	CapX86RobustSinglestep:      "KVM_CAP_X86_ROBUST_SINGLESTEP",
	CapEnableCap:                "KVM_CAP_ENABLE_CAP",
	CapXsave:                    "KVM_CAP_XSAVE",
	CapXCRs:                     "KVM_CAP_XCRS",
	CapAsyncPf:                  "KVM_CAP_ASYNC_PF",
	CapTSCControl:               "KVM_CAP_TSC_CONTROL",
	CapGetTSCKhz:                "KVM_CAP_GET_TSC_KHZ",
	CapMaxVCPUs:                 "KVM_CAP_MAX_VCPUS",
	CapOneReg:                   "KVM_CAP_ONE_REG",
	CapTSCDeadlineTimer:         "KVM_CAP_TSC_DEADLINE_TIMER",
	CapSyncRegs:                 "KVM_CAP_SYNC_REGS",
	CapPci23:                    "KVM_CAP_PCI_2_3",
	CapKvmclockCtrl:             "KVM_CAP_KVMCLOCK_CTRL",
	CapSignalMSI:                "KVM_CAP_SIGNAL_MSI",
	CapReadonlyMem:              "KVM_CAP_READONLY_MEM",
	CapIRQFDResample:            "KVM_CAP_IRQFD_RESAMPLE",
	CapDeviceCtrl:               "KVM_CAP_DEVICE_CTRL",
	CapExtEmulCPUID:             "KVM_CAP_EXT_EMUL_CPUID",
	CapHypervTime:               "KVM_CAP_HYPERV_TIME",
	CapIOAPICPolarityIgnored:    "KVM_CAP_IOAPIC_POLARITY_IGNORED",
	CapEnableCapVm:              "KVM_CAP_ENABLE_CAP_VM",
	CapIOEventFDNoLength:        "KVM_CAP_IOEVENTFD_NO_LENGTH",
	CapVmAttributes:             "KVM_CAP_VM_ATTRIBUTES",
	CapCheckExtensionVm:         "KVM_CAP_CHECK_EXTENSION_VM",
	CapDisableQuirks:            "KVM_CAP_DISABLE_QUIRKS",
	CapX86SMM:                   "KVM_CAP_X86_SMM",
	CapMultiAddressSpace:        "KVM_CAP_MULTI_ADDRESS_SPACE",
	CapGuestDebugHwBps:          "KVM_CAP_GUEST_DEBUG_HW_BPS",
	CapGuestDebugHwWps:          "KVM_CAP_GUEST_DEBUG_HW_WPS",
	CapSplitIRQChip:             "KVM_CAP_SPLIT_IRQCHIP",
	CapIOEventFDAnyLength:       "KVM_CAP_IOEVENTFD_ANY_LENGTH",
	CapHypervSynic:              "KVM_CAP_HYPERV_SYNIC",
	CapVCPUAttributes:           "KVM_CAP_VCPU_ATTRIBUTES",
	CapMaxVCPUID:                "KVM_CAP_MAX_VCPU_ID",
	CapX2apicApi:                "KVM_CAP_X2APIC_API",
	CapMSIDevid:                 "KVM_CAP_MSI_DEVID",
	CapImmediateExit:            "KVM_CAP_IMMEDIATE_EXIT",
	CapX86DisableExits:          "KVM_CAP_X86_DISABLE_EXITS",
	CapHypervSynic2:             "KVM_CAP_HYPERV_SYNIC2",
	CapHypervVpIndex:            "KVM_CAP_HYPERV_VP_INDEX",
	CapGetMSRFeatures:           "KVM_CAP_GET_MSR_FEATURES",
	CapHypervEventfd:            "KVM_CAP_HYPERV_EVENTFD",
	CapHypervTlbflush:           "KVM_CAP_HYPERV_TLBFLUSH",
	CapNestedState:              "KVM_CAP_NESTED_STATE",
	CapMSRPlatformInfo:          "KVM_CAP_MSR_PLATFORM_INFO",
	CapHypervSendIpi:            "KVM_CAP_HYPERV_SEND_IPI",
	CapCoalescedPio:             "KVM_CAP_COALESCED_PIO",
	CapHypervEnlightenedVmcs:    "KVM_CAP_HYPERV_ENLIGHTENED_VMCS",
	CapExceptionPayload:         "KVM_CAP_EXCEPTION_PAYLOAD",
	CapManualDirtyLogProtect:    "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT",
	CapHypervCPUID:              "KVM_CAP_HYPERV_CPUID",
	CapManualDirtyLogProtect2:   "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2",
	CapPMUEventFilter:           "KVM_CAP_PMU_EVENT_FILTER",
	CapHypervDirectTlbflush:     "KVM_CAP_HYPERV_DIRECT_TLBFLUSH",
	CapHaltPoll:                 "KVM_CAP_HALT_POLL",
	CapAsyncPfInt:               "KVM_CAP_ASYNC_PF_INT",
	CapLastCpu:                  "KVM_CAP_LAST_CPU",
	CapSmallerMaxphyaddr:        "KVM_CAP_SMALLER_MAXPHYADDR",
	CapStealTime:                "KVM_CAP_STEAL_TIME",
	CapX86UserSpaceMSR:          "KVM_CAP_X86_USER_SPACE_MSR",
	CapX86MSRFilter:             "KVM_CAP_X86_MSR_FILTER",
	CapEnforcePvFeatureCPUID:    "KVM_CAP_ENFORCE_PV_FEATURE_CPUID",
	CapSysHypervCPUID:           "KVM_CAP_SYS_HYPERV_CPUID",
	CapDirtyLogRing:             "KVM_CAP_DIRTY_LOG_RING",
	CapX86BusLockExit:           "KVM_CAP_X86_BUS_LOCK_EXIT",
	CapSetGuestDebug2:           "KVM_CAP_SET_GUEST_DEBUG2",
	CapSgxAttribute:             "KVM_CAP_SGX_ATTRIBUTE",
	CapVmCopyEncContextFrom:     "KVM_CAP_VM_COPY_ENC_CONTEXT_FROM",
	CapPtpKvm:                   "KVM_CAP_PTP_KVM",
	CapHypervEnforceCPUID:       "KVM_CAP_HYPERV_ENFORCE_CPUID",
	CapSregs2:                   "KVM_CAP_SREGS2",
	CapExitHypercall:            "KVM_CAP_EXIT_HYPERCALL",
	CapBinaryStatsFd:            "KVM_CAP_BINARY_STATS_FD",
	CapExitOnEmulationFailure:   "KVM_CAP_EXIT_ON_EMULATION_FAILURE",
	CapVmMoveEncContextFrom:     "KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM",
	CapVmGPABits:                "KVM_CAP_VM_GPA_BITS",
	CapXsave2:                   "KVM_CAP_XSAVE2",
	CapSysAttributes:            "KVM_CAP_SYS_ATTRIBUTES",
	CapPMUCapability:            "KVM_CAP_PMU_CAPABILITY",
	CapDisableQuirks2:           "KVM_CAP_DISABLE_QUIRKS2",
	CapVmTSCControl:             "KVM_CAP_VM_TSC_CONTROL",
	CapSystemEventData:          "KVM_CAP_SYSTEM_EVENT_DATA",
	CapX86TripleFaultEvent:      "KVM_CAP_X86_TRIPLE_FAULT_EVENT",
	CapX86NotifyVmexit:          "KVM_CAP_X86_NOTIFY_VMEXIT",
	CapVmDisableNxHugePages:     "KVM_CAP_VM_DISABLE_NX_HUGE_PAGES",
	CapDirtyLogRingAcqRel:       "KVM_CAP_DIRTY_LOG_RING_ACQ_REL",
}

// String returns the capability's KVM_CAP_ name, or its number if unnamed here.
func (c Cap) String() string { return nameOf(capNames, c, "KVM_CAP_") }

// nameOf returns v's name from names, or prefix and v's number for values this
// package does not name (a newer kernel's capability or exit reason).
func nameOf[T ~uint32](names map[T]string, v T, prefix string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprintf("%s%d", prefix, uint32(v))
}

// CapValue is a capability and what KVM_CHECK_EXTENSION answered for it.
type CapValue struct {
	Cap   Cap
	Value int
}

// CapByName looks a capability up by its KVM_CAP_ name (with or without the prefix).
func CapByName(name string) (Cap, bool) {
	for c, n := range capNames {
		if n == name || n == "KVM_CAP_"+name {
			return c, true
		}
	}
	return 0, false
}
