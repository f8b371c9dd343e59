package hv

import "ember/hv/eventfd"

// EventFDs returns the VM's ioeventfd/irqfd service (package eventfd), the
// one an out-of-process device model's IOEVENTFD and IRQFD reach and the
// one the VM's own devices take their MSI vectors and SINT routes from.
func (vm *VM) EventFDs() *eventfd.Service {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.eventfds == nil {
		vm.eventfds = eventfd.New(vm.kvm, !vm.cfg.NoIRQChip)
	}
	return vm.eventfds
}
