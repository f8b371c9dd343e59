package hv

import (
	"fmt"
	"sync/atomic"

	"ember/hyperv"
	"ember/kvm"
	"ember/kvm/kvmcap"
)

// HyperVExits serves what KVM leaves of a VM's Hyper-V enlightenments
// (Config.HyperV) to user space; package hv/synic is ember's. The vCPU loop
// calls it on the exiting vCPU's thread, so it must not block.
type HyperVExits interface {
	// SynIC records that vCPU vcpu's guest wrote a SynIC MSR KVM has acted
	// on: the values of its control, event flags page and message page
	// MSRs (KVM_EXIT_HYPERV_SYNIC).
	SynIC(vcpu int, control, eventPage, messagePage uint64)
	// Hypercall answers a hypercall KVM hands over (KVM_EXIT_HYPERV_HCALL)
	// and returns the Hyper-V status (and result) the guest gets.
	Hypercall(vcpu int, input, param uint64) uint64
}

// hyperVExits holds the VM's HyperVExits, set once.
type hyperVExits struct{ atomic.Pointer[HyperVExits] }

// ServeHyperV makes s serve the VM's Hyper-V exits. Set it before the VM
// runs: a SynIC MSR the guest wrote before is not reported again. Until it
// is set, a Hyper-V hypercall KVM hands over fails with
// HV_STATUS_INVALID_HYPERCALL_CODE, as one Hyper-V does not know does.
// Errors: a VM without Config.HyperV, or one already served.
func (vm *VM) ServeHyperV(s HyperVExits) error {
	if !vm.cfg.HyperV {
		return fmt.Errorf("hv: serving Hyper-V exits: the VM was made without Config.HyperV")
	}
	if !vm.hyperv.CompareAndSwap(nil, &s) {
		return fmt.Errorf("hv: serving Hyper-V exits: the VM's are already served")
	}
	return nil
}

// handleHyperV hands a Hyper-V exit to the VM's HyperVExits. Synthetic
// debugger exits need nothing.
func (c *VCPU) handleHyperV(exit kvm.Exit) {
	x := exit.Hyperv()
	s := c.vm.hyperv.Load()
	switch x.Type {
	case kvm.HypervSynIC:
		if s != nil {
			(*s).SynIC(c.id, x.Control, x.EventPage, x.MessagePage)
		}
	case kvm.HypervHcall:
		st := uint64(hyperv.StatusInvalidHypercallCode)
		if s != nil {
			st = (*s).Hypercall(c.id, x.Input, x.Params[0])
		}
		exit.SetHypervResult(st)
	}
}

// hyperVCPUID returns the Hyper-V enlightenment leaves this host's KVM can
// offer (KVM_GET_SUPPORTED_HV_CPUID on /dev/kvm), for a VM with
// Config.HyperV: all of them, as QEMU's -cpu hv_passthrough offers.
func (h *Hypervisor) hyperVCPUID() ([]kvm.CPUIDEntry, error) {
	if n, err := h.sys.CheckExtension(kvmcap.SysHypervCPUID); err != nil || n <= 0 {
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
	capability := kvmcap.HypervSynic2
	if n, err := h.sys.CheckExtension(capability); err != nil || n <= 0 {
		capability = kvmcap.HypervSynic
	}
	if err := c.EnableCap(kvm.EnableCap{Cap: capability}); err != nil {
		return fmt.Errorf("hv: Hyper-V SynIC: %w", err)
	}
	return nil
}
