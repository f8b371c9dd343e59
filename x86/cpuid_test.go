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

// TestTSCDeadline: leaf 1 offers the TSC-deadline timer only where the
// caller says KVM emulates it, even where KVM's supported CPUID had the
// bit, and a user's mask hides it again.
func TestTSCDeadline(t *testing.T) {
	const bit = 1 << 24
	supported := []kvm.CPUIDEntry{{Function: 1, ECX: 1<<21 | bit}} // as kvm-pvm reports it
	for _, tt := range []struct {
		name string
		cfg  CPUIDConfig
		want bool
	}{
		{"KVM emulates it", CPUIDConfig{TSCDeadline: true}, true},
		{"KVM does not (or no in-kernel LAPIC)", CPUIDConfig{}, false},
		{"masked by the user", CPUIDConfig{TSCDeadline: true, Mask: []string{"tsc_deadline"}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := BuildCPUID(supported, tt.cfg)
			if len(got) == 0 || got[0].Function != 1 {
				t.Fatalf("leaf 1 missing: %+v", got)
			}
			if has := got[0].ECX&bit != 0; has != tt.want {
				t.Errorf("leaf 1 ECX %#x: TSC-deadline offered %v, want %v", got[0].ECX, has, tt.want)
			}
			if got[0].ECX&(1<<21) == 0 {
				t.Errorf("leaf 1 ECX %#x lost x2APIC", got[0].ECX)
			}
		})
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

// TestHypervisorLeaves: where guests look for KVM, Hyper-V and ember.
// kvm-unit-tests (kvmclock_test, asyncpf), FreeBSD and systemd read KVM's
// signature at 0x40000000 and its features at 0x40000001, nowhere else;
// Hyper-V guests (and the suite's hyperv tests) read Hyper-V's there, when
// the VM offers it; Linux scans in blocks of 0x100 and must find each.
func TestHypervisorLeaves(t *testing.T) {
	const kvmSig, hvSig = "KVMKVMKVM\x00\x00\x00", "Linux KVM Hv"
	const clocksource2, asyncPF = 1 << 3, 1 << 4
	const synic, stimer = 1 << 2, 1 << 3
	supported := []kvm.CPUIDEntry{
		{Function: 1},
		{Function: 0x40000000, EAX: 0x40000001, EBX: 0x4b4d564b, ECX: 0x564b4d56, EDX: 0x4d},
		{Function: 0x40000001, EAX: clocksource2 | asyncPF},
	}
	hyperV := []kvm.CPUIDEntry{
		{Function: 0x40000000, EAX: 0x40000082, EBX: 0x756e694c, ECX: 0x564b2078, EDX: 0x7648204d},
		{Function: 0x40000001, EAX: 0x31237648},
		{Function: 0x40000003, EAX: synic | stimer},
		{Function: 0x40000082},
	}
	tests := []struct {
		name           string
		hyperV         []kvm.CPUIDEntry
		first          string // the signature at 0x40000000
		firstMax       uint32
		kvm, ember, hv uint32 // where a scan finds each (0: nowhere)
		feature        uint32 // the leaf whose EAX has KVM's features
		hvFeatures     uint32 // 0x40000003's EAX
	}{
		{"KVM alone", nil, kvmSig, 0x40000001, 0x40000000, 0x40000100, 0, 0x40000001, 0},
		{"with Hyper-V", hyperV, hvSig, 0x40000082, 0x40000100, 0x40000200, 0x40000000, 0x40000101, synic | stimer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BuildCPUID(supported, CPUIDConfig{Count: 1, HyperV: tt.hyperV})
			eax := func(leaf uint32) uint32 {
				for _, e := range got {
					if e.Function == leaf {
						return e.EAX
					}
				}
				return 0
			}
			if sig, highest, _ := signatureAt(got, 0x40000000); sig != tt.first || highest != tt.firstMax {
				t.Errorf("0x40000000: %q up to %#x, want %q up to %#x", sig, highest, tt.first, tt.firstMax)
			}
			for _, f := range []struct {
				sig  string
				want uint32
			}{{kvmSig, tt.kvm}, {HypervisorSignature, tt.ember}, {hvSig, tt.hv}} {
				if base, _ := scanHypervisor(got, f.sig); base != f.want {
					t.Errorf("a scan finds %q at %#x, want %#x", f.sig, base, f.want)
				}
			}
			if f := eax(tt.feature); f != clocksource2|asyncPF {
				t.Errorf("KVM's features at %#x: %#x", tt.feature, f)
			}
			if f := eax(0x40000003); f != tt.hvFeatures {
				t.Errorf("Hyper-V features %#x, want %#x", f, tt.hvFeatures)
			}
		})
	}
}
