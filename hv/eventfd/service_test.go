package eventfd

import (
	"testing"

	"ember/kvm"
)

// TestDefaultIRQRoutesAreKVMs: the table an irqfd's routing starts from is
// KVM's own default, so the legacy lines behave as before.
func TestDefaultIRQRoutesAreKVMs(t *testing.T) {
	routes := defaultIRQRoutes()
	if len(routes) != 40 {
		t.Fatalf("%d routes, want 24 IOAPIC + 16 PIC", len(routes))
	}
	has := func(gsi, chip, pin uint32) bool {
		for _, r := range routes {
			if r == kvm.IRQChipRoute(gsi, chip, pin) {
				return true
			}
		}
		return false
	}
	for gsi := uint32(0); gsi < 24; gsi++ {
		if !has(gsi, kvm.IRQChipIOAPIC, gsi) {
			t.Errorf("GSI %d lacks IOAPIC pin %d", gsi, gsi)
		}
	}
	for gsi := uint32(0); gsi < 16; gsi++ {
		chip := uint32(kvm.IRQChipPICMaster)
		if gsi >= 8 {
			chip = kvm.IRQChipPICSlave
		}
		if !has(gsi, chip, gsi%8) {
			t.Errorf("GSI %d lacks PIC %d pin %d", gsi, chip, gsi%8)
		}
	}
}
