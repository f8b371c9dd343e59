package hv

import (
	"fmt"
	"io"
	"time"

	"ember/hv/report"
	"ember/kvm"
	"ember/memory"
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
		where := vm.run.Describe()
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
	s, err := vm.saveState()
	if err != nil {
		return nil, err
	}
	for i, c := range vm.vcpus {
		v := &s.vcpus[i]
		if v.lapic != nil && report.TSCDeadlineMode(v.lapic) {
			v.timer = readTSCTimer(c.kvm)
		}
		v.rootOutside = rootOutside(vm.mem, v.sregs)
	}
	return s, nil
}

// MSRs of the TSC-deadline timer (Intel SDM vol. 4).
const (
	msrTSC         = 0x10
	msrTSCDeadline = 0x6e0
)

// readTSCTimer reads a vCPU's TSC deadline and TSC in one KVM_GET_MSRS; nil
// if KVM did not give both (the report then has no timer line).
func readTSCTimer(c *kvm.VCPU) *tscTimer {
	e := []kvm.MSREntry{{Index: msrTSCDeadline}, {Index: msrTSC}}
	if n, err := c.GetMSRs(e); err != nil || n != len(e) {
		return nil
	}
	return &tscTimer{deadline: e[0].Data, tsc: e[1].Data}
}

// rootOutside reports whether a vCPU with registers sr has paging on and
// its page tables start outside mem (report.PageTableRoot).
func rootOutside(mem *memory.Guest, sr kvm.SRegs) bool {
	gpa, size, ok := report.PageTableRoot(sr)
	if !ok {
		return false
	}
	_, err := mem.Slice(gpa, size)
	return err != nil
}

// Report writes s for a person reading why a guest is stuck: per vCPU its
// MP state, instruction and stack pointers, control registers, pending
// events and its LAPIC's interrupt state (with a TSC-deadline timer's
// deadline, where Inspect read it) and, where Inspect found them outside
// guest RAM, where its page tables start; then the PICs' request, mask and
// service registers and the IOAPIC's pins in use. One line per item.
func (s *State) Report(w io.Writer) error {
	for i, v := range s.vcpus {
		line := report.VCPU(v.regs, v.sregs, v.events, v.mp)
		if v.rootOutside {
			gpa, _, _ := report.PageTableRoot(v.sregs)
			line += report.RootOutsideRAM(gpa)
		}
		if _, err := fmt.Fprintf(w, "vCPU %d: %s\n", i, line); err != nil {
			return err
		}
		if v.lapic != nil {
			line := report.LAPIC(v.lapic)
			if v.timer != nil {
				line += "; " + report.TSCDeadline(v.timer.deadline, v.timer.tsc)
			}
			if _, err := fmt.Fprintf(w, "vCPU %d LAPIC: %s\n", i, line); err != nil {
				return err
			}
		}
	}
	if len(s.chips) == len(irqChips) {
		if _, err := fmt.Fprintf(w, "PIC: master %s; slave %s\nIOAPIC: %s\n",
			report.PIC(s.chips[0]), report.PIC(s.chips[1]), report.IOAPIC(s.chips[2])); err != nil {
			return err
		}
	}
	return nil
}
