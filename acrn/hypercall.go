package acrn

import "fmt"

// ID is an ACRN hypercall ID, the value a caller puts in R8. ACRN reads R8 as
// a full 64-bit register (vcpu_get_gpreg(vcpu, CPU_REG_R8)), so ID is 64 bits
// wide; every defined ID is BASE_HC_ID(HC_ID, group+n) from acrn_hv_defs.h,
// i.e. 0x80<<24 | group | n.
type ID uint64

// Group is the high nibble of a hypercall's index byte (HC_IDX): the
// HC_ID_*_BASE values of acrn_hv_defs.h.
type Group uint8

// The hypercall groups, HC_ID_*_BASE in acrn_hv_defs.h.
const (
	GroupGeneral Group = 0x00 // HC_ID_GEN_BASE: version, platform, callback vector
	GroupVM      Group = 0x10 // HC_ID_VM_BASE: VM and vCPU lifecycle
	GroupIRQ     Group = 0x20 // HC_ID_IRQ_BASE: MSI, IRQ lines, interrupt monitor
	GroupIOReq   Group = 0x30 // HC_ID_IOREQ_BASE: I/O request buffer and completion
	GroupMemory  Group = 0x40 // HC_ID_MEM_BASE: EPT mappings, write protection, gpa2hpa
	GroupPCI     Group = 0x50 // HC_ID_PCI_BASE: passthrough and emulated devices
	GroupDebug   Group = 0x60 // HC_ID_DBG_BASE: sbuf, NPK log, profiling, hw info
	GroupTrusty  Group = 0x70 // HC_ID_TRUSTY_BASE: secure world
	GroupPM      Group = 0x80 // HC_ID_PM_BASE: power management
)

var groupNames = map[Group]string{
	GroupGeneral: "general",
	GroupVM:      "vm",
	GroupIRQ:     "irq",
	GroupIOReq:   "ioreq",
	GroupMemory:  "memory",
	GroupPCI:     "pci",
	GroupDebug:   "debug",
	GroupTrusty:  "trusty",
	GroupPM:      "pm",
}

// String names the group as the comments in acrn_hv_defs.h do.
func (g Group) String() string {
	if s, ok := groupNames[g]; ok {
		return s
	}
	return fmt.Sprintf("Group(%#02x)", uint8(g))
}

// HCVendor is HC_ID, the vendor byte in bits 31:24 of every ACRN hypercall ID.
const HCVendor = 0x80

// MakeID is BASE_HC_ID(HC_ID, g+n): the ID of hypercall n of group g.
func MakeID(g Group, n uint8) ID {
	return ID(HCVendor)<<24 | ID(uint8(g)+n)
}

// Index is HC_IDX(id), the low byte ACRN uses to index its dispatch table.
func (id ID) Index() uint8 { return uint8(id) }

// Group returns the group the ID's index byte falls in.
func (id ID) Group() Group { return Group(uint8(id) & 0xF0) }

