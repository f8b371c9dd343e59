package report

import (
	"fmt"

	"ember/kvm"
)

// Control-register and EFER bits that decide where a vCPU's page tables
// start (Intel SDM vol. 3, §4.1 and §4.5).
const (
	cr0PG   = 1 << 31
	cr4PAE  = 1 << 5
	eferLMA = 1 << 10
	// cr3Long is CR3's address in 4- and 5-level paging, bits 51:12: the
	// PCID (11:0) and the flags above (LAM's 62:61, no-flush's 63) are not
	// part of it.
	cr3Long = 0x000f_ffff_ffff_f000
	cr3PAE  = 0xffff_ffe0 // 32-bit PAE: the PDPT, 32-byte aligned
	cr3Flat = 0xffff_f000 // 32-bit paging: the page directory
)

// PageTableRoot is where a vCPU with segment and control registers sr
// starts its page walk, and the bytes the walk's first table takes there:
// the PML4 or PML5 in long mode, the four PDPT entries under 32-bit PAE,
// the page directory under 32-bit paging. ok is false when paging is off.
func PageTableRoot(sr kvm.SRegs) (gpa, size uint64, ok bool) {
	switch {
	case sr.CR0&cr0PG == 0:
		return 0, 0, false
	case sr.EFER&eferLMA != 0:
		return sr.CR3 & cr3Long, 4096, true
	case sr.CR4&cr4PAE != 0:
		return sr.CR3 & cr3PAE, 32, true
	default:
		return sr.CR3 & cr3Flat, 4096, true
	}
}

// RootOutsideRAM is the note for a vCPU whose page tables start at gpa,
// which is not guest RAM: every access it makes through them faults, and
// so does delivering the fault (a triple fault, or a page fault pending
// for ever at the vCPU's own RIP). The lab met it under nested KVM: hung
// guests whose CR3 had bit 32 set, past their RAM
// (docs/performance-log.md); a guest's own bug can do it too.
func RootOutsideRAM(gpa uint64) string {
	return fmt.Sprintf("; page tables at %#x, outside guest RAM", gpa)
}
