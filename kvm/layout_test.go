package kvm

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"unsafe"

	"ember/internal/cheader"
	"ember/kvm/kvmcap"
)

// TestLayoutMatchesKernelHeaders compiles a C program against the host's
// <linux/kvm.h>, has it print the size and field offsets of every struct this
// package mirrors, every ioctl request number and every constant it names, and
// compares them with the Go side.
func TestLayoutMatchesKernelHeaders(t *testing.T) {
	checks := layoutChecks()
	got := cValues(t, checks)
	for _, c := range checks {
		v, ok := got[c.expr]
		if !ok {
			t.Errorf("%s: the C program printed nothing", c.expr)
			continue
		}
		if v != c.goValue {
			t.Errorf("%s = %d (%#x) in C, %d (%#x) in Go", c.expr, v, v, c.goValue, c.goValue)
		}
	}
	t.Logf("compared %d sizes, offsets and constants", len(checks))
}

// A layoutCheck is one C expression and the value the Go side says it has.
type layoutCheck struct {
	expr    string
	goValue uint64
}

// fieldChecks checks the size of struct cName and the offset of each named Go
// field against the C field of the same position in cFields. Go's blank
// padding fields are skipped; cFields lists the C fields that are not padding.
func fieldChecks(cName string, v any, cFields string) []layoutCheck {
	typ := reflect.TypeOf(v)
	out := []layoutCheck{{fmt.Sprintf("sizeof(struct %s)", cName), uint64(typ.Size())}}
	names := strings.Fields(cFields)
	var i int
	for f := range typ.Fields() {
		if f.Name == "_" {
			continue
		}
		if i >= len(names) {
			panic(fmt.Sprintf("%s: Go field %s has no C name", cName, f.Name))
		}
		out = append(out, layoutCheck{fmt.Sprintf("offsetof(struct %s, %s)", cName, names[i]), uint64(f.Offset)})
		i++
	}
	if i != len(names) {
		panic(fmt.Sprintf("%s: %d Go fields for %d C fields", cName, i, len(names)))
	}
	return out
}

