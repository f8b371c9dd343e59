package acrn

import (
	"slices"
	"testing"
)

// TestHypercallIDValues pins every ID to the literal value BASE_HC_ID gives
// in acrn_hv_defs.h (v2.6; HC_ASYNCIO_* from v3.1), with its name and group.
func TestHypercallIDValues(t *testing.T) {
	tests := []struct {
		id    ID
		value uint64
		name  string
		group Group
	}{
		{HCGetAPIVersion, 0x80000000, "HC_GET_API_VERSION", GroupGeneral},
		{HCSOSOfflineCPU, 0x80000001, "HC_SOS_OFFLINE_CPU", GroupGeneral},
		{HCSetCallbackVector, 0x80000002, "HC_SET_CALLBACK_VECTOR", GroupGeneral},
		{HCGetPlatformInfo, 0x80000003, "HC_GET_PLATFORM_INFO", GroupGeneral},
		{HCCreateVM, 0x80000010, "HC_CREATE_VM", GroupVM},
		{HCDestroyVM, 0x80000011, "HC_DESTROY_VM", GroupVM},
		{HCStartVM, 0x80000012, "HC_START_VM", GroupVM},
		{HCPauseVM, 0x80000013, "HC_PAUSE_VM", GroupVM},
		{HCCreateVCPU, 0x80000014, "HC_CREATE_VCPU", GroupVM},
		{HCResetVM, 0x80000015, "HC_RESET_VM", GroupVM},
		{HCSetVCPURegs, 0x80000016, "HC_SET_VCPU_REGS", GroupVM},
		{HCInjectMSI, 0x80000023, "HC_INJECT_MSI", GroupIRQ},
		{HCVMIntrMonitor, 0x80000024, "HC_VM_INTR_MONITOR", GroupIRQ},
		{HCSetIRQLine, 0x80000025, "HC_SET_IRQLINE", GroupIRQ},
		{HCSetIOReqBuffer, 0x80000030, "HC_SET_IOREQ_BUFFER", GroupIOReq},
		{HCNotifyRequestFinish, 0x80000031, "HC_NOTIFY_REQUEST_FINISH", GroupIOReq},
		{HCAsyncIOAssign, 0x80000032, "HC_ASYNCIO_ASSIGN", GroupIOReq},
		{HCAsyncIODeassign, 0x80000033, "HC_ASYNCIO_DEASSIGN", GroupIOReq},
		{HCVMGPA2HPA, 0x80000041, "HC_VM_GPA2HPA", GroupMemory},
		{HCVMSetMemoryRegions, 0x80000042, "HC_VM_SET_MEMORY_REGIONS", GroupMemory},
		{HCVMWriteProtectPage, 0x80000043, "HC_VM_WRITE_PROTECT_PAGE", GroupMemory},
		{HCAssignPtdev, 0x80000050, "HC_ASSIGN_PTDEV", GroupPCI},
		{HCDeassignPtdev, 0x80000051, "HC_DEASSIGN_PTDEV", GroupPCI},
		{HCVMPCIMSIXRemap, 0x80000052, "HC_VM_PCI_MSIX_REMAP", GroupPCI},
		{HCSetPtdevIntrInfo, 0x80000053, "HC_SET_PTDEV_INTR_INFO", GroupPCI},
		{HCResetPtdevIntrInfo, 0x80000054, "HC_RESET_PTDEV_INTR_INFO", GroupPCI},
		{HCAssignPCIDev, 0x80000055, "HC_ASSIGN_PCIDEV", GroupPCI},
		{HCDeassignPCIDev, 0x80000056, "HC_DEASSIGN_PCIDEV", GroupPCI},
		{HCAssignMMIODev, 0x80000057, "HC_ASSIGN_MMIODEV", GroupPCI},
		{HCDeassignMMIODev, 0x80000058, "HC_DEASSIGN_MMIODEV", GroupPCI},
		{HCAddVDev, 0x80000059, "HC_ADD_VDEV", GroupPCI},
		{HCRemoveVDev, 0x8000005A, "HC_REMOVE_VDEV", GroupPCI},
		{HCSetupSbuf, 0x80000060, "HC_SETUP_SBUF", GroupDebug},
		{HCSetupHVNPKLog, 0x80000061, "HC_SETUP_HV_NPK_LOG", GroupDebug},
		{HCProfilingOps, 0x80000062, "HC_PROFILING_OPS", GroupDebug},
		{HCGetHWInfo, 0x80000063, "HC_GET_HW_INFO", GroupDebug},
		{HCInitializeTrusty, 0x80000070, "HC_INITIALIZE_TRUSTY", GroupTrusty},
		{HCWorldSwitch, 0x80000071, "HC_WORLD_SWITCH", GroupTrusty},
		{HCSaveRestoreSworldCtx, 0x80000072, "HC_SAVE_RESTORE_SWORLD_CTX", GroupTrusty},
		{HCPMGetCPUState, 0x80000080, "HC_PM_GET_CPU_STATE", GroupPM},
	}
	if got, want := len(tests), len(All())+len(Retired()); got != want {
		t.Errorf("table has %d IDs, All+Retired has %d", got, want)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if uint64(tt.id) != tt.value {
				t.Errorf("value %#x, header says %#x", uint64(tt.id), tt.value)
			}
			if got := tt.id.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			if got := tt.id.Group(); got != tt.group {
				t.Errorf("Group() = %v, want %v", got, tt.group)
			}
			if got := MakeID(tt.group, tt.id.Index()-uint8(tt.group)); got != tt.id {
				t.Errorf("MakeID(%v, %d) = %#x", tt.group, tt.id.Index()-uint8(tt.group), uint64(got))
			}
			if id, ok := LookupID(tt.name); !ok || id != tt.id {
				t.Errorf("LookupID(%q) = %#x, %v", tt.name, uint64(id), ok)
			}
			if got, want := tt.id.IsTrusty(), tt.group == GroupTrusty; got != want {
				t.Errorf("IsTrusty() = %v, want %v", got, want)
			}
		})
	}
}

