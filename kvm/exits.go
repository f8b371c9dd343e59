package kvm

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"ember/internal/enumname"
)

// ExitReason is kvm_run.exit_reason: why KVM_RUN returned (KVM_EXIT_*).
type ExitReason uint32

// Exit reasons, numbered as in include/uapi/linux/kvm.h.
const (
	ExitUnknown       ExitReason = 0  // KVM_EXIT_UNKNOWN
	ExitException     ExitReason = 1  // KVM_EXIT_EXCEPTION
	ExitIO            ExitReason = 2  // KVM_EXIT_IO
	ExitHypercall     ExitReason = 3  // KVM_EXIT_HYPERCALL
	ExitDebug         ExitReason = 4  // KVM_EXIT_DEBUG
	ExitHLT           ExitReason = 5  // KVM_EXIT_HLT
	ExitMMIO          ExitReason = 6  // KVM_EXIT_MMIO
	ExitIRQWindowOpen ExitReason = 7  // KVM_EXIT_IRQ_WINDOW_OPEN
	ExitShutdown      ExitReason = 8  // KVM_EXIT_SHUTDOWN
	ExitFailEntry     ExitReason = 9  // KVM_EXIT_FAIL_ENTRY
	ExitIntr          ExitReason = 10 // KVM_EXIT_INTR
	ExitSetTPR        ExitReason = 11 // KVM_EXIT_SET_TPR
	ExitTPRAccess     ExitReason = 12 // KVM_EXIT_TPR_ACCESS
	ExitS390Sieic     ExitReason = 13 // KVM_EXIT_S390_SIEIC
	ExitS390Reset     ExitReason = 14 // KVM_EXIT_S390_RESET
	ExitDcr           ExitReason = 15 // KVM_EXIT_DCR
	ExitNMI           ExitReason = 16 // KVM_EXIT_NMI
	ExitInternalError ExitReason = 17 // KVM_EXIT_INTERNAL_ERROR
	ExitOsi           ExitReason = 18 // KVM_EXIT_OSI
	ExitPaprHcall     ExitReason = 19 // KVM_EXIT_PAPR_HCALL
	ExitS390Ucontrol  ExitReason = 20 // KVM_EXIT_S390_UCONTROL
	ExitWatchdog      ExitReason = 21 // KVM_EXIT_WATCHDOG
	ExitS390Tsch      ExitReason = 22 // KVM_EXIT_S390_TSCH
	ExitEpr           ExitReason = 23 // KVM_EXIT_EPR
	ExitSystemEvent   ExitReason = 24 // KVM_EXIT_SYSTEM_EVENT
	ExitS390Stsi      ExitReason = 25 // KVM_EXIT_S390_STSI
	ExitIOAPICEOI     ExitReason = 26 // KVM_EXIT_IOAPIC_EOI
	ExitHyperv        ExitReason = 27 // KVM_EXIT_HYPERV
	ExitArmNisv       ExitReason = 28 // KVM_EXIT_ARM_NISV
	ExitX86RDMSR      ExitReason = 29 // KVM_EXIT_X86_RDMSR
	ExitX86WRMSR      ExitReason = 30 // KVM_EXIT_X86_WRMSR
	ExitDirtyRingFull ExitReason = 31 // KVM_EXIT_DIRTY_RING_FULL
	ExitApResetHold   ExitReason = 32 // KVM_EXIT_AP_RESET_HOLD
	ExitX86BusLock    ExitReason = 33 // KVM_EXIT_X86_BUS_LOCK
	ExitXen           ExitReason = 34 // KVM_EXIT_XEN
	ExitRiscvSbi      ExitReason = 35 // KVM_EXIT_RISCV_SBI
	ExitRiscvCsr      ExitReason = 36 // KVM_EXIT_RISCV_CSR
	ExitNotify        ExitReason = 37 // KVM_EXIT_NOTIFY
)