func layoutChecks() []layoutCheck {
	var checks []layoutCheck
	add := func(cs ...layoutCheck) { checks = append(checks, cs...) }

	add(fieldChecks("kvm_regs", Regs{}, "rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip rflags")...)
	add(fieldChecks("kvm_segment", Segment{}, "base limit selector type present dpl db s l g avl unusable")...)
	add(fieldChecks("kvm_dtable", DTable{}, "base limit")...)
	add(fieldChecks("kvm_sregs", SRegs{}, "cs ds es fs gs ss tr ldt gdt idt cr0 cr2 cr3 cr4 cr8 efer apic_base interrupt_bitmap")...)
	add(fieldChecks("kvm_fpu", FPU{}, "fpr fcw fsw ftwx last_opcode last_ip last_dp xmm mxcsr")...)
	add(fieldChecks("kvm_xsave", XSave{}, "region")...)
	add(fieldChecks("kvm_xcr", XCR{}, "xcr value")...)
	add(fieldChecks("kvm_xcrs", XCRs{}, "nr_xcrs flags xcrs")...)
	add(fieldChecks("kvm_lapic_state", LAPICState{}, "regs")...)
	add(fieldChecks("kvm_vcpu_events", VCPUEvents{},
		"exception interrupt nmi sipi_vector flags smi triple_fault exception_has_payload exception_payload")...)
	var ev VCPUEvents
	add(
		layoutCheck{"offsetof(struct kvm_vcpu_events, exception.pending)", uint64(unsafe.Offsetof(ev.Exception) + unsafe.Offsetof(ev.Exception.Pending))},
		layoutCheck{"offsetof(struct kvm_vcpu_events, exception.error_code)", uint64(unsafe.Offsetof(ev.Exception) + unsafe.Offsetof(ev.Exception.ErrorCode))},
		layoutCheck{"offsetof(struct kvm_vcpu_events, interrupt.shadow)", uint64(unsafe.Offsetof(ev.Interrupt) + unsafe.Offsetof(ev.Interrupt.Shadow))},
		layoutCheck{"offsetof(struct kvm_vcpu_events, nmi.masked)", uint64(unsafe.Offsetof(ev.NMI) + unsafe.Offsetof(ev.NMI.Masked))},
		layoutCheck{"offsetof(struct kvm_vcpu_events, smi.latched_init)", uint64(unsafe.Offsetof(ev.SMI) + unsafe.Offsetof(ev.SMI.LatchedInit))},
	)
	add(fieldChecks("kvm_guest_debug", GuestDebug{}, "control arch.debugreg")...)
	add(fieldChecks("kvm_translation", Translation{}, "linear_address physical_address valid writeable usermode")...)
	add(fieldChecks("kvm_sync_regs", SyncRegs{}, "regs sregs events")...)
	add(fieldChecks("kvm_cpuid_entry2", CPUIDEntry{}, "function index flags eax ebx ecx edx padding")...)
	add(layoutCheck{"offsetof(struct kvm_cpuid2, entries)", cpuidHeaderSize})
	add(fieldChecks("kvm_msr_entry", MSREntry{}, "index data")...)
	add(layoutCheck{"offsetof(struct kvm_msrs, entries)", 8})
	add(fieldChecks("kvm_userspace_memory_region", userspaceMemoryRegion{}, "slot flags guest_phys_addr memory_size userspace_addr")...)
	add(fieldChecks("kvm_dirty_log", dirtyLog{}, "slot dirty_bitmap")...)
	add(fieldChecks("kvm_irq_level", irqLevel{}, "irq level")...)
	add(fieldChecks("kvm_irqchip", IRQChip{}, "chip_id chip")...)
	add(
		layoutCheck{"sizeof(struct kvm_pic_state)", 16},
		layoutCheck{"offsetof(struct kvm_pic_state, irr)", picIRR},
		layoutCheck{"offsetof(struct kvm_pic_state, imr)", picIMR},
		layoutCheck{"sizeof(struct kvm_ioapic_state)", 216},
		layoutCheck{"offsetof(struct kvm_ioapic_state, redirtbl)", ioapicRedirTbl},
		layoutCheck{"sizeof(((struct kvm_ioapic_state *)0)->redirtbl[0])", ioapicRedirSize},
	)
	add(fieldChecks("kvm_pit_config", PITConfig{}, "flags")...)
	add(fieldChecks("kvm_pit_channel_state", PITChannelState{},
		"count latched_count count_latched status_latched status read_state write_state write_latch rw_mode mode bcd gate count_load_time")...)
	add(fieldChecks("kvm_pit_state2", PITState2{}, "channels flags")...)
	add(fieldChecks("kvm_irq_routing_entry", IRQRoutingEntry{}, "gsi type flags u")...)
	add(
		layoutCheck{"offsetof(struct kvm_irq_routing, entries)", 8},
		// IRQChipRoute and MSIRoute fill U as these unions are laid out.
		layoutCheck{"offsetof(struct kvm_irq_routing_entry, u.irqchip.pin) - offsetof(struct kvm_irq_routing_entry, u)", 4},
		layoutCheck{"offsetof(struct kvm_irq_routing_entry, u.msi.address_hi) - offsetof(struct kvm_irq_routing_entry, u)", 4},
		layoutCheck{"offsetof(struct kvm_irq_routing_entry, u.msi.data) - offsetof(struct kvm_irq_routing_entry, u)", 8},
		layoutCheck{"offsetof(struct kvm_irq_routing_entry, u.hv_sint.sint) - offsetof(struct kvm_irq_routing_entry, u)", 4},
	)
	add(fieldChecks("kvm_msi", MSI{}, "address_lo address_hi data flags devid")...)
	add(fieldChecks("kvm_ioeventfd", IOEventFD{}, "datamatch addr len fd flags")...)
	add(fieldChecks("kvm_irqfd", IRQFD{}, "fd gsi flags resamplefd")...)
	add(fieldChecks("kvm_enable_cap", EnableCap{}, "cap flags args")...)
	add(fieldChecks("kvm_clock_data", ClockData{}, "clock flags realtime host_tsc")...)
	add(fieldChecks("kvm_run", runStruct{},
		"request_interrupt_window immediate_exit exit_reason ready_for_interrupt_injection if_flag flags cr8 apic_base hw kvm_valid_regs kvm_dirty_regs s")...)
	add(
		layoutCheck{"offsetof(struct kvm_run, s.regs)", uint64(unsafe.Offsetof(runStruct{}.S))},
		layoutCheck{"sizeof(((struct kvm_run *)0)->s)", uint64(unsafe.Sizeof(runStruct{}.S))},
		layoutCheck{"offsetof(struct kvm_run, kvm_valid_regs) - offsetof(struct kvm_run, hw)", uint64(unsafe.Sizeof(runStruct{}.Exit))},
		layoutCheck{"sizeof(struct kvm_signal_mask)", 4},
		layoutCheck{"sizeof(struct kvm_mp_state)", uint64(unsafe.Sizeof(MPState(0)))},
	)

	// The exit union: the offsets exits.go decodes, relative to the union.
	for _, f := range []struct {
		field string
		off   uint64
	}{
		{"io.direction", 0}, {"io.size", 1}, {"io.port", 2}, {"io.count", 4}, {"io.data_offset", 8},
		{"mmio.phys_addr", 0}, {"mmio.data", 8}, {"mmio.len", 16}, {"mmio.is_write", 20},
		{"internal.suberror", 0}, {"internal.ndata", 4}, {"internal.data", 8},
		{"system_event.type", 0}, {"system_event.ndata", 4}, {"system_event.data", 8},
		{"msr.error", 0}, {"msr.reason", 8}, {"msr.index", 12}, {"msr.data", 16},
		{"fail_entry.hardware_entry_failure_reason", 0}, {"fail_entry.cpu", 8},
		{"debug.arch.exception", 0}, {"debug.arch.pc", 8}, {"debug.arch.dr6", 16}, {"debug.arch.dr7", 24},
		{"hw.hardware_exit_reason", 0},
		{"ex.exception", 0}, {"ex.error_code", 4},
		{"hyperv.type", 0}, {"hyperv.u.synic.msr", 8}, {"hyperv.u.synic.control", 16},
		{"hyperv.u.synic.evt_page", 24}, {"hyperv.u.synic.msg_page", 32},
		{"hyperv.u.hcall.input", 8}, {"hyperv.u.hcall.result", 16}, {"hyperv.u.hcall.params", 24},
	} {
		add(layoutCheck{fmt.Sprintf("offsetof(struct kvm_run, %s) - offsetof(struct kvm_run, hw)", f.field), f.off})
	}
	add(
		layoutCheck{"sizeof(((struct kvm_run *)0)->mmio.data)", 8},          // MMIO clamps Len to 8
		layoutCheck{"sizeof(((struct kvm_run *)0)->internal.data) / 8", 16}, // data64 clamps ndata to 16
		layoutCheck{"sizeof(((struct kvm_run *)0)->system_event.data) / 8", 16},
	)

	// Every ioctl request number.
	for name, req := range map[string]uintptr{
		"KVM_GET_API_VERSION":            kvmGetAPIVersion,
		"KVM_CREATE_VM":                  kvmCreateVM,
		"KVM_GET_MSR_INDEX_LIST":         kvmGetMSRIndexList,
		"KVM_CHECK_EXTENSION":            kvmCheckExtension,
		"KVM_GET_VCPU_MMAP_SIZE":         kvmGetVCPUMmapSize,
		"KVM_GET_SUPPORTED_CPUID":        kvmGetSupportedCPUID,
		"KVM_GET_EMULATED_CPUID":         kvmGetEmulatedCPUID,
		"KVM_GET_SUPPORTED_HV_CPUID":     kvmGetSupportedHVCPUID,
		"KVM_GET_MSR_FEATURE_INDEX_LIST": kvmGetMSRFeatureIndexList,
		"KVM_CREATE_VCPU":                kvmCreateVCPU,
		"KVM_GET_DIRTY_LOG":              kvmGetDirtyLog,
		"KVM_SET_USER_MEMORY_REGION":     kvmSetUserMemoryRegion,
		"KVM_SET_TSS_ADDR":               kvmSetTSSAddr,
		"KVM_SET_IDENTITY_MAP_ADDR":      kvmSetIdentityMapAddr,
		"KVM_CREATE_IRQCHIP":             kvmCreateIRQChip,
		"KVM_IRQ_LINE":                   kvmIRQLine,
		"KVM_GET_IRQCHIP":                kvmGetIRQChip,
		"KVM_SET_IRQCHIP":                kvmSetIRQChip,
		"KVM_IRQ_LINE_STATUS":            kvmIRQLineStatus,
		"KVM_SET_GSI_ROUTING":            kvmSetGSIRouting,
		"KVM_IRQFD":                      kvmIRQFD,
		"KVM_CREATE_PIT2":                kvmCreatePIT2,
		"KVM_SET_BOOT_CPU_ID":            kvmSetBootCPUID,
		"KVM_IOEVENTFD":                  kvmIOEventFD,
		"KVM_SET_CLOCK":                  kvmSetClock,
		"KVM_GET_CLOCK":                  kvmGetClock,
		"KVM_GET_PIT2":                   kvmGetPIT2,
		"KVM_SET_PIT2":                   kvmSetPIT2,
		"KVM_ENABLE_CAP":                 kvmEnableCap,
		"KVM_SIGNAL_MSI":                 kvmSignalMSI,
		"KVM_RUN":                        kvmRun,
		"KVM_GET_REGS":                   kvmGetRegs,
		"KVM_SET_REGS":                   kvmSetRegs,
		"KVM_GET_SREGS":                  kvmGetSRegs,
		"KVM_SET_SREGS":                  kvmSetSRegs,
		"KVM_TRANSLATE":                  kvmTranslate,
		"KVM_INTERRUPT":                  kvmInterrupt,
		"KVM_GET_MSRS":                   kvmGetMSRs,
		"KVM_SET_MSRS":                   kvmSetMSRs,
		"KVM_SET_SIGNAL_MASK":            kvmSetSignalMask,
		"KVM_GET_FPU":                    kvmGetFPU,
		"KVM_SET_FPU":                    kvmSetFPU,
		"KVM_GET_LAPIC":                  kvmGetLAPIC,
		"KVM_SET_LAPIC":                  kvmSetLAPIC,
		"KVM_SET_CPUID2":                 kvmSetCPUID2,
		"KVM_GET_CPUID2":                 kvmGetCPUID2,
		"KVM_GET_MP_STATE":               kvmGetMPState,
		"KVM_SET_MP_STATE":               kvmSetMPState,
		"KVM_SET_GUEST_DEBUG":            kvmSetGuestDebug,
		"KVM_GET_VCPU_EVENTS":            kvmGetVCPUEvents,
		"KVM_SET_VCPU_EVENTS":            kvmSetVCPUEvents,
		"KVM_GET_XSAVE":                  kvmGetXSave,
		"KVM_SET_XSAVE":                  kvmSetXSave,
		"KVM_GET_XCRS":                   kvmGetXCRs,
		"KVM_SET_XCRS":                   kvmSetXCRs,
		"KVM_GET_TSC_KHZ":                kvmGetTSCKHz,
		"KVM_KVMCLOCK_CTRL":              kvmKVMClockCtrl,
	} {
		add(layoutCheck{name, uint64(req)})
	}
	// The VM and vCPU forms of KVM_CHECK_EXTENSION and KVM_ENABLE_CAP are the
	// same request numbers on other descriptors.
	add(layoutCheck{"KVM_CHECK_EXTENSION + 0*1", uint64(kvmCheckExtensionVM)})
	add(layoutCheck{"KVM_ENABLE_CAP + 0*1", uint64(kvmEnableCapVCPU)})

	for _, c := range kvmcap.All() {
		add(layoutCheck{c.String(), uint64(c)})
	}
	for r, name := range exitNames {
		add(layoutCheck{name, uint64(r)})
	}
	for name, v := range map[string]uint64{
		"KVM_API_VERSION":                           APIVersion,
		"KVM_MEM_LOG_DIRTY_PAGES":                   MemLogDirtyPages,
		"KVM_MEM_READONLY":                          MemReadonly,
		"KVM_IRQCHIP_PIC_MASTER":                    IRQChipPICMaster,
		"KVM_IRQCHIP_PIC_SLAVE":                     IRQChipPICSlave,
		"KVM_IRQCHIP_IOAPIC":                        IRQChipIOAPIC,
		"KVM_PIT_SPEAKER_DUMMY":                     PITSpeakerDummy,
		"KVM_IRQ_ROUTING_IRQCHIP":                   IRQRoutingIRQChip,
		"KVM_IRQ_ROUTING_MSI":                       IRQRoutingMSI,
		"KVM_IRQ_ROUTING_HV_SINT":                   IRQRoutingHvSint,
		"KVM_MSI_VALID_DEVID":                       MSIValidDevID,
		"KVM_IOEVENTFD_FLAG_DATAMATCH":              IOEventFDDataMatch,
		"KVM_IOEVENTFD_FLAG_PIO":                    IOEventFDPIO,
		"KVM_IOEVENTFD_FLAG_DEASSIGN":               IOEventFDDeassign,
		"KVM_IRQFD_FLAG_DEASSIGN":                   IRQFDDeassign,
		"KVM_IRQFD_FLAG_RESAMPLE":                   IRQFDResample,
		"KVM_CPUID_FLAG_SIGNIFCANT_INDEX":           CPUIDFlagSignificantIndex, // sic, as kvm.h spells it
		"KVM_VCPUEVENT_VALID_NMI_PENDING":           VCPUEventValidNMIPending,
		"KVM_VCPUEVENT_VALID_SIPI_VECTOR":           VCPUEventValidSIPIVector,
		"KVM_VCPUEVENT_VALID_SHADOW":                VCPUEventValidShadow,
		"KVM_VCPUEVENT_VALID_SMM":                   VCPUEventValidSMM,
		"KVM_VCPUEVENT_VALID_PAYLOAD":               VCPUEventValidPayload,
		"KVM_VCPUEVENT_VALID_TRIPLE_FAULT":          VCPUEventValidTripleFault,
		"KVM_MP_STATE_RUNNABLE":                     uint64(MPStateRunnable),
		"KVM_MP_STATE_UNINITIALIZED":                uint64(MPStateUninitialized),
		"KVM_MP_STATE_INIT_RECEIVED":                uint64(MPStateInitReceived),
		"KVM_MP_STATE_HALTED":                       uint64(MPStateHalted),
		"KVM_MP_STATE_SIPI_RECEIVED":                uint64(MPStateSIPIReceived),
		"KVM_GUESTDBG_ENABLE":                       GuestDebugEnable,
		"KVM_GUESTDBG_SINGLESTEP":                   GuestDebugSingleStep,
		"KVM_GUESTDBG_USE_SW_BP":                    GuestDebugUseSWBP,
		"KVM_GUESTDBG_USE_HW_BP":                    GuestDebugUseHWBP,
		"KVM_GUESTDBG_INJECT_DB":                    GuestDebugInjectDB,
		"KVM_GUESTDBG_INJECT_BP":                    GuestDebugInjectBP,
		"KVM_GUESTDBG_BLOCKIRQ":                     GuestDebugBlockIRQ,
		"KVM_SYNC_X86_REGS":                         SyncRegsGPRs,
		"KVM_SYNC_X86_SREGS":                        SyncRegsSRegs,
		"KVM_SYNC_X86_EVENTS":                       SyncRegsEvents,
		"KVM_EXIT_IO_IN":                            IOIn,
		"KVM_EXIT_IO_OUT":                           IOOut,
		"KVM_INTERNAL_ERROR_EMULATION":              InternalErrorEmulation,
		"KVM_INTERNAL_ERROR_SIMUL_EX":               InternalErrorSimulEx,
		"KVM_INTERNAL_ERROR_DELIVERY_EV":            InternalErrorDeliveryEv,
		"KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON": InternalErrorUnexpectedExitReason,
		"KVM_SYSTEM_EVENT_SHUTDOWN":                 SystemEventShutdown,
		"KVM_SYSTEM_EVENT_RESET":                    SystemEventReset,
		"KVM_EXIT_HYPERV_SYNIC":                     HypervSynIC,
		"KVM_EXIT_HYPERV_HCALL":                     HypervHcall,
		"KVM_EXIT_HYPERV_SYNDBG":                    HypervSynDbg,
		"KVM_SYSTEM_EVENT_CRASH":                    SystemEventCrash,
		"KVM_SYSTEM_EVENT_WAKEUP":                   SystemEventWakeup,
		"KVM_SYSTEM_EVENT_SUSPEND":                  SystemEventSuspend,
		"KVM_MSR_EXIT_REASON_INVAL":                 MSRExitReasonInval,
		"KVM_MSR_EXIT_REASON_UNKNOWN":               MSRExitReasonUnknown,
		"KVM_MSR_EXIT_REASON_FILTER":                MSRExitReasonFilter,
		"KVM_MAX_XCRS":                              uint64(len(XCRs{}.XCRs)),
		"(KVM_NR_INTERRUPTS + 63) / 64":             uint64(len(SRegs{}.InterruptBitmap)),
	} {
		add(layoutCheck{name, v})
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i].expr < checks[j].expr })
	return checks
}

// cValues returns the C values of checks' expressions (cheader.Values).
func cValues(t *testing.T, checks []layoutCheck) map[string]uint64 {
	exprs := make([]string, len(checks))
	for i, c := range checks {
		exprs[i] = c.expr
	}
	return cheader.Values(t, "linux/kvm.h", exprs)
}
