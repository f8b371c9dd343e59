package hv

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"ember/kvm"
	"ember/x86"
)

// pauseState parks a running VM's vCPU goroutines outside KVM_RUN. Pause sets
// paused and kicks every vCPU; a vCPU's loop sees the flag before it enters
// KVM_RUN again and waits in park until Resume closes resume or the run stops.
type pauseState struct {
	mu     sync.Mutex
	cond   *sync.Cond // signalled when parked or active changes
	paused bool
	// flag mirrors paused for the vCPU loop, which looks at it on every exit
	// without taking mu; it is written with paused, under mu.
	flag   atomic.Bool
	resume chan struct{} // closed by Resume; a new one per Pause
	active int           // vCPU goroutines of the current run still in their loop
	parked int           // of those, how many are waiting in park
}

func (p *pauseState) init() {
	if p.cond == nil {
		p.cond = sync.NewCond(&p.mu)
	}
}

// beginRun counts n vCPU goroutines about to start, so that a Pause that
// comes while Run starts them waits for them too.
func (p *pauseState) beginRun(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	p.active += n
}

// leave is called by a vCPU goroutine when its loop returns.
func (p *pauseState) leave() {
	p.mu.Lock()
	p.active--
	p.cond.Broadcast()
	p.mu.Unlock()
}

// park blocks while the VM is paused. It reports false if the run stopped
// meanwhile, in which case the vCPU's loop returns.
func (p *pauseState) park(stopped <-chan struct{}) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.paused {
		resume := p.resume
		p.parked++
		p.cond.Broadcast()
		p.mu.Unlock()
		var ok bool
		select {
		case <-resume:
			ok = true
		case <-stopped:
		}
		p.mu.Lock()
		p.parked--
		p.cond.Broadcast()
		if !ok {
			return false
		}
	}
	return true
}

func (p *pauseState) isPaused() bool { return p.flag.Load() }

