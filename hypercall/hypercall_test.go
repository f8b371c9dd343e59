package hypercall

import (
	"context"
	"math/rand"
	"sync"
	"testing"
	"time"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/acrn/permission"
	"ember/acrn/sbuf"
	"ember/hv"
	"ember/internal/kvmtest"
)

// Scratch addresses in the host's service memory.
const (
	gpaParam  = 0x1000  // structures passed to hypercalls
	gpaArray  = 0x2000  // region arrays
	gpaIOReq  = 0x10000 // request buffers
	gpaRAM    = 0x100000
	gpaBeyond = ServiceMemorySize // first GPA outside service memory
)

// hostWrite writes a structure into service memory at gpa and returns gpa.
func hostWrite(t testing.TB, h *Service, gpa uint64, v acrn.Codec) uint64 {
	t.Helper()
	m, err := h.ServiceMemory()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteAt(acrn.Marshal(v), int64(gpa)); err != nil {
		t.Fatal(err)
	}
	return gpa
}

func hostRead(t testing.TB, h *Service, gpa uint64, v acrn.Codec) {
	t.Helper()
	m, _ := h.ServiceMemory()
	b, err := m.Slice(gpa, uint64(v.SizeOf()))
	if err != nil {
		t.Fatal(err)
	}
	v.Decode(b)
}

func errnoOfResult(r uint64) acrn.Errno {
	if err := acrn.ResultError(r); err != nil {
		return err.(acrn.Errno)
	}
	return 0
}

// createVM makes a post-launched VM by HC_CREATE_VM with n vCPUs, maps 1 MiB
// of service memory at GPA 0 and sets its request buffer; it returns the VM ID.
func createVM(t testing.TB, h *Service, n uint16) uint16 {
	t.Helper()
	return createVMFlags(t, h, n, 0)
}

// createVMFlags is createVM for a VM with GUEST_FLAG_* flags.
func createVMFlags(t testing.TB, h *Service, n uint16, flags uint64) uint16 {
	t.Helper()
	cr := acrn.VMCreation{VCPUNum: n, VMFlag: flags}
	if r := h.Hypercall(acrn.HCCreateVM, hostWrite(t, h, gpaParam, &cr), 0); r != 0 {
		t.Fatalf("HC_CREATE_VM: %v", acrn.ResultError(r))
	}
	hostRead(t, h, gpaParam, &cr)
	if cr.VCPUNum != n {
		t.Fatalf("vcpu_num %d, want %d", cr.VCPUNum, n)
	}
	mapRegion(t, h, cr.VMID, acrn.MRAdd, acrn.MemAccessRWX|acrn.MemTypeWB, 0, gpaRAM, 1<<20)
	buf := &iorequest.IOReqBuffer{IOReqBuf: gpaIOReq + uint64(cr.VMID)*0x1000}
	if r := h.Hypercall(acrn.HCSetIOReqBuffer, uint64(cr.VMID), hostWrite(t, h, gpaParam, buf)); r != 0 {
		t.Fatalf("HC_SET_IOREQ_BUFFER: %v", acrn.ResultError(r))
	}
	return cr.VMID
}

// destroyVM pauses VM id and destroys it, as a Service VM does.
func destroyVM(t testing.TB, h *Service, id uint16) {
	t.Helper()
	for _, c := range []acrn.ID{acrn.HCPauseVM, acrn.HCDestroyVM} {
		if r := h.Hypercall(c, uint64(id), 0); r != 0 {
			t.Fatalf("%v: %v", c, acrn.ResultError(r))
		}
	}
}

func mapRegion(t testing.TB, h *Service, id uint16, typ, prot uint32, gpa, serviceGPA, size uint64) acrn.Errno {
	t.Helper()
	hostWrite(t, h, gpaArray, &acrn.VMMemoryRegion{Type: typ, Prot: prot, GPA: gpa, SOSVMGPA: serviceGPA, Size: size})
	p := hostWrite(t, h, gpaParam+0x800, &acrn.SetRegions{VMID: id, MRNum: 1, RegionsGPA: gpaArray})
	return errnoOfResult(h.Hypercall(acrn.HCVMSetMemoryRegions, p, 0))
}

// TestEveryHypercallHasAHandler: every ID the permission model can allow is
// served; runHandler's -EINVAL for a missing one is only a guard.
func TestEveryHypercallHasAHandler(t *testing.T) {
	for _, id := range acrn.All() {
		if _, ok := handlers[id]; !ok {
			t.Errorf("hypercall %v has no handler", id)
		}
	}
	if e := runHandler(&call{id: 0x80000099}); e != acrn.EINVAL {
		t.Errorf("an ID without a handler: %v, want -EINVAL", e)
	}
}

// TestHypercallTable calls every hypercall through the Go API: the success
// case and each documented failure.
func TestHypercallTable(t *testing.T) { eachService(t, testHypercallTable) }

