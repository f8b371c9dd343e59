package acrn

import "ember/acrn/internal/cabi"

// The Codec methods of the structures encoded with encoding/binary. Each
// struct's Go fields, explicit padding included, add up to its C size; the
// layout tests check every offset against the C headers.

// SizeOf returns VMCreationSize, sizeof(struct acrn_vm_creation).
func (v *VMCreation) SizeOf() int { return VMCreationSize }

// Encode writes v to b in the layout of struct acrn_vm_creation.
func (v *VMCreation) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, VMCreationSize, "acrn_vm_creation")
}

// Decode reads v from b in the layout of struct acrn_vm_creation.
func (v *VMCreation) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, VMCreationSize, "acrn_vm_creation")
}

// SizeOf returns GPRegsSize, sizeof(struct acrn_gp_regs).
func (v *GPRegs) SizeOf() int { return GPRegsSize }

// Encode writes v to b in the layout of struct acrn_gp_regs.
func (v *GPRegs) Encode(b []byte) error { return cabi.EncodeStruct(b, v, GPRegsSize, "acrn_gp_regs") }

// Decode reads v from b in the layout of struct acrn_gp_regs.
func (v *GPRegs) Decode(b []byte) error { return cabi.DecodeStruct(b, v, GPRegsSize, "acrn_gp_regs") }

// SizeOf returns DescriptorPtrSize, sizeof(struct acrn_descriptor_ptr).
func (v *DescriptorPtr) SizeOf() int { return DescriptorPtrSize }

// Encode writes v to b in the layout of struct acrn_descriptor_ptr.
func (v *DescriptorPtr) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, DescriptorPtrSize, "acrn_descriptor_ptr")
}

// Decode reads v from b in the layout of struct acrn_descriptor_ptr.
func (v *DescriptorPtr) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, DescriptorPtrSize, "acrn_descriptor_ptr")
}

// SizeOf returns RegsSize, sizeof(struct acrn_regs).
func (v *Regs) SizeOf() int { return RegsSize }

// Encode writes v to b in the layout of struct acrn_regs.
func (v *Regs) Encode(b []byte) error { return cabi.EncodeStruct(b, v, RegsSize, "acrn_regs") }

// Decode reads v from b in the layout of struct acrn_regs.
func (v *Regs) Decode(b []byte) error { return cabi.DecodeStruct(b, v, RegsSize, "acrn_regs") }

// SizeOf returns VCPURegsSize, sizeof(struct acrn_vcpu_regs).
func (v *VCPURegs) SizeOf() int { return VCPURegsSize }

// Encode writes v to b in the layout of struct acrn_vcpu_regs.
func (v *VCPURegs) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, VCPURegsSize, "acrn_vcpu_regs")
}

// Decode reads v from b in the layout of struct acrn_vcpu_regs.
func (v *VCPURegs) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, VCPURegsSize, "acrn_vcpu_regs")
}

// SizeOf returns VMConfigHeaderSize, sizeof(struct acrn_vm_config_header).
func (v *VMConfigHeader) SizeOf() int { return VMConfigHeaderSize }

// Encode writes v to b in the layout of struct acrn_vm_config_header.
func (v *VMConfigHeader) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, VMConfigHeaderSize, "acrn_vm_config_header")
}

// Decode reads v from b in the layout of struct acrn_vm_config_header.
func (v *VMConfigHeader) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, VMConfigHeaderSize, "acrn_vm_config_header")
}

// SizeOf returns IRQLineOpsSize, sizeof(struct acrn_irqline_ops).
func (v *IRQLineOps) SizeOf() int { return IRQLineOpsSize }

// Encode writes v to b in the layout of struct acrn_irqline_ops.
func (v *IRQLineOps) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, IRQLineOpsSize, "acrn_irqline_ops")
}

// Decode reads v from b in the layout of struct acrn_irqline_ops.
func (v *IRQLineOps) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, IRQLineOpsSize, "acrn_irqline_ops")
}

// SizeOf returns MSIEntrySize, sizeof(struct acrn_msi_entry).
func (v *MSIEntry) SizeOf() int { return MSIEntrySize }

// Encode writes v to b in the layout of struct acrn_msi_entry.
func (v *MSIEntry) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, MSIEntrySize, "acrn_msi_entry")
}

// Decode reads v from b in the layout of struct acrn_msi_entry.
func (v *MSIEntry) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, MSIEntrySize, "acrn_msi_entry")
}

// SizeOf returns IntrMonitorSize, sizeof(struct acrn_intr_monitor).
func (v *IntrMonitor) SizeOf() int { return IntrMonitorSize }

