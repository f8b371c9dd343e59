// Package multiboot loads kernels by the Multiboot Specification, version 1
// (0.6.96): hobby and research kernels, unikernels and test kernels such as
// kvm-unit-tests' are built this way, and GRUB and QEMU's -kernel load them.
//
// A multiboot kernel carries a header in its first 8192 bytes: a magic, flags
// saying what it needs from the loader, and a checksum (Parse). The kernel is
// loaded either by the header's address fields (flag 16, the "a.out kludge":
// any file, loaded from the header's file offset back to load_addr) or, when
// they are absent, as an ELF32 executable by its PT_LOAD program headers at
// their physical addresses. Load copies the kernel into guest RAM, zeroes
// its bss, puts the boot modules page-aligned above it, writes the multiboot
// information structure (memory bounds and map, command line, modules, the
// boot loader's name) at layout.MultibootInfo, and returns the entry state:
// 32-bit protected mode, paging off, flat segments, EAX = BootMagic, EBX the
// information's address.
//
// Of the required header flags (bits 0-15), Load meets page-aligned modules
// (bit 0, always done), memory information (bit 1, always given) and video
// mode information (bit 2: reported as the 80x25 EGA text mode the
// specification allows a loader to choose, since ember has no display); any
// other required bit makes Parse refuse the kernel, as the specification
// says a loader must. No boot device, symbol table, drive list, APM or VBE
// information is given (their info flags are clear).
//
// Images are hostile. Every refusal wraps one sentinel error (errors.go)
// with the field or address at fault: a missing header, a bad checksum,
// unsupported flags, inconsistent address fields, an entry outside the
// image, a file that is not ELF32, segments that overlap each other or what
// the loader writes, segments outside RAM, modules that do not fit. Load
// checks everything before it writes anything.
//
// # Guest-physical layout
//
//	0x0000_0500  GDT and TSS, written by x86.Setup when the vCPU starts: no segment may lie there
//	0x0002_0000  the multiboot information, up to 64 KiB: the structure, the
//	             memory map, the module list, then the strings (command line,
//	             "ember", the modules' strings)            [layout.MultibootInfo]
//	segments     where the header or the ELF says, inside RAM entries of the memory map
//	above them   the modules, each page-aligned, below 4 GiB
package multiboot