func testHypercallTable(t *testing.T, h *Service) {
	id := uint64(createVM(t, h, 2))
	plain := uint64(newPlainVM(t, h))
	regs := acrn.VCPURegs{VCPURegs: acrn.Regs{RIP: 0x1000, CR0: 0x60000010, CSAR: 0x9b, CSLimit: 0xffff, RFlags: 2}}
	msi := acrn.MSIEntry{MSIAddr: 0xfee00000, MSIData: 0x30}
	pm := func(vm, vcpu, state, typ uint8) uint64 { return uint64(acrn.MakePMCmd(vm, vcpu, state, typ)) }
	pxErr := acrn.Errno(0)
	if len(hostPStates(0)) == 0 {
		pxErr = acrn.ENODEV
	}
	cxErr := acrn.Errno(0)
	if len(hostCStates(0)) == 0 {
		cxErr = acrn.ENODEV
	}
	sbufAt := func(gpa uint64, eleNum, eleSize uint32) uint64 {
		m, _ := h.ServiceMemory()
		m.WriteAt(sbuf.Header(eleNum, eleSize), int64(gpa))
		return gpa
	}
	type row struct {
		name   string
		id     acrn.ID
		p1, p2 func() uint64
		want   acrn.Errno
	}
	v := func(x uint64) func() uint64 { return func() uint64 { return x } }
	at := func(c acrn.Codec) func() uint64 { return func() uint64 { return hostWrite(t, h, gpaParam, c) } }
	rows := []row{
		{"api version", acrn.HCGetAPIVersion, v(gpaParam), v(0), 0},
		{"api version: pointer outside RAM", acrn.HCGetAPIVersion, v(gpaBeyond), v(0), acrn.EFAULT},
		{"api version: pointer straddles the end", acrn.HCGetAPIVersion, v(gpaBeyond - 4), v(0), acrn.EFAULT},
		{"platform info", acrn.HCGetPlatformInfo, at(&acrn.PlatformInfo{}), v(0), 0},
		{"platform info with VM configs", acrn.HCGetPlatformInfo, at(&acrn.PlatformInfo{SW: acrn.PlatformSW{VMConfigsAddr: 0x30000}}), v(0), 0},
		{"platform info: configs outside RAM", acrn.HCGetPlatformInfo, at(&acrn.PlatformInfo{SW: acrn.PlatformSW{VMConfigsAddr: gpaBeyond - 8}}), v(0), acrn.EFAULT},
		{"hw info", acrn.HCGetHWInfo, v(gpaParam), v(0), 0},
		{"hw info: bad pointer", acrn.HCGetHWInfo, v(^uint64(0)), v(0), acrn.EFAULT},
		{"callback vector", acrn.HCSetCallbackVector, v(0xf3), v(0), 0},
		{"callback vector below 0x20", acrn.HCSetCallbackVector, v(0x1f), v(0), acrn.EINVAL},
		{"callback vector above 0xff", acrn.HCSetCallbackVector, v(0x100), v(0), acrn.EINVAL},
		{"offline CPU from the host", acrn.HCSOSOfflineCPU, v(1), v(0), acrn.EINVAL},

		{"create: vcpu_num above 16", acrn.HCCreateVM, at(&acrn.VMCreation{VCPUNum: 17}), v(0), acrn.EINVAL},
		{"create: affinity beyond host CPUs", acrn.HCCreateVM, at(&acrn.VMCreation{CPUAffinity: 1 << 63}), v(0), acrn.EINVAL},
		{"create: affinity disagrees with vcpu_num", acrn.HCCreateVM, at(&acrn.VMCreation{VCPUNum: 2, CPUAffinity: 1}), v(0), acrn.EINVAL},
		{"create: unknown flag", acrn.HCCreateVM, at(&acrn.VMCreation{VMFlag: 1 << 40}), v(0), acrn.EINVAL},
		{"create: ioreq_buf is not read (ACRN never reads it)", acrn.HCCreateVM, at(&acrn.VMCreation{IOReqBuf: 0x10}), v(0), 0},
		{"create: pointer outside RAM", acrn.HCCreateVM, v(gpaBeyond), v(0), acrn.EFAULT},
		{"create vcpu 1", acrn.HCCreateVCPU, v(id), func() uint64 { hostWrite(t, h, gpaParam, &acrn.APIVersion{MajorVersion: 1}); return gpaParam }, 0},
		{"create vcpu beyond vcpu_num", acrn.HCCreateVCPU, v(id), func() uint64 { hostWrite(t, h, gpaParam, &acrn.APIVersion{MajorVersion: 2}); return gpaParam }, acrn.EINVAL},
		{"set regs of the BSP", acrn.HCSetVCPURegs, v(id), at(&regs), 0},
		{"set regs of an AP", acrn.HCSetVCPURegs, v(id), at(&acrn.VCPURegs{VCPUID: 1}), acrn.EINVAL},
		{"set regs: pointer outside RAM", acrn.HCSetVCPURegs, v(id), v(gpaBeyond), acrn.EFAULT},
		{"set regs of the Service VM", acrn.HCSetVCPURegs, v(0), at(&regs), acrn.EINVAL},
		{"set regs of a host VM", acrn.HCSetVCPURegs, v(plain), at(&regs), acrn.EINVAL},
		{"start: vmid out of range", acrn.HCStartVM, v(MaxVMs), v(0), acrn.EINVAL},
		{"start: vmid huge", acrn.HCStartVM, v(1 << 60), v(0), acrn.EINVAL},
		{"pause a created VM", acrn.HCPauseVM, v(id), v(0), 0},
		{"pause again", acrn.HCPauseVM, v(id), v(0), 0},
		{"reset a paused VM", acrn.HCResetVM, v(id), v(0), 0},
		{"start", acrn.HCStartVM, v(id), v(0), 0},
		{"start a running VM", acrn.HCStartVM, v(id), v(0), acrn.EPERM},
		{"set regs while running", acrn.HCSetVCPURegs, v(id), at(&regs), acrn.EPERM},
		{"reset a running VM", acrn.HCResetVM, v(id), v(0), acrn.EPERM},
		{"destroy a running VM: pause it first (ACRN)", acrn.HCDestroyVM, v(id), v(0), acrn.EPERM},
		{"pause a running VM", acrn.HCPauseVM, v(id), v(0), 0},
		{"start a paused VM: reset it first (ACRN)", acrn.HCStartVM, v(id), v(0), acrn.EPERM},
		{"pause", acrn.HCPauseVM, v(id), v(0), 0},
		{"reset", acrn.HCResetVM, v(id), v(0), 0},
		{"reset a created VM: pause it first (ACRN)", acrn.HCResetVM, v(id), v(0), acrn.EPERM},
		{"destroy the Service VM", acrn.HCDestroyVM, v(0), v(0), acrn.EINVAL},
		{"destroy a free ID", acrn.HCDestroyVM, v(MaxVMs - 1), v(0), acrn.EINVAL},

		{"irq line high", acrn.HCSetIRQLine, v(id), v(acrn.IRQLineOps{GSI: 5, Op: acrn.GSISetHigh}.Param()), 0},
		{"irq line low", acrn.HCSetIRQLine, v(id), v(acrn.IRQLineOps{GSI: 5, Op: acrn.GSISetLow}.Param()), 0},
		{"irq raising pulse", acrn.HCSetIRQLine, v(id), v(acrn.IRQLineOps{GSI: 5, Op: acrn.GSIRaisingPulse}.Param()), 0},
		{"irq line of a host VM", acrn.HCSetIRQLine, v(plain), v(acrn.IRQLineOps{GSI: 4, Op: acrn.GSIFallingPulse}.Param()), acrn.EINVAL},
		{"msi to a host VM", acrn.HCInjectMSI, v(plain), at(&msi), acrn.EINVAL},
		{"intr monitor of a host VM", acrn.HCVMIntrMonitor, v(plain), at(&acrn.IntrMonitor{Cmd: acrn.IntrCmdGetData, BufCnt: 48}), acrn.EINVAL},
		{"pm of a host VM", acrn.HCPMGetCPUState, v(pm(uint8(plain), 0, 0, acrn.PMCmdGetCxCnt)), v(gpaParam), acrn.EINVAL},
		{"assign pcidev to a host VM", acrn.HCAssignPCIDev, v(plain), at(&acrn.PCIDev{VirtBDF: 0x18, PhysBDF: 0}), acrn.EINVAL},
		{"irq line: GSI 24", acrn.HCSetIRQLine, v(id), v(acrn.IRQLineOps{GSI: 24}.Param()), acrn.EINVAL},
		{"irq line: op 4", acrn.HCSetIRQLine, v(id), v(acrn.IRQLineOps{GSI: 1, Op: 4}.Param()), acrn.EINVAL},
		{"irq line of the Service VM", acrn.HCSetIRQLine, v(0), v(0), acrn.EINVAL},
		{"msi", acrn.HCInjectMSI, v(id), at(&msi), 0},
		{"msi: address outside 0xfeexxxxx", acrn.HCInjectMSI, v(id), at(&acrn.MSIEntry{MSIAddr: 0xfed00000}), acrn.EINVAL},
		{"msi: pointer outside RAM", acrn.HCInjectMSI, v(id), v(gpaBeyond), acrn.EFAULT},
		{"intr monitor get data", acrn.HCVMIntrMonitor, v(id), at(&acrn.IntrMonitor{Cmd: acrn.IntrCmdGetData, BufCnt: 48}), 0},
		{"intr monitor: buf_cnt 49", acrn.HCVMIntrMonitor, v(id), at(&acrn.IntrMonitor{Cmd: acrn.IntrCmdGetData, BufCnt: 49}), acrn.EINVAL},
		{"intr monitor delay", acrn.HCVMIntrMonitor, v(id), at(&acrn.IntrMonitor{Cmd: acrn.IntrCmdDelayInt}), 0},
		{"intr monitor delay too long", acrn.HCVMIntrMonitor, v(id), at(&acrn.IntrMonitor{Cmd: acrn.IntrCmdDelayInt, Buffer: [48]uint64{1 << 40}}), acrn.EINVAL},
		{"intr monitor: bad cmd", acrn.HCVMIntrMonitor, v(id), at(&acrn.IntrMonitor{Cmd: 2}), acrn.EINVAL},

		{"ioreq buffer", acrn.HCSetIOReqBuffer, v(id), at(&iorequest.IOReqBuffer{IOReqBuf: gpaIOReq + 0x8000}), 0},
		{"ioreq buffer unaligned", acrn.HCSetIOReqBuffer, v(id), at(&iorequest.IOReqBuffer{IOReqBuf: gpaIOReq + 8}), acrn.EINVAL},
		{"ioreq buffer outside RAM", acrn.HCSetIOReqBuffer, v(id), at(&iorequest.IOReqBuffer{IOReqBuf: gpaBeyond - 0x800}), acrn.EINVAL},
		{"ioreq buffer past the end", acrn.HCSetIOReqBuffer, v(id), at(&iorequest.IOReqBuffer{IOReqBuf: gpaBeyond}), acrn.EFAULT},
		{"ioreq buffer: pointer outside RAM", acrn.HCSetIOReqBuffer, v(id), v(gpaBeyond - 4), acrn.EFAULT},
		{"notify finish", acrn.HCNotifyRequestFinish, v(id), v(1), 0},
		{"notify finish: vCPU beyond vcpu_num", acrn.HCNotifyRequestFinish, v(id), v(2), acrn.EINVAL},
		{"asyncio assign", acrn.HCAsyncIOAssign, v(id), at(&acrn.AsyncIOInfo{Type: acrn.AsyncIOPIO, Addr: 0x510}), 0},
		{"asyncio assign twice", acrn.HCAsyncIOAssign, v(id), at(&acrn.AsyncIOInfo{Type: acrn.AsyncIOPIO, Addr: 0x510}), acrn.EINVAL},
		{"asyncio port above 0xffff", acrn.HCAsyncIOAssign, v(id), at(&acrn.AsyncIOInfo{Type: acrn.AsyncIOPIO, Addr: 0x10000}), acrn.EINVAL},
		{"asyncio bad type", acrn.HCAsyncIOAssign, v(id), at(&acrn.AsyncIOInfo{Type: 3}), acrn.EINVAL},
		{"asyncio deassign", acrn.HCAsyncIODeassign, v(id), at(&acrn.AsyncIOInfo{Type: acrn.AsyncIOPIO, Addr: 0x510}), 0},
		{"asyncio deassign again", acrn.HCAsyncIODeassign, v(id), at(&acrn.AsyncIOInfo{Type: acrn.AsyncIOPIO, Addr: 0x510}), acrn.EINVAL},

		{"gpa2hpa", acrn.HCVMGPA2HPA, v(id), at(&acrn.VMGPA2HPA{GPA: 0x1234}), 0},
		{"gpa2hpa of a host VM: no host frame numbers of VMs the Service VM does not own", acrn.HCVMGPA2HPA, v(plain), at(&acrn.VMGPA2HPA{GPA: 0x1234}), acrn.EINVAL},
		{"gpa2hpa unmapped", acrn.HCVMGPA2HPA, v(id), at(&acrn.VMGPA2HPA{GPA: 1 << 30}), acrn.EINVAL},
		{"write protect", acrn.HCVMWriteProtectPage, v(id), at(&acrn.WPData{Set: 1, GPA: 0x3000}), 0},
		{"write unprotect", acrn.HCVMWriteProtectPage, v(id), at(&acrn.WPData{GPA: 0x3000}), 0},
		{"write protect unaligned", acrn.HCVMWriteProtectPage, v(id), at(&acrn.WPData{Set: 1, GPA: 0x3001}), acrn.EINVAL},
		{"write protect unmapped", acrn.HCVMWriteProtectPage, v(id), at(&acrn.WPData{Set: 1, GPA: 1 << 30}), acrn.EINVAL},
		{"regions: mr_num 129", acrn.HCVMSetMemoryRegions, at(&acrn.SetRegions{VMID: uint16(id), MRNum: 129, RegionsGPA: gpaArray}), v(0), acrn.EINVAL},
		{"regions: array outside RAM", acrn.HCVMSetMemoryRegions, at(&acrn.SetRegions{VMID: uint16(id), MRNum: 128, RegionsGPA: gpaBeyond - 32}), v(0), acrn.EFAULT},
		{"regions: bad vmid", acrn.HCVMSetMemoryRegions, at(&acrn.SetRegions{VMID: 0xffff}), v(0), acrn.EINVAL},

		{"assign pcidev", acrn.HCAssignPCIDev, v(id), at(&acrn.PCIDev{VirtBDF: 0x18, PhysBDF: 0}), acrn.ENODEV},
		{"assign pcidev: host bridge BDF", acrn.HCAssignPCIDev, v(id), at(&acrn.PCIDev{PhysBDF: 0}), acrn.EINVAL},
		{"assign pcidev: no such host function", acrn.HCAssignPCIDev, v(id), at(&acrn.PCIDev{VirtBDF: 0x18, PhysBDF: 0xfff8}), acrn.EINVAL},
		{"deassign pcidev", acrn.HCDeassignPCIDev, v(id), at(&acrn.PCIDev{VirtBDF: 0x18}), acrn.EINVAL},
		{"assign mmiodev", acrn.HCAssignMMIODev, v(id), at(&acrn.MMIODev{Res: [3]acrn.MMIORes{{UserVMPA: 0xf0000000, HostPA: 0xfed00000, Size: 0x1000}}}), acrn.ENODEV},
		{"assign mmiodev: unaligned", acrn.HCAssignMMIODev, v(id), at(&acrn.MMIODev{Res: [3]acrn.MMIORes{{UserVMPA: 0xf0000010, Size: 0x1000}}}), acrn.EINVAL},
		{"assign mmiodev: wraps", acrn.HCAssignMMIODev, v(id), at(&acrn.MMIODev{Res: [3]acrn.MMIORes{{HostPA: ^uint64(0) &^ 0xfff, Size: 0x2000}}}), acrn.EINVAL},
		{"deassign mmiodev", acrn.HCDeassignMMIODev, v(id), at(&acrn.MMIODev{}), acrn.EINVAL},
		{"set ptdev intr", acrn.HCSetPtdevIntrInfo, v(id), at(&acrn.HCPtdevIRQ{Type: acrn.PtdevIRQINTx, Intx: acrn.HCIntxInfo{VirtPin: 5, PhysPin: 5}}), acrn.ENODEV},
		{"set ptdev intr: bad type", acrn.HCSetPtdevIntrInfo, v(id), at(&acrn.HCPtdevIRQ{Type: 3}), acrn.EINVAL},
		{"set ptdev intr: PIC pin 16", acrn.HCSetPtdevIntrInfo, v(id), at(&acrn.HCPtdevIRQ{Intx: acrn.HCIntxInfo{VirtPin: 16, PICPin: true}}), acrn.EINVAL},
		{"reset ptdev intr", acrn.HCResetPtdevIntrInfo, v(id), at(&acrn.HCPtdevIRQ{}), acrn.EINVAL},
		{"add vdev", acrn.HCAddVDev, v(id), at(&acrn.VDev{}), acrn.ENODEV},
		{"add vdev: pointer outside RAM", acrn.HCAddVDev, v(id), v(gpaBeyond), acrn.EFAULT},
		{"remove vdev", acrn.HCRemoveVDev, v(id), at(&acrn.VDev{}), acrn.EINVAL},

		{"sbuf", acrn.HCSetupSbuf, at(&acrn.SbufSetupParam{SbufID: acrn.SbufTrace, GPA: sbufAt(0x20000, 64, 32)}), v(0), 0},
		{"sbuf: bad magic", acrn.HCSetupSbuf, at(&acrn.SbufSetupParam{SbufID: acrn.SbufTrace, GPA: 0x21000}), v(0), acrn.EINVAL},
		{"sbuf: size overflows", acrn.HCSetupSbuf, at(&acrn.SbufSetupParam{SbufID: acrn.SbufTrace, GPA: sbufAt(0x22000, 1<<28, 32)}), v(0), acrn.EINVAL},
		{"sbuf: pcpu beyond host", acrn.HCSetupSbuf, at(&acrn.SbufSetupParam{PCPUID: 999}), v(0), acrn.EINVAL},
		{"sbuf: SEP", acrn.HCSetupSbuf, at(&acrn.SbufSetupParam{SbufID: acrn.SbufSEP}), v(0), acrn.ENODEV},
		{"sbuf: id 4", acrn.HCSetupSbuf, at(&acrn.SbufSetupParam{SbufID: 4}), v(0), acrn.EINVAL},
		{"npk query", acrn.HCSetupHVNPKLog, at(&acrn.NPKLogParam{Cmd: acrn.NPKLogCmdQuery}), v(0), 0},
		{"npk enable", acrn.HCSetupHVNPKLog, at(&acrn.NPKLogParam{Cmd: acrn.NPKLogCmdEnable}), v(0), acrn.ENODEV},
		{"npk bad cmd", acrn.HCSetupHVNPKLog, at(&acrn.NPKLogParam{Cmd: 9}), v(0), acrn.EINVAL},
		{"profiling", acrn.HCProfilingOps, v(acrn.ProfilingGetVersion), v(gpaParam), acrn.ENODEV},
		{"profiling bad cmd", acrn.HCProfilingOps, v(9), v(gpaParam), acrn.EINVAL},

		{"pm px count", acrn.HCPMGetCPUState, v(pm(uint8(id), 0, 0, acrn.PMCmdGetPxCnt)), v(gpaParam), pxErr},
		{"pm cx count", acrn.HCPMGetCPUState, v(pm(uint8(id), 0, 0, acrn.PMCmdGetCxCnt)), v(gpaParam), cxErr},
		{"pm cx data 1", acrn.HCPMGetCPUState, v(pm(uint8(id), 1, 1, acrn.PMCmdGetCxData)), v(gpaParam), cxErr},
		{"pm cx data 0", acrn.HCPMGetCPUState, v(pm(uint8(id), 0, 0, acrn.PMCmdGetCxData)), v(gpaParam), map[bool]acrn.Errno{true: acrn.EINVAL, false: acrn.ENODEV}[cxErr == 0]},
		{"pm vcpu beyond vcpu_num", acrn.HCPMGetCPUState, v(pm(uint8(id), 2, 0, acrn.PMCmdGetCxCnt)), v(gpaParam), acrn.EINVAL},
		{"pm bad type", acrn.HCPMGetCPUState, v(pm(uint8(id), 0, 0, 4)), v(gpaParam), acrn.EINVAL},
		{"pm vmid of the Service VM", acrn.HCPMGetCPUState, v(pm(0, 0, 0, 0)), v(gpaParam), acrn.EINVAL},

		{"trusty from the host", acrn.HCInitializeTrusty, v(gpaParam), v(0), acrn.EINVAL},
		{"retired HC_ASSIGN_PTDEV", acrn.HCAssignPtdev, v(id), v(0), acrn.EINVAL},
		{"unknown ID", 0x80000099, v(0), v(0), acrn.EINVAL},

		{"destroy a created VM: pause it first (ACRN)", acrn.HCDestroyVM, v(id), v(0), acrn.EPERM},
		{"pause to destroy", acrn.HCPauseVM, v(id), v(0), 0},
		{"destroy", acrn.HCDestroyVM, v(id), v(0), 0},
		{"destroy again", acrn.HCDestroyVM, v(id), v(0), acrn.EINVAL},
		{"start a destroyed VM", acrn.HCStartVM, v(id), v(0), acrn.EINVAL},
	}
	for _, r := range rows {
		got := errnoOfResult(h.Hypercall(r.id, r.p1(), r.p2()))
		if got != r.want {
			t.Errorf("%s: %v(...) = %v, want %v", r.name, r.id, got, r.want)
		}
	}
}

