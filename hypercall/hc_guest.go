package hypercall

import (
	"ember/acrn"
	"ember/acrn/permission"
	"ember/hv"
)

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
	cl := &call{h: e.h, from: e, vcpu: c, mem: e.vm.Memory(), id: acrn.ID(regs.R8), p1: regs.RDI, p2: regs.RSI}
	v, rax := e.h.dispatch(cl, cpl)
	switch v {
	case permission.InjectGP:
		err = c.KVM().InjectException(13, true, 0)
	case permission.InjectUD:
		err = c.KVM().InjectException(6, false, 0)
	default:
		regs.RAX = rax
		err = c.SetExitRegs(regs, sregs, false)
	}
	if err != nil {
		c.Fail(err)
	}
}