// TestHypercallIDsUnique checks that no two IDs (dispatchable or retired)
// share a value or a name, that All is sorted and Retired disjoint from it.
func TestHypercallIDsUnique(t *testing.T) {
	ids := append(All(), Retired()...)
	seen := map[ID]bool{}
	names := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("duplicate ID %#x", uint64(id))
		}
		seen[id] = true
		if names[id.String()] {
			t.Errorf("duplicate name %s", id)
		}
		names[id.String()] = true
	}
	if !slices.IsSorted(All()) {
		t.Errorf("All() is not in ascending order: %v", All())
	}
	for _, id := range Retired() {
		if id.Known() {
			t.Errorf("retired %v is Known()", id)
		}
	}
	for _, id := range All() {
		if !id.Known() {
			t.Errorf("%v is in All() but not Known()", id)
		}
		if id>>24 != HCVendor {
			t.Errorf("%v: vendor byte %#x, want %#x", id, uint64(id>>24), HCVendor)
		}
	}
}

// TestSeedHypercallsExist maps every hcall_* function seed 000 documents,
// and the Trusty hypercalls seed 003 names, to a dispatchable ID.
func TestSeedHypercallsExist(t *testing.T) {
	seed := map[string]ID{
		"hcall_sos_offline_cpu":         HCSOSOfflineCPU,
		"hcall_get_api_version":         HCGetAPIVersion,
		"hcall_get_platform_info":       HCGetPlatformInfo,
		"hcall_create_vm":               HCCreateVM,
		"hcall_destroy_vm":              HCDestroyVM,
		"hcall_reset_vm":                HCResetVM,
		"hcall_start_vm":                HCStartVM,
		"hcall_pause_vm":                HCPauseVM,
		"hcall_set_vcpu_regs":           HCSetVCPURegs,
		"hcall_set_irqline":             HCSetIRQLine,
		"hcall_inject_msi":              HCInjectMSI,
		"hcall_set_ioreq_buffer":        HCSetIOReqBuffer,
		"hcall_notify_ioreq_finish":     HCNotifyRequestFinish,
		"hcall_set_vm_memory_regions":   HCVMSetMemoryRegions,
		"hcall_write_protect_page":      HCVMWriteProtectPage,
		"hcall_gpa_to_hpa":              HCVMGPA2HPA,
		"hcall_assign_pcidev":           HCAssignPCIDev,
		"hcall_deassign_pcidev":         HCDeassignPCIDev,
		"hcall_assign_mmiodev":          HCAssignMMIODev,
		"hcall_deassign_mmiodev":        HCDeassignMMIODev,
		"hcall_add_vdev":                HCAddVDev,
		"hcall_remove_vdev":             HCRemoveVDev,
		"hcall_set_ptdev_intr_info":     HCSetPtdevIntrInfo,
		"hcall_reset_ptdev_intr_info":   HCResetPtdevIntrInfo,
		"hcall_get_cpu_pm_state":        HCPMGetCPUState,
		"hcall_vm_intr_monitor":         HCVMIntrMonitor,
		"hcall_set_callback_vector":     HCSetCallbackVector,
		"hcall_setup_sbuf":              HCSetupSbuf,
		"hcall_setup_hv_npk_log":        HCSetupHVNPKLog,
		"hcall_get_hw_info":             HCGetHWInfo,
		"hcall_profiling_ops":           HCProfilingOps,
		"hcall_create_vcpu":             HCCreateVCPU,
		"hcall_initialize_trusty":       HCInitializeTrusty,
		"hcall_world_switch":            HCWorldSwitch,
		"hcall_save_restore_sworld_ctx": HCSaveRestoreSworldCtx,
	}
	covered := map[ID]bool{}
	for fn, id := range seed {
		if !id.Known() {
			t.Errorf("%s: %v is not dispatchable", fn, id)
		}
		covered[id] = true
	}
	for _, id := range All() {
		if !covered[id] && id != HCAsyncIOAssign && id != HCAsyncIODeassign {
			t.Errorf("%v is in All() but in neither seed", id)
		}
	}
}