// Encode writes v to b in the layout of struct acrn_intr_monitor.
func (v *IntrMonitor) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, IntrMonitorSize, "acrn_intr_monitor")
}

// Decode reads v from b in the layout of struct acrn_intr_monitor.
func (v *IntrMonitor) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, IntrMonitorSize, "acrn_intr_monitor")
}

// SizeOf returns HCPtdevIRQSize, sizeof(struct hc_ptdev_irq).
func (v *HCPtdevIRQ) SizeOf() int { return HCPtdevIRQSize }

// Encode writes v to b in the layout of struct hc_ptdev_irq.
func (v *HCPtdevIRQ) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, HCPtdevIRQSize, "hc_ptdev_irq")
}

// Decode reads v from b in the layout of struct hc_ptdev_irq.
func (v *HCPtdevIRQ) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, HCPtdevIRQSize, "hc_ptdev_irq")
}

// SizeOf returns PtdevIRQSize, sizeof(struct acrn_ptdev_irq).
func (v *PtdevIRQ) SizeOf() int { return PtdevIRQSize }

// Encode writes v to b in the layout of struct acrn_ptdev_irq.
func (v *PtdevIRQ) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, PtdevIRQSize, "acrn_ptdev_irq")
}

// Decode reads v from b in the layout of struct acrn_ptdev_irq.
func (v *PtdevIRQ) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, PtdevIRQSize, "acrn_ptdev_irq")
}

// SizeOf returns VMMemoryRegionSize, sizeof(struct vm_memory_region).
func (v *VMMemoryRegion) SizeOf() int { return VMMemoryRegionSize }

// Encode writes v to b in the layout of struct vm_memory_region.
func (v *VMMemoryRegion) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, VMMemoryRegionSize, "vm_memory_region")
}

// Decode reads v from b in the layout of struct vm_memory_region.
func (v *VMMemoryRegion) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, VMMemoryRegionSize, "vm_memory_region")
}

// SizeOf returns SetRegionsSize, sizeof(struct set_regions).
func (v *SetRegions) SizeOf() int { return SetRegionsSize }

// Encode writes v to b in the layout of struct set_regions.
func (v *SetRegions) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, SetRegionsSize, "set_regions")
}

// Decode reads v from b in the layout of struct set_regions.
func (v *SetRegions) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, SetRegionsSize, "set_regions")
}

// SizeOf returns WPDataSize, sizeof(struct wp_data).
func (v *WPData) SizeOf() int { return WPDataSize }

// Encode writes v to b in the layout of struct wp_data.
func (v *WPData) Encode(b []byte) error { return cabi.EncodeStruct(b, v, WPDataSize, "wp_data") }

// Decode reads v from b in the layout of struct wp_data.
func (v *WPData) Decode(b []byte) error { return cabi.DecodeStruct(b, v, WPDataSize, "wp_data") }

// SizeOf returns VMGPA2HPASize, sizeof(struct vm_gpa2hpa).
func (v *VMGPA2HPA) SizeOf() int { return VMGPA2HPASize }

// Encode writes v to b in the layout of struct vm_gpa2hpa.
func (v *VMGPA2HPA) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, VMGPA2HPASize, "vm_gpa2hpa")
}

// Decode reads v from b in the layout of struct vm_gpa2hpa.
func (v *VMGPA2HPA) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, VMGPA2HPASize, "vm_gpa2hpa")
}

// SizeOf returns VMMemmapSize, sizeof(struct acrn_vm_memmap).
func (v *VMMemmap) SizeOf() int { return VMMemmapSize }

// Encode writes v to b in the layout of struct acrn_vm_memmap.
func (v *VMMemmap) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, VMMemmapSize, "acrn_vm_memmap")
}

// Decode reads v from b in the layout of struct acrn_vm_memmap.
func (v *VMMemmap) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, VMMemmapSize, "acrn_vm_memmap")
}

// SizeOf returns PCIDevSize, sizeof(struct acrn_pcidev).
func (v *PCIDev) SizeOf() int { return PCIDevSize }

// Encode writes v to b in the layout of struct acrn_pcidev.
func (v *PCIDev) Encode(b []byte) error { return cabi.EncodeStruct(b, v, PCIDevSize, "acrn_pcidev") }

// Decode reads v from b in the layout of struct acrn_pcidev.
func (v *PCIDev) Decode(b []byte) error { return cabi.DecodeStruct(b, v, PCIDevSize, "acrn_pcidev") }

// SizeOf returns MMIODevSize, sizeof(struct acrn_mmiodev).
func (v *MMIODev) SizeOf() int { return MMIODevSize }

