package x86

import (
	"strings"
	"testing"

	"ember/kvm"
)

// TestBrand: the guest reads the name ember gives as its CPU's brand
// string, whether KVM reported the brand leaves (zeroed) or left them out,
// with the highest extended leaf raised to reach them; a long name is cut
// so the string keeps its NUL; no name, or no extended range, leaves
// KVM's leaves alone.
func TestBrand(t *testing.T) {
	const epyc = "AMD EPYC 7B13 64-Core Processor"
	zeroed := []kvm.CPUIDEntry{{Function: 0x80000000, EAX: 0x80000008},
		{Function: 0x80000002}, {Function: 0x80000003}, {Function: 0x80000004}}
	short := []kvm.CPUIDEntry{{Function: 0x80000000, EAX: 0x80000001}, {Function: 0x80000001}}
	for _, tt := range []struct {
		name      string
		supported []kvm.CPUIDEntry
		brand     string
		want      string
		wantMax   uint32 // leaf 0x80000000's EAX; 0: no such leaf
	}{
		{"KVM's leaves zeroed", zeroed, epyc, epyc, 0x80000008},
		{"KVM's range ends before them", short, epyc, epyc, 0x80000004},
		{"a name of 47 bytes fits", zeroed, strings.Repeat("x", 47), strings.Repeat("x", 47), 0x80000008},
		{"a longer one is cut to 47", zeroed, strings.Repeat("y", 60), strings.Repeat("y", 47), 0x80000008},
		{"no name", zeroed, "", "", 0x80000008},
		{"no extended range", []kvm.CPUIDEntry{{Function: 1}}, epyc, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			supported := append([]kvm.CPUIDEntry(nil), tt.supported...)
			got := BuildCPUID(supported, CPUIDConfig{Brand: tt.brand})
			if b := Brand(got); b != tt.want {
				t.Errorf("brand %q, want %q", b, tt.want)
			}
			var top uint32
			leaves := map[uint32]int{}
			for _, e := range got {
				leaves[e.Function]++
				if e.Function == 0x80000000 {
					top = e.EAX
				}
			}
			if top != tt.wantMax {
				t.Errorf("highest extended leaf %#x, want %#x", top, tt.wantMax)
			}
			for fn := uint32(0x80000002); fn <= 0x80000004 && tt.wantMax != 0; fn++ {
				if leaves[fn] != 1 {
					t.Errorf("leaf %#x appears %d times, want once", fn, leaves[fn])
				}
			}
		})
	}
}