// Hypercall IDs. The values are those of acrn_hv_defs.h at ACRN v2.6, the
// release seed 000 documents, plus HC_ASYNCIO_ASSIGN/DEASSIGN from later
// headers (they fill free slots of the ioreq group and collide with nothing).
const (
	// HCGetAPIVersion (HC_GET_API_VERSION): param1 is the GPA of an
	// APIVersion the hypervisor fills in.
	HCGetAPIVersion ID = HCVendor<<24 | (ID(GroupGeneral) + 0x00)
	// HCSOSOfflineCPU (HC_SOS_OFFLINE_CPU): param1 is the LAPIC ID of the
	// Service VM vCPU to take offline. Seed 000 calls the handler
	// hcall_sos_offline_cpu; ACRN v2.7 renamed the ID
	// HC_SERVICE_VM_OFFLINE_CPU with the same value.
	HCSOSOfflineCPU ID = HCVendor<<24 | (ID(GroupGeneral) + 0x01)
	// HCSetCallbackVector (HC_SET_CALLBACK_VECTOR): param1 is the upcall
	// vector the Service VM wants instead of CallbackVectorDefault.
	HCSetCallbackVector ID = HCVendor<<24 | (ID(GroupGeneral) + 0x02)
	// HCGetPlatformInfo (HC_GET_PLATFORM_INFO): param1 is the GPA of a
	// PlatformInfo. Seed 000 documents it; ACRN removed it in 2022
	// (commit 364b2b142), so newer headers lack it. The seed wins.
	HCGetPlatformInfo ID = HCVendor<<24 | (ID(GroupGeneral) + 0x03)

	// HCCreateVM (HC_CREATE_VM): param1 is the GPA of a VMCreation; the
	// hypervisor writes the new VMID (and vCPU count) back into it.
	HCCreateVM ID = HCVendor<<24 | (ID(GroupVM) + 0x00)
	// HCDestroyVM (HC_DESTROY_VM): param1 is the target VMID.
	HCDestroyVM ID = HCVendor<<24 | (ID(GroupVM) + 0x01)
	// HCStartVM (HC_START_VM): param1 is the target VMID.
	HCStartVM ID = HCVendor<<24 | (ID(GroupVM) + 0x02)
	// HCPauseVM (HC_PAUSE_VM): param1 is the target VMID.
	HCPauseVM ID = HCVendor<<24 | (ID(GroupVM) + 0x03)
	// HCCreateVCPU (HC_CREATE_VCPU): kept for compatibility; ACRN v2.6's
	// handler ignores its parameters and returns 0.
	HCCreateVCPU ID = HCVendor<<24 | (ID(GroupVM) + 0x04)
	// HCResetVM (HC_RESET_VM): param1 is the target VMID.
	HCResetVM ID = HCVendor<<24 | (ID(GroupVM) + 0x05)
	// HCSetVCPURegs (HC_SET_VCPU_REGS): param1 is the target VMID, param2
	// the GPA of a VCPURegs. Seed 000's struct text calls it
	// "HC_SET_VCPU_STATE"; no such ID exists in any header.
	HCSetVCPURegs ID = HCVendor<<24 | (ID(GroupVM) + 0x06)

	// HCInjectMSI (HC_INJECT_MSI): param1 is the target VMID, param2 the
	// GPA of an MSIEntry.
	HCInjectMSI ID = HCVendor<<24 | (ID(GroupIRQ) + 0x03)
	// HCVMIntrMonitor (HC_VM_INTR_MONITOR): param1 is the target VMID,
	// param2 the GPA of an IntrMonitor.
	HCVMIntrMonitor ID = HCVendor<<24 | (ID(GroupIRQ) + 0x04)
	// HCSetIRQLine (HC_SET_IRQLINE): param1 is the target VMID, param2 an
	// IRQLineOps passed by value (see IRQLineOpsFromParam).
	HCSetIRQLine ID = HCVendor<<24 | (ID(GroupIRQ) + 0x05)

	// HCSetIOReqBuffer (HC_SET_IOREQ_BUFFER): param1 is the target VMID,
	// param2 the Service VM GPA of a u64 holding the GPA of the 4 KiB I/O
	// request buffer (Linux's struct acrn_ioreq_buffer).
	HCSetIOReqBuffer ID = HCVendor<<24 | (ID(GroupIOReq) + 0x00)
	// HCNotifyRequestFinish (HC_NOTIFY_REQUEST_FINISH): param1 is the
	// target VMID, param2 the vCPU whose request is COMPLETE.
	HCNotifyRequestFinish ID = HCVendor<<24 | (ID(GroupIOReq) + 0x01)
	// HCAsyncIOAssign (HC_ASYNCIO_ASSIGN, ACRN v3.1+): param1 is the target
	// VMID, param2 the GPA of an AsyncIOInfo to register.
	HCAsyncIOAssign ID = HCVendor<<24 | (ID(GroupIOReq) + 0x02)
	// HCAsyncIODeassign (HC_ASYNCIO_DEASSIGN, ACRN v3.1+): param1 is the
	// target VMID, param2 the GPA of the AsyncIOInfo to remove.
	HCAsyncIODeassign ID = HCVendor<<24 | (ID(GroupIOReq) + 0x03)

	// HCVMGPA2HPA (HC_VM_GPA2HPA): param1 is the target VMID, param2 the
	// GPA of a VMGPA2HPA.
	HCVMGPA2HPA ID = HCVendor<<24 | (ID(GroupMemory) + 0x01)
	// HCVMSetMemoryRegions (HC_VM_SET_MEMORY_REGIONS): param1 is the GPA of
	// a SetRegions (seed 000 writes "struct set_memmaps"; the header's
	// struct is set_regions), whose VMID field names the target.
	HCVMSetMemoryRegions ID = HCVendor<<24 | (ID(GroupMemory) + 0x02)
	// HCVMWriteProtectPage (HC_VM_WRITE_PROTECT_PAGE): param1 is the target
	// VMID, param2 the GPA of a WPData.
	HCVMWriteProtectPage ID = HCVendor<<24 | (ID(GroupMemory) + 0x03)

	// HCAssignPtdev (HC_ASSIGN_PTDEV) is defined by the header but has no
	// handler since ACRN v2.0 (superseded by HCAssignPCIDev); a call returns
	// -EINVAL. Not in seed 000.
	HCAssignPtdev ID = HCVendor<<24 | (ID(GroupPCI) + 0x00)
	// HCDeassignPtdev (HC_DEASSIGN_PTDEV): retired like HCAssignPtdev.
	HCDeassignPtdev ID = HCVendor<<24 | (ID(GroupPCI) + 0x01)
	// HCVMPCIMSIXRemap (HC_VM_PCI_MSIX_REMAP): retired like HCAssignPtdev.
	HCVMPCIMSIXRemap ID = HCVendor<<24 | (ID(GroupPCI) + 0x02)
	// HCSetPtdevIntrInfo (HC_SET_PTDEV_INTR_INFO): param1 is the target
	// VMID, param2 the GPA of an HCPtdevIRQ.
	HCSetPtdevIntrInfo ID = HCVendor<<24 | (ID(GroupPCI) + 0x03)
	// HCResetPtdevIntrInfo (HC_RESET_PTDEV_INTR_INFO): param1 is the target
	// VMID, param2 the GPA of an HCPtdevIRQ.
	HCResetPtdevIntrInfo ID = HCVendor<<24 | (ID(GroupPCI) + 0x04)
	// HCAssignPCIDev (HC_ASSIGN_PCIDEV): param1 is the target VMID, param2
	// the GPA of a PCIDev.
	HCAssignPCIDev ID = HCVendor<<24 | (ID(GroupPCI) + 0x05)
	// HCDeassignPCIDev (HC_DEASSIGN_PCIDEV): param1 is the target VMID,
	// param2 the GPA of a PCIDev.
	HCDeassignPCIDev ID = HCVendor<<24 | (ID(GroupPCI) + 0x06)
	// HCAssignMMIODev (HC_ASSIGN_MMIODEV): param1 is the target VMID,
	// param2 the GPA of an MMIODev.
	HCAssignMMIODev ID = HCVendor<<24 | (ID(GroupPCI) + 0x07)
	// HCDeassignMMIODev (HC_DEASSIGN_MMIODEV): param1 is the target VMID,
	// param2 the GPA of an MMIODev.
	HCDeassignMMIODev ID = HCVendor<<24 | (ID(GroupPCI) + 0x08)
	// HCAddVDev (HC_ADD_VDEV): param1 is the target VMID, param2 the GPA of
	// a VDev. Seed 000's struct text says "HC_CREATE_VDEV"; the ID is
	// HC_ADD_VDEV.
	HCAddVDev ID = HCVendor<<24 | (ID(GroupPCI) + 0x09)
	// HCRemoveVDev (HC_REMOVE_VDEV): param1 is the target VMID, param2 the
	// GPA of a VDev ("HC_DESTROY_VDEV" in seed 000's struct text).
	HCRemoveVDev ID = HCVendor<<24 | (ID(GroupPCI) + 0x0A)

	// HCSetupSbuf (HC_SETUP_SBUF): param1 is the GPA of a SbufSetupParam.
	// Seed 000 (ACRN v2.6) has it in the debug group, 0x80000060, taking
	// param1. ACRN v3.1 moved it to the memory group (0x80000044) and to
	// param2; the seed wins.
	HCSetupSbuf ID = HCVendor<<24 | (ID(GroupDebug) + 0x00)
	// HCSetupHVNPKLog (HC_SETUP_HV_NPK_LOG): param1 is the GPA of an
	// NPKLogParam.
	HCSetupHVNPKLog ID = HCVendor<<24 | (ID(GroupDebug) + 0x01)
	// HCProfilingOps (HC_PROFILING_OPS): param1 is a ProfilingCmd, param2
	// the GPA of that command's data.
	HCProfilingOps ID = HCVendor<<24 | (ID(GroupDebug) + 0x02)
	// HCGetHWInfo (HC_GET_HW_INFO): param1 is the GPA of an HWInfo.
	HCGetHWInfo ID = HCVendor<<24 | (ID(GroupDebug) + 0x03)

	// HCInitializeTrusty (HC_INITIALIZE_TRUSTY): Trusty-only; param1 is the
	// GPA of a TrustyBootParam.
	HCInitializeTrusty ID = HCVendor<<24 | (ID(GroupTrusty) + 0x00)
	// HCWorldSwitch (HC_WORLD_SWITCH): Trusty-only; switch between the
	// normal and secure worlds.
	HCWorldSwitch ID = HCVendor<<24 | (ID(GroupTrusty) + 0x01)
	// HCSaveRestoreSworldCtx (HC_SAVE_RESTORE_SWORLD_CTX): Trusty-only;
	// save or restore the secure world context.
	HCSaveRestoreSworldCtx ID = HCVendor<<24 | (ID(GroupTrusty) + 0x02)

	// HCPMGetCPUState (HC_PM_GET_CPU_STATE): param1 is a PMCmd naming VM,
	// vCPU, state and request type; param2 the GPA of the result (a count,
	// a PStateData or a CStateData).
	HCPMGetCPUState ID = HCVendor<<24 | (ID(GroupPM) + 0x00)
)

