package hv

import (
	"errors"
	"fmt"

	"ember/kvm"
	"ember/x86"
)

// State is a VM's architectural state as KVM holds it: every vCPU's
// registers, FPU, pending events, LAPIC and multiprocessing state, and the
// in-kernel PIC, IOAPIC and PIT. Guest memory and model-specific registers
// other than EFER are not part of it. It is what Reset and the hypercall
// service's HC_RESET_VM return a VM to, and what a snapshot would build on.
type State struct {
	vcpus []vcpuState
	chips []*kvm.IRQChip // PIC master, PIC slave, IOAPIC; nil without an irqchip
	pit   *kvm.PITState2 // nil without an irqchip
}

// vcpuState is one vCPU's part of a State.
type vcpuState struct {
	regs   kvm.Regs
	sregs  kvm.SRegs
	fpu    kvm.FPU
	events kvm.VCPUEvents
	lapic  *kvm.LAPICState // nil without an irqchip
	mp     kvm.MPState
	// timer is the TSC-deadline timer, read by Inspect for its report
	// (nil otherwise): restoring a State leaves the guest's timer alone.
	timer *tscTimer
	// rootOutside says Inspect found the vCPU's page tables starting
	// outside guest RAM (report.PageTableRoot), for its report.
	rootOutside bool
}

// tscTimer is a vCPU's IA32_TSC_DEADLINE and its TSC, read together.
type tscTimer struct{ deadline, tsc uint64 }

// irqChips are the in-kernel interrupt controllers a State holds, in order.
var irqChips = [...]uint32{kvm.IRQChipPICMaster, kvm.IRQChipPICSlave, kvm.IRQChipIOAPIC}

// SaveState reads the VM's State. The VM must not be running (ErrRunning).
func (vm *VM) SaveState() (*State, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.idleLocked(); err != nil {
		return nil, err
	}
	return vm.saveState()
}

// RestoreState gives the VM the State s, which SaveState read from it. The VM
// must not be running (ErrRunning).
func (vm *VM) RestoreState(s *State) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.idleLocked(); err != nil {
		return err
	}
	return vm.restoreState(s)
}

// ResetState puts the VM back in the State it had before its first run (a
// VM that never ran is in it already); a guest asleep (Sleep) is awake
// again. The VM must not be running.
func (vm *VM) ResetState() error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.idleLocked(); err != nil {
		return err
	}
	vm.run.Sleep(false)
	if vm.powerOn == nil {
		return nil
	}
	return vm.restoreState(vm.powerOn)
}

// Reset puts the VM back in the state it had before its first run, then
// starts vCPU boot in entry: the PIC, IOAPIC and PIT get their saved state
// back; every vCPU gets its saved registers, FPU, pending events, LAPIC and
// multiprocessing state (an AP is again waiting for INIT/SIPI), and boot is
// set up for entry as SetEntry would. Model-specific registers other than
// EFER and guest memory are left as they are: a caller that wants a clean
// RAM clears it. The VM must not be running (ErrRunning).
func (vm *VM) Reset(boot int, entry x86.Entry) error {
	if boot < 0 || boot >= vm.NumVCPUs() {
		return fmt.Errorf("hv: reset: no vCPU %d", boot)
	}
	if err := vm.ResetState(); err != nil {
		return err
	}
	return x86.Setup(vm.mem, vm.vcpus[boot].kvm, entry)
}

// idleLocked reports why the VM's state cannot be touched now, if it cannot.
// The caller holds vm.mu.
func (vm *VM) idleLocked() error {
	if vm.closed {
		return errors.New("hv: VM is closed")
	}
	if vm.running {
		return ErrRunning
	}
	return nil
}

// savePowerOn records the State Reset returns to, once, before the first
// run. The caller holds vm.mu.
func (vm *VM) savePowerOn() error {
	if vm.powerOn != nil {
		return nil
	}
	s, err := vm.saveState()
	if err != nil {
		return err
	}
	vm.powerOn = s
	return nil
}