var exitNames = map[ExitReason]string{
	ExitUnknown:       "KVM_EXIT_UNKNOWN",
	ExitException:     "KVM_EXIT_EXCEPTION",
	ExitIO:            "KVM_EXIT_IO",
	ExitHypercall:     "KVM_EXIT_HYPERCALL",
	ExitDebug:         "KVM_EXIT_DEBUG",
	ExitHLT:           "KVM_EXIT_HLT",
	ExitMMIO:          "KVM_EXIT_MMIO",
	ExitIRQWindowOpen: "KVM_EXIT_IRQ_WINDOW_OPEN",
	ExitShutdown:      "KVM_EXIT_SHUTDOWN",
	ExitFailEntry:     "KVM_EXIT_FAIL_ENTRY",
	ExitIntr:          "KVM_EXIT_INTR",
	ExitSetTPR:        "KVM_EXIT_SET_TPR",
	ExitTPRAccess:     "KVM_EXIT_TPR_ACCESS",
	ExitS390Sieic:     "KVM_EXIT_S390_SIEIC",
	ExitS390Reset:     "KVM_EXIT_S390_RESET",
	ExitDcr:           "KVM_EXIT_DCR",
	ExitNMI:           "KVM_EXIT_NMI",
	ExitInternalError: "KVM_EXIT_INTERNAL_ERROR",
	ExitOsi:           "KVM_EXIT_OSI",
	ExitPaprHcall:     "KVM_EXIT_PAPR_HCALL",
	ExitS390Ucontrol:  "KVM_EXIT_S390_UCONTROL",
	ExitWatchdog:      "KVM_EXIT_WATCHDOG",
	ExitS390Tsch:      "KVM_EXIT_S390_TSCH",
	ExitEpr:           "KVM_EXIT_EPR",
	ExitSystemEvent:   "KVM_EXIT_SYSTEM_EVENT",
	ExitS390Stsi:      "KVM_EXIT_S390_STSI",
	ExitIOAPICEOI:     "KVM_EXIT_IOAPIC_EOI",
	ExitHyperv:        "KVM_EXIT_HYPERV",
	ExitArmNisv:       "KVM_EXIT_ARM_NISV",
	ExitX86RDMSR:      "KVM_EXIT_X86_RDMSR",
	ExitX86WRMSR:      "KVM_EXIT_X86_WRMSR",
	ExitDirtyRingFull: "KVM_EXIT_DIRTY_RING_FULL",
	ExitApResetHold:   "KVM_EXIT_AP_RESET_HOLD",
	ExitX86BusLock:    "KVM_EXIT_X86_BUS_LOCK",
	ExitXen:           "KVM_EXIT_XEN",
	ExitRiscvSbi:      "KVM_EXIT_RISCV_SBI",
	ExitRiscvCsr:      "KVM_EXIT_RISCV_CSR",
	ExitNotify:        "KVM_EXIT_NOTIFY",
}

// String returns the exit reason's KVM_EXIT_ name.
func (r ExitReason) String() string { return enumname.Of(exitNames, r, "KVM_EXIT_") }

// Exit is one return from KVM_RUN. Its accessors decode the exit-reason union
// of kvm_run for the reason at hand; they read the shared page, so an Exit is
// valid only until the vCPU runs again.
type Exit struct {
	Reason ExitReason
	c      *VCPU
}

func (e Exit) union() []byte { return e.c.run.Exit[:] }

func (e Exit) u32(off int) uint32 { return binary.LittleEndian.Uint32(e.union()[off:]) }
func (e Exit) u64(off int) uint64 { return binary.LittleEndian.Uint64(e.union()[off:]) }

// IO direction values of IOExit.Direction.
const (
	IOIn  = 0 // KVM_EXIT_IO_IN: the guest reads; the VMM fills Data
	IOOut = 1 // KVM_EXIT_IO_OUT: the guest wrote Data
)

// IOExit is the io member of the union: a port access, possibly a string
// instruction (Count > 1). Data is the kvm_run data area for all Count
// accesses, Size bytes each: read it for OUT, fill it for IN before the next Run.
type IOExit struct {
	Direction uint8
	Size      uint8
	Port      uint16
	Count     uint32
	Data      []byte
}

