package hypercall

import (
	"ember/acrn"
	"ember/hv"
	"ember/kvm"
)

// outImm8Hypercall is the encoding of `out %al, $PortHypercall`.
var outImm8Hypercall = [2]byte{0xe6, PortHypercall}

// trap is e's hv.PortTrap on PortHypercall: on the vCPU's own thread it
// reads the ID (R8) and parameters (RDI, RSI), takes the caller's privilege
// level from SS.DPL (CS.DPL in real mode is 0), lets dispatch judge and run
// the call, and then either writes the result to RAX or injects #GP(0) or
// #UD with RAX untouched. A VM without hypercall rights gets #UD.
//
// The OUT has retired when the exception is delivered, so the exception
// frame's RIP is the instruction after it (docs/abi.md).
func (e *hcVM) trap(c *hv.VCPU) {
	regs, sregs, err := c.ExitRegs()
	if err != nil {
		c.Fail(err)
		return
	}
	var cpl uint8
	if sregs.CR0&1 != 0 {
		cpl = sregs.SS.DPL
		if sregs.CS.DPL > cpl {
			cpl = sregs.CS.DPL
		}
	}
	cl := &call{h: e.h, from: e, vcpu: c, regs: &regs, sregs: &sregs, mem: e.vm.Memory(), id: acrn.ID(regs.R8), p1: regs.RDI, p2: regs.RSI}
	v, rax := e.h.dispatch(cl, cpl)
	switch v {
	case injectGP:
		err = c.KVM().InjectException(13, true, 0)
	case injectUD:
		err = c.KVM().InjectException(6, false, 0)
	default:
		if !cl.switched {
			regs.RAX = rax
		}
		err = c.SetExitRegs(regs, sregs, cl.switched)
	}
	if err != nil {
		c.Fail(err)
	}
}

// ripAfterOut returns the address of the instruction after the hypercall's
// OUT. Where KVM emulated the OUT (kvm-pvm's ring 0) RIP is past it already;
// where it took the fast path RIP still points at it and KVM skips it on the
// next entry unless RIP changes — which a world switch does, so the saved
// context must point past it.
func ripAfterOut(c *hv.VCPU, rip uint64, s *kvm.SRegs) uint64 {
	tr, err := c.KVM().Translate(s.CS.Base + rip)
	if err != nil || tr.Valid == 0 {
		return rip
	}
	b, err := c.VM().Memory().Slice(tr.PhysicalAddress, 2)
	if err != nil || [2]byte(b) != outImm8Hypercall {
		return rip
	}
	return rip + 2
}
