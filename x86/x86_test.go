package x86

import (
	"encoding/binary"
	"testing"

	"ember/kvm"
	"ember/layout"
)

// memBuf is guest memory for tests: a byte slice addressed from 0.
type memBuf []byte

func (m memBuf) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

func TestDescriptorEncodings(t *testing.T) {
	// The well-known encodings of flat segments, as every OS writes them.
	tests := []struct {
		name string
		seg  segment
		want uint64
	}{
		{"64-bit code, ring 0", flat(SelCode, typeCodeER, 0, 0, 1), 0x00af9b000000ffff},
		{"32-bit code, ring 0", flat(SelCode, typeCodeER, 0, 1, 0), 0x00cf9b000000ffff},
		{"data, ring 0", flat(SelData, typeDataRW, 0, 1, 0), 0x00cf93000000ffff},
		{"64-bit code, ring 3", flat(SelUserCode64, typeCodeER, 3, 0, 1), 0x00affb000000ffff},
		{"data, ring 3", flat(SelUserData, typeDataRW, 3, 1, 0), 0x00cff3000000ffff},
	}
	for _, tt := range tests {
		if got := tt.seg.descriptor(); got != tt.want {
			t.Errorf("%s: descriptor %#016x, want %#016x", tt.name, got, tt.want)
		}
	}
}

func TestGDTLayout(t *testing.T) {
	for _, long := range []bool{false, true} {
		b := segmentsFor(long).gdtBytes()
		at := func(sel uint16) uint64 { return binary.LittleEndian.Uint64(b[sel&^7:]) }
		if at(0) != 0 {
			t.Errorf("long=%v: null descriptor is %#x", long, at(0))
		}
		codeL := at(SelCode) >> 53 & 1
		if (codeL == 1) != long {
			t.Errorf("long=%v: selector 0x10 has L=%d", long, codeL)
		}
		// SYSRET's layout: user CS64 = user CS32 base + 16, SS = + 8.
		if SelUserData-SelUserCode32 != 8 || SelUserCode64-SelUserCode32 != 16 {
			t.Error("ring-3 selectors are not in SYSRET order")
		}
		tss := at(SelTSS)
		if base := (tss>>16)&0xffffff | (tss>>56)<<24; base != layout.TSS || (tss>>40)&0xf != typeTSSBusy {
			t.Errorf("long=%v: TSS descriptor %#x", long, tss)
		}
	}
}

func TestIdentityPageTables(t *testing.T) {
	b := pageTables()
	entry := func(addr uint64) uint64 { return binary.LittleEndian.Uint64(b[addr-layout.PML4:]) }
	if entry(layout.PML4)&^0xfff != layout.PDPT {
		t.Fatalf("PML4[0] = %#x", entry(layout.PML4))
	}
	// Walk a few addresses through the tables by hand.
	for _, va := range []uint64{0, 0x10000, 0x200000, 0x7fffffff, 0xc0000000, IdentityMapSize - 1} {
		pdpte := entry(layout.PDPT + 8*(va>>30))
		pde := entry(pdpte&^0xfff + 8*(va>>21&511))
		if pde&ptePageSize == 0 || pde&(ptePresent|pteWrite|pteUser) != ptePresent|pteWrite|pteUser {
			t.Errorf("%#x: PDE flags %#x", va, pde&0xfff)
		}
		if pa := pde&^0x1fffff | va&0x1fffff; pa != va {
			t.Errorf("%#x maps to %#x", va, pa)
		}
	}
}

