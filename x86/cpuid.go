package x86

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"ember/kvm"
)

// HypervisorSignature is what CPUID leaf 0x40000100 (0x40000200 with Hyper-V
// enlightenments) answers in EBX, ECX, EDX:
// a guest can tell it runs on ember. The first hypervisor leaf, 0x40000000,
// stays KVM's ("KVMKVMKVM", then kvmclock, PV EOI, async page faults, ... at
// 0x40000001), because that is where most guests look for KVM and nowhere
// else (kvm-unit-tests, FreeBSD, systemd-detect-virt); a guest that wants
// ember scans the hypervisor range in steps of 0x100, as Linux's
// hypervisor_cpuid_base does.
const HypervisorSignature = "EmberEmber  "

// The hypervisor CPUID range, which guests scan for signatures in blocks of
// 0x100 from 0x40000000. The first block is KVM's, or Hyper-V's when the VM
// offers Hyper-V enlightenments (as QEMU and Hyper-V itself order them:
// Windows and Hyper-V-aware guests read only the first); ember's follows.
const (
	cpuidHypervisorBase = 0x40000000
	cpuidBlock          = 0x100
)

// CPUIDConfig says how to adapt KVM's supported CPUID to one vCPU.
type CPUIDConfig struct {
	ID    int      // the vCPU's APIC id
	Count int      // vCPUs in the VM: one core each, one socket
	Mask  []string // features to hide, by name (see CPUIDFeatures)
	// HyperV, when not empty, are the Hyper-V leaves to offer (KVM's
	// KVM_GET_SUPPORTED_HV_CPUID): they take the first hypervisor block and
	// KVM's move to the second, ember's to the third.
	HyperV []kvm.CPUIDEntry
	// TSCDeadline offers the LAPIC's TSC-deadline timer mode (leaf 1 ECX
	// bit 24), which KVM emulates with its in-kernel LAPIC where it has
	// KVM_CAP_TSC_DEADLINE_TIMER but leaves out of its supported CPUID, as
	// QEMU, Firecracker and crosvm add it. A guest's timer is then one
	// MSR write (IA32_TSC_DEADLINE) rather than a count it calibrates first.
	// Without it the bit is cleared, whatever KVM reported (kvm-pvm reports
	// it): with no in-kernel LAPIC nothing would emulate the timer.
	TSCDeadline bool
	// Brand is the CPU name the guest reads from the brand string (leaves
	// 0x80000002–0x80000004; brand.go): the host's, HostCPUName, as QEMU's
	// -cpu host gives it. Empty leaves the leaves as KVM reported them.
	Brand string
}

// cpuidFeature locates one feature bit.
type cpuidFeature struct {
	leaf uint32
	reg  byte // 'a', 'b', 'c', 'd'
	bit  uint
}

// cpuidFeatures are the features a user can mask by name. The names are
// Linux's /proc/cpuinfo flags.
var cpuidFeatures = map[string]cpuidFeature{
	"sse3":         {1, 'c', 0},
	"pclmulqdq":    {1, 'c', 1},
	"ssse3":        {1, 'c', 9},
	"fma":          {1, 'c', 12},
	"cx16":         {1, 'c', 13},
	"pcid":         {1, 'c', 17},
	"sse4_1":       {1, 'c', 19},
	"sse4_2":       {1, 'c', 20},
	"x2apic":       {1, 'c', 21},
	"movbe":        {1, 'c', 22},
	"popcnt":       {1, 'c', 23},
	"tsc_deadline": {1, 'c', 24},
	"aes":          {1, 'c', 25},
	"xsave":        {1, 'c', 26},
	"avx":          {1, 'c', 28},
	"f16c":         {1, 'c', 29},
	"rdrand":       {1, 'c', 30},
	"mce":          {1, 'd', 7},
	"mtrr":         {1, 'd', 12},
	"pat":          {1, 'd', 16},
	"fsgsbase":     {7, 'b', 0},
	"bmi1":         {7, 'b', 3},
	"avx2":         {7, 'b', 5},
	"smep":         {7, 'b', 7},
	"bmi2":         {7, 'b', 8},
	"erms":         {7, 'b', 9},
	"invpcid":      {7, 'b', 10},
	"avx512f":      {7, 'b', 16},
	"rdseed":       {7, 'b', 18},
	"smap":         {7, 'b', 20},
	"umip":         {7, 'c', 2},
	"pku":          {7, 'c', 3},
	"la57":         {7, 'c', 16},
	"rdtscp":       {0x80000001, 'd', 27},
	"pdpe1gb":      {0x80000001, 'd', 26},
	"lahf_lm":      {0x80000001, 'c', 0},
}

