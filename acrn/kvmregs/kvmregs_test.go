package kvmregs

import (
	"testing"

	"ember/acrn"
	"ember/kvm"
)

func TestConvert(t *testing.T) {
	apic := kvm.SRegs{APICBase: 0xfee00900}
	for _, tt := range []struct {
		name  string
		r     acrn.Regs
		check func(t *testing.T, regs kvm.Regs, s kvm.SRegs)
	}{
		{"real mode: CS from its access rights, data segments at selector<<4", acrn.Regs{
			RIP: 0xfff0, CSBase: 0xffff0000, CSSel: 0xf000, CSLimit: 0xffff, CSAR: 0x9b,
			CR0: 0x60000010, DSSel: 0x1234, SSSel: 0x10, TRSel: 0x28, LDTSel: 0x30,
		}, func(t *testing.T, regs kvm.Regs, s kvm.SRegs) {
			want := kvm.Segment{Base: 0xffff0000, Limit: 0xffff, Selector: 0xf000, Type: 0xb, S: 1, Present: 1}
			if s.CS != want {
				t.Errorf("CS = %+v, want %+v", s.CS, want)
			}
			if want := (kvm.Segment{Base: 0x12340, Limit: 0xffff, Selector: 0x1234, Type: 3, S: 1, Present: 1}); s.DS != want {
				t.Errorf("DS = %+v, want %+v", s.DS, want)
			}
			if s.TR.Type != 11 || s.TR.Selector != 0x28 || s.LDT.Type != 2 || s.LDT.Selector != 0x30 {
				t.Errorf("TR %+v, LDTR %+v: want a busy TSS and an LDT", s.TR, s.LDT)
			}
			if regs.RIP != 0xfff0 || regs.RFLAGS != 2 {
				t.Errorf("RIP %#x RFLAGS %#x, want 0xfff0 and 2", regs.RIP, regs.RFLAGS)
			}
		}},
		{"64-bit: L, G, DPL and unusable decoded; flat 4 GiB data", acrn.Regs{
			GPRs: acrn.GPRegs{RAX: 1, RSI: 2, R15: 3}, CR0: 0x80000011, CR4: 0x20, CR3: 0x1000, IA32EFER: 0x500,
			CSAR: 0x1_a0fb, SSSel: 0x18, GDT: acrn.DescriptorPtr{Base: 0x5000, Limit: 0x27},
		}, func(t *testing.T, regs kvm.Regs, s kvm.SRegs) {
			want := kvm.Segment{Type: 0xb, S: 1, DPL: 3, Present: 1, L: 1, G: 1, Unusable: 1}
			if s.CS != want {
				t.Errorf("CS = %+v, want %+v", s.CS, want)
			}
			if want := (kvm.Segment{Limit: 0xffffffff, Selector: 0x18, Type: 3, S: 1, Present: 1, DB: 1, G: 1}); s.SS != want {
				t.Errorf("SS = %+v, want %+v", s.SS, want)
			}
			if s.CR0 != 0x80000011 || s.CR3 != 0x1000 || s.CR4 != 0x20 || s.EFER != 0x500 || s.GDT.Base != 0x5000 || s.GDT.Limit != 0x27 {
				t.Errorf("control registers %+v", s)
			}
			if regs.RAX != 1 || regs.RSI != 2 || regs.R15 != 3 {
				t.Errorf("general registers %+v", regs)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			regs, s := Convert(&tt.r, apic)
			if s.APICBase != apic.APICBase {
				t.Errorf("APIC base %#x, want it kept", s.APICBase)
			}
			tt.check(t, regs, s)
		})
	}
}
