// Package report renders what KVM holds of a VM's state (vCPU registers and
// pending events, LAPICs, the PICs and the IOAPIC) as one-line summaries
// for a person reading why a guest is stuck: the vectors requested and in
// service, the pins in use, the exception a vCPU is stuck on. hv's
// State.Report puts the lines together.
package report

import (
	"encoding/binary"
	"fmt"
	"strings"

	"ember/kvm"
)

// mpStateNames are the MP states by value.
var mpStateNames = map[kvm.MPState]string{
	kvm.MPStateRunnable:      "runnable",
	kvm.MPStateUninitialized: "waiting for INIT",
	kvm.MPStateInitReceived:  "waiting for SIPI",
	kvm.MPStateHalted:        "halted",
	kvm.MPStateSIPIReceived:  "SIPI received",
}

// VCPU is one vCPU's line: its MP state, instruction and stack pointers,
// flags, code segment and privilege level, control registers and EFER, and
// the events KVM holds for it (an exception or interrupt pending or being
// injected, an interrupt shadow, NMIs).
func VCPU(r kvm.Regs, sr kvm.SRegs, ev kvm.VCPUEvents, state kvm.MPState) string {
	mp, ok := mpStateNames[state]
	if !ok {
		mp = fmt.Sprintf("MP state %d", state)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s RIP %#x RSP %#x RFLAGS %#x CS %#x CPL %d CR0 %#x CR2 %#x CR3 %#x CR4 %#x EFER %#x",
		mp, r.RIP, r.RSP, r.RFLAGS, sr.CS.Selector, sr.CS.DPL, sr.CR0, sr.CR2, sr.CR3, sr.CR4, sr.EFER)
	if r.RFLAGS&flagIF == 0 {
		b.WriteString(interruptsOff(state))
	}
	if ev.Exception.Injected != 0 || ev.Exception.Pending != 0 {
		fmt.Fprintf(&b, "; exception %d pending (error code %#x)", ev.Exception.Nr, ev.Exception.ErrorCode)
	}
	if ev.Interrupt.Injected != 0 {
		fmt.Fprintf(&b, "; interrupt %#x being injected", ev.Interrupt.Nr)
	}
	if ev.Interrupt.Shadow != 0 {
		b.WriteString("; interrupt shadow")
	}
	if ev.NMI.Pending != 0 || ev.NMI.Injected != 0 {
		b.WriteString("; NMI pending")
	}
	if ev.NMI.Masked != 0 {
		b.WriteString("; NMIs masked")
	}
	return b.String()
}

// flagIF is RFLAGS.IF, the interrupt flag (Intel SDM vol. 1 §3.4.3.3).
const flagIF = 1 << 9

// interruptsOff is the note for a vCPU whose interrupt flag is clear. A vCPU
// halted so waits for what ignores the flag: an NMI, an INIT, or the
// paravirtual kick (KVM_HC_KICK_CPU) that a Linux guest's spinlock waiter
// halts for with interrupts off (kvm_wait) — its requested vectors cannot
// wake it, so a lost kick leaves it asleep with them pending.
func interruptsOff(state kvm.MPState) string {
	if state == kvm.MPStateHalted {
		return "; interrupts off (only an NMI, an INIT or a paravirtual kick wakes it)"
	}
	return "; interrupts off"
}

// Offsets in the LAPIC's register page (Intel SDM vol. 3, table 11-1): the
// 256-bit in-service, trigger-mode and request registers are eight 32-bit
// words 16 bytes apart.
const (
	lapicTPR       = 0x080
	lapicISR       = 0x100
	lapicIRR       = 0x200
	lapicLVTTimer  = 0x320
	lapicInitCount = 0x380
	lapicCurCount  = 0x390
)

// LAPIC is a LAPIC's line: the vectors requested and in
// service, the task priority and the timer. A vector stuck in service blocks
// every interrupt of its priority class and below; one requested but never
// serviced points at the guest's interrupt flag or priority.
func LAPIC(l *kvm.LAPICState) string {
	le := binary.LittleEndian
	reg := func(off int) uint32 { return le.Uint32(l.Regs[off:]) }
	timer := reg(lapicLVTTimer)
	return fmt.Sprintf("IRR %s ISR %s TPR %#x timer LVT %#x (%s) count %d of %d",
		vectorSet(l, lapicIRR), vectorSet(l, lapicISR), reg(lapicTPR), timer, masked(timer&(1<<16) != 0),
		reg(lapicCurCount), reg(lapicInitCount))
}