// TestMemoryRegions maps, modifies and unmaps regions of a VM's memory.
func TestMemoryRegions(t *testing.T) { eachService(t, testMemoryRegions) }

func testMemoryRegions(t *testing.T, h *Service) {
	id := createVM(t, h, 1)
	rw := uint32(acrn.MemAccessRWX | acrn.MemTypeWB)
	for _, tt := range []struct {
		name                  string
		typ, prot             uint32
		gpa, serviceGPA, size uint64
		want                  acrn.Errno
	}{
		{"overlapping add", acrn.MRAdd, rw, 0x80000, gpaRAM, 0x100000, acrn.EINVAL},
		{"add", acrn.MRAdd, rw, 1 << 32, 0x400000, 0x10000, 0},
		{"unaligned size", acrn.MRAdd, rw, 1 << 33, 0x400000, 0x10, acrn.EINVAL},
		{"zero size", acrn.MRAdd, rw, 1 << 33, 0x400000, 0, acrn.EINVAL},
		{"GPA wraps", acrn.MRAdd, rw, ^uint64(0) &^ 0xfff, 0x400000, 0x2000, acrn.EINVAL},
		{"source outside service memory", acrn.MRAdd, rw, 1 << 33, gpaBeyond - 0x1000, 0x2000, acrn.EFAULT},
		{"two memory types", acrn.MRAdd, acrn.MemTypeWB | acrn.MemTypeUC, 1 << 33, 0x400000, 0x1000, acrn.EINVAL},
		{"unknown prot bit", acrn.MRAdd, 0x800, 1 << 33, 0x400000, 0x1000, acrn.EINVAL},
		{"type 1", 1, rw, 1 << 33, 0x400000, 0x1000, acrn.EINVAL},
		{"modify to read-only", acrn.MRModify, acrn.MemAccessRead | acrn.MemTypeUC, 1 << 32, 0, 0x10000, 0},
		{"modify a range that is no region", acrn.MRModify, rw, 1 << 32, 0, 0x1000, acrn.EINVAL},
		{"delete", acrn.MRDel, 0, 1 << 32, 0, 0x10000, 0},
		{"delete again", acrn.MRDel, 0, 1 << 32, 0, 0x10000, acrn.EINVAL},
	} {
		if got := mapRegion(t, h, id, tt.typ, tt.prot, tt.gpa, tt.serviceGPA, tt.size); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestWriteProtectedPageInAGuest shows that a guest write to a
// write-protected page is not performed but reaches the Service VM as a WP
// request in its request buffer, which it completes like any other.
func TestWriteProtectedPageInAGuest(t *testing.T) {
	h := openHV(t)
	s := newHostServiceVM(t, h, 0)
	id := s.id
	// The VM stores 0x99 at GPA 0x5000 (write-protected) and 0x77 at 0x6000,
	// then exits: one WP request, one real store.
	code := []byte{
		0xc6, 0x06, 0x00, 0x50, 0x99, // movb $0x99, 0x5000
		0xc6, 0x06, 0x00, 0x60, 0x77, // movb $0x77, 0x6000
		0xb0, 0x07, 0xe6, 0xf4, // mov $7, %al; out %al, $0xf4
	}
	m, _ := h.ServiceMemory()
	m.WriteAt(code, gpaRAM+0x1000)
	regs := acrn.VCPURegs{VCPURegs: acrn.Regs{RIP: 0x1000, CR0: 0x60000010, CSAR: 0x9b, CSLimit: 0xffff, RFlags: 2}}
	if r := h.Hypercall(acrn.HCSetVCPURegs, uint64(id), hostWrite(t, h, gpaParam, &regs)); r != 0 {
		t.Fatal(acrn.ResultError(r))
	}
	if r := h.Hypercall(acrn.HCVMWriteProtectPage, uint64(id), hostWrite(t, h, gpaParam, &acrn.WPData{Set: 1, GPA: 0x5000})); r != 0 {
		t.Fatal(acrn.ResultError(r))
	}
	if r := h.Hypercall(acrn.HCStartVM, uint64(id), 0); r != 0 {
		t.Fatal(acrn.ResultError(r))
	}
	s.upcall()
	if err := s.page.Claim(0); err != nil {
		t.Fatal(err)
	}
	req, err := s.page.Request(0)
	if err != nil || req.Type != iorequest.ReqWP || req.MMIO().Address != 0x5000 || req.MMIO().Value != 0x99 ||
		req.MMIO().Direction != iorequest.DirWrite {
		t.Fatalf("request in the Service VM's page: %+v %v, want a WP write of 0x99 to 0x5000", req, err)
	}
	s.complete(0)
	if e := s.finish(); e != 0 {
		t.Fatalf("notify: %v", e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := h.WaitVM(ctx, id)
	if err != nil || res.Reason != hv.StopExit || res.Status != 7 {
		t.Fatalf("VM: %v %v", res, err)
	}
	b := make([]byte, 1)
	m.ReadAt(b, gpaRAM+0x5000)
	if b[0] != 0 {
		t.Errorf("write-protected byte is %#x, want it untouched", b[0])
	}
	m.ReadAt(b, gpaRAM+0x6000)
	if b[0] != 0x77 {
		t.Errorf("shared byte is %#x, want 0x77", b[0])
	}
	// Powered off: start is refused until a reset.
	if r := errnoOfResult(h.Hypercall(acrn.HCStartVM, uint64(id), 0)); r != acrn.EPERM {
		t.Errorf("start after power-off: %v", r)
	}
	if r := h.Hypercall(acrn.HCResetVM, uint64(id), 0); r != 0 {
		t.Errorf("reset: %v", acrn.ResultError(r))
	}
}

func TestCreateVMFillsIDAndHonoursAffinity(t *testing.T) {
	eachService(t, testCreateVMFillsIDAndHonoursAffinity)
}

func testCreateVMFillsIDAndHonoursAffinity(t *testing.T, h *Service) {
	// ioreq_buf names a valid page, but HC_CREATE_VM does not read it.
	cr := acrn.VMCreation{CPUAffinity: 1, IOReqBuf: gpaIOReq}
	if r := h.Hypercall(acrn.HCCreateVM, hostWrite(t, h, gpaParam, &cr), 0); r != 0 {
		t.Fatal(acrn.ResultError(r))
	}
	hostRead(t, h, gpaParam, &cr)
	st, ok := h.LookupVM(cr.VMID)
	if !ok || cr.VCPUNum != 1 || h.table.ids.Lookup(uint64(cr.VMID)).vm.NumVCPUs() != 1 || !st.Hypercall || st.State != "created" {
		t.Fatalf("created %+v, status %+v", cr, st)
	}
	// Start is refused until the I/O request buffer is set.
	if r := errnoOfResult(h.Hypercall(acrn.HCStartVM, uint64(cr.VMID), 0)); r != acrn.EPERM {
		t.Errorf("start without a buffer: %v", r)
	}
	destroyVM(t, h, cr.VMID)
}

func TestIntrMonitorCounts(t *testing.T) { eachService(t, testIntrMonitorCounts) }

func testIntrMonitorCounts(t *testing.T, h *Service) {
	id := uint64(createVM(t, h, 1))
	for i := 0; i < 3; i++ {
		h.Hypercall(acrn.HCSetIRQLine, id, acrn.IRQLineOps{GSI: 9, Op: acrn.GSIRaisingPulse}.Param())
	}
	h.Hypercall(acrn.HCInjectMSI, id, hostWrite(t, h, gpaParam, &acrn.MSIEntry{MSIAddr: 0xfee00000, MSIData: 0x41}))
	p := hostWrite(t, h, gpaParam, &acrn.IntrMonitor{Cmd: acrn.IntrCmdGetData, BufCnt: 48})
	if r := h.Hypercall(acrn.HCVMIntrMonitor, id, p); r != 0 {
		t.Fatal(acrn.ResultError(r))
	}
	var m acrn.IntrMonitor
	hostRead(t, h, p, &m)
	if m.BufCnt != 4 || m.Buffer[0] != 9 || m.Buffer[1] != 3 || m.Buffer[2] != 0x10041 || m.Buffer[3] != 1 {
		t.Fatalf("monitor %d %v", m.BufCnt, m.Buffer[:4])
	}
}

// TestConcurrentHypercalls makes hypercalls on one VM from many goroutines
// (run it with -race): lifecycle, interrupts, memory and queries at once.
func TestConcurrentHypercalls(t *testing.T) { eachService(t, testConcurrentHypercalls) }

func testConcurrentHypercalls(t *testing.T, h *Service) {
	id := uint64(createVM(t, h, 2))
	m, _ := h.ServiceMemory()
	m.WriteAt([]byte{0xeb, 0xfe}, gpaRAM+0x1000) // jmp . in real mode
	regs := acrn.VCPURegs{VCPURegs: acrn.Regs{RIP: 0x1000, CR0: 0x60000010, CSAR: 0x9b, CSLimit: 0xffff, RFlags: 2}}
	if r := h.Hypercall(acrn.HCSetVCPURegs, id, hostWrite(t, h, gpaParam, &regs)); r != 0 {
		t.Fatal(acrn.ResultError(r))
	}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(g)))
			base := uint64(0x40000 + g*0x1000) // each goroutine's own parameter page
			for i := 0; i < 40; i++ {
				switch rnd.Intn(7) {
				case 0:
					h.Hypercall(acrn.HCStartVM, id, 0)
				case 1:
					h.Hypercall(acrn.HCPauseVM, id, 0)
				case 2:
					h.Hypercall(acrn.HCResetVM, id, 0)
				case 3:
					h.Hypercall(acrn.HCSetIRQLine, id, acrn.IRQLineOps{GSI: uint32(rnd.Intn(24)), Op: acrn.GSIRaisingPulse}.Param())
				case 4:
					b := acrn.Marshal(&acrn.WPData{Set: uint8(rnd.Intn(2)), GPA: uint64(rnd.Intn(16)) << 12})
					m.WriteAt(b, int64(base))
					h.Hypercall(acrn.HCVMWriteProtectPage, id, base)
				case 5:
					m.WriteAt(acrn.Marshal(&acrn.IntrMonitor{BufCnt: 48}), int64(base))
					h.Hypercall(acrn.HCVMIntrMonitor, id, base)
				case 6:
					m.WriteAt(acrn.Marshal(&acrn.VMGPA2HPA{GPA: 0x1000}), int64(base))
					h.Hypercall(acrn.HCVMGPA2HPA, id, base)
				}
			}
		}()
	}
	wg.Wait()
	destroyVM(t, h, uint16(id))
}

