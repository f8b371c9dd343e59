package hypercall

import (
	"ember/acrn"
	"ember/acrn/permission"
	"ember/hv"
	"ember/memory"
)

// PortHypercall is the guest ABI's hypercall port (docs/abi.md, Hypercalls).
// KVM keeps VMCALL to itself, so a guest makes an ACRN hypercall by putting
// the ID in R8, param1 in RDI and param2 in RSI and writing one byte (any
// value) to this port with OUT; the result is in RAX when the OUT retires.
const PortHypercall = 0xf8

// call is one hypercall in flight: who makes it, with what, and where its
// pointer parameters point.
type call struct {
	h    *Service
	from *hcVM         // the calling VM; nil for the host control plane
	vcpu *hv.VCPU      // the calling vCPU of a guest trap; nil from the Go API
	mem  *memory.Guest // the caller's memory: pointer parameters are GPAs in it
	id   acrn.ID       // R8
	p1   uint64        // RDI
	p2   uint64        // RSI
}

// handler runs one hypercall; it returns 0 or the errno whose negation goes
// to RAX.
type handler func(c *call) acrn.Errno

// onTarget makes a handler of a hypercall whose param1 is a target VM ID: the
// target is resolved (c.target: -EINVAL for none, the Service VM, a VM the
// host made, or a dead VM) and its entry locked while h runs.
func onTarget(h func(c *call, e *hcVM) acrn.Errno) handler {
	return func(c *call) acrn.Errno {
		e, r := c.target(c.p1)
		if r != 0 {
			return r
		}
		defer e.mu.Unlock()
		return h(c, e)
	}
}

// handlers holds every hypercall of acrn.All.
var handlers map[acrn.ID]handler

func init() {
	handlers = map[acrn.ID]handler{
		acrn.HCGetAPIVersion:     hcGetAPIVersion,
		acrn.HCSOSOfflineCPU:     hcSOSOfflineCPU,
		acrn.HCSetCallbackVector: hcSetCallbackVector,
		acrn.HCGetPlatformInfo:   hcGetPlatformInfo,

		acrn.HCCreateVM:    hcCreateVM,
		acrn.HCDestroyVM:   hcDestroyVM,
		acrn.HCStartVM:     onTarget(hcStartVM),
		acrn.HCPauseVM:     onTarget(hcPauseVM),
		acrn.HCCreateVCPU:  onTarget(hcCreateVCPU),
		acrn.HCResetVM:     onTarget(hcResetVM),
		acrn.HCSetVCPURegs: onTarget(hcSetVCPURegs),

		acrn.HCInjectMSI:     onTarget(hcInjectMSI),
		acrn.HCVMIntrMonitor: onTarget(hcVMIntrMonitor),
		acrn.HCSetIRQLine:    onTarget(hcSetIRQLine),

		acrn.HCSetIOReqBuffer:      onTarget(hcSetIOReqBuffer),
		acrn.HCNotifyRequestFinish: onTarget(hcNotifyRequestFinish),
		acrn.HCAsyncIOAssign:       onTarget(hcAsyncIOAssign),
		acrn.HCAsyncIODeassign:     onTarget(hcAsyncIODeassign),

		acrn.HCVMGPA2HPA:          onTarget(hcGPA2HPA),
		acrn.HCVMSetMemoryRegions: hcSetMemoryRegions,
		acrn.HCVMWriteProtectPage: onTarget(hcWriteProtectPage),

		acrn.HCSetPtdevIntrInfo:   hcSetPtdevIntrInfo,
		acrn.HCResetPtdevIntrInfo: hcResetPtdevIntrInfo,
		acrn.HCAssignPCIDev:       hcAssignPCIDev,
		acrn.HCDeassignPCIDev:     hcDeassignPCIDev,
		acrn.HCAssignMMIODev:      hcAssignMMIODev,
		acrn.HCDeassignMMIODev:    hcDeassignMMIODev,
		acrn.HCAddVDev:            hcAddVDev,
		acrn.HCRemoveVDev:         hcRemoveVDev,

		acrn.HCSetupSbuf:     hcSetupSbuf,
		acrn.HCSetupHVNPKLog: hcSetupNPKLog,
		acrn.HCProfilingOps:  hcProfilingOps,
		acrn.HCGetHWInfo:     hcGetHWInfo,

		acrn.HCInitializeTrusty:     hcTrusty,
		acrn.HCWorldSwitch:          hcTrusty,
		acrn.HCSaveRestoreSworldCtx: hcTrusty,

		acrn.HCPMGetCPUState: hcPMGetCPUState,
	}
}

