package hv

import (
	"fmt"

	"ember/acrn/iorequest"
	"ember/ioreq"
	"ember/memory"
)

// setupIORequests gives the VM its request buffer (a sealed memfd, so an
// out-of-process device model can map it), its router, and the dispatcher
// every exit goes through; PCI configuration mechanism #1 is part of it.
func (vm *VM) setupIORequests() error {
	buf, err := ioreq.NewBuffer()
	if err != nil {
		return fmt.Errorf("hv: I/O request buffer: %w", err)
	}
	router := ioreq.NewRouter()
	vm.ioreq = ioreq.NewDispatcher(buf, router, ioreq.Config{Logger: vm.log, PCIConf1: true, Waiting: vm.run.Waiting})
	vm.PIO = newBus("pio", iorequest.ReqPortIO, router)
	vm.MMIO = newBus("mmio", iorequest.ReqMMIO, router)
	return nil
}

// IORequests returns the VM's dispatcher: its request buffer and router, for
// clients other than in-process devices (an out-of-process device model's
// server, a Service VM).
func (vm *VM) IORequests() *ioreq.Dispatcher { return vm.ioreq }

// Unclaimed returns how many guest reads and writes reached no client.
func (vm *VM) Unclaimed() (reads, writes uint64) { return vm.ioreq.Router().Unclaimed() }

// completionPolling is the completion_polling word of every request: 1 with
// Config.CompletionPolling, where the vCPU polls for COMPLETE instead of
// sleeping.
func (vm *VM) completionPolling() uint32 {
	if vm.cfg.CompletionPolling {
		return 1
	}
	return 0
}

// SetWriteProtected marks the page at gpa (page-aligned) write-protected or
// not. A guest write to a write-protected page, mapped read-only so that it
// exits, becomes an I/O request of type WP instead of an MMIO write; whoever
// claims the page's WP range (the hypercall service, for
// HC_VM_WRITE_PROTECT_PAGE) gets it.
func (vm *VM) SetWriteProtected(gpa uint64, on bool) {
	if on {
		if _, had := vm.wp.LoadOrStore(gpa, true); !had {
			vm.wpPages.Add(1)
		}
	} else if _, had := vm.wp.LoadAndDelete(gpa); had {
		vm.wpPages.Add(-1)
	}
}

// isWriteProtected reports whether gpa lies in a write-protected page. It runs
// on every MMIO write exit, so a VM with no such pages pays one atomic load.
func (vm *VM) isWriteProtected(gpa uint64) bool {
	if vm.wpPages.Load() == 0 {
		return false
	}
	_, ok := vm.wp.Load(gpa &^ (memory.PageSize - 1))
	return ok
}