// FuzzHypercall throws random IDs and parameters at the dispatcher with a
// live (fake) VM in the table; blob is written at a fixed GPA so that pointer
// parameters sometimes point at attacker-chosen structures. It must never
// panic, and a live VM must stay usable.
func FuzzHypercall(f *testing.F) {
	f.Add(uint8(0), uint64(0), uint64(0), []byte{})
	for i := range acrn.All() {
		f.Add(uint8(i), uint64(1), uint64(fuzzBlob), []byte{1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0})
	}
	// Fake machines: the handlers and parsers are what is fuzzed, on any
	// host and fast (TestConcurrentHypercalls and the table test run them on
	// KVM too).
	h := fakeService(f)
	f.Fuzz(func(t *testing.T, which uint8, p1, p2 uint64, blob []byte) {
		if _, ok := h.LookupVM(1); !ok {
			cr := acrn.VMCreation{VCPUNum: 1}
			h.Hypercall(acrn.HCCreateVM, hostWrite(t, h, gpaParam, &cr), 0)
		}
		all := acrn.All()
		id := acrn.ID(p1 ^ p2)
		if int(which) < len(all) {
			id = all[which]
		}
		if len(blob) > 4096 {
			blob = blob[:4096]
		}
		m, _ := h.ServiceMemory()
		m.WriteAt(blob, fuzzBlob)
		switch p2 % 4 {
		case 0:
			p2 = fuzzBlob
		case 1:
			p2 = p2 % 0x10
		}
		if p1%3 == 0 {
			p1 = fuzzBlob
		}
		h.Hypercall(id, p1, p2)
	})
}