// Hypercall makes hypercall id as the host control plane, which acts as the
// Service VM, and returns what a guest would find in RAX: 0 or a negative
// errno (acrn.ResultError turns it into an error). Pointer parameters are
// guest-physical addresses in ServiceMemory. It is safe to call from many
// goroutines.
func (h *Service) Hypercall(id acrn.ID, param1, param2 uint64) uint64 {
	mem, err := h.ServiceMemory()
	if err != nil {
		return acrn.ENOMEM.Result()
	}
	c := &call{h: h, mem: mem, id: id, p1: param1, p2: param2}
	v, r := h.dispatch(c, 0)
	return verdictResult(v, r)
}

// HypercallFrom makes hypercall id as a ring-0 caller in vm, with pointer
// parameters in vm's memory, as vm's guest would through PortHypercall but
// without a vCPU. Where a guest would get #UD (vm may not make
// hypercalls) the result is -ENODEV, as in ACRN's vmcall.c.
func (h *Service) HypercallFrom(vm *hv.VM, id acrn.ID, param1, param2 uint64) uint64 {
	e := h.table.entryOf(vm)
	if e == nil {
		return acrn.ENODEV.Result()
	}
	c := &call{h: h, from: e, mem: vm.Memory(), id: id, p1: param1, p2: param2}
	v, r := h.dispatch(c, 0)
	return verdictResult(v, r)
}

// verdictResult is the RAX value for a verdict; vmcall.c leaves RAX alone
// for #GP (-EACCES) and #UD (-ENODEV), and a Go caller gets those values.
func verdictResult(v permission.Verdict, r uint64) uint64 {
	switch v {
	case permission.InjectGP:
		return acrn.EACCES.Result()
	case permission.InjectUD:
		return acrn.ENODEV.Result()
	}
	return r
}

// dispatch checks the caller's rights (permission.Check) and runs the
// handler. It returns the verdict and, for Allow and Refuse, the RAX value.
func (h *Service) dispatch(c *call, cpl uint8) (permission.Verdict, uint64) {
	service, flags := true, uint64(0)
	if c.from != nil {
		service, flags = c.from.load == loadService, c.from.flags
	}
	v := permission.Check(service, flags, cpl, c.id)
	var rax uint64
	switch v {
	case permission.Allow:
		if e := runHandler(c); e != 0 {
			rax = e.Result()
		}
	case permission.Refuse:
		rax = acrn.EINVAL.Result()
	default:
		h.counts.add(c.id, outcome(v, 0))
		return v, 0
	}
	h.counts.add(c.id, outcome(v, rax))
	h.trace(c, rax)
	return v, rax
}

// runHandler runs c's handler. An ID the permission model accepts always
// has one (TestEveryHypercallHasAHandler); should a new ID be added to acrn
// without one, the caller gets -EINVAL, as for an unknown ID, not a nil call
// on a vCPU thread.
func runHandler(c *call) acrn.Errno {
	run, ok := handlers[c.id]
	if !ok {
		return acrn.EINVAL
	}
	return run(c)
}

// read decodes v from the caller's memory at gpa: -EFAULT if the structure
// is not wholly inside the caller's RAM. The bytes are copied once, so a
// guest changing them meanwhile cannot change what was checked.
func (c *call) read(gpa uint64, v acrn.Codec) acrn.Errno {
	b, err := c.mem.Slice(gpa, uint64(v.SizeOf()))
	if err != nil {
		return acrn.EFAULT
	}
	if err := v.Decode(append([]byte(nil), b...)); err != nil {
		return acrn.EINVAL
	}
	return 0
}

// write encodes v into the caller's memory at gpa, -EFAULT if it does not fit.
func (c *call) write(gpa uint64, v acrn.Codec) acrn.Errno {
	b, err := c.mem.Slice(gpa, uint64(v.SizeOf()))
	if err != nil {
		return acrn.EFAULT
	}
	buf := make([]byte, v.SizeOf())
	if err := v.Encode(buf); err != nil {
		return acrn.EINVAL
	}
	copy(b, buf)
	return 0
}

// target resolves a VM ID parameter: a VM created by HC_CREATE_VM, as
// ACRN's handlers require is_postlaunched_vm of every target. The Service VM
// never targets itself, and a VM the host made (pre-launched, in ACRN's
// terms) is no target either: ACRN refuses them all, and a Service VM that
// could inject into them or translate their addresses (HC_VM_GPA2HPA) would
// reach past the VMs it owns. The entry's lock is held on return; the
// caller unlocks it.
func (c *call) target(vmid uint64) (*hcVM, acrn.Errno) {
	e := c.h.table.ids.Lookup(vmid)
	if e == nil || e == c.from || e.load != loadPost {
		return nil, acrn.EINVAL
	}
	e.mu.Lock()
	if e.life.Dead() {
		e.mu.Unlock()
		return nil, acrn.EINVAL
	}
	return e, 0
}
