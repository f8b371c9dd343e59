// Package layout is the guest-physical address map of ember's PC guests, in
// one file so that it can be read at once and no two packages disagree:
// where each structure ember writes into guest RAM goes, where RAM is and is
// not, and where the interrupt controllers and PCI windows are. Every other
// package refers to these names (Firecracker's arch/x86_64/layout.rs is the
// model). It imports nothing.
//
//	0x0000_0500  GDT, then the TSS                     x86.Setup
//	0x0000_6000  PVH start info, module list, memmap   boot (PVH)
//	0x0000_7000  zero page (struct boot_params)        boot (Linux)
//	0x0000_8000  initial stack top (test guests)       x86.Setup
//	0x0000_9000  PML4, PDPT, four PDs to 0xefff        x86 (long mode)
//	0x0001_0000  flat images (the tiny guests)         guest, vmm
//	0x0002_0000  kernel command line, 64 KiB           boot
//	0x0002_0000  multiboot information, 64 KiB         multiboot
//	0x0009_fc00  EBDA: the MP table                    pc
//	0x000e_0000  ACPI tables, to 0xf0000               pc
//	0x0010_0000  high RAM: the kernel (bzImage)        boot
//	0xc000_0000  MMIO hole (3-4 GiB): PCI MMIO window  memory, pc
//	0xc000_0000  virtio-pci BARs, 32 KiB a slot        pc
//	0xc010_0000  QEMU's edu device's BAR0, 1 MiB        pc (--edu)
//	0xfec0_0000  IOAPIC                                KVM
//	0xfec1_0000  virtio-mmio devices, 4 KiB each       pc
//	0xfed9_0000  VT-d remapping unit registers         pc (--iommu)
//	0xfee0_0000  LAPIC                                 KVM
//	0xfeff_c000  KVM's real-mode identity page, TSS    hv (Intel hosts)
//	0xff00_0000  firmware ROM (--bios), up to 4 GiB    pc
//	4 GiB        RAM beyond 3 GiB continues here       memory
//
// and in I/O space:
//
//	0x0d00-0xffff  the PCI root bridge's I/O window      pc
//	0xc000         virtio-pci I/O BARs, 256 ports a slot pc
package layout

// Below 64 KiB: the tables a vCPU's start mode needs and the Linux and PVH
// boot structures.
const (
	GDT          = 0x0500 // the GDT x86.Setup writes (x86.GDTEntries entries)
	TSS          = 0x0580 // a 104-byte TSS (64-bit, also used as a 32-bit one)
	PVHStartInfo = 0x6000 // struct hvm_start_info
	PVHModlist   = 0x6040 // its module list (the initrd)
	PVHMemmap    = 0x6080 // its memory map
	ZeroPage     = 0x7000 // Linux's struct boot_params
	StackTop     = 0x8000 // the default initial stack pointer of test guests
	PML4         = 0x9000 // page-map level 4 of the identity map
	PDPT         = 0xa000 // its page-directory-pointer table
	PD           = 0xb000 // its four page directories, to 0xefff
)

// Images and the command line.
const (
	ImageLoad   = 0x10000  // where flat images (the tiny guests) are loaded
	Cmdline     = 0x20000  // the kernel command line
	CmdlineSize = 0x10000  // room at Cmdline, terminating NUL included
	HighRAM     = 0x100000 // 1 MiB: the first byte above the legacy area
	BzImageLoad = HighRAM  // the boot protocol's load address of a bzImage's protected-mode part

	// MultibootInfo is where package multiboot writes the multiboot
	// information structure and everything it points to (memory map,
	// module list, command lines, the boot loader's name), in at most
	// MultibootInfoSize bytes: the command line's room, which a multiboot
	// boot has no other use for.
	MultibootInfo     = Cmdline
	MultibootInfoSize = CmdlineSize
)

// The legacy area between low RAM and 1 MiB, reserved in the e820 map.
const (
	EBDA      = 0x9fc00 // 639 KiB: low RAM ends here, the EBDA starts
	MPTable   = EBDA    // the MP floating pointer and table (1 KiB)
	ACPIStart = 0xe0000 // the RSDP, where Linux scans for it, and the tables after it
	ACPIEnd   = 0xf0000 // the first byte after the ACPI tables: the BIOS area from here holds reset-vector images
)

// The 32-bit MMIO hole, kept free of RAM as QEMU, Firecracker and Cloud
// Hypervisor keep it: RAM beyond 3 GiB continues at 4 GiB.
const (
	MMIOHoleStart = 3 << 30
	MMIOHoleEnd   = 4 << 30
	// PCIMMIO32Start and PCIMMIO32End bound the PCI root bridge's 32-bit
	// memory window (inclusive), up to the IOAPIC.
	PCIMMIO32Start = MMIOHoleStart
	PCIMMIO32End   = IOAPIC - 1
	// VirtioBARs is where the BARs of ember's virtio-pci functions go, one
	// VirtioBARSize window per PCI slot (slot 1 first), at the bottom of
	// the PCI window as firmware would assign them.
	VirtioBARs    = PCIMMIO32Start
	VirtioBARSize = 0x8000
	// EduBAR is BAR0 of QEMU's edu device (pc.Config.EDU): 1 MiB,
	// 1 MiB-aligned, right above the virtio BARs of the 31 slots.
	EduBAR = VirtioBARs + 32*VirtioBARSize
	IOAPIC = 0xfec00000 // the in-kernel IOAPIC
	// VirtioMMIO is where the register blocks of ember's virtio-mmio
	// devices go, one VirtioMMIOSize block each, up to VirtioMMIOEnd: in
	// the hole above the PCI window, clear of the IOAPIC's page below and
	// of where a PC's HPET sits (0xfed00000, which guests probe) above.
	VirtioMMIO     = 0xfec10000
	VirtioMMIOSize = 0x1000
	VirtioMMIOEnd  = 0xfed00000 // the first byte after the virtio-mmio area
	// VTd is the register page of the VT-d remapping unit
	// (pc.Config.IOMMU): Q35's address, where QEMU's intel-iommu is and
	// test guests look for it.
	VTd   = 0xfed90000
	LAPIC = 0xfee00000 // the in-kernel LAPICs
	// KVMIdentityMap and KVMTSS are the pages KVM needs on Intel hosts for
	// real-mode emulation (the TSS takes three), where no RAM is: between
	// the LAPIC and the 16 MiB below 4 GiB that firmware may fill
	// (FirmwareTop), as QEMU places them.
	KVMIdentityMap = 0xfeffc000
	KVMTSS         = 0xfeffd000
	// FirmwareTop is where a firmware ROM ends: it is mapped at
	// FirmwareTop minus its size, at most 16 MiB (pc.LoadFirmware).
	FirmwareTop = 4 << 30
)

// I/O space: the PCI root bridge's window above the configuration ports,
// and in it the virtio-pci functions' I/O BARs (BAR1, their queue
// notification ports), one VirtioPortsSize block per PCI slot (slot 1
// first) where firmware would assign them (SeaBIOS starts at 0xc000).
const (
	PCIIOStart      = 0x0d00
	PCIIOEnd        = 0xffff
	VirtioPorts     = 0xc000
	VirtioPortsSize = 0x100
)