const fuzzBlob = 0x50000

// openHV opens /dev/kvm (skipping without it, kvmtest.Require) and returns
// a hypercall service on it.
func openHV(t testing.TB) *Service {
	t.Helper()
	kvmtest.Require(t)
	h, err := hv.Open()
	if err != nil {
		t.Fatal(err)
	}
	s := New(h)
	t.Cleanup(func() {
		s.Close()
		h.Close()
	})
	return s
}

// TestServiceVMSbufsGoWithIt: the trace buffer a Service VM guest registered
// is in its RAM; when that VM closes, ember forgets the buffer instead of
// writing trace records into memory that is gone.
func TestServiceVMSbufsGoWithIt(t *testing.T) {
	h := fakeService(t)
	e, err := h.newVM(hv.Config{MemorySize: 1 << 20}, loadService, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem := e.vm.Memory()
	mem.WriteAt(sbuf.Header(4, TraceEntrySize), 0x2000)
	mem.WriteAt(acrn.Marshal(&acrn.SbufSetupParam{SbufID: acrn.SbufTrace, GPA: 0x2000}), 0x1000)
	c := &call{h: h, from: e, mem: mem, id: acrn.HCSetupSbuf, p1: 0x1000}
	if v, r := h.dispatch(c, 0); v != permission.Allow || r != 0 {
		t.Fatalf("HC_SETUP_SBUF from the Service VM: verdict %v, RAX %#x", v, r)
	}
	if n := h.table.sbufs.Traces(); n != 1 {
		t.Fatalf("%d trace buffers registered, want 1", n)
	}
	e.vm.Close()
	if n := h.table.sbufs.Traces(); n != 0 {
		t.Errorf("%d trace buffers left after the Service VM closed, want 0", n)
	}
	h.Hypercall(acrn.HCGetAPIVersion, gpaParam, 0) // traced nowhere, and no fault
}

// TestServiceVMOfflineCPU: HC_SOS_OFFLINE_CPU from a Service VM refuses its
// BSP and IDs it does not have (-EINVAL, as ACRN), and answers -ENODEV for
// a valid AP: ember has no physical CPU to hand over and does not pretend
// to have taken one.
func TestServiceVMOfflineCPU(t *testing.T) {
	h := fakeService(t)
	e, err := h.newVM(hv.Config{MemorySize: 1 << 20, VCPUs: 2}, loadService, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer e.vm.Close()
	for _, tt := range []struct {
		lapicID uint64
		want    acrn.Errno
	}{{0, acrn.EINVAL}, {1, acrn.ENODEV}, {2, acrn.EINVAL}} {
		c := &call{h: h, from: e, mem: e.vm.Memory(), id: acrn.HCSOSOfflineCPU, p1: tt.lapicID}
		if v, r := h.dispatch(c, 0); v != permission.Allow || errnoOfResult(r) != tt.want {
			t.Errorf("LAPIC ID %d: verdict %v, %v; want %v", tt.lapicID, v, errnoOfResult(r), tt.want)
		}
	}
}
