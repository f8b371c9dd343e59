package vmm

import (
	"errors"
	"fmt"
	"sync"

	"ember/hv"
	"ember/pc"
)

// Errors of the lifecycle calls.
var (
	ErrStarted    = errors.New("vmm: guest already started")
	ErrNotStarted = errors.New("vmm: guest not started")
	ErrClosed     = errors.New("vmm: guest closed")
)

// Guest is one VM driven through the libvmm API: its hv.VM, the run that
// Start began, and its interrupt controller. Its methods are safe to call
// from any goroutine.
type Guest struct {
	vm   *hv.VM
	cfg  hv.Config
	virq VirqController
	plat *pc.Platform // AttachPC's, or nil

	mu     sync.Mutex
	run    *hv.Background // the current or last run; nil before Start
	closed bool
}

// New creates a VM on h as h.NewVM(cfg) does and wraps it in a Guest. The
// guest owns the VM: Close closes it.
//
//	h, _ := hv.Open()
//	g, err := vmm.New(h, hv.Config{MemorySize: 64 << 20})
//	if err != nil { ... }
//	defer g.Close()
func New(h *hv.Hypervisor, cfg hv.Config) (*Guest, error) {
	vm, err := h.NewVM(cfg)
	if err != nil {
		return nil, err
	}
	g := &Guest{vm: vm, cfg: cfg}
	g.virq.g = g
	return g, nil
}

// VM returns the guest's VM, for what the libvmm API does not cover: its
// memory (VM().Memory()), buses, vCPUs.
func (g *Guest) VM() *hv.VM { return g.vm }

// Close stops the guest if it runs, waits for its run to end, releases the
// interrupt controller's eventfds and goroutines, and closes the VM.
func (g *Guest) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	r := g.run
	g.mu.Unlock()
	if r != nil {
		r.Stop()
	}
	errs := []error{g.virq.close()}
	if err := g.vm.Close(); err != nil {
		errs = append(errs, fmt.Errorf("vmm: %w", err))
	}
	return errors.Join(errs...)
}