func TestHypercallIDUnknown(t *testing.T) {
	tests := []struct {
		id   ID
		name string
	}{
		{0x80000004, "HC_UNKNOWN(0x80000004)"},
		{0x12345610, "HC_UNKNOWN(0x12345610)"}, // right HC_IDX, wrong vendor: not HC_CREATE_VM
		{0x80000090, "HC_UNKNOWN(0x80000090)"}, // TEE group, not in the seed
		{0, "HC_UNKNOWN(0x0)"},
	}
	for _, tt := range tests {
		if tt.id.Known() {
			t.Errorf("%#x: Known() = true", uint64(tt.id))
		}
		if got := tt.id.String(); got != tt.name {
			t.Errorf("%#x: String() = %q, want %q", uint64(tt.id), got, tt.name)
		}
	}
	if _, ok := LookupID("HC_NO_SUCH_CALL"); ok {
		t.Error("LookupID found HC_NO_SUCH_CALL")
	}
	if got := ID(0x12345670).IsTrusty(); got {
		t.Error("0x12345670 IsTrusty() = true; only vendor 0x80 IDs are hypercalls")
	}
}

func TestGroupString(t *testing.T) {
	tests := map[Group]string{
		GroupGeneral: "general", GroupVM: "vm", GroupIRQ: "irq", GroupIOReq: "ioreq",
		GroupMemory: "memory", GroupPCI: "pci", GroupDebug: "debug", GroupTrusty: "trusty",
		GroupPM: "pm", Group(0x90): "Group(0x90)",
	}
	for g, want := range tests {
		if got := g.String(); got != want {
			t.Errorf("Group(%#x).String() = %q, want %q", uint8(g), got, want)
		}
	}
}
