package hypercall

import (
	"encoding/binary"
	"io"
	"math/bits"
	"runtime"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/acrn/kvmregs"
	"ember/hv"
)

// knownGuestFlags are the GUEST_FLAG_* bits acrn defines; HC_CREATE_VM
// refuses others.
const knownGuestFlags = 1<<15 - 1

// hcCreateVM is HC_CREATE_VM: param1 is the GPA of an acrn_vm_creation.
// The VM gets vcpu_num vCPUs, or one per bit of cpu_affinity (which must
// name host CPUs, and agree with a non-zero vcpu_num); neither gives one. It
// has no RAM of its own (hv.Config.MemorySize 0): HC_VM_SET_MEMORY_REGIONS
// maps Service VM memory into it, as in ACRN. ioreq_buf is not read: seed
// 001 comments it as the request buffer's address, but ACRN v2.6's
// hypervisor never reads the field and ACRN's device model stores a user
// virtual address there, so a Service VM sets the buffer with
// HC_SET_IOREQ_BUFFER. The new VM ID and vCPU count are written back.
func hcCreateVM(c *call) acrn.Errno {
	var cr acrn.VMCreation
	if e := c.read(c.p1, &cr); e != 0 {
		return e
	}
	n := int(cr.VCPUNum)
	if cr.CPUAffinity != 0 {
		ncpu := runtime.NumCPU()
		if ncpu < 64 && cr.CPUAffinity>>uint(ncpu) != 0 {
			return acrn.EINVAL
		}
		k := bits.OnesCount64(cr.CPUAffinity)
		if n != 0 && n != k {
			return acrn.EINVAL
		}
		n = k
	}
	if n == 0 {
		n = 1
	}
	if n > iorequest.IORequestMax || cr.VMFlag&^knownGuestFlags != 0 {
		return acrn.EINVAL
	}
	e, err := c.h.newVM(hv.Config{VCPUs: n, Console: io.Discard}, loadPost, cr.VMFlag)
	if err != nil {
		return acrn.ENOMEM
	}
	e.mu.Lock()
	e.affinity = cr.CPUAffinity
	e.mu.Unlock()
	cr.VMID, cr.VCPUNum = e.id, uint16(n)
	if r := c.write(c.p1, &cr); r != 0 {
		e.destroy()
		return r
	}
	return 0
}

// destroy pauses the VM, ends its run and releases it (the cleanup of VMs
// whose Service VM goes away, and of the service).
func (e *hcVM) destroy() {
	e.mu.Lock()
	killed := e.life.Kill()
	e.mu.Unlock()
	if killed {
		e.vm.Close()
	}
}

// hcDestroyVM is HC_DESTROY_VM: param1 is the target VM ID, which must be
// paused or powered off (-EPERM otherwise: pause it first, as ACRN v2.6
// asks). The VM is torn down and its ID becomes free.
func hcDestroyVM(c *call) acrn.Errno {
	e, r := c.target(c.p1)
	if r != 0 {
		return r
	}
	// The state is checked and the entry killed under one lock, so no
	// HC_RESET_VM and HC_START_VM can slip in between.
	if !e.life.Stopped() {
		e.mu.Unlock()
		return acrn.EPERM
	}
	killed := e.life.Kill()
	e.mu.Unlock()
	if killed {
		e.vm.Close()
	}
	return 0
}

// hcStartVM is HC_START_VM: param1 is the target VM ID, which must be in the
// created state (new, or reset since its last run) with its I/O request
// buffer set; anything else is -EPERM, as in ACRN v2.6, where a paused VM is
// reset before it starts again.
func hcStartVM(c *call, e *hcVM) acrn.Errno {
	if !e.ioreqSet || !e.life.Start() {
		return acrn.EPERM
	}
	return 0
}

// hcPauseVM is HC_PAUSE_VM: param1 is the target VM ID. A running VM's
// vCPUs stop (a vCPU waiting on the Service VM for a request counts as
// stopped: the pause does not wait on requests, as ACRN's does not); a
// created one becomes paused without having run. Pausing a paused or
// powered-off VM succeeds and does nothing (ACRN refuses a powered-off one,
// but ember's powered off is ACRN's paused: package lifecycle).
func hcPauseVM(c *call, e *hcVM) acrn.Errno {
	e.life.Pause()
	return 0
}

// hcResetVM is HC_RESET_VM: param1 is the target VM ID, which must be
// paused or powered off (-EPERM otherwise, as in ACRN v2.6). The run ends;
// the VM gets its power-on state back (every vCPU, the irqchip and the PIT:
// hv.VM.ResetState) and the BSP the registers HC_SET_VCPU_REGS gave it;
// every slot of its request buffer is FREE again (ACRN's reset_vm_ioreqs).
// The VM is then in the created state and can be started again.
func hcResetVM(c *call, e *hcVM) acrn.Errno {
	if !e.life.Stopped() {
		return acrn.EPERM
	}
	e.life.EndRun()
	if err := e.vm.ResetState(); err != nil {
		return acrn.EIO
	}
	if e.bspRegs != nil {
		if err := applyRegs(e.vm, &e.bspRegs.VCPURegs); err != nil {
			return acrn.EIO
		}
	}
	e.resetIOReq()
	e.life.Recreated()
	return 0
}

// hcCreateVCPU is HC_CREATE_VCPU: param1 is the target VM ID, param2 the
// GPA of ACRN 1.x's struct acrn_create_vcpu {uint16 vcpu_id; uint16
// pcpu_id}. ember creates all vCPUs with the VM (vcpu_num), so this only
// confirms that the vCPU exists: 0 for a vcpu_id below vcpu_num, -EINVAL
// otherwise.
func hcCreateVCPU(c *call, e *hcVM) acrn.Errno {
	b, err := c.mem.Slice(c.p2, 4)
	if err != nil {
		return acrn.EFAULT
	}
	if id := int(binary.LittleEndian.Uint16(b)); id >= e.vm.NumVCPUs() {
		return acrn.EINVAL
	}
	return 0
}

// hcSetVCPURegs is HC_SET_VCPU_REGS: param1 is the target VM ID, param2 the
// GPA of an acrn_vcpu_regs. Only the BSP (vcpu_id 0) takes registers from
// the Service VM, as seed 000 says; a VM with a run in progress refuses
// (-EPERM). The registers are also what HC_RESET_VM returns the BSP to.
func hcSetVCPURegs(c *call, e *hcVM) acrn.Errno {
	var regs acrn.VCPURegs
	if r := c.read(c.p2, &regs); r != 0 {
		return r
	}
	if regs.VCPUID != 0 {
		return acrn.EINVAL
	}
	if e.life.Running() {
		return acrn.EPERM
	}
	if err := applyRegs(e.vm, &regs.VCPURegs); err != nil {
		return acrn.EINVAL
	}
	e.bspRegs = &regs
	return 0
}

// applyRegs loads an acrn_regs into the BSP of m (kvmregs.Convert: the
// segments as ACRN sets them).
func applyRegs(m Machine, r *acrn.Regs) error {
	_, s, err := m.VCPURegs(0)
	if err != nil {
		return err
	}
	regs, s := kvmregs.Convert(r, s)
	return m.SetVCPURegs(0, regs, s)
}
