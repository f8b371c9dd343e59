// Package kvmregs turns ACRN's vCPU register state (struct acrn_regs, what
// a Service VM gives a vCPU with HC_SET_VCPU_REGS) into KVM's (kvm_regs and
// kvm_sregs). The two describe a vCPU differently: ACRN passes CS with its
// VMX access-rights word and only the selectors of the other segments, and
// leaves their hidden parts to be set as ACRN's hypervisor sets them.
package kvmregs

import (
	"ember/acrn"
	"ember/kvm"
)

// Convert returns r as KVM's registers, on top of s, the vCPU's special
// registers now (what acrn_regs does not describe, such as the APIC base,
// stays as it is). CS comes from its VMX access rights; the data segments
// are flat, as ACRN sets them (4 GiB with 32-bit defaults in protected mode,
// base selector<<4 and 64 KiB in real mode), TR a busy TSS and LDTR an LDT;
// RFLAGS gets its always-one bit 1.
func Convert(r *acrn.Regs, s kvm.SRegs) (kvm.Regs, kvm.SRegs) {
	g := &r.GPRs
	regs := kvm.Regs{RAX: g.RAX, RBX: g.RBX, RCX: g.RCX, RDX: g.RDX, RSI: g.RSI, RDI: g.RDI,
		RSP: g.RSP, RBP: g.RBP, R8: g.R8, R9: g.R9, R10: g.R10, R11: g.R11, R12: g.R12,
		R13: g.R13, R14: g.R14, R15: g.R15, RIP: r.RIP, RFLAGS: r.RFlags | 2}
	s.CR0, s.CR3, s.CR4, s.EFER = r.CR0, r.CR3, r.CR4, r.IA32EFER
	s.GDT = kvm.DTable{Base: r.GDT.Base, Limit: r.GDT.Limit}
	s.IDT = kvm.DTable{Base: r.IDT.Base, Limit: r.IDT.Limit}
	s.CS = accessRights(r.CSAR)
	s.CS.Base, s.CS.Limit, s.CS.Selector = r.CSBase, r.CSLimit, r.CSSel
	pe := r.CR0&1 != 0
	data := func(sel uint16) kvm.Segment {
		d := kvm.Segment{Selector: sel, Type: 3, S: 1, Present: 1}
		if pe {
			d.Limit, d.G, d.DB = 0xffffffff, 1, 1
		} else {
			d.Base, d.Limit = uint64(sel)<<4, 0xffff
		}
		return d
	}
	s.SS, s.DS, s.ES, s.FS, s.GS = data(r.SSSel), data(r.DSSel), data(r.ESSel), data(r.FSSel), data(r.GSSel)
	s.TR = kvm.Segment{Selector: r.TRSel, Limit: 0xffff, Type: 11, Present: 1}
	s.LDT = kvm.Segment{Selector: r.LDTSel, Limit: 0xffff, Type: 2, Present: 1}
	return regs, s
}

// accessRights decodes a segment's VMX access-rights word (Intel SDM vol.
// 3, "Guest Register State"): type in bits 3:0, S 4, DPL 6:5, P 7, AVL 12,
// L 13, D/B 14, G 15, unusable 16.
func accessRights(ar uint32) kvm.Segment {
	bit := func(n uint) uint8 { return uint8(ar >> n & 1) }
	return kvm.Segment{Type: uint8(ar & 0xf), S: bit(4), DPL: uint8(ar >> 5 & 3), Present: bit(7),
		AVL: bit(12), L: bit(13), DB: bit(14), G: bit(15), Unusable: bit(16)}
}
