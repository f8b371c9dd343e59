package hypercall

import (
	"fmt"

	"ember/acrn"
	"ember/acrn/permission"
	"ember/hv"
	"ember/hypercall/lifecycle"
	"ember/hypercall/memmap"
	"ember/hypercall/vmid"
)

// Service is ember's ACRN hypercall service on one hv.Hypervisor: the VM
// table (VM IDs, with the Service VM as 0), the permission model, the
// handlers, and the upcalls to the Service VM. VMs made through it trap
// PortHypercall; the host control plane calls Hypercall as the Service VM.
type Service struct {
	hv     *hv.Hypervisor // nil for a service on fake machines (tests)
	make   machineMaker
	table  vmTable    // ACRN VM IDs and hypercall state (vmtable.go)
	counts callCounts // hypercalls by ID and result (stats.go)
}

// Identity says what a VM is to the hypercall service.
type Identity struct {
	// ServiceVM makes the guest ACRN's Service VM: VM ID 0, allowed to make
	// every hypercall but the Trusty ones (docs/abi.md, Hypercalls).
	ServiceVM bool
	// GuestFlags are ACRN's GUEST_FLAG_* bits; acrn.GuestFlagSecureWorldEnabled
	// lets the guest make the Trusty hypercalls.
	GuestFlags uint64
}

// New returns the hypercall service on h, with an empty VM table.
func New(h *hv.Hypervisor) *Service { return newService(h, hvMaker(h)) }

// newService returns a service that makes its VMs with mk.
func newService(h *hv.Hypervisor, mk machineMaker) *Service {
	return &Service{hv: h, make: mk, table: vmTable{ids: vmid.New[hcVM](MaxVMs)}}
}

// Hypervisor returns the hypervisor the service creates VMs on.
func (h *Service) Hypervisor() *hv.Hypervisor { return h.hv }

// Close destroys the VMs created by hypercall. VMs the caller created keep
// working; the Hypervisor stays open.
func (h *Service) Close() error {
	h.table.closeAll()
	return nil
}

// NewVM creates a VM with cfg on the service's hypervisor and enters it in
// the VM table as id says: the Service VM guest (one at most:
// ErrServiceVMExists), or a pre-launched VM in ACRN's terms. Its guest makes
// hypercalls through PortHypercall; closing it removes its entry.
func (h *Service) NewVM(cfg hv.Config, id Identity) (*hv.VM, error) {
	load := loadPre
	if id.ServiceVM {
		load = loadService
	}
	e, err := h.newVM(cfg, load, id.GuestFlags)
	if err != nil {
		return nil, err
	}
	vm, ok := e.vm.(*hv.VM)
	if !ok { // a service on fake machines: only its tests get here
		e.destroy()
		return nil, fmt.Errorf("hypercall: NewVM on a service without a hypervisor")
	}
	return vm, nil
}

// newVM builds a VM of the given load order and flags and its table entry.
func (h *Service) newVM(cfg hv.Config, load int, flags uint64) (*hcVM, error) {
	id, err := h.table.reserve(load, flags)
	if err != nil {
		return nil, err
	}
	cfg.ID = id
	cfg.CompletionPolling = flags&acrn.GuestFlagIOCompletionPolling != 0
	vm, err := h.make(cfg)
	if err != nil {
		h.table.ids.Fill(id, nil)
		return nil, fmt.Errorf("hypercall: %w", err)
	}
	e := &hcVM{h: h, vm: vm, load: load, flags: flags, id: id, regions: memmap.New(vm), life: lifecycle.New(vm)}
	e.regions.Quiesce = e.quiesce
	// Only VMs that may make hypercalls make them often (a Service VM, a
	// Trusty or TEE VM); the others' OUTs to the port are #UD.
	vm.SetPortTrap(PortHypercall, e.trap, load == loadService || flags&permission.GuestFlagsAllowingHypercalls != 0)
	vm.OnClose(e.unregister)
	h.table.ids.Fill(id, e)
	return e, nil
}