// hypercallNames holds the C name of every ID in All and Retired.
var hypercallNames = map[ID]string{
	HCGetAPIVersion:        "HC_GET_API_VERSION",
	HCSOSOfflineCPU:        "HC_SOS_OFFLINE_CPU",
	HCSetCallbackVector:    "HC_SET_CALLBACK_VECTOR",
	HCGetPlatformInfo:      "HC_GET_PLATFORM_INFO",
	HCCreateVM:             "HC_CREATE_VM",
	HCDestroyVM:            "HC_DESTROY_VM",
	HCStartVM:              "HC_START_VM",
	HCPauseVM:              "HC_PAUSE_VM",
	HCCreateVCPU:           "HC_CREATE_VCPU",
	HCResetVM:              "HC_RESET_VM",
	HCSetVCPURegs:          "HC_SET_VCPU_REGS",
	HCInjectMSI:            "HC_INJECT_MSI",
	HCVMIntrMonitor:        "HC_VM_INTR_MONITOR",
	HCSetIRQLine:           "HC_SET_IRQLINE",
	HCSetIOReqBuffer:       "HC_SET_IOREQ_BUFFER",
	HCNotifyRequestFinish:  "HC_NOTIFY_REQUEST_FINISH",
	HCAsyncIOAssign:        "HC_ASYNCIO_ASSIGN",
	HCAsyncIODeassign:      "HC_ASYNCIO_DEASSIGN",
	HCVMGPA2HPA:            "HC_VM_GPA2HPA",
	HCVMSetMemoryRegions:   "HC_VM_SET_MEMORY_REGIONS",
	HCVMWriteProtectPage:   "HC_VM_WRITE_PROTECT_PAGE",
	HCAssignPtdev:          "HC_ASSIGN_PTDEV",
	HCDeassignPtdev:        "HC_DEASSIGN_PTDEV",
	HCVMPCIMSIXRemap:       "HC_VM_PCI_MSIX_REMAP",
	HCSetPtdevIntrInfo:     "HC_SET_PTDEV_INTR_INFO",
	HCResetPtdevIntrInfo:   "HC_RESET_PTDEV_INTR_INFO",
	HCAssignPCIDev:         "HC_ASSIGN_PCIDEV",
	HCDeassignPCIDev:       "HC_DEASSIGN_PCIDEV",
	HCAssignMMIODev:        "HC_ASSIGN_MMIODEV",
	HCDeassignMMIODev:      "HC_DEASSIGN_MMIODEV",
	HCAddVDev:              "HC_ADD_VDEV",
	HCRemoveVDev:           "HC_REMOVE_VDEV",
	HCSetupSbuf:            "HC_SETUP_SBUF",
	HCSetupHVNPKLog:        "HC_SETUP_HV_NPK_LOG",
	HCProfilingOps:         "HC_PROFILING_OPS",
	HCGetHWInfo:            "HC_GET_HW_INFO",
	HCInitializeTrusty:     "HC_INITIALIZE_TRUSTY",
	HCWorldSwitch:          "HC_WORLD_SWITCH",
	HCSaveRestoreSworldCtx: "HC_SAVE_RESTORE_SWORLD_CTX",
	HCPMGetCPUState:        "HC_PM_GET_CPU_STATE",
}

