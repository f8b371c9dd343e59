package hv

import (
	"fmt"

	"ember/kvm"
	"ember/kvm/kvmcap"
	"ember/x86"
)

// Hypervisor is ember's hypervisor service on one open /dev/kvm. It creates
// VMs and holds what they share: the system descriptor and the CPUID KVM supports.
type Hypervisor struct {
	sys   *kvm.System
	cpuid []kvm.CPUIDEntry
	// tscDeadline: KVM emulates the LAPIC's TSC-deadline timer mode
	// (KVM_CAP_TSC_DEADLINE_TIMER), which KVM_GET_SUPPORTED_CPUID leaves
	// out of leaf 1 because it needs the in-kernel LAPIC.
	tscDeadline bool
	brand       string // the host CPU's name, which every vCPU's CPUID gives (x86.CPUIDConfig.Brand)
}

// Open opens /dev/kvm and reads what every VM will need from it.
func Open() (*Hypervisor, error) {
	sys, err := kvm.Open()
	if err != nil {
		return nil, fmt.Errorf("hv: %w", err)
	}
	cpuid, err := sys.SupportedCPUID()
	if err != nil {
		sys.Close()
		return nil, fmt.Errorf("hv: %w", err)
	}
	deadline, err := sys.CheckExtension(kvmcap.TSCDeadlineTimer)
	return &Hypervisor{sys: sys, cpuid: cpuid, tscDeadline: err == nil && deadline > 0, brand: x86.HostCPUName()}, nil
}

// System returns the underlying /dev/kvm handle.
func (h *Hypervisor) System() *kvm.System { return h.sys }

// Close closes /dev/kvm. VMs created before keep working.
func (h *Hypervisor) Close() error { return h.sys.Close() }
