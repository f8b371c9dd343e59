package hypercall

import (
	"log/slog"

	"ember/hv"
	"ember/ioreq"
	"ember/kvm"
	"ember/memory"
)

// Machine is what the hypercall service needs of a VM: its memory map and
// request path, its vCPUs' registers, its interrupt lines and its run.
// *hv.VM is the Machine of every VM the service makes; tests give the
// service a fake one (newServiceOn), so that every handler runs, and every
// documented failure is checked, on hosts without KVM.
type Machine interface {
	Config() hv.Config
	Logger() *slog.Logger
	Memory() *memory.Guest
	IORequests() *ioreq.Dispatcher
	NumVCPUs() int

	MapMemory(gpa uint64, host []byte, readOnly bool) (slot uint32, err error)
	UnmapMemory(slot uint32) error
	SetWriteProtected(gpa uint64, on bool)

	VCPURegs(i int) (kvm.Regs, kvm.SRegs, error)
	SetVCPURegs(i int, regs kvm.Regs, sregs kvm.SRegs) error
	IRQLine(gsi uint32, high bool) error
	SignalMSI(msi kvm.MSI) error

	Start() *hv.Background
	Pause()
	Resume()
	Paused() bool
	ResetState() error

	SetPortTrap(port uint16, f hv.PortTrap, hot bool)
	OnClose(f func())
	Close() error
}

var _ Machine = (*hv.VM)(nil)

// machineMaker makes the Machine of a new VM: hv.Hypervisor.NewVM, or a
// test's fake.
type machineMaker func(cfg hv.Config) (Machine, error)

// hvMaker makes VMs on h.
func hvMaker(h *hv.Hypervisor) machineMaker {
	return func(cfg hv.Config) (Machine, error) {
		vm, err := h.NewVM(cfg)
		if err != nil {
			return nil, err
		}
		return vm, nil
	}
}
