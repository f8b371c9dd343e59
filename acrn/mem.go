package acrn

// Memory attributes: the prot field of VMMemoryRegion and the attr field of
// VMMemmap. acrn_hv_defs.h names them MEM_ACCESS_* and MEM_TYPE_*,
// <linux/acrn.h> ACRN_MEM_ACCESS_* and ACRN_MEM_TYPE_*, with the same values.
const (
	MemAccessRead      = 0x00000001 // MEM_ACCESS_READ
	MemAccessWrite     = 0x00000002 // MEM_ACCESS_WRITE
	MemAccessExec      = 0x00000004 // MEM_ACCESS_EXEC
	MemAccessRWX       = MemAccessRead | MemAccessWrite | MemAccessExec
	MemAccessRightMask = 0x00000007 // MEM_ACCESS_RIGHT_MASK
	MemTypeWB          = 0x00000040 // MEM_TYPE_WB: write-back
	MemTypeWT          = 0x00000080 // MEM_TYPE_WT: write-through
	MemTypeUC          = 0x00000100 // MEM_TYPE_UC: uncached
	MemTypeWC          = 0x00000200 // MEM_TYPE_WC: write-combining
	MemTypeWP          = 0x00000400 // MEM_TYPE_WP: write-protected
	MemTypeMask        = 0x000007C0 // MEM_TYPE_MASK
)

// Memory region operations: the type field of VMMemoryRegion (MR_* in
// acrn_hv_defs.h; 1 is unused).
const (
	MRAdd    = 0 // MR_ADD: map GPA..GPA+Size to the Service VM's SOSVMGPA
	MRDel    = 2 // MR_DEL: unmap
	MRModify = 3 // MR_MODIFY: change the attributes of an existing mapping
)

// Memory mapping types: the type field of VMMemmap (ACRN_MEMMAP_*).
const (
	MemmapRAM  = 0 // ACRN_MEMMAP_RAM: guest RAM backed by Service VM memory
	MemmapMMIO = 1 // ACRN_MEMMAP_MMIO: a passthrough MMIO range
)

// Sizes of the memory structures.
const (
	VMMemoryRegionSize = 32 // sizeof(struct vm_memory_region)
	SetRegionsSize     = 24 // sizeof(struct set_regions)
	WPDataSize         = 16 // sizeof(struct wp_data)
	VMGPA2HPASize      = 16 // sizeof(struct vm_gpa2hpa)
	VMMemmapSize       = 32 // sizeof(struct acrn_vm_memmap)

	// SetRegionsMaxNum bounds SetRegions.MRNum: the header says the
	// regions array is at most one page, 4096/32 entries.
	SetRegionsMaxNum = 4096 / VMMemoryRegionSize
)

// VMMemoryRegion is struct vm_memory_region, one entry of the array a
// SetRegions points to. (Seed 000 calls it the parameter of
// "HC_VM_SET_MEMORY_REGION", a hypercall ACRN removed in 2018; it survives
// only as this array element.)
type VMMemoryRegion struct {
	Type     uint32 // MR*
	Prot     uint32 // MemType* | MemAccess*
	GPA      uint64 // start in the target VM
	SOSVMGPA uint64 // start in the Service VM (service_vm_gpa in ACRN v2.7+)
	Size     uint64 // bytes
}

// SetRegions is struct set_regions, the parameter of
// HC_VM_SET_MEMORY_REGIONS. VMID names the target VM (HC_VM_SET_MEMORY_REGIONS
// is the one VM-management hypercall that does not take it in param1).
type SetRegions struct {
	VMID       uint16
	Reserved0  uint16
	Reserved1  uint32
	MRNum      uint32 // entries at RegionsGPA, at most SetRegionsMaxNum
	_          [4]byte
	RegionsGPA uint64 // Service VM GPA of [MRNum]VMMemoryRegion
}

// WPData is struct wp_data, the parameter of HC_VM_WRITE_PROTECT_PAGE. In C,
// Set is a uint8_t followed by a 56-bit bitfield pad sharing its 8-byte unit;
// here the bitfield is Pad.
type WPData struct {
	Set uint8 // non-zero: write-protect the page; zero: clear it
	Pad [7]byte
	GPA uint64 // page-aligned GPA in the target VM
}

// VMGPA2HPA is struct vm_gpa2hpa, the parameter of HC_VM_GPA2HPA.
type VMGPA2HPA struct {
	GPA uint64 // in: the target VM's GPA
	HPA uint64 // out: the host physical address, or InvalidHPA
}

// VMMemmap is struct acrn_vm_memmap (<linux/acrn.h>), the argument of
// ACRN_IOCTL_SET_MEMSEG and ACRN_IOCTL_UNSET_MEMSEG; the HSM turns it into a
// VMMemoryRegion.
type VMMemmap struct {
	Type     uint32 // Memmap*
	Attr     uint32 // MemType* | MemAccess*
	UserVMPA uint64
	// ServiceVMPA is the union {service_vm_pa; vma_base}: the Service VM
	// physical address for MMIO, the user-space address for RAM.
	ServiceVMPA uint64
	Len         uint64
}
