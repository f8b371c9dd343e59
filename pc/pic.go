package pc

import (
	"fmt"

	"ember/hv"
	"ember/kvm"
)

// Where a PC BIOS puts the 8259 PICs' interrupts: IRQ 0-7 at vectors
// 0x08-0x0f, IRQ 8-15 at 0x70-0x77 (the real-mode interrupt table's
// hardware entries, which real-mode code such as kvm-unit-tests' realmode
// points its handlers at).
const (
	BIOSIRQ0Vector = 0x08
	BIOSIRQ8Vector = 0x70
)

// Offsets in struct kvm_pic_state (arch/x86/include/uapi/asm/kvm.h), the
// state KVM_GET_IRQCHIP and KVM_SET_IRQCHIP carry for one PIC.
const (
	picIRQBase   = 5  // irq_base: ICW2, the vector of the chip's IRQ 0
	picInitState = 9  // init_state: which ICW the chip waits for, 0 once initialized
	picInit4     = 13 // init4: ICW4 was given (8086 mode)
)

// biosPIC sets one PIC's state to what a BIOS's initialization sequence
// leaves (ICW1 edge-triggered with ICW4, ICW2 base, ICW3 cascade on IRQ 2,
// ICW4 8086 mode). The mask is left as it is: KVM's reset state has every
// line open, and a line that no device raises delivers nothing.
func biosPIC(c *kvm.IRQChip, base byte) {
	c.Chip[picIRQBase] = base
	c.Chip[picInitState] = 0
	c.Chip[picInit4] = 1
}

// SetBIOSPIC initializes vm's in-kernel PICs as a PC BIOS does before it
// hands over to a boot loader: IRQ 0-7 at vectors 0x08-0x0f, IRQ 8-15 at
// 0x70-0x77. A kernel entered straight from ember without firmware (a
// multiboot kernel) finds the PICs as it would after GRUB: an interrupt it
// takes before reprogramming them arrives at the vector real-mode code
// expects, not at KVM's reset base 0 (IRQ 11 as vector 3).
func SetBIOSPIC(vm *hv.VM) error {
	for _, p := range []struct {
		chip uint32
		base byte
	}{{kvm.IRQChipPICMaster, BIOSIRQ0Vector}, {kvm.IRQChipPICSlave, BIOSIRQ8Vector}} {
		c, err := vm.KVM().GetIRQChip(p.chip)
		if err != nil {
			return fmt.Errorf("pc: reading PIC %d: %w", p.chip, err)
		}
		biosPIC(c, p.base)
		if err := vm.KVM().SetIRQChip(c); err != nil {
			return fmt.Errorf("pc: setting PIC %d: %w", p.chip, err)
		}
	}
	return nil
}
