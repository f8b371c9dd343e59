package pc

import (
	"bytes"
	"testing"

	"ember/guest"
	"ember/hv"
	"ember/internal/hvtest"
)

// openHV opens the hypervisor, or skips the test without KVM.
func openHV(t testing.TB) *hv.Hypervisor { return hvtest.Open(t) }

// newPC creates a VM with cfg and the PC platform attached.
func newPC(t *testing.T, h *hv.Hypervisor, cfg hv.Config, pcfg Config) *hv.VM {
	t.Helper()
	vm, _ := newPCPlatform(t, h, cfg, pcfg)
	return vm
}

// newPCPlatform is newPC that returns the platform too.
func newPCPlatform(t *testing.T, h *hv.Hypervisor, cfg hv.Config, pcfg Config) (*hv.VM, *Platform) {
	t.Helper()
	if cfg.MemorySize == 0 {
		cfg.MemorySize = 2 << 20
	}
	vm, err := h.NewVM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	p, err := Attach(vm, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	return vm, p
}

// runProgram boots a tiny guest on a fresh PC VM and returns its result,
// console output and reported values.
func runProgram(t *testing.T, h *hv.Hypervisor, p guest.Program, cfg hv.Config, pcfg Config) (hv.Result, string, []uint64) {
	t.Helper()
	var console bytes.Buffer
	cfg.Console = &console
	vm := newPC(t, h, cfg, pcfg)
	res, vals := hvtest.Run(t, vm, p)
	return res, console.String(), vals
}
