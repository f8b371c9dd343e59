package hypercall

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"ember/acrn"
	"ember/acrn/permission"
	"ember/acrn/sbuf"
	"ember/hv"
	"ember/hypercall/intrmon"
	"ember/hypercall/lifecycle"
	"ember/hypercall/memmap"
	"ember/hypercall/vmid"
	"ember/ioreq"
	"ember/memory"
)

// MaxVMs is the size of the VM table (CONFIG_MAX_VM_NUM in ACRN's terms):
// VM IDs run from 0, the Service VM, to MaxVMs-1.
const MaxVMs = 32

// ServiceMemorySize is the size of the host control plane's own memory: when
// the host acts as the Service VM, pointer parameters are guest-physical
// addresses in this memory (Service.ServiceMemory), as they are addresses
// in a Service VM guest's own RAM when it makes the call.
const ServiceMemorySize = 16 << 20

// ErrServiceVMExists is returned by NewVM for a second Config.ServiceVM guest.
var ErrServiceVMExists = errors.New("hypercall: a Service VM guest already exists")

// Load orders of a table entry, ACRN's enum acrn_vm_load_order.
const (
	loadPre     = acrn.PreLaunchedVM  // created by the host with NewVM
	loadService = acrn.SOSVM          // the Service VM guest
	loadPost    = acrn.PostLaunchedVM // created by HC_CREATE_VM
)

// vmTable maps ACRN VM IDs to VMs (ids, with a lock of its own) and holds
// what the service keeps beside them. Its lock guards the callback vector
// and the host's upcall; the sbufs and each entry have their own locks (see
// hcVM).
type vmTable struct {
	ids      *vmid.Table[hcVM] // the Service VM guest, if any, is ID 0
	mu       sync.RWMutex
	callback uint8      // upcall vector, HC_SET_CALLBACK_VECTOR
	sbufs    sbuf.Table // the shared buffers, with a lock of their own (hc_debug.go)
	// hostUpcall is the host control plane's upcall handler (upcall.go).
	hostUpcall ServiceUpcall

	hostMemOnce sync.Once
	hostMem     *memory.Guest // the host control plane's memory
	hostMemErr  error
}

// hcVM is a VM's entry in the table: its ACRN identity and the state the
// hypercalls keep about it.
//
// Locking: mu serialises lifecycle and configuration hypercalls on the VM
// (create, start, pause, reset, destroy, regs, memory map, devices). It is
// never taken on the VM's own vCPU threads, so a hypercall that waits for
// those threads (pause, destroy) cannot deadlock with them; state that vCPU
// threads touch (interrupt counts) has its own lock.
type hcVM struct {
	h     *Service
	id    uint16
	vm    Machine
	load  int
	flags uint64 // GUEST_FLAG_* bits

	mu            sync.Mutex
	life          *lifecycle.Life // its state and runs (HC_START_VM...), and whether it is dead
	affinity      uint64
	bspRegs       *acrn.VCPURegs
	ioreqMem      *memory.Guest // the memory the request buffer is in (the caller's)
	ioreqGPA      uint64        // GPA of the request buffer in ioreqMem; valid if ioreqSet
	ioreqSet      bool
	serviceClient *ioreq.ServiceVMClient // the Service VM's side of the requests, or nil (upcall.go)
	regions       *memmap.Map            // Service VM memory lent to the VM (hc_mem.go)
	asyncIOs      []acrn.AsyncIOInfo
	refused       int // valid passthrough requests refused with -ENODEV

	// intr counts injections by source (the GSI, or msiSource for MSIs)
	// and holds them back while INTR_CMD_DELAY_INT is in force (hc_irq.go).
	intr intrmon.Monitor
}

// ServiceMemory returns the host control plane's memory. When the host makes
// a hypercall (Hypercall), the pointer parameters are guest-physical
// addresses in it: write a structure with WriteAt, pass its address, read the
// answer back with ReadAt. It is allocated on first use and lives as long as
// the Service.
func (h *Service) ServiceMemory() (*memory.Guest, error) {
	t := &h.table
	t.hostMemOnce.Do(func() {
		t.hostMem, t.hostMemErr = memory.New([]memory.Range{{GPA: 0, Size: ServiceMemorySize}})
	})
	return t.hostMem, t.hostMemErr
}

