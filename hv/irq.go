package hv

import (
	"errors"
	"fmt"

	"ember/kvm"
)

// ErrNoIRQChip is returned for an interrupt on a VM made without the
// in-kernel irqchip (Config.NoIRQChip).
var ErrNoIRQChip = errors.New("hv: the VM has no in-kernel irqchip")

// IRQLine drives GSI gsi of the in-kernel IOAPIC and PIC high or low.
func (vm *VM) IRQLine(gsi uint32, high bool) error {
	if vm.cfg.NoIRQChip {
		return ErrNoIRQChip
	}
	if err := vm.kvm.IRQLine(gsi, high); err != nil {
		return fmt.Errorf("hv: IRQ line %d: %w", gsi, err)
	}
	return nil
}

// SignalMSI delivers msi to the in-kernel LAPICs.
func (vm *VM) SignalMSI(msi kvm.MSI) error {
	if vm.cfg.NoIRQChip {
		return ErrNoIRQChip
	}
	if _, err := vm.kvm.SignalMSI(msi); err != nil {
		return fmt.Errorf("hv: MSI %#x/%#x: %w", msi.AddressLo, msi.Data, err)
	}
	return nil
}