// saveState reads the State; the caller holds vm.mu and the VM is idle.
func (vm *VM) saveState() (*State, error) {
	s := &State{}
	for _, c := range vm.vcpus {
		v, err := saveVCPU(c.kvm, !vm.cfg.NoIRQChip)
		if err != nil {
			return nil, fmt.Errorf("hv: saving vCPU %d state: %w", c.id, err)
		}
		s.vcpus = append(s.vcpus, v)
	}
	if vm.cfg.NoIRQChip {
		return s, nil
	}
	for _, id := range irqChips {
		chip, err := vm.kvm.GetIRQChip(id)
		if err != nil {
			return nil, fmt.Errorf("hv: saving irqchip %d: %w", id, err)
		}
		s.chips = append(s.chips, chip)
	}
	pit, err := vm.kvm.GetPIT2()
	if err != nil {
		return nil, fmt.Errorf("hv: saving PIT: %w", err)
	}
	s.pit = pit
	return s, nil
}

// restoreState loads s; the caller holds vm.mu and the VM is idle.
func (vm *VM) restoreState(s *State) error {
	if len(s.vcpus) != len(vm.vcpus) {
		return fmt.Errorf("hv: restoring a state of %d vCPUs into a VM of %d", len(s.vcpus), len(vm.vcpus))
	}
	for i, id := range irqChips[:len(s.chips)] {
		chip := *s.chips[i]
		chip.ChipID = id
		if err := vm.kvm.SetIRQChip(&chip); err != nil {
			return fmt.Errorf("hv: restoring irqchip %d: %w", id, err)
		}
	}
	if s.pit != nil {
		pit := *s.pit
		if err := vm.kvm.SetPIT2(&pit); err != nil {
			return fmt.Errorf("hv: restoring PIT: %w", err)
		}
	}
	for i, c := range vm.vcpus {
		if err := s.vcpus[i].restore(c.kvm); err != nil {
			return fmt.Errorf("hv: restoring vCPU %d: %w", c.id, err)
		}
	}
	return nil
}

// saveVCPU reads one vCPU's state; chip says whether it has a LAPIC.
func saveVCPU(c *kvm.VCPU, chip bool) (s vcpuState, err error) {
	if s.regs, err = c.GetRegs(); err != nil {
		return s, err
	}
	if s.sregs, err = c.GetSRegs(); err != nil {
		return s, err
	}
	if s.fpu, err = c.GetFPU(); err != nil {
		return s, err
	}
	if s.events, err = c.GetVCPUEvents(); err != nil {
		return s, err
	}
	if s.mp, err = c.GetMPState(); err != nil {
		return s, err
	}
	if chip {
		s.lapic, err = c.GetLAPIC()
	}
	return s, err
}

// restore gives a vCPU the state s: segment registers before the general
// ones (so RIP is read in the right mode), pending events and the MP state
// last (they depend on the LAPIC).
func (s vcpuState) restore(c *kvm.VCPU) error {
	if err := c.SetSRegs(s.sregs); err != nil {
		return err
	}
	if err := c.SetRegs(s.regs); err != nil {
		return err
	}
	if err := c.SetFPU(s.fpu); err != nil {
		return err
	}
	if s.lapic != nil {
		l := *s.lapic
		if err := c.SetLAPIC(&l); err != nil {
			return err
		}
	}
	if err := c.SetVCPUEvents(s.events); err != nil {
		return err
	}
	return c.SetMPState(s.mp)
}

// VCPURegs returns vCPU i's general and segment registers, between runs.
func (vm *VM) VCPURegs(i int) (kvm.Regs, kvm.SRegs, error) {
	if i < 0 || i >= len(vm.vcpus) {
		return kvm.Regs{}, kvm.SRegs{}, fmt.Errorf("hv: no vCPU %d", i)
	}
	c := vm.vcpus[i].kvm
	regs, err := c.GetRegs()
	if err != nil {
		return regs, kvm.SRegs{}, err
	}
	sregs, err := c.GetSRegs()
	return regs, sregs, err
}

// SetVCPURegs gives vCPU i general and segment registers, between runs:
// segment registers first, so RIP is read in the mode they set.
func (vm *VM) SetVCPURegs(i int, regs kvm.Regs, sregs kvm.SRegs) error {
	if i < 0 || i >= len(vm.vcpus) {
		return fmt.Errorf("hv: no vCPU %d", i)
	}
	c := vm.vcpus[i].kvm
	if err := c.SetSRegs(sregs); err != nil {
		return err
	}
	return c.SetRegs(regs)
}
