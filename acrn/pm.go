package acrn

// ACPI address spaces: the space_id of ACPIGenericAddress (SPACE_* in
// acrn_common.h; the names keep the header's capitalisation).
const (
	SpaceSystemMemory    = 0    // SPACE_SYSTEM_MEMORY
	SpaceSystemIO        = 1    // SPACE_SYSTEM_IO
	SpacePCIConfig       = 2    // SPACE_PCI_CONFIG
	SpaceEmbeddedControl = 3    // SPACE_Embedded_Control
	SpaceSMBus           = 4    // SPACE_SMBUS
	SpacePlatformComm    = 10   // SPACE_PLATFORM_COMM
	SpaceFFixedHW        = 0x7F // SPACE_FFixedHW
)

// PMCmd is param1 of HC_PM_GET_CPU_STATE (and the argument of
// ACRN_IOCTL_PM_GET_CPU_STATE): the VM, the vCPU, the state number and the
// request type packed into one word (PMCMD_* in acrn_common.h). For Px the
// state number runs from 0 to MaxPState-1, for Cx from 1 to MaxCxEntry.
type PMCmd uint64

// Masks and shifts of the PMCmd fields.
const (
	PMCmdVMIDMask      = 0xff000000 // PMCMD_VMID_MASK
	PMCmdVCPUIDMask    = 0x00ff0000 // PMCMD_VCPUID_MASK
	PMCmdStateNumMask  = 0x0000ff00 // PMCMD_STATE_NUM_MASK
	PMCmdTypeMask      = 0x000000ff // PMCMD_TYPE_MASK
	PMCmdVMIDShift     = 24         // PMCMD_VMID_SHIFT
	PMCmdVCPUIDShift   = 16         // PMCMD_VCPUID_SHIFT
	PMCmdStateNumShift = 8          // PMCMD_STATE_NUM_SHIFT
)

// PM request types, enum acrn_pm_cmd_type: the PMCmd type field.
const (
	PMCmdGetPxCnt  = 0 // ACRN_PMCMD_GET_PX_CNT: param2 gets a uint8 count of P-states
	PMCmdGetPxData = 1 // ACRN_PMCMD_GET_PX_DATA: param2 gets a PStateData
	PMCmdGetCxCnt  = 2 // ACRN_PMCMD_GET_CX_CNT: param2 gets a uint8 count of C-states
	PMCmdGetCxData = 3 // ACRN_PMCMD_GET_CX_DATA: param2 gets a CStateData
)

// Limits on the state number (cpu_caps.h, ACRN v2.6).
const (
	MaxPState  = 20            // MAX_PSTATE: P-states a CPU may report
	MaxCState  = 8             // MAX_CSTATE
	MaxCxEntry = MaxCState - 1 // MAX_CX_ENTRY: C0 is not an entry
)

// MakePMCmd packs a PM command; the VM ID here is the Service VM's relative
// ID of the target.
func MakePMCmd(vmid, vcpuid, stateNum, typ uint8) PMCmd {
	return PMCmd(vmid)<<PMCmdVMIDShift | PMCmd(vcpuid)<<PMCmdVCPUIDShift |
		PMCmd(stateNum)<<PMCmdStateNumShift | PMCmd(typ)
}

// VMID returns (cmd & PMCMD_VMID_MASK) >> PMCMD_VMID_SHIFT.
func (c PMCmd) VMID() uint8 { return uint8((c & PMCmdVMIDMask) >> PMCmdVMIDShift) }

// VCPUID returns (cmd & PMCMD_VCPUID_MASK) >> PMCMD_VCPUID_SHIFT.
func (c PMCmd) VCPUID() uint8 { return uint8((c & PMCmdVCPUIDMask) >> PMCmdVCPUIDShift) }

// StateNum returns (cmd & PMCMD_STATE_NUM_MASK) >> PMCMD_STATE_NUM_SHIFT.
func (c PMCmd) StateNum() uint8 { return uint8((c & PMCmdStateNumMask) >> PMCmdStateNumShift) }

// Type returns cmd & PMCMD_TYPE_MASK, one of PMCmdGet*.
func (c PMCmd) Type() uint8 { return uint8(c & PMCmdTypeMask) }

// Sizes of the power-management structures.
const (
	ACPIGenericAddressSize = 12 // sizeof(struct acrn_acpi_generic_address), packed
	CStateDataSize         = 32 // sizeof(struct acrn_cstate_data)
	PStateDataSize         = 48 // sizeof(struct acrn_pstate_data)
	ACPISxPkgSize          = 8  // sizeof(struct acpi_sx_pkg), __aligned(8)
	PMSStateDataSize       = 80 // sizeof(struct pm_s_state_data)
)

// ACPIGenericAddress is struct acrn_acpi_generic_address, an ACPI Generic
// Address Structure (packed: Address sits at byte 4).
type ACPIGenericAddress struct {
	SpaceID    uint8 // Space*
	BitWidth   uint8
	BitOffset  uint8
	AccessSize uint8
	Address    uint64
}

// CStateData is struct acrn_cstate_data, one ACPI _CST package: the result
// of HC_PM_GET_CPU_STATE with PMCmdGetCxData.
type CStateData struct {
	CxReg   ACPIGenericAddress
	Type    uint8
	_       [3]byte
	Latency uint32 // worst-case entry+exit latency
	_       [4]byte
	Power   uint64 // average power in this state
}

// PStateData is struct acrn_pstate_data, one ACPI _PSS package: the result of
// HC_PM_GET_CPU_STATE with PMCmdGetPxData.
type PStateData struct {
	CoreFrequency     uint64 // MHz
	Power             uint64 // mW
	TransitionLatency uint64 // µs
	BusMasterLatency  uint64 // µs
	Control           uint64 // value for the performance control register
	Status            uint64 // expected performance status value
}

// ACPISxPkg is struct acpi_sx_pkg, the SLP_TYP values of an ACPI \_Sx
// object.
type ACPISxPkg struct {
	ValPM1a  uint8
	ValPM1b  uint8
	Reserved uint16
	_        [4]byte
}

// PMSStateData is struct pm_s_state_data, the platform's S3/S5 registers.
// It is hypervisor-internal in ACRN (no hypercall copies it): the two wake
// vectors are hypervisor pointers, kept here as 64-bit addresses.
type PMSStateData struct {
	PM1aEvt      ACPIGenericAddress
	PM1bEvt      ACPIGenericAddress
	PM1aCnt      ACPIGenericAddress
	PM1bCnt      ACPIGenericAddress
	S3Pkg        ACPISxPkg
	S5Pkg        ACPISxPkg
	WakeVector32 uint64 // uint32_t * in C
	WakeVector64 uint64 // uint64_t * in C
}