// Pause stops the VM's vCPUs without ending its run: each is kicked out of
// KVM_RUN and waits, outside the guest, until Resume. Pause returns once every
// vCPU of a running VM has stopped (or the run has ended), so guest memory and
// vCPU registers are quiet when it returns. A VM paused when Run starts keeps
// its vCPUs waiting before their first entry. In-kernel devices (the LAPIC
// timer, irqfds) keep raising interrupts; the guest takes them when it
// resumes. Pausing a paused VM does nothing.
func (vm *VM) Pause() {
	p := &vm.pause
	p.mu.Lock()
	p.init()
	if !p.paused {
		p.paused = true
		p.flag.Store(true)
		p.resume = make(chan struct{})
	}
	p.mu.Unlock()
	// A vCPU that checked the flag just before it was set is about to enter
	// KVM_RUN: the kick's immediate_exit makes that entry return at once.
	for _, c := range vm.vcpus {
		c.kvm.Kick()
	}
	p.mu.Lock()
	for p.paused && p.parked < p.active {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// Resume lets the vCPUs of a paused VM run again. It does nothing if the VM
// is not paused.
func (vm *VM) Resume() {
	p := &vm.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		p.flag.Store(false)
		close(p.resume)
	}
}

// Paused reports whether the VM is paused.
func (vm *VM) Paused() bool { return vm.pause.isPaused() }

// powerOnState is what Reset restores: every vCPU's and in-kernel device's
// state as it was when the VM first ran, before the guest changed any of it.
type powerOnState struct {
	vcpus   []vcpuState
	chips   []*kvm.IRQChip // PIC master, PIC slave, IOAPIC; nil without an irqchip
	pit     *kvm.PITState2
	hasChip bool
}

type vcpuState struct {
	regs   kvm.Regs
	sregs  kvm.SRegs
	fpu    kvm.FPU
	events kvm.VCPUEvents
	lapic  *kvm.LAPICState // nil without an irqchip
	mp     kvm.MPState
}

// savePowerOn records the state Reset returns to, once, before the first run.
// The caller holds vm.mu.
func (vm *VM) savePowerOn() error {
	if vm.powerOn != nil {
		return nil
	}
	s := &powerOnState{hasChip: !vm.cfg.NoIRQChip}
	for _, c := range vm.vcpus {
		var v vcpuState
		var err error
		if v.regs, err = c.kvm.GetRegs(); err != nil {
			return fmt.Errorf("hv: saving vCPU %d state: %w", c.id, err)
		}
		if v.sregs, err = c.kvm.GetSRegs(); err != nil {
			return fmt.Errorf("hv: saving vCPU %d state: %w", c.id, err)
		}
		if v.fpu, err = c.kvm.GetFPU(); err != nil {
			return fmt.Errorf("hv: saving vCPU %d state: %w", c.id, err)
		}
		if v.events, err = c.kvm.GetVCPUEvents(); err != nil {
			return fmt.Errorf("hv: saving vCPU %d state: %w", c.id, err)
		}
		if v.mp, err = c.kvm.GetMPState(); err != nil {
			return fmt.Errorf("hv: saving vCPU %d state: %w", c.id, err)
		}
		if s.hasChip {
			if v.lapic, err = c.kvm.GetLAPIC(); err != nil {
				return fmt.Errorf("hv: saving vCPU %d state: %w", c.id, err)
			}
		}
		s.vcpus = append(s.vcpus, v)
	}
	if s.hasChip {
		for _, id := range []uint32{kvm.IRQChipPICMaster, kvm.IRQChipPICSlave, kvm.IRQChipIOAPIC} {
			chip, err := vm.kvm.GetIRQChip(id)
			if err != nil {
				return fmt.Errorf("hv: saving irqchip %d: %w", id, err)
			}
			s.chips = append(s.chips, chip)
		}
		pit, err := vm.kvm.GetPIT2()
		if err != nil {
			return fmt.Errorf("hv: saving PIT: %w", err)
		}
		s.pit = pit
	}
	vm.powerOn = s
	return nil
}

// Reset puts the VM back in the state it had before its first run, then
// starts vCPU boot in entry: the PIC, IOAPIC and PIT get their saved state
// back; every vCPU gets its saved registers, FPU, pending events, LAPIC and
// multiprocessing state (an AP is again waiting for INIT/SIPI), and boot is
// set up for entry as SetEntry would. Model-specific registers other than
// EFER and guest memory are left as they are: a caller that wants a clean
// RAM clears it. The VM must not be running (ErrRunning); a VM that never
// ran is already in its power-on state and only gets the entry.
func (vm *VM) Reset(boot int, entry x86.Entry) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed {
		return errors.New("hv: VM is closed")
	}
	if vm.running {
		return ErrRunning
	}
	if boot < 0 || boot >= len(vm.vcpus) {
		return fmt.Errorf("hv: reset: no vCPU %d", boot)
	}
	if s := vm.powerOn; s != nil {
		for i, id := range []uint32{kvm.IRQChipPICMaster, kvm.IRQChipPICSlave, kvm.IRQChipIOAPIC} {
			if !s.hasChip {
				break
			}
			chip := *s.chips[i]
			chip.ChipID = id
			if err := vm.kvm.SetIRQChip(&chip); err != nil {
				return fmt.Errorf("hv: resetting irqchip %d: %w", id, err)
			}
		}
		if s.pit != nil {
			pit := *s.pit
			if err := vm.kvm.SetPIT2(&pit); err != nil {
				return fmt.Errorf("hv: resetting PIT: %w", err)
			}
		}
		for i, c := range vm.vcpus {
			if err := c.restore(s.vcpus[i]); err != nil {
				return err
			}
		}
	}
	return x86.Setup(vm.mem, vm.vcpus[boot].kvm, entry)
}

// restore gives the vCPU the state v describes.
func (c *VCPU) restore(v vcpuState) error {
	wrap := func(err error) error { return fmt.Errorf("hv: resetting vCPU %d: %w", c.id, err) }
	if err := c.kvm.SetSRegs(v.sregs); err != nil {
		return wrap(err)
	}
	if err := c.kvm.SetRegs(v.regs); err != nil {
		return wrap(err)
	}
	if err := c.kvm.SetFPU(v.fpu); err != nil {
		return wrap(err)
	}
	if v.lapic != nil {
		l := *v.lapic
		if err := c.kvm.SetLAPIC(&l); err != nil {
			return wrap(err)
		}
	}
	if err := c.kvm.SetVCPUEvents(v.events); err != nil {
		return wrap(err)
	}
	if err := c.kvm.SetMPState(v.mp); err != nil {
		return wrap(err)
	}
	return nil
}
