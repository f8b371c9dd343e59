package hv

import "ember/kvm"

// PortTrap handles a guest's OUT to a trapped port (VM.SetPortTrap) on the
// vCPU's own thread, outside the I/O request path: it may read and change
// the vCPU's registers (ExitRegs, SetExitRegs) or inject an exception
// through the KVM vCPU. It must return promptly; the vCPU enters the guest
// again when it does. The hypercall service traps its hypercall port so.
type PortTrap func(c *VCPU)

// portTrap is a VM's trapped port, if any.
type portTrap struct {
	port uint16
	f    PortTrap
	hot  bool
}

// SetPortTrap makes every guest OUT to port call f instead of becoming an
// I/O request. A VM has one trapped port; a second call replaces the first.
// It must be called before the VM runs.
//
// hot says the guest will use the port often (a Service VM making
// hypercalls): KVM then copies the registers into kvm_run on every exit
// (sync_regs), which spares each trap two ioctls but makes every other exit
// dearer (~1 µs on SVM, measured with ember bench). A VM whose traps are rare
// reads the registers with ioctls when one comes.
func (vm *VM) SetPortTrap(port uint16, f PortTrap, hot bool) { vm.trap = portTrap{port, f, hot} }

// syncRegs reports whether KVM shares the registers through kvm_run on
// every exit of this VM.
func (vm *VM) syncRegs() bool { return vm.syncCap && vm.trap.hot }

// ID returns the vCPU's index in its VM.
func (c *VCPU) ID() int { return c.id }

// VM returns the VM the vCPU belongs to.
func (c *VCPU) VM() *VM { return c.vm }

// Fail ends the VM's run with StopError on this vCPU, for a trap that cannot
// go on (KVM refused to read or set the vCPU's state).
func (c *VCPU) Fail(err error) { c.vm.stop(Result{Reason: StopError, VCPU: c.id, Err: err}) }

// ExitRegs returns the vCPU's registers at the current exit: from kvm_run's
// sync_regs where KVM fills them on every exit (a hot trap, on a KVM with
// KVM_CAP_SYNC_REGS), else through KVM_GET_REGS and KVM_GET_SREGS. Only a
// PortTrap, on the vCPU's thread, may call it.
func (c *VCPU) ExitRegs() (kvm.Regs, kvm.SRegs, error) {
	if c.vm.syncRegs() {
		s := c.kvm.SyncRegs()
		return s.Regs, s.SRegs, nil
	}
	regs, err := c.kvm.GetRegs()
	if err != nil {
		return regs, kvm.SRegs{}, err
	}
	sregs, err := c.kvm.GetSRegs()
	return regs, sregs, err
}

// SetExitRegs gives the vCPU new registers (and segment registers, with
// withSRegs) for its next entry: through sync_regs' dirty bits, which KVM
// loads on entry, or through KVM_SET_REGS/KVM_SET_SREGS. Only a PortTrap may
// call it.
func (c *VCPU) SetExitRegs(regs kvm.Regs, sregs kvm.SRegs, withSRegs bool) error {
	if c.vm.syncRegs() {
		s := c.kvm.SyncRegs()
		s.Regs = regs
		dirty := uint64(kvm.SyncRegsGPRs)
		if withSRegs {
			s.SRegs = sregs
			dirty |= kvm.SyncRegsSRegs
		}
		c.kvm.SetSyncDirty(dirty)
		return nil
	}
	if withSRegs {
		if err := c.kvm.SetSRegs(sregs); err != nil {
			return err
		}
	}
	return c.kvm.SetRegs(regs)
}
