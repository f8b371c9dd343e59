// Package boot loads guest images into guest memory: Linux bzImages by the
// x86 boot protocol (with or without decompressing the kernel on the host),
// ELF vmlinux kernels by the 64-bit boot protocol or by PVH, and plain ELF or
// flat binaries for test guests.
//
// boot never imports kvm or any other ember package. Guest memory is anything
// that satisfies [Memory]: a writer whose offsets are guest-physical
// addresses. Every loader checks each write against the guest memory map
// itself before it writes, and every image is treated as hostile: a corrupt,
// truncated or oversized image gets a sentinel error (see errors.go), never a
// panic or an out-of-range write.
//
// # Guest-physical layout
//
// The loaders use these fixed addresses (the same choices as Firecracker's, so
// that a reader who knows one knows the other):
//
//	0x0000_0000 - 0x0000_5fff  left alone (real-mode IVT, BDA)
//	0x0000_6000                PVH hvm_start_info (56 bytes)           [layout.PVHStartInfo]
//	0x0000_6040                PVH module list, one entry (initrd)    [layout.PVHModlist]
//	0x0000_6080                PVH memory map, up to 128 entries      [layout.PVHMemmap]
//	0x0000_7000 - 0x0000_7fff  zero page (struct boot_params)         [layout.ZeroPage]
//	0x0000_8000 - 0x0000_ffff  reserved for the caller: boot stack, GDT, identity
//	                           page tables (boot writes nothing here)
//	0x0002_0000 - 0x0002_ffff  kernel command line, NUL-terminated    [layout.Cmdline]
//	0x0009_fc00 - 0x000f_ffff  reserved in the e820 map (EBDA, VGA, BIOS)
//	0x0010_0000                bzImage protected-mode code            [layout.BzImageLoad]
//	p_paddr of each segment    ELF kernels (vmlinux: 0x100_0000 = pref_address)
//	top of RAM below initrd_addr_max, 4 KiB aligned: the initrd
//
// With more than 3 GiB of RAM, the RAM from 3 GiB on is placed at 4 GiB, so
// that 3 GiB - 4 GiB stays a hole for 32-bit MMIO; see [MemoryMap].
//
// # Entering the guest
//
// A loader returns an [Entry] that says which CPU state to start in. For the
// 64-bit boot protocol (a bzImage run by its own decompressor, or a vmlinux
// decompressed on the host) the caller must provide long mode with identity
// page tables covering the kernel, the zero page and the command line, a flat
// GDT with __BOOT_CS = 0x10 and __BOOT_DS = 0x18, interrupts off, RIP and RSI
// as given. For PVH it must provide 32-bit protected mode with paging off, flat
// segments, RIP and RBX as given. Building those tables is not boot's job.
package boot
