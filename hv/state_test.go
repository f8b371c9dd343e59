package hv

import (
	"testing"

	"ember/guest"
)

// TestSaveAndRestoreState: a State read with SaveState gives a vCPU back the
// registers it had, whatever was set since; a State of another shape is
// refused, and so is reading one from a closed VM.
func TestSaveAndRestoreState(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	e := guest.Long64.Entry()
	e.Regs.RBX = 0x1234
	if err := vm.SetEntry(0, e); err != nil {
		t.Fatal(err)
	}
	s, err := vm.SaveState()
	if err != nil {
		t.Fatal(err)
	}
	regs, sregs, err := vm.VCPURegs(0)
	if err != nil {
		t.Fatal(err)
	}
	regs.RBX = 0x5678
	if err := vm.SetVCPURegs(0, regs, sregs); err != nil {
		t.Fatal(err)
	}
	if err := vm.RestoreState(s); err != nil {
		t.Fatal(err)
	}
	if regs, _, err := vm.VCPURegs(0); err != nil || regs.RBX != 0x1234 || regs.RIP != e.RIP {
		t.Errorf("after RestoreState RBX %#x RIP %#x (%v); want %#x, %#x", regs.RBX, regs.RIP, err, 0x1234, e.RIP)
	}

	two, err := h.NewVM(Config{MemorySize: 1 << 20, VCPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer two.Close()
	if err := two.RestoreState(s); err == nil {
		t.Error("a one-vCPU State restored into a two-vCPU VM")
	}
	two.Close()
	if _, err := two.SaveState(); err == nil {
		t.Error("SaveState of a closed VM succeeded")
	}
}