func TestSRegsForModes(t *testing.T) {
	tests := []struct {
		e          Entry
		cs         uint16
		cpl        uint8
		cr0, efer  uint64
		wantTables bool
	}{
		{Entry{Mode: RealMode, RIP: 0x12345}, 0x1000, 0, CR0ET, 0, false},
		{Entry{Mode: ProtectedMode, RIP: 0x10000}, SelCode, 0, CR0PE | CR0ET | CR0NE, 0, false},
		{Entry{Mode: LongMode, RIP: 0x10000}, SelCode, 0, CR0PE | CR0MP | CR0ET | CR0NE | CR0WP | CR0PG, EFERLME | EFERLMA | EFERSCE, true},
		{Entry{Mode: LongMode, RIP: 0x10000, Ring3: true}, SelUserCode64, 3, CR0PE | CR0MP | CR0ET | CR0NE | CR0WP | CR0PG, EFERLME | EFERLMA | EFERSCE, true},
	}
	for _, tt := range tests {
		mem := make(memBuf, 0x10000)
		var s kvm.SRegs
		if err := SRegsFor(mem, &s, tt.e); err != nil {
			t.Fatal(err)
		}
		if s.CS.Selector != tt.cs || s.CS.DPL != tt.cpl || s.SS.DPL != tt.cpl || s.CR0 != tt.cr0 || s.EFER != tt.efer {
			t.Errorf("%v ring3=%v: CS %#x DPL %d, CR0 %#x, EFER %#x", tt.e.Mode, tt.e.Ring3, s.CS.Selector, s.CS.DPL, s.CR0, s.EFER)
		}
		wrote := binary.LittleEndian.Uint64(mem[layout.PML4:]) != 0
		if wrote != tt.wantTables {
			t.Errorf("%v: page tables written = %v", tt.e.Mode, wrote)
		}
	}
	if err := SRegsFor(make(memBuf, 0x10000), &kvm.SRegs{}, Entry{Mode: Mode(9)}); err == nil {
		t.Error("unknown mode accepted")
	}
}

func TestRegsFor(t *testing.T) {
	r := RegsFor(Entry{Mode: RealMode, RIP: 0x12345, IOPL3: true, Regs: kvm.Regs{RSI: 0x7000}})
	if r.RIP != 0x2345 || r.RSP != layout.StackTop || r.RFLAGS != RFLAGSReserved|RFLAGSIOPL3 || r.RSI != 0x7000 {
		t.Errorf("RegsFor = %+v", r)
	}
}

// TestWakeEntries checks the entries an ACPI wake uses: real mode at a
// given CS (CS = vector>>4, IP = vector&0xf), and flat 32-bit protected
// mode that writes nothing into guest memory.
func TestWakeEntries(t *testing.T) {
	tests := []struct {
		name    string
		e       Entry
		cs      uint16
		csBase  uint64
		ip      uint64
		gdtBase uint64
		wantErr bool
	}{
		{"real mode at CS 0x100", Entry{Mode: RealMode, RIP: 0x1000, CS: 0x100}, 0x100, 0x1000, 0, 0, false},
		{"real mode at CS 0x9a0e", Entry{Mode: RealMode, RIP: 0x9a0e3, CS: 0x9a0e}, 0x9a0e, 0x9a0e0, 3, 0, false},
		{"real mode, CS from RIP", Entry{Mode: RealMode, RIP: 0xffff0}, 0xf000, 0xf0000, 0xfff0, 0, false},
		{"real mode, RIP below CS", Entry{Mode: RealMode, RIP: 0x1000, CS: 0x200}, 0, 0, 0, 0, true},
		{"real mode, RIP beyond CS's 64 KiB", Entry{Mode: RealMode, RIP: 0x20000, CS: 0x100}, 0, 0, 0, 0, true},
		{"real mode above 1 MiB", Entry{Mode: RealMode, RIP: 0x100000}, 0, 0, 0, 0, true},
		{"protected mode without tables", Entry{Mode: ProtectedMode, RIP: 0x2345678, NoTables: true}, SelCode, 0, 0x2345678, 0, false},
		{"long mode without tables", Entry{Mode: LongMode, RIP: 0x10000, NoTables: true}, 0, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := make(memBuf, 0x10000)
			var s kvm.SRegs
			err := SRegsFor(mem, &s, tt.e)
			if (err != nil) != tt.wantErr {
				t.Fatalf("SRegsFor: %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			r := RegsFor(tt.e)
			if s.CS.Selector != tt.cs || s.CS.Base != tt.csBase || r.RIP != tt.ip || s.GDT.Base != tt.gdtBase {
				t.Errorf("CS %#x base %#x, IP %#x, GDT base %#x; want %#x, %#x, %#x, %#x",
					s.CS.Selector, s.CS.Base, r.RIP, s.GDT.Base, tt.cs, tt.csBase, tt.ip, tt.gdtBase)
			}
			for _, b := range mem {
				if b != 0 {
					t.Fatal("a wake entry wrote into guest memory")
				}
			}
		})
	}
}
