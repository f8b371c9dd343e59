package acrn

// PCI and device constants from acrn_common.h and <linux/acrn.h>.
const (
	// PtdevQuirkAssign is ACRN_PTDEV_QUIRK_ASSIGN, a PCIDev.Type bit: the
	// device model emulates part of the device's configuration space.
	PtdevQuirkAssign = 1 << 0
	// PCINumBars is ACRN_PCI_NUM_BARS.
	PCINumBars = 6
	// MMIODevResNum is MMIODEV_RES_NUM (ACRN_MMIODEV_RES_NUM).
	MMIODevResNum = 3
)

// Sizes of the device structures.
const (
	PCIDevSize    = 36  // sizeof(struct acrn_pcidev)
	MMIODevSize   = 104 // sizeof(struct acrn_mmiodev)
	VDevSize      = 192 // sizeof(struct acrn_vdev)
	VRPConfigSize = 12  // sizeof(struct vrp_config)
)

// PCIDev is struct acrn_pcidev, the parameter of HC_ASSIGN_PCIDEV and
// HC_DEASSIGN_PCIDEV (and their ioctls).
type PCIDev struct {
	Type     uint32 // PtdevQuirkAssign or 0
	VirtBDF  uint16 // bus<<8 | dev<<3 | func in the guest
	PhysBDF  uint16 // bus<<8 | dev<<3 | func on the host
	IntrLine uint8
	IntrPin  uint8
	_        [2]byte
	Bar      [PCINumBars]uint32
}

// MMIODev is struct acrn_mmiodev, the parameter of HC_ASSIGN_MMIODEV and
// HC_DEASSIGN_MMIODEV (and their ioctls).
type MMIODev struct {
	Name [8]byte
	Res  [MMIODevResNum]MMIORes
}

// MMIORes is struct acrn_mmiores, one MMIO range of an MMIODev.
// HostPA is host_pa in acrn_common.h and service_vm_pa in <linux/acrn.h>.
type MMIORes struct {
	UserVMPA uint64
	HostPA   uint64
	Size     uint64
	MemType  uint64
}

// VDev is struct acrn_vdev, the parameter of HC_ADD_VDEV and HC_REMOVE_VDEV
// (ACRN_IOCTL_CREATE_VDEV/DESTROY_VDEV), a device the hypervisor emulates.
type VDev struct {
	// ID is the union id: the low 32 bits are a PCI device's vendor and
	// device IDs, the high 32 a legacy device's number (see Vendor, Device,
	// LegacyID).
	ID     uint64
	Slot   uint64 // a PCI device's BDF, or a legacy device's slot
	IOAddr [PCINumBars]uint32
	IOSize [PCINumBars]uint32
	Args   [128]byte
}

// Vendor is id.fields.vendor.
func (v *VDev) Vendor() uint16 { return uint16(v.ID) }

// Device is id.fields.device.
func (v *VDev) Device() uint16 { return uint16(v.ID >> 16) }

// LegacyID is id.fields.legacy_id.
func (v *VDev) LegacyID() uint32 { return uint32(v.ID >> 32) }

// MakeVDevID packs the id.fields of a VDev into its ID.
func MakeVDevID(vendor, device uint16, legacyID uint32) uint64 {
	return uint64(legacyID)<<32 | uint64(device)<<16 | uint64(vendor)
}

// VRPConfig is struct vrp_config, the args of a virtual PCIe root port VDev
// used as a PTM root.
type VRPConfig struct {
	PhyBDF         uint16
	MaxPayload     uint8 // device capability's max payload
	PrimaryBus     uint8
	SecondaryBus   uint8
	SubordinateBus uint8
	PTMCapable     uint8
	_              [1]byte
	PTMCapOffset   uint32
}
