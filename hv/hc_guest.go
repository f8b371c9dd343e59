package hv

import (
	"ember/acrn"
	"ember/kvm"
)

// outImm8Hypercall is the encoding of `out %al, $PortHypercall`.
var outImm8Hypercall = [2]byte{0xe6, PortHypercall}

// hypercallTrap handles a guest's write to PortHypercall on the vCPU's own
// thread: it reads the ID (R8) and parameters (RDI, RSI), takes the caller's
// privilege level from SS.DPL (CS.DPL in real mode is 0), lets dispatch
// judge and run the call, and then either writes the result to RAX or
// injects #GP(0) or #UD with RAX untouched. A VM without a table entry is a
// plain VM: #UD.
//
// The OUT has retired when the exception is delivered, so the exception
// frame's RIP is the instruction after it (docs/abi.md).
func (c *VCPU) hypercallTrap() {
	regs, sregs, err := c.trapRegs()
	if err != nil {
		c.vm.stop(Result{Reason: StopError, VCPU: c.id, Err: err})
		return
	}
	var cpl uint8
	if sregs.CR0&1 != 0 {
		cpl = sregs.SS.DPL
		if sregs.CS.DPL > cpl {
			cpl = sregs.CS.DPL
		}
	}
	e := c.vm.hc
	v, rax := injectUD, uint64(0)
	cl := &call{from: e, vcpu: c, regs: &regs, sregs: &sregs, mem: c.vm.mem, id: acrn.ID(regs.R8), p1: regs.RDI, p2: regs.RSI}
	if e != nil {
		cl.h = e.h
		v, rax = e.h.dispatch(cl, cpl)
	} else if cpl != 0 {
		v = injectGP
	}
	switch v {
	case injectGP:
		err = c.kvm.InjectException(13, true, 0)
	case injectUD:
		err = c.kvm.InjectException(6, false, 0)
	default:
		if !cl.switched {
			regs.RAX = rax
		}
		err = c.setTrapRegs(regs, sregs, cl.switched)
	}
	if err != nil {
		c.vm.stop(Result{Reason: StopError, VCPU: c.id, Err: err})
	}
}

// ripAfterOut returns the address of the instruction after the hypercall's
// OUT. Where KVM emulated the OUT (kvm-pvm's ring 0) RIP is past it already;
// where it took the fast path RIP still points at it and KVM skips it on the
// next entry unless RIP changes — which a world switch does, so the saved
// context must point past it.
func (c *VCPU) ripAfterOut(rip uint64, s *kvm.SRegs) uint64 {
	tr, err := c.kvm.Translate(s.CS.Base + rip)
	if err != nil || tr.Valid == 0 {
		return rip
	}
	b, err := c.vm.mem.Slice(tr.PhysicalAddress, 2)
	if err != nil || [2]byte(b) != outImm8Hypercall {
		return rip
	}
	return rip + 2
}

// trapRegs returns the registers at a hypercall exit: from kvm_run's
// sync_regs where KVM fills them on every exit (vm.syncRegs), sparing two
// ioctls per hypercall, else through KVM_GET_REGS and KVM_GET_SREGS.
func (c *VCPU) trapRegs() (kvm.Regs, kvm.SRegs, error) {
	if c.vm.syncRegs {
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

// setTrapRegs gives the vCPU new registers (and segment registers, after a
// world switch) for its next entry: through sync_regs' dirty bits, which KVM
// loads on entry, or through KVM_SET_REGS/KVM_SET_SREGS.
func (c *VCPU) setTrapRegs(regs kvm.Regs, sregs kvm.SRegs, withSRegs bool) error {
	if c.vm.syncRegs {
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
