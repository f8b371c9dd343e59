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
	if err := CheckCPUIDMask([]string{"cx16", "nope"}); err == nil {
		t.Error("unknown feature accepted")
	}
}

// signatureAt is the 12-byte signature a hypervisor leaf answers in EBX, ECX,
// EDX, and its EAX (the block's highest leaf), or ok false if there is none.
func signatureAt(entries []kvm.CPUIDEntry, leaf uint32) (sig string, eax uint32, ok bool) {
	for _, e := range entries {
		if e.Function == leaf && e.Index == 0 {
			b := make([]byte, 12)
			binary.LittleEndian.PutUint32(b[0:], e.EBX)
			binary.LittleEndian.PutUint32(b[4:], e.ECX)
			binary.LittleEndian.PutUint32(b[8:], e.EDX)
			return string(b), e.EAX, true
		}
	}
	return "", 0, false
}

// scanHypervisor finds sig as Linux's hypervisor_cpuid_base does: every
// 0x100 from 0x40000000, the block's highest leaf in EAX within the block.
func scanHypervisor(entries []kvm.CPUIDEntry, sig string) (uint32, bool) {
	for base := uint32(0x40000000); base < 0x40010000; base += 0x100 {
		if s, eax, ok := signatureAt(entries, base); ok && s == sig && eax-base < 0x100 {
			return base, true
		}
	}
	return 0, false
}

// TestHypervisorLeaves: where guests look for KVM and for ember. kvm-unit-tests
// (kvmclock_test, asyncpf), FreeBSD and systemd read KVM's signature at
// 0x40000000 and its features at 0x40000001, nowhere else; Linux scans in
// blocks of 0x100 and must find both KVM and ember.
func TestHypervisorLeaves(t *testing.T) {
	const kvmSig = "KVMKVMKVM\x00\x00\x00"
	const clocksource2, asyncPF = 1 << 3, 1 << 4
	supported := []kvm.CPUIDEntry{
		{Function: 1},
		{Function: 0x40000000, EAX: 0x40000001, EBX: 0x4b4d564b, ECX: 0x564b4d56, EDX: 0x4d},
		{Function: 0x40000001, EAX: clocksource2 | asyncPF},
	}
	got := BuildCPUID(supported, CPUIDConfig{Count: 1})
	feat := func(leaf uint32) uint32 {
		for _, e := range got {
			if e.Function == leaf {
				return e.EAX
			}
		}
		return 0
	}
	emberBase, emberFound := scanHypervisor(got, HypervisorSignature)
	kvmBase, kvmFound := scanHypervisor(got, kvmSig)
	first, highest, _ := signatureAt(got, 0x40000000)
	tests := []struct {
		name string
		ok   bool
		got  any
	}{
		{"KVM's signature at 0x40000000", first == kvmSig && highest == 0x40000001, first},
		{"KVM's features at 0x40000001", feat(0x40000001) == clocksource2|asyncPF, feat(0x40000001)},
		{"a scan finds KVM at 0x40000000", kvmFound && kvmBase == 0x40000000, kvmBase},
		{"a scan finds ember at 0x40000100", emberFound && emberBase == 0x40000100, emberBase},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s: got %v", tt.name, tt.got)
		}
	}
}