// IO decodes an ExitIO. The data area is bounds-checked against the mapped
// kvm_run region; a malformed exit yields an empty Data rather than a bad slice.
func (e Exit) IO() IOExit {
	u := e.union()
	x := IOExit{
		Direction: u[0],
		Size:      u[1],
		Port:      binary.LittleEndian.Uint16(u[2:]),
		Count:     e.u32(4),
	}
	off, n := e.u64(8), uint64(x.Size)*uint64(x.Count)
	if off < uint64(unsafe.Sizeof(runStruct{})) || off > uint64(len(e.c.mem)) || n > uint64(len(e.c.mem))-off {
		return x
	}
	x.Data = e.c.mem[off : off+n]
	return x
}

// MMIOExit is the mmio member of the union: a guest access to an address no
// memory slot backs. Data has Len bytes: read it for a write, fill it for a read.
type MMIOExit struct {
	PhysAddr uint64
	Data     []byte
	IsWrite  bool
}

// MMIO decodes an ExitMMIO.
func (e Exit) MMIO() MMIOExit {
	u := e.union()
	n := min(e.u32(16), 8)
	return MMIOExit{PhysAddr: e.u64(0), Data: u[8 : 8+n], IsWrite: u[20] != 0}
}

// FailEntry is the fail_entry member: the hardware refused to enter the guest.
type FailEntry struct {
	HardwareEntryFailureReason uint64
	CPU                        uint32
}

// FailEntry decodes an ExitFailEntry.
func (e Exit) FailEntry() FailEntry {
	return FailEntry{HardwareEntryFailureReason: e.u64(0), CPU: e.u32(8)}
}

// HardwareExitReason decodes an ExitUnknown: the hardware's own exit reason.
func (e Exit) HardwareExitReason() uint64 { return e.u64(0) }

// Internal error suberrors (KVM_INTERNAL_ERROR_*).
const (
	InternalErrorEmulation            = 1
	InternalErrorSimulEx              = 2
	InternalErrorDeliveryEv           = 3
	InternalErrorUnexpectedExitReason = 4
)

// InternalError is the internal member: KVM could not handle something itself,
// typically an instruction its emulator lacks.
type InternalError struct {
	Suberror uint32
	Data     []uint64
}

// InternalError decodes an ExitInternalError.
func (e Exit) InternalError() InternalError {
	return InternalError{Suberror: e.u32(0), Data: e.data64(4, 8)}
}

func (e Exit) data64(countOff, dataOff int) []uint64 {
	n := min(int(e.u32(countOff)), 16)
	d := make([]uint64, n)
	for i := range d {
		d[i] = e.u64(dataOff + 8*i)
	}
	return d
}

func (ie InternalError) String() string {
	names := map[uint32]string{
		InternalErrorEmulation:            "emulation failure",
		InternalErrorSimulEx:              "exception while delivering an exception",
		InternalErrorDeliveryEv:           "exit while delivering an event",
		InternalErrorUnexpectedExitReason: "unexpected hardware exit",
	}
	n, ok := names[ie.Suberror]
	if !ok {
		n = fmt.Sprintf("suberror %d", ie.Suberror)
	}
	return fmt.Sprintf("%s, data %#x", n, ie.Data)
}

// System event types (KVM_SYSTEM_EVENT_*).
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
	SystemEventWakeup   = 4
	SystemEventSuspend  = 5
)

// SystemEvent is the system_event member: the guest asked for a shutdown,
// reset or the like through an interface KVM handles (e.g. PSCI, or a triple
// fault with KVM_CAP_X86_TRIPLE_FAULT_EVENT).
type SystemEvent struct {
	Type uint32
	Data []uint64
}

// SystemEvent decodes an ExitSystemEvent.
func (e Exit) SystemEvent() SystemEvent {
	return SystemEvent{Type: e.u32(0), Data: e.data64(4, 8)}
}

// DebugExit is the debug member for x86: a single step or breakpoint.
type DebugExit struct {
	Exception uint32
	PC        uint64
	DR6, DR7  uint64
}

// Debug decodes an ExitDebug.
func (e Exit) Debug() DebugExit {
	return DebugExit{Exception: e.u32(0), PC: e.u64(8), DR6: e.u64(16), DR7: e.u64(24)}
}

// Reasons of an MSR exit (KVM_MSR_EXIT_REASON_*).
const (
	MSRExitReasonInval   = 1 << 0
	MSRExitReasonUnknown = 1 << 1
	MSRExitReasonFilter  = 1 << 2
)

