// Package x86 puts a vCPU into a processor mode: it writes the descriptor
// tables and identity page tables a mode needs into guest memory and sets the
// vCPU's segment, control and general registers for an entry point.
//
// Guests that ember starts directly (test guests, the demo, a Linux kernel
// through the 32- or 64-bit boot protocol) expect to begin in a mode a
// firmware would have left them in; this package is that firmware's last
// step. It follows the Linux boot protocol's conventions: selector 0x10 is a
// flat code segment and 0x18 a flat data segment.
package x86

// The addresses of the structures Setup writes (GDT, TSS, page tables,
// stack) are in package layout.

// IdentityMapSize is how much the long-mode page tables map 1:1: the low 4 GiB
// with 2 MiB pages, user-accessible so ring-3 test code can run anywhere.
const IdentityMapSize = 4 << 30

// GDT selectors. The code segment at 0x10 is the entry mode's own (32-bit in
// protected mode, 64-bit in long mode) as the Linux boot protocol asks.
const (
	SelCodeOther  = 0x08 // the code segment of the other width
	SelCode       = 0x10 // __BOOT_CS
	SelData       = 0x18 // __BOOT_DS
	SelUserCode32 = 0x20 | 3
	SelUserData   = 0x28 | 3
	SelUserCode64 = 0x30 | 3
	SelTSS        = 0x38 // a 16-byte system descriptor in long mode
)

// GDTEntries is the number of 8-byte GDT slots Setup writes.
const GDTEntries = 9

// Control-register and EFER bits used here.
const (
	CR0PE = 1 << 0
	CR0MP = 1 << 1
	CR0ET = 1 << 4
	CR0NE = 1 << 5
	CR0WP = 1 << 16
	CR0PG = 1 << 31

	CR4PAE        = 1 << 5
	CR4OSFXSR     = 1 << 9
	CR4OSXMMEXCPT = 1 << 10

	EFERSCE = 1 << 0
	EFERLME = 1 << 8
	EFERLMA = 1 << 10

	// RFLAGSReserved is bit 1 of RFLAGS, which always reads as one.
	RFLAGSReserved = 1 << 1
	// RFLAGSIOPL3 lets code at any privilege level use IN/OUT.
	RFLAGSIOPL3 = 3 << 12
)
