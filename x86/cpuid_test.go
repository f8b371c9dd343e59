package x86

import (
	"encoding/binary"
	"testing"

	"ember/kvm"
)

func TestBuildCPUID(t *testing.T) {
	supported := []kvm.CPUIDEntry{
		{Function: 1, EBX: 0x00000800, ECX: 1 << 13},
		{Function: 0xb, Index: 0}, {Function: 0xb, Index: 1},
		{Function: 0x40000000, EAX: 0x40000001, EBX: 0x4b4d564b},
		{Function: 0x40000001, EAX: 0xff},
	}
	got := BuildCPUID(supported, CPUIDConfig{ID: 3, Count: 4, Mask: []string{"cx16"}})
	find := func(fn, idx uint32) *kvm.CPUIDEntry {
		for i := range got {
			if got[i].Function == fn && got[i].Index == idx {
				return &got[i]
			}
		}
		t.Fatalf("leaf %#x.%d missing", fn, idx)
		return nil
	}
	if l := find(1, 0); l.EBX>>24 != 3 || (l.EBX>>16)&0xff != 4 || l.ECX&(1<<13) != 0 || l.ECX&(1<<31) == 0 {
		t.Errorf("leaf 1: EBX %#x ECX %#x", l.EBX, l.ECX)
	}
	if l := find(0xb, 1); l.EDX != 3 || l.EBX != 4 || l.EAX != 2 {
		t.Errorf("leaf 0xb.1: %+v", *l)
	}
	h := find(0x40000000, 0)
	sig := make([]byte, 12)
	binary.LittleEndian.PutUint32(sig[0:], h.EBX)
	binary.LittleEndian.PutUint32(sig[4:], h.ECX)
	binary.LittleEndian.PutUint32(sig[8:], h.EDX)
	if string(sig) != HypervisorSignature {
		t.Errorf("hypervisor signature %q", sig)
	}
	if k := find(0x40000100, 0); k.EBX != 0x4b4d564b || k.EAX != 0x40000101 {
		t.Errorf("KVM leaf not moved to 0x40000100: %+v", *k)
	}
	find(0x40000101, 0)
	if err := CheckCPUIDMask([]string{"cx16", "nope"}); err == nil {
		t.Error("unknown feature accepted")
	}
}
