package x86

import (
	"encoding/binary"
	"os"
	"strings"

	"ember/kvm"
)

// The processor brand string: 48 bytes of ASCII in CPUID leaves
// 0x80000002–0x80000004 (16 bytes a leaf, in EAX, EBX, ECX, EDX), ending in
// a NUL. It is what a guest shows as its CPU's name (/proc/cpuinfo's "model
// name", lscpu, Windows' System page). KVM's supported CPUID leaves these
// leaves zero, and a Linux guest then names its CPU from a table of old
// models ("AMD Hammer" on a current EPYC); QEMU's -cpu host and crosvm give
// the guest the host's brand string, and so does ember.
const (
	cpuidExtendedMax = 0x80000000 // EAX: the highest extended leaf
	cpuidBrandFirst  = 0x80000002
	cpuidBrandLeaves = 3
	brandLen         = 16 * cpuidBrandLeaves
)

// HostCPUName returns the host CPU's name as the host's kernel read it from
// the brand string ("model name" in /proc/cpuinfo), or "" where it cannot be
// read.
func HostCPUName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// setBrand puts name into entries as the brand string, replacing the leaves
// KVM reported or adding them, and raises the highest extended leaf to
// cover them. A name is cut to 47 bytes, so the string always ends in a
// NUL. Where the entries have no extended range (no leaf 0x80000000), a
// guest would not look for a brand string, and none is added.
func setBrand(entries []kvm.CPUIDEntry, name string) []kvm.CPUIDEntry {
	top := -1
	for i, e := range entries {
		if e.Function == cpuidExtendedMax {
			top = i
		}
	}
	if top < 0 || name == "" {
		return entries
	}
	entries[top].EAX = max(entries[top].EAX, cpuidBrandFirst+cpuidBrandLeaves-1)
	var b [brandLen]byte
	copy(b[:brandLen-1], name)
	for i := range cpuidBrandLeaves {
		r := b[16*i:]
		leaf := kvm.CPUIDEntry{Function: cpuidBrandFirst + uint32(i),
			EAX: binary.LittleEndian.Uint32(r[0:]), EBX: binary.LittleEndian.Uint32(r[4:]),
			ECX: binary.LittleEndian.Uint32(r[8:]), EDX: binary.LittleEndian.Uint32(r[12:])}
		entries = putLeaf(entries, leaf)
	}
	return entries
}

// putLeaf replaces the entry of e's leaf (index 0) with e, or appends e.
func putLeaf(entries []kvm.CPUIDEntry, e kvm.CPUIDEntry) []kvm.CPUIDEntry {
	for i := range entries {
		if entries[i].Function == e.Function && entries[i].Index == e.Index {
			entries[i] = e
			return entries
		}
	}
	return append(entries, e)
}

// Brand returns the brand string that entries give a guest, up to its NUL:
// what the guest will call its CPU.
func Brand(entries []kvm.CPUIDEntry) string {
	var b []byte
	for i := range cpuidBrandLeaves {
		for _, e := range entries {
			if e.Function == cpuidBrandFirst+uint32(i) {
				b = binary.LittleEndian.AppendUint32(b, e.EAX)
				b = binary.LittleEndian.AppendUint32(b, e.EBX)
				b = binary.LittleEndian.AppendUint32(b, e.ECX)
				b = binary.LittleEndian.AppendUint32(b, e.EDX)
			}
		}
	}
	s, _, _ := strings.Cut(string(b), "\x00")
	return s
}