// TSCDeadlineMode reports whether the LAPIC's timer counts to a TSC
// deadline (LVT timer mode 10b, Intel SDM vol. 3 §11.5.4.1) rather than
// down from an initial count, so the count the LAPIC line shows is not the
// timer and the deadline MSR is.
func TSCDeadlineMode(l *kvm.LAPICState) bool {
	return binary.LittleEndian.Uint32(l.Regs[lapicLVTTimer:])>>17&3 == 2
}

// TSCDeadline is a TSC-deadline timer's line, from IA32_TSC_DEADLINE and
// the vCPU's TSC read beside it: not armed, due, or already passed — a
// deadline that has passed while the vCPU sleeps with nothing requested is
// a timer interrupt that was never delivered.
func TSCDeadline(deadline, tsc uint64) string {
	switch {
	case deadline == 0:
		return "TSC deadline not armed"
	case deadline > tsc:
		return fmt.Sprintf("TSC deadline %#x, due in %d ticks", deadline, deadline-tsc)
	}
	return fmt.Sprintf("TSC deadline %#x, passed %d ticks ago", deadline, tsc-deadline)
}

// vectorSet lists the vectors set in the 256-bit register at off.
func vectorSet(l *kvm.LAPICState, off int) string {
	var v []string
	for word := range 8 {
		bits := binary.LittleEndian.Uint32(l.Regs[off+16*word:])
		for bit := range 32 {
			if bits&(1<<bit) != 0 {
				v = append(v, fmt.Sprintf("%#x", 32*word+bit))
			}
		}
	}
	return "[" + strings.Join(v, " ") + "]"
}

// masked names a mask bit's state.
func masked(m bool) string {
	if m {
		return "masked"
	}
	return "unmasked"
}

// Fields of struct kvm_pic_state and struct kvm_ioapic_state (Linux's
// arch/x86/include/uapi/asm/kvm.h) that the lines show.
const (
	picIRR       = 1  // irr: the lines requesting service
	picIMR       = 2  // imr: the lines masked
	picISR       = 3  // isr: the lines in service
	ioapicIRR    = 16 // irr, after base_address, ioregsel and id
	ioapicRedir  = 24 // redirtbl[24], 8 bytes each
	ioapicPins   = 24
	redirMasked  = 1 << 16
	redirLevel   = 1 << 15
	redirRemote  = 1 << 14 // remote IRR: a level interrupt delivered, its EOI not yet seen
	redirPending = 1 << 12 // delivery status
)

// PIC is an 8259's part of a line: its request, mask and service registers.
func PIC(c *kvm.IRQChip) string {
	return fmt.Sprintf("IRR %#02x IMR %#02x ISR %#02x", c.Chip[picIRR], c.Chip[picIMR], c.Chip[picISR])
}

// IOAPIC is the IOAPIC's line: the pins whose line is
// raised and every unmasked pin's vector and state. A level-triggered pin
// with remote IRR set and no EOI coming is an interrupt lost for good.
func IOAPIC(c *kvm.IRQChip) string {
	le := binary.LittleEndian
	var b strings.Builder
	fmt.Fprintf(&b, "IRR %#x", le.Uint32(c.Chip[ioapicIRR:]))
	for pin := range ioapicPins {
		e := le.Uint64(c.Chip[ioapicRedir+8*pin:])
		if e&redirMasked != 0 {
			continue
		}
		fmt.Fprintf(&b, "; pin %d vector %#x", pin, e&0xff)
		if e&redirLevel != 0 {
			b.WriteString(" level")
		} else {
			b.WriteString(" edge")
		}
		if e&redirRemote != 0 {
			b.WriteString(" remote-IRR")
		}
		if e&redirPending != 0 {
			b.WriteString(" delivery-pending")
		}
	}
	return b.String()
}