// Encode writes v to b in the layout of struct acrn_mmiodev.
func (v *MMIODev) Encode(b []byte) error { return cabi.EncodeStruct(b, v, MMIODevSize, "acrn_mmiodev") }

// Decode reads v from b in the layout of struct acrn_mmiodev.
func (v *MMIODev) Decode(b []byte) error { return cabi.DecodeStruct(b, v, MMIODevSize, "acrn_mmiodev") }

// SizeOf returns VDevSize, sizeof(struct acrn_vdev).
func (v *VDev) SizeOf() int { return VDevSize }

// Encode writes v to b in the layout of struct acrn_vdev.
func (v *VDev) Encode(b []byte) error { return cabi.EncodeStruct(b, v, VDevSize, "acrn_vdev") }

// Decode reads v from b in the layout of struct acrn_vdev.
func (v *VDev) Decode(b []byte) error { return cabi.DecodeStruct(b, v, VDevSize, "acrn_vdev") }

// SizeOf returns VRPConfigSize, sizeof(struct vrp_config).
func (v *VRPConfig) SizeOf() int { return VRPConfigSize }

// Encode writes v to b in the layout of struct vrp_config.
func (v *VRPConfig) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, VRPConfigSize, "vrp_config")
}

// Decode reads v from b in the layout of struct vrp_config.
func (v *VRPConfig) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, VRPConfigSize, "vrp_config")
}

// SizeOf returns ACPIGenericAddressSize, sizeof(struct acrn_acpi_generic_address).
func (v *ACPIGenericAddress) SizeOf() int { return ACPIGenericAddressSize }

// Encode writes v to b in the layout of struct acrn_acpi_generic_address.
func (v *ACPIGenericAddress) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, ACPIGenericAddressSize, "acrn_acpi_generic_address")
}

// Decode reads v from b in the layout of struct acrn_acpi_generic_address.
func (v *ACPIGenericAddress) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, ACPIGenericAddressSize, "acrn_acpi_generic_address")
}

// SizeOf returns CStateDataSize, sizeof(struct acrn_cstate_data).
func (v *CStateData) SizeOf() int { return CStateDataSize }

// Encode writes v to b in the layout of struct acrn_cstate_data.
func (v *CStateData) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, CStateDataSize, "acrn_cstate_data")
}

// Decode reads v from b in the layout of struct acrn_cstate_data.
func (v *CStateData) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, CStateDataSize, "acrn_cstate_data")
}

// SizeOf returns PStateDataSize, sizeof(struct acrn_pstate_data).
func (v *PStateData) SizeOf() int { return PStateDataSize }

// Encode writes v to b in the layout of struct acrn_pstate_data.
func (v *PStateData) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, PStateDataSize, "acrn_pstate_data")
}

// Decode reads v from b in the layout of struct acrn_pstate_data.
func (v *PStateData) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, PStateDataSize, "acrn_pstate_data")
}

// SizeOf returns ACPISxPkgSize, sizeof(struct acpi_sx_pkg).
func (v *ACPISxPkg) SizeOf() int { return ACPISxPkgSize }

// Encode writes v to b in the layout of struct acpi_sx_pkg.
func (v *ACPISxPkg) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, ACPISxPkgSize, "acpi_sx_pkg")
}

// Decode reads v from b in the layout of struct acpi_sx_pkg.
func (v *ACPISxPkg) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, ACPISxPkgSize, "acpi_sx_pkg")
}

// SizeOf returns PMSStateDataSize, sizeof(struct pm_s_state_data).
func (v *PMSStateData) SizeOf() int { return PMSStateDataSize }

// Encode writes v to b in the layout of struct pm_s_state_data.
func (v *PMSStateData) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, PMSStateDataSize, "pm_s_state_data")
}

// Decode reads v from b in the layout of struct pm_s_state_data.
func (v *PMSStateData) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, PMSStateDataSize, "pm_s_state_data")
}

// SizeOf returns APIVersionSize, sizeof(struct hc_api_version).
func (v *APIVersion) SizeOf() int { return APIVersionSize }

// Encode writes v to b in the layout of struct hc_api_version.
func (v *APIVersion) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, APIVersionSize, "hc_api_version")
}

// Decode reads v from b in the layout of struct hc_api_version.
func (v *APIVersion) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, APIVersionSize, "hc_api_version")
}

// SizeOf returns HWInfoSize, sizeof(struct acrn_hw_info).
func (v *HWInfo) SizeOf() int { return HWInfoSize }

// Encode writes v to b in the layout of struct acrn_hw_info.
func (v *HWInfo) Encode(b []byte) error { return cabi.EncodeStruct(b, v, HWInfoSize, "acrn_hw_info") }

