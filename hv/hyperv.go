package hv

import (
	"fmt"

	"ember/kvm"
)

// hyperVCPUID returns the Hyper-V enlightenment leaves this host's KVM can
// offer (KVM_GET_SUPPORTED_HV_CPUID on /dev/kvm), for a VM with
// Config.HyperV: all of them, as QEMU's -cpu hv_passthrough offers.
func (h *Hypervisor) hyperVCPUID() ([]kvm.CPUIDEntry, error) {
	if n, err := h.sys.CheckExtension(kvm.CapSysHypervCPUID); err != nil || n <= 0 {
		return nil, fmt.Errorf("hv: Hyper-V enlightenments: this host's KVM has no KVM_CAP_SYS_HYPERV_CPUID")
	}
	leaves, err := h.sys.SupportedHVCPUID()
	if err != nil {
		return nil, fmt.Errorf("hv: Hyper-V enlightenments: %w", err)
	}
	return leaves, nil
}

// enableSynIC turns on a vCPU's Hyper-V synthetic interrupt controller,
// which KVM emulates only when asked (and its timers with it): SYNIC2 where
// KVM has it (it leaves the guest's message and event pages alone on
// enable), else SYNIC.
func (h *Hypervisor) enableSynIC(c *kvm.VCPU) error {
	capability := kvm.CapHypervSynic2
	if n, err := h.sys.CheckExtension(capability); err != nil || n <= 0 {
		capability = kvm.CapHypervSynic
	}
	if err := c.EnableCap(kvm.EnableCap{Cap: capability}); err != nil {
		return fmt.Errorf("hv: Hyper-V SynIC: %w", err)
	}
	return nil
}