// reserve takes a VM ID for a VM about to be built (vmid.Table.Reserve): 0
// for the Service VM guest, the lowest free ID from 1 otherwise. A plain VM
// that finds the table full still works (acrn.InvalidVMID); it simply cannot
// be a hypercall target.
func (t *vmTable) reserve(load int, flags uint64) (uint16, error) {
	id, err := t.ids.Reserve(load == loadService)
	switch {
	case errors.Is(err, vmid.ErrServiceTaken):
		return 0, ErrServiceVMExists
	case err == nil:
		return id, nil
	case load == loadPost || flags&permission.GuestFlagsAllowingHypercalls != 0:
		return 0, fmt.Errorf("hypercall: VM table full (%d VMs): %w", MaxVMs, err)
	}
	return acrn.InvalidVMID, nil
}

// unregister removes e's entry when its VM is closed. When the Service VM
// guest goes, the VMs it created go first (their memory is its memory), and
// so do the shared buffers it registered.
func (e *hcVM) unregister() {
	e.intr.Close()
	t := &e.h.table
	if e.load == loadService {
		t.closeAll()
		// Trace buffers it registered are in its RAM, which goes next.
		t.sbufs.Forget(e.vm.Memory())
	}
	t.ids.Remove(e.id, e)
}

// serviceVM returns the Service VM guest's entry, or nil: the host is the
// Service VM.
func (t *vmTable) serviceVM() *hcVM { return t.ids.Lookup(vmid.ServiceVM) }

// closeAll destroys every VM created by hypercall, for Service.Close and
// when the Service VM goes.
func (t *vmTable) closeAll() {
	for _, e := range t.ids.All() {
		if e.load == loadPost {
			e.destroy()
		}
	}
}

// VMID returns vm's ACRN VM ID, or acrn.InvalidVMID if it has none here.
func (h *Service) VMID(vm *hv.VM) uint16 {
	if e := h.table.entryOf(vm); e != nil {
		return e.id
	}
	return acrn.InvalidVMID
}

// entryOf returns vm's entry, or nil if vm is not in the table.
func (t *vmTable) entryOf(vm *hv.VM) *hcVM {
	for _, e := range t.ids.All() {
		if e.vm == vm {
			return e
		}
	}
	return nil
}

// VMStatus describes an entry of the VM table.
type VMStatus struct {
	ID        uint16
	VM        *hv.VM
	Service   bool      // the Service VM guest
	Hypercall bool      // created by HC_CREATE_VM
	State     string    // for VMs created by hypercall: created, running, paused, powered-off
	Result    hv.Result // how the last run started by HC_START_VM ended
	// Refused counts the passthrough requests (PCI, MMIO, interrupt
	// remapping) that were valid but refused for want of VFIO.
	Refused int
}

// LookupVM returns the table entry for VM ID id.
func (h *Service) LookupVM(id uint16) (VMStatus, bool) {
	e := h.table.ids.Lookup(uint64(id))
	if e == nil {
		return VMStatus{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	vm, _ := e.vm.(*hv.VM) // nil for a test's fake machine
	s := VMStatus{ID: e.id, VM: vm, Service: e.load == loadService, Hypercall: e.load == loadPost, Refused: e.refused}
	if e.load == loadPost {
		s.State = e.life.State().String()
	}
	s.Result, _ = e.life.LastResult()
	return s, true
}

// WaitVM waits until the run HC_START_VM started for VM id ends, or ctx is
// done, and returns how it ended.
func (h *Service) WaitVM(ctx context.Context, id uint16) (hv.Result, error) {
	e := h.table.ids.Lookup(uint64(id))
	if e == nil {
		return hv.Result{}, fmt.Errorf("hypercall: no VM %d", id)
	}
	e.mu.Lock()
	run := e.life.Run()
	e.mu.Unlock()
	if run == nil {
		return hv.Result{}, fmt.Errorf("hypercall: VM %d was not started", id)
	}
	select {
	case <-run.Done():
	case <-ctx.Done():
		return hv.Result{}, ctx.Err()
	}
	return lifecycle.Result(run), nil
}
