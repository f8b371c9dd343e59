package pc

import (
	"testing"

	"ember/kvm"
)

// TestBIOSPIC: from KVM's reset state (all zero but the ELCR masks), a PIC
// is left initialized with the BIOS's vector base, its mask untouched.
func TestBIOSPIC(t *testing.T) {
	tests := []struct {
		name string
		base byte
		imr  byte
	}{
		{"master", BIOSIRQ0Vector, 0},
		{"slave", BIOSIRQ8Vector, 0},
		{"master with lines masked", BIOSIRQ0Vector, 0xfb},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c kvm.IRQChip
			c.Chip[2] = tt.imr       // imr
			c.Chip[picInitState] = 2 // halfway through an ICW sequence
			biosPIC(&c, tt.base)
			if c.Chip[picIRQBase] != tt.base || c.Chip[picInitState] != 0 || c.Chip[picInit4] != 1 || c.Chip[2] != tt.imr {
				t.Errorf("state %#x: want irq_base %#x, init_state 0, init4 1, imr %#x", c.Chip[:16], tt.base, tt.imr)
			}
		})
	}
}