// all lists, in ID order, every hypercall a dispatcher must answer: the 32
// that seed 000 documents, the three Trusty hypercalls seed 003 names, and
// HC_ASYNCIO_ASSIGN/DEASSIGN.
var all = [...]ID{
	HCGetAPIVersion, HCSOSOfflineCPU, HCSetCallbackVector, HCGetPlatformInfo,
	HCCreateVM, HCDestroyVM, HCStartVM, HCPauseVM, HCCreateVCPU, HCResetVM, HCSetVCPURegs,
	HCInjectMSI, HCVMIntrMonitor, HCSetIRQLine,
	HCSetIOReqBuffer, HCNotifyRequestFinish, HCAsyncIOAssign, HCAsyncIODeassign,
	HCVMGPA2HPA, HCVMSetMemoryRegions, HCVMWriteProtectPage,
	HCSetPtdevIntrInfo, HCResetPtdevIntrInfo, HCAssignPCIDev, HCDeassignPCIDev,
	HCAssignMMIODev, HCDeassignMMIODev, HCAddVDev, HCRemoveVDev,
	HCSetupSbuf, HCSetupHVNPKLog, HCProfilingOps, HCGetHWInfo,
	HCInitializeTrusty, HCWorldSwitch, HCSaveRestoreSworldCtx,
	HCPMGetCPUState,
}

