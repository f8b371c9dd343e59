package hypercall

import (
	"sync"

	"ember/acrn"
	"ember/kvm"
	"ember/memory"
)

// sworldState is a Trusty VM's secure world: set up by HC_INITIALIZE_TRUSTY,
// entered and left with HC_WORLD_SWITCH. ember keeps one register context
// per world for vCPU 0 (the only one ACRN runs Trusty on) and swaps them.
// Its lock is separate from the VM's: the calls come on the VM's own vCPU
// thread.
type sworldState struct {
	mu          sync.Mutex
	initialized bool
	secure      bool      // the secure world is the one running
	other       *worldCtx // the context of the world not running
	saved       *worldCtx // the secure world saved by HC_SAVE_RESTORE_SWORLD_CTX
	base, size  uint64    // the secure world's memory
}

type worldCtx struct {
	regs  kvm.Regs
	sregs kvm.SRegs
}

// current is the calling vCPU's context as it will resume: past the OUT,
// with RAX 0 (the switch succeeded).
func (c *call) current() *worldCtx {
	r := *c.regs
	r.RIP, r.RAX = ripAfterOut(c.vcpu, r.RIP, c.sregs), 0
	return &worldCtx{regs: r, sregs: *c.sregs}
}

// load makes w the calling vCPU's context.
func (c *call) load(w *worldCtx) {
	*c.regs, *c.sregs = w.regs, w.sregs
	c.switched = true
}

// hcInitializeTrusty is HC_INITIALIZE_TRUSTY, for a VM with
// GUEST_FLAG_SECURE_WORLD_ENABLED: param1 is the GPA of a
// trusty_boot_param (version 1 or 2; size_of_this_struct 32-96; a
// page-aligned memory of mem_size bytes inside the VM's RAM containing the
// entry point). The normal world's context is saved (it resumes after the
// call with RAX 0 on the next HC_WORLD_SWITCH) and vCPU 0 enters the secure
// world at the entry point with RSP at the top of its memory and RDI =
// param1. Once per VM (-EPERM after); only from a guest's vCPU 0 (-EINVAL
// from the Go API).
func hcInitializeTrusty(c *call) acrn.Errno {
	if c.vcpu == nil || c.vcpu.ID() != 0 {
		return acrn.EINVAL
	}
	var p acrn.TrustyBootParam
	if r := c.read(c.p1, &p); r != 0 {
		return r
	}
	base := uint64(p.BaseAddr) | uint64(p.BaseAddrHigh)<<32
	entry := uint64(p.EntryPoint) | uint64(p.EntryPointHigh)<<32
	size := uint64(p.MemSize)
	if p.Version < 1 || p.Version > 2 || p.SizeOfThisStruct < 32 || p.SizeOfThisStruct > acrn.TrustyBootParamSize ||
		size == 0 || base%memory.PageSize != 0 || size%memory.PageSize != 0 || entry < base || entry-base >= size {
		return acrn.EINVAL
	}
	if _, err := c.mem.Slice(base, size); err != nil {
		return acrn.EFAULT
	}
	s := &c.from.sworld
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.initialized {
		return acrn.EPERM
	}
	normal := c.current()
	secure := &worldCtx{regs: kvm.Regs{RIP: entry, RSP: base + size, RDI: c.p1, RFLAGS: 2}, sregs: *c.sregs}
	s.initialized, s.secure, s.other, s.base, s.size = true, true, normal, base, size
	c.load(secure)
	return 0
}

// hcWorldSwitch is HC_WORLD_SWITCH: the calling vCPU 0 leaves its world
// (which resumes after this call with RAX 0 next time) and continues in the
// other one. -EPERM before HC_INITIALIZE_TRUSTY.
func hcWorldSwitch(c *call) acrn.Errno {
	if c.vcpu == nil || c.vcpu.ID() != 0 {
		return acrn.EINVAL
	}
	s := &c.from.sworld
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.initialized {
		return acrn.EPERM
	}
	next := s.other
	s.other = c.current()
	s.secure = !s.secure
	c.load(next)
	return 0
}

// hcSaveRestoreSworldCtx is HC_SAVE_RESTORE_SWORLD_CTX (for suspend and
// resume): called from the normal world, it saves the secure world's context
// if none is saved, and otherwise restores the saved one. -EPERM before
// HC_INITIALIZE_TRUSTY or from the secure world.
func hcSaveRestoreSworldCtx(c *call) acrn.Errno {
	if c.vcpu == nil || c.vcpu.ID() != 0 {
		return acrn.EINVAL
	}
	s := &c.from.sworld
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.initialized || s.secure {
		return acrn.EPERM
	}
	if s.saved == nil {
		w := *s.other
		s.saved = &w
	} else {
		s.other, s.saved = s.saved, nil
	}
	return 0
}
