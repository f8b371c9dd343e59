package pc

import (
	"fmt"

	"ember/hv/eventfd"
	"ember/kvm"
	virtiopci "ember/virtio/pci"
)

// msixVector is a virtio-pci MSI-X vector's irqfd (eventfd.MSIVector) that
// binds other eventfds to its GSI as well (virtiopci.FDVector): an
// out-of-process back-end's call eventfd, whose signals KVM then turns into
// the vector's message without ember. KVM takes any number of irqfds on one
// GSI, and each follows the GSI's route when the driver reprograms the
// message.
type msixVector struct {
	*eventfd.MSIVector
	vm *kvm.VM
}

var _ virtiopci.FDVector = msixVector{}

// Bind binds the eventfd fd to the vector's GSI (KVM_IRQFD). KVM delivers
// at once a signal fd already holds.
func (v msixVector) Bind(fd int) error {
	if err := v.vm.IRQFD(kvm.IRQFD{Fd: uint32(fd), GSI: v.GSI()}); err != nil {
		return fmt.Errorf("pc: binding eventfd %d to MSI-X GSI %d: %w", fd, v.GSI(), err)
	}
	return nil
}

// Unbind removes Bind's irqfd; KVM has delivered every signal it took when
// the ioctl returns, and later ones stay in the eventfd.
func (v msixVector) Unbind(fd int) error {
	if err := v.vm.IRQFD(kvm.IRQFD{Fd: uint32(fd), GSI: v.GSI(), Flags: kvm.IRQFDDeassign}); err != nil {
		return fmt.Errorf("pc: unbinding eventfd %d from MSI-X GSI %d: %w", fd, v.GSI(), err)
	}
	return nil
}