// retired lists IDs the header still defines but ACRN no longer dispatches.
var retired = [...]ID{HCAssignPtdev, HCDeassignPtdev, HCVMPCIMSIXRemap}

// All returns, in ascending order, every hypercall ID a dispatcher must
// handle (see the constants' comments). The slice is a fresh copy.
func All() []ID { return append([]ID(nil), all[:]...) }

// Retired returns the IDs acrn_hv_defs.h defines but ACRN no longer
// dispatches (HC_ASSIGN_PTDEV, HC_DEASSIGN_PTDEV, HC_VM_PCI_MSIX_REMAP); a
// dispatcher answers them like unknown IDs, with -EINVAL.
func Retired() []ID { return append([]ID(nil), retired[:]...) }

// Known reports whether id is one of All. ACRN itself dispatches on HC_IDX
// alone and ignores bits 63:8; ember's dispatcher compares the whole
// register, so 0x12345610 is not HC_CREATE_VM.
func (id ID) Known() bool {
	for _, k := range all {
		if k == id {
			return true
		}
	}
	return false
}

// IsTrusty reports whether id is in the Trusty group, the only hypercalls
// seed 003 lets a VM with Trusty enabled (rather than the Service VM) make.
func (id ID) IsTrusty() bool { return id>>8 == HCVendor<<16 && id.Group() == GroupTrusty }

// String returns the header's name, e.g. "HC_CREATE_VM", or
// "HC_UNKNOWN(0x...)" for an ID no header defines.
func (id ID) String() string {
	if s, ok := hypercallNames[id]; ok {
		return s
	}
	return fmt.Sprintf("HC_UNKNOWN(%#x)", uint64(id))
}

// LookupID returns the ID whose String is name.
func LookupID(name string) (ID, bool) {
	for id, s := range hypercallNames {
		if s == name {
			return id, true
		}
	}
	return 0, false
}