// CPUIDFeatures lists the feature names CPUIDConfig.Mask accepts.
func CPUIDFeatures() []string {
	names := make([]string, 0, len(cpuidFeatures))
	for n := range cpuidFeatures {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CheckCPUIDMask reports the first name in mask that is not a known feature.
func CheckCPUIDMask(mask []string) error {
	for _, n := range mask {
		if _, ok := cpuidFeatures[n]; !ok {
			return fmt.Errorf("unknown CPUID feature %q (known: %s)", n, strings.Join(CPUIDFeatures(), ", "))
		}
	}
	return nil
}

// BuildCPUID adapts KVM's supported CPUID to one vCPU: its APIC id and the
// topology (one socket, Count cores, one thread each) in leaves 1, 4 and 0xB,
// KVM's paravirtual leaves where KVM puts them, ember's signature leaf after
// them, and the masked features cleared. Leaf 7's
// XSAVE-dependent bits follow KVM; what KVM does not support is never offered.
func BuildCPUID(supported []kvm.CPUIDEntry, cfg CPUIDConfig) []kvm.CPUIDEntry {
	count := max(cfg.Count, 1)
	out := make([]kvm.CPUIDEntry, 0, len(supported)+len(cfg.HyperV)+1)
	kvmShift, emberBase := uint32(0), uint32(cpuidHypervisorBase+cpuidBlock)
	if len(cfg.HyperV) > 0 {
		kvmShift, emberBase = cpuidBlock, cpuidHypervisorBase+2*cpuidBlock
		for _, e := range cfg.HyperV {
			if inBlock(e.Function, cpuidHypervisorBase) {
				out = append(out, e)
			}
		}
	}
	for _, e := range supported {
		switch {
		case e.Function == 1:
			// EBX[31:24] initial APIC id, [23:16] logical processors per package;
			// EDX bit 28 (HTT) says the latter is meaningful.
			e.EBX = e.EBX&0x0000ffff | uint32(count)<<16 | uint32(cfg.ID)<<24
			e.EDX |= 1 << 28
			e.ECX |= 1 << 31 // the hypervisor-present bit
			e.ECX &^= 1 << 24
			if cfg.TSCDeadline {
				e.ECX |= 1 << 24
			}
		case e.Function == 4:
			// EAX[31:26]: cores per package - 1; [25:14]: threads sharing the cache - 1.
			e.EAX = e.EAX&0x03ff3fff | uint32(count-1)<<26
		case e.Function == 0xb:
			e.EDX = uint32(cfg.ID) // x2APIC id
			switch e.Index {
			case 0: // SMT level: one thread per core
				e.EAX, e.EBX, e.ECX = 0, 1, 1<<8
			case 1: // core level
				e.EAX, e.EBX, e.ECX = uint32(bitsFor(count)), uint32(count), 2<<8|1
			default:
				e.EAX, e.EBX, e.ECX = 0, 0, e.Index
			}
		case inBlock(e.Function, cpuidHypervisorBase):
			e.Function += kvmShift
			if e.Function == cpuidHypervisorBase+kvmShift && inBlock(e.EAX, cpuidHypervisorBase) {
				e.EAX += kvmShift
			}
		}
		out = append(out, e)
	}
	out = append(out, emberLeaf(emberBase))
	out = setBrand(out, cfg.Brand)
	for _, name := range cfg.Mask {
		if f, ok := cpuidFeatures[name]; ok {
			clearFeature(out, f)
		}
	}
	return out
}

// inBlock says whether leaf lies in the hypervisor block that starts at base.
func inBlock(leaf, base uint32) bool { return leaf >= base && leaf < base+cpuidBlock }

// emberLeaf is the first leaf of ember's block: its highest leaf (itself)
// and the signature.
func emberLeaf(base uint32) kvm.CPUIDEntry {
	sig := []byte(HypervisorSignature)
	le := binary.LittleEndian
	return kvm.CPUIDEntry{
		Function: base,
		EAX:      base,
		EBX:      le.Uint32(sig[0:]), ECX: le.Uint32(sig[4:]), EDX: le.Uint32(sig[8:]),
	}
}

func clearFeature(entries []kvm.CPUIDEntry, f cpuidFeature) {
	for i := range entries {
		e := &entries[i]
		if e.Function != f.leaf || (f.leaf == 7 && e.Index != 0) {
			continue
		}
		reg := map[byte]*uint32{'a': &e.EAX, 'b': &e.EBX, 'c': &e.ECX, 'd': &e.EDX}[f.reg]
		*reg &^= 1 << f.bit
	}
}

// bitsFor is how many APIC-id bits a level with n units needs.
func bitsFor(n int) int {
	b := 0
	for 1<<b < n {
		b++
	}
	return b
}