// Decode reads v from b in the layout of struct acrn_hw_info.
func (v *HWInfo) Decode(b []byte) error { return cabi.DecodeStruct(b, v, HWInfoSize, "acrn_hw_info") }

// SizeOf returns PlatformInfoSize, sizeof(struct acrn_platform_info).
func (v *PlatformInfo) SizeOf() int { return PlatformInfoSize }

// Encode writes v to b in the layout of struct acrn_platform_info.
func (v *PlatformInfo) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, PlatformInfoSize, "acrn_platform_info")
}

// Decode reads v from b in the layout of struct acrn_platform_info.
func (v *PlatformInfo) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, PlatformInfoSize, "acrn_platform_info")
}

// SizeOf returns SbufSetupParamSize, sizeof(struct sbuf_setup_param).
func (v *SbufSetupParam) SizeOf() int { return SbufSetupParamSize }

// Encode writes v to b in the layout of struct sbuf_setup_param.
func (v *SbufSetupParam) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, SbufSetupParamSize, "sbuf_setup_param")
}

// Decode reads v from b in the layout of struct sbuf_setup_param.
func (v *SbufSetupParam) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, SbufSetupParamSize, "sbuf_setup_param")
}

// SizeOf returns NPKLogParamSize, sizeof(struct hv_npk_log_param).
func (v *NPKLogParam) SizeOf() int { return NPKLogParamSize }

// Encode writes v to b in the layout of struct hv_npk_log_param.
func (v *NPKLogParam) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, NPKLogParamSize, "hv_npk_log_param")
}

// Decode reads v from b in the layout of struct hv_npk_log_param.
func (v *NPKLogParam) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, NPKLogParamSize, "hv_npk_log_param")
}

// SizeOf returns TrustyBootParamSize, sizeof(struct trusty_boot_param).
func (v *TrustyBootParam) SizeOf() int { return TrustyBootParamSize }

// Encode writes v to b in the layout of struct trusty_boot_param.
func (v *TrustyBootParam) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, TrustyBootParamSize, "trusty_boot_param")
}

// Decode reads v from b in the layout of struct trusty_boot_param.
func (v *TrustyBootParam) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, TrustyBootParamSize, "trusty_boot_param")
}

// SizeOf returns AsyncIOInfoSize, sizeof(struct acrn_asyncio_info).
func (v *AsyncIOInfo) SizeOf() int { return AsyncIOInfoSize }

// Encode writes v to b in the layout of struct acrn_asyncio_info.
func (v *AsyncIOInfo) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, AsyncIOInfoSize, "acrn_asyncio_info")
}

// Decode reads v from b in the layout of struct acrn_asyncio_info.
func (v *AsyncIOInfo) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, AsyncIOInfoSize, "acrn_asyncio_info")
}

// SizeOf returns IOReqNotifySize, sizeof(struct acrn_ioreq_notify).
func (v *IOReqNotify) SizeOf() int { return IOReqNotifySize }

// Encode writes v to b in the layout of struct acrn_ioreq_notify.
func (v *IOReqNotify) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, IOReqNotifySize, "acrn_ioreq_notify")
}

// Decode reads v from b in the layout of struct acrn_ioreq_notify.
func (v *IOReqNotify) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, IOReqNotifySize, "acrn_ioreq_notify")
}

// SizeOf returns IOEventFDSize, sizeof(struct acrn_ioeventfd).
func (v *IOEventFD) SizeOf() int { return IOEventFDSize }

// Encode writes v to b in the layout of struct acrn_ioeventfd.
func (v *IOEventFD) Encode(b []byte) error {
	return cabi.EncodeStruct(b, v, IOEventFDSize, "acrn_ioeventfd")
}

// Decode reads v from b in the layout of struct acrn_ioeventfd.
func (v *IOEventFD) Decode(b []byte) error {
	return cabi.DecodeStruct(b, v, IOEventFDSize, "acrn_ioeventfd")
}

// SizeOf returns IRQFDSize, sizeof(struct acrn_irqfd).
func (v *IRQFD) SizeOf() int { return IRQFDSize }

// Encode writes v to b in the layout of struct acrn_irqfd.
func (v *IRQFD) Encode(b []byte) error { return cabi.EncodeStruct(b, v, IRQFDSize, "acrn_irqfd") }

// Decode reads v from b in the layout of struct acrn_irqfd.
func (v *IRQFD) Decode(b []byte) error { return cabi.DecodeStruct(b, v, IRQFDSize, "acrn_irqfd") }