// MSRExit is the msr member: a guest RDMSR/WRMSR KVM forwarded to user space
// (KVM_CAP_X86_USER_SPACE_MSR).
type MSRExit struct {
	Reason uint32
	Index  uint32
	Data   uint64
}

// MSR decodes an ExitX86RDMSR or ExitX86WRMSR.
func (e Exit) MSR() MSRExit {
	return MSRExit{Reason: e.u32(8), Index: e.u32(12), Data: e.u64(16)}
}

// SetMSRResult answers an MSR exit: the value for a RDMSR, and whether the
// access fails (KVM then injects #GP into the guest).
func (e Exit) SetMSRResult(data uint64, fail bool) {
	u := e.union()
	u[0] = uint8(b2u(fail))
	binary.LittleEndian.PutUint64(u[16:], data)
}

// MemoryFault is the memory_fault member: KVM could not resolve a guest access
// to private or otherwise unusable memory.
type MemoryFault struct {
	Flags, GPA, Size uint64
}

// MemoryFault decodes an ExitMemoryFault.
func (e Exit) MemoryFault() MemoryFault {
	return MemoryFault{Flags: e.u64(0), GPA: e.u64(8), Size: e.u64(16)}
}

// Exception decodes an ExitException: the vector and error code.
func (e Exit) Exception() (vector, errorCode uint32) { return e.u32(0), e.u32(4) }

// String describes the exit in one line, for logs and errors.
func (e Exit) String() string {
	switch e.Reason {
	case ExitIO:
		io := e.IO()
		dir := "in"
		if io.Direction == IOOut {
			dir = "out"
		}
		return fmt.Sprintf("%v %s port %#x size %d count %d", e.Reason, dir, io.Port, io.Size, io.Count)
	case ExitMMIO:
		m := e.MMIO()
		return fmt.Sprintf("%v addr %#x len %d write %v", e.Reason, m.PhysAddr, len(m.Data), m.IsWrite)
	case ExitFailEntry:
		f := e.FailEntry()
		return fmt.Sprintf("%v reason %#x cpu %d", e.Reason, f.HardwareEntryFailureReason, f.CPU)
	case ExitInternalError:
		return fmt.Sprintf("%v: %v", e.Reason, e.InternalError())
	case ExitSystemEvent:
		s := e.SystemEvent()
		return fmt.Sprintf("%v type %d data %#x", e.Reason, s.Type, s.Data)
	case ExitUnknown:
		return fmt.Sprintf("%v hardware reason %#x", e.Reason, e.HardwareExitReason())
	}
	return e.Reason.String()
}

// Kinds of an ExitHyperv (KVM_EXIT_HYPERV_*).
const (
	HypervSynIC  = 1 // the guest wrote a SynIC MSR (SCONTROL, SIEFP, SIMP): informational
	HypervHcall  = 2 // a Hyper-V hypercall KVM leaves to userspace: set its result
	HypervSynDbg = 3 // the guest wrote a synthetic debugger MSR: informational
)

// HypervExit is the hyperv member (struct kvm_hyperv_exit): a guest's use of
// a Hyper-V enlightenment that KVM reports to userspace.
type HypervExit struct {
	Type uint32
	// MSR, Control, EventPage and MessagePage describe a HypervSynIC exit.
	MSR                             uint32
	Control, EventPage, MessagePage uint64
	// Input and Params describe a HypervHcall exit (the same bytes as the
	// SynIC fields: input where control is).
	Input  uint64
	Params [2]uint64
}

// Hyperv decodes an ExitHyperv.
func (e Exit) Hyperv() HypervExit {
	return HypervExit{
		Type: e.u32(0), MSR: e.u32(8), Control: e.u64(16), EventPage: e.u64(24), MessagePage: e.u64(32),
		Input: e.u64(8), Params: [2]uint64{e.u64(24), e.u64(32)},
	}
}

// SetHypervResult sets a HypervHcall exit's result, which the guest gets in
// RAX when the vCPU runs again.
func (e Exit) SetHypervResult(r uint64) { binary.LittleEndian.PutUint64(e.union()[16:], r) }
