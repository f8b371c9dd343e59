package pc

import (
	"bytes"
	"context"
	"testing"
	"time"

	"ember/guest"
	"ember/hv"
	"ember/internal/kvmtest"
)

func openHV(t testing.TB) *hv.Hypervisor {
	t.Helper()
	kvmtest.Require(t)
	h, err := hv.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

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
	rep := kvmtest.NewReporter()
	if err := vm.PIO.Register(guest.PortReport, 4, "report", rep); err != nil {
		t.Fatal(err)
	}
	if err := vm.LoadImage(p.Code, guest.LoadAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetEntry(0, p.Entry()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := vm.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res, console.String(), rep.Values()
}
