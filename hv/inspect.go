package hv

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	"ember/kvm"
)

// inspectWait is how long Inspect waits for the vCPUs to leave the guest. A
// vCPU that has not stopped by then is stuck in ember (a device that does not
// return) or in KVM (a KVM_RUN that no kick ends): its registers cannot be
// read, and the report says where each vCPU is instead.
const inspectWait = 2 * time.Second

// Inspect reads the State of a VM while it runs, for a report on a guest that
// seems stuck (ember run's SIGUSR1): it pauses the VM unless it is paused
// already, reads every vCPU, the interrupt controllers and the PIT, and
// resumes it. The guest loses a few milliseconds; devices go on meanwhile. If
// a vCPU does not stop within two seconds the pause is withdrawn and the
// error names where each vCPU is. Its caller keeps other Pause and Resume
// calls out meanwhile (a Resume during Inspect would let the guest run while
// it is read; Inspect's own would end another caller's pause).
func (vm *VM) Inspect() (*State, error) {
	if vm.Paused() {
		return vm.inspectPaused()
	}
	done := make(chan struct{})
	go func() {
		vm.Pause()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(inspectWait):
		where := vm.run.describe()
		vm.Resume()
		<-done
		return nil, fmt.Errorf("hv: the vCPUs did not stop within %v (%s): one is stuck in ember or in KVM", inspectWait, where)
	}
	defer vm.Resume()
	return vm.inspectPaused()
}

// inspectPaused saves the State of a paused VM.
func (vm *VM) inspectPaused() (*State, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed {
		return nil, fmt.Errorf("hv: VM is closed")
	}
	return vm.saveState()
}

// describe names where each vCPU is, for a report: "vCPU 0 running, vCPU 1
// parked".
func (r *runControl) describe() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	parts := make([]string, len(r.states))
	for i, s := range r.states {
		parts[i] = fmt.Sprintf("vCPU %d %s", i, s)
	}
	return strings.Join(parts, ", ")
}

// runStateNames are the run states' names in a report.
var runStateNames = [...]string{
	vcpuIdle: "idle", vcpuRunning: "running", vcpuParked: "parked", vcpuWaiting: "waiting for an I/O client",
}

// String names the run state.
func (s runState) String() string {
	if s >= 0 && int(s) < len(runStateNames) {
		return runStateNames[s]
	}
	return fmt.Sprintf("runState(%d)", int(s))
}

// Report writes s for a person reading why a guest is stuck: per vCPU its
// MP state, instruction and stack pointers, control registers, pending
// events and its LAPIC's interrupt state; then the PICs' request, mask and
// service registers and the IOAPIC's pins in use. One line per item.
func (s *State) Report(w io.Writer) error {
	for i, v := range s.vcpus {
		if _, err := fmt.Fprintf(w, "vCPU %d: %s\n", i, v.describe()); err != nil {
			return err
		}
		if v.lapic != nil {
			if _, err := fmt.Fprintf(w, "vCPU %d LAPIC: %s\n", i, describeLAPIC(v.lapic)); err != nil {
				return err
			}
		}
	}
	if len(s.chips) == len(irqChips) {
		if _, err := fmt.Fprintf(w, "PIC: master %s; slave %s\nIOAPIC: %s\n",
			describePIC(s.chips[0]), describePIC(s.chips[1]), describeIOAPIC(s.chips[2])); err != nil {
			return err
		}
	}
	return nil
}

// mpStateNames are the MP states by value.
var mpStateNames = map[kvm.MPState]string{
	kvm.MPStateRunnable:      "runnable",
	kvm.MPStateUninitialized: "waiting for INIT",
	kvm.MPStateInitReceived:  "waiting for SIPI",
	kvm.MPStateHalted:        "halted",
	kvm.MPStateSIPIReceived:  "SIPI received",
}

// describe is one vCPU's line of a Report.
func (v vcpuState) describe() string {
	r, sr, ev := v.regs, v.sregs, v.events
	mp, ok := mpStateNames[v.mp]
	if !ok {
		mp = fmt.Sprintf("MP state %d", v.mp)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s RIP %#x RSP %#x RFLAGS %#x CS %#x CPL %d CR0 %#x CR2 %#x CR3 %#x CR4 %#x EFER %#x",
		mp, r.RIP, r.RSP, r.RFLAGS, sr.CS.Selector, sr.CS.DPL, sr.CR0, sr.CR2, sr.CR3, sr.CR4, sr.EFER)
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

// describeLAPIC is a LAPIC's line of a Report: the vectors requested and in
// service, the task priority and the timer. A vector stuck in service blocks
// every interrupt of its priority class and below; one requested but never
// serviced points at the guest's interrupt flag or priority.
func describeLAPIC(l *kvm.LAPICState) string {
	le := binary.LittleEndian
	reg := func(off int) uint32 { return le.Uint32(l.Regs[off:]) }
	timer := reg(lapicLVTTimer)
	return fmt.Sprintf("IRR %s ISR %s TPR %#x timer LVT %#x (%s) count %d of %d",
		vectorSet(l, lapicIRR), vectorSet(l, lapicISR), reg(lapicTPR), timer, masked(timer&(1<<16) != 0),
		reg(lapicCurCount), reg(lapicInitCount))
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

func masked(m bool) string {
	if m {
		return "masked"
	}
	return "unmasked"
}

// Fields of struct kvm_pic_state and struct kvm_ioapic_state (Linux's
// arch/x86/include/uapi/asm/kvm.h) that a Report shows.
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

// describePIC is an 8259's part of a Report.
func describePIC(c *kvm.IRQChip) string {
	return fmt.Sprintf("IRR %#02x IMR %#02x ISR %#02x", c.Chip[picIRR], c.Chip[picIMR], c.Chip[picISR])
}

// describeIOAPIC is the IOAPIC's line of a Report: the pins whose line is
// raised and every unmasked pin's vector and state. A level-triggered pin
// with remote IRR set and no EOI coming is an interrupt lost for good.
func describeIOAPIC(c *kvm.IRQChip) string {
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
