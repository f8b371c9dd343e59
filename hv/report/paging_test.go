package report

import (
	"testing"

	"ember/kvm"
)

// TestPageTableRoot: where each paging mode's walk starts, from the
// Intel SDM's CR3 formats (vol. 3, tables 4-3, 4-7 and 4-12).
func TestPageTableRoot(t *testing.T) {
	const pg, pae, lma, pcide = 1 << 31, 1 << 5, 1 << 10, 1 << 17
	tests := []struct {
		name     string
		sr       kvm.SRegs
		gpa      uint64
		size     uint64
		paged    bool
		wantNote string
	}{
		{"paging off", kvm.SRegs{CR0: 0x11, CR3: 0x1000}, 0, 0, false, ""},
		{"long mode", kvm.SRegs{CR0: pg | 1, CR4: pae, EFER: lma | 0x500, CR3: 0x1d7ee000}, 0x1d7ee000, 4096, true, ""},
		{"long mode, bit 32 set (the lab's hung guests)", kvm.SRegs{CR0: pg | 1, CR4: pae, EFER: lma, CR3: 0x100a44000}, 0x100a44000, 4096, true,
			"; page tables at 0x100a44000, outside guest RAM"},
		{"long mode, PCID and no-flush bits", kvm.SRegs{CR0: pg | 1, CR4: pae | pcide, EFER: lma, CR3: 1<<63 | 0x2000 | 0x5}, 0x2000, 4096, true, ""},
		{"32-bit PAE", kvm.SRegs{CR0: pg | 1, CR4: pae, CR3: 0x3fe0}, 0x3fe0, 32, true, ""},
		{"32-bit paging", kvm.SRegs{CR0: pg | 1, CR3: 0x5018}, 0x5000, 4096, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gpa, size, ok := PageTableRoot(tt.sr)
			if gpa != tt.gpa || size != tt.size || ok != tt.paged {
				t.Errorf("PageTableRoot = %#x, %d, %v; want %#x, %d, %v", gpa, size, ok, tt.gpa, tt.size, tt.paged)
			}
			if tt.wantNote != "" {
				if got := RootOutsideRAM(gpa); got != tt.wantNote {
					t.Errorf("RootOutsideRAM(%#x) = %q, want %q", gpa, got, tt.wantNote)
				}
			}
		})
	}
}
