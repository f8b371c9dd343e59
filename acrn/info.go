package acrn

// Sizes of the information and debug structures.
const (
	APIVersionSize      = 8   // sizeof(struct hc_api_version)
	HWInfoSize          = 8   // sizeof(struct acrn_hw_info)
	PlatformInfoSize    = 256 // sizeof(struct acrn_platform_info)
	SbufSetupParamSize  = 16  // sizeof(struct sbuf_setup_param)
	NPKLogParamSize     = 16  // sizeof(struct hv_npk_log_param)
	TrustyBootParamSize = 96  // sizeof(struct trusty_boot_param)
	AsyncIOInfoSize     = 32  // sizeof(struct acrn_asyncio_info)

	// PlatformLAPICIDsMax is ACRN_PLATFORM_LAPIC_IDS_MAX, the length of
	// PlatformHW.LAPICIDs.
	PlatformLAPICIDsMax = 64
)

// APIVersion is struct hc_api_version, filled in by HC_GET_API_VERSION.
type APIVersion struct {
	MajorVersion uint32
	MinorVersion uint32
}

// HWInfo is struct acrn_hw_info, filled in by HC_GET_HW_INFO.
type HWInfo struct {
	CPUNum   uint16 // physical CPUs
	Reserved [3]uint16
}

// PlatformInfo is struct acrn_platform_info (ACRN v2.6), filled in by
// HC_GET_PLATFORM_INFO: 128 bytes of hardware facts, then 128 of
// configuration. Newer ACRN removed both the hypercall and the struct; seed
// 000 keeps them.
type PlatformInfo struct {
	HW PlatformHW
	SW PlatformSW
}

// PlatformHW is the hw member of acrn_platform_info.
type PlatformHW struct {
	CPUNum     uint16 // physical CPUs
	Version    uint16 // version of this structure
	L2CatShift uint32
	L3CatShift uint32
	LAPICIDs   [PlatformLAPICIDsMax]uint8 // physical LAPIC IDs
	Reserved   [52]uint8
}

// PlatformSW is the sw member of acrn_platform_info.
type PlatformSW struct {
	MaxVCPUsPerVM     uint16
	MaxVMs            uint16
	VMConfigSize      uint32 // bytes per entry of the array at VMConfigsAddr
	VMConfigsAddr     uint64 // GPA of MaxVMs entries, each starting with a VMConfigHeader
	MaxKataContainers uint64
	Reserved          [104]uint8
}

// Shared-buffer IDs: SbufSetupParam.SbufID (the enum in ACRN v2.6's
// debug/sbuf.h).
const (
	SbufTrace    = 0 // ACRN_TRACE
	SbufHVLog    = 1 // ACRN_HVLOG
	SbufSEP      = 2 // ACRN_SEP
	SbufSocWatch = 3 // ACRN_SOCWATCH
	SbufIDMax    = 4 // ACRN_SBUF_ID_MAX
)

// SbufSetupParam is struct sbuf_setup_param, the parameter of HC_SETUP_SBUF
// (ACRN v3.1 renamed it acrn_sbuf_param and pcpu_id cpu_id; same layout).
type SbufSetupParam struct {
	PCPUID   uint16 // physical CPU whose buffer this is
	Reserved uint16
	SbufID   uint32 // Sbuf*
	GPA      uint64 // Service VM GPA of the shared buffer
}

// NPK log commands and results: the cmd and res fields of NPKLogParam
// (HV_NPK_LOG_CMD_* and HV_NPK_LOG_RES_* in ACRN v2.6's debug/npk_log.c).
const (
	NPKLogCmdInvalid = 0 // HV_NPK_LOG_CMD_INVALID
	NPKLogCmdConf    = 1 // HV_NPK_LOG_CMD_CONF: set MMIOAddr and LogLevel
	NPKLogCmdEnable  = 2 // HV_NPK_LOG_CMD_ENABLE
	NPKLogCmdDisable = 3 // HV_NPK_LOG_CMD_DISABLE
	NPKLogCmdQuery   = 4 // HV_NPK_LOG_CMD_QUERY

	NPKLogResInvalid  = 0 // HV_NPK_LOG_RES_INVALID
	NPKLogResOK       = 1 // HV_NPK_LOG_RES_OK
	NPKLogResKO       = 2 // HV_NPK_LOG_RES_KO
	NPKLogResEnabled  = 3 // HV_NPK_LOG_RES_ENABLED
	NPKLogResDisabled = 4 // HV_NPK_LOG_RES_DISABLED
)

// NPKLogParam is struct hv_npk_log_param, the parameter of
// HC_SETUP_HV_NPK_LOG.
type NPKLogParam struct {
	Cmd      uint16 // NPKLogCmd*
	Res      uint16 // out: NPKLogRes*
	LogLevel uint16
	Reserved uint16
	MMIOAddr uint64 // Intel Trace Hub (NPK) MMIO address
}

// Profiling commands: param1 of HC_PROFILING_OPS (enum profiling_cmd_type in
// acrn_hv_defs.h).
const (
	ProfilingMSROps           = 0 // PROFILING_MSR_OPS
	ProfilingGetVMInfo        = 1 // PROFILING_GET_VMINFO
	ProfilingGetVersion       = 2 // PROFILING_GET_VERSION
	ProfilingGetControlSwitch = 3 // PROFILING_GET_CONTROL_SWITCH
	ProfilingSetControlSwitch = 4 // PROFILING_SET_CONTROL_SWITCH
	ProfilingConfigPMI        = 5 // PROFILING_CONFIG_PMI
	ProfilingConfigVMSwitch   = 6 // PROFILING_CONFIG_VMSWITCH
	ProfilingGetPCPUID        = 7 // PROFILING_GET_PCPUID
	ProfilingGetStatus        = 8 // PROFILING_GET_STATUS
)

// TrustyBootParam is struct trusty_boot_param, the parameter of
// HC_INITIALIZE_TRUSTY.
type TrustyBootParam struct {
	SizeOfThisStruct uint32
	Version          uint32
	BaseAddr         uint32 // low 32 bits of the Trusty memory base
	EntryPoint       uint32 // low 32 bits of the entry point
	MemSize          uint32
	Padding          uint32
	BaseAddrHigh     uint32
	EntryPointHigh   uint32
	RPMBKey          [64]uint8
}

// Async I/O types: AsyncIOInfo.Type (ACRN_ASYNCIO_* in ACRN v3.1+).
const (
	AsyncIOPIO  = 0x01 // ACRN_ASYNCIO_PIO
	AsyncIOMMIO = 0x02 // ACRN_ASYNCIO_MMIO
)

// AsyncIOInfo is struct acrn_asyncio_info (ACRN v3.1+), the parameter of
// HC_ASYNCIO_ASSIGN and HC_ASYNCIO_DEASSIGN: a write to Addr (matching Data
// if MatchData is set) is queued for the Service VM without stopping the vCPU.
type AsyncIOInfo struct {
	Type      uint32 // AsyncIO*
	MatchData uint32 // non-zero: only writes of Data match
	Addr      uint64
	FD        uint64 // the Service VM's eventfd, opaque to the hypervisor
	Data      uint64
}
