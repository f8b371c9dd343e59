package hypercall

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"ember/acrn"
	"ember/hv"
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

// Lifecycle states of a VM created by HC_CREATE_VM (ACRN's VM_CREATED,
// VM_RUNNING, VM_PAUSED, VM_POWERED_OFF).
type vmState int

const (
	vmCreated vmState = iota
	vmRunning
	vmPaused
	vmPoweredOff
)

func (s vmState) String() string {
	return [...]string{"created", "running", "paused", "powered-off"}[s]
}

// vmTable maps ACRN VM IDs to VMs. Its lock guards the slots and the
// callback vector; the sbufs and each entry have their own locks (see hcVM).
type vmTable struct {
	mu        sync.RWMutex
	slots     [MaxVMs]*hcVM
	serviceVM *hcVM     // the Service VM guest in slot 0, or nil: the host is the Service VM
	callback  uint8     // upcall vector, HC_SET_CALLBACK_VECTOR
	sbufs     sbufTable // the shared buffers, with a lock of their own (hc_debug.go)
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
	dead          bool
	state         vmState // for loadPost
	affinity      uint64
	bspRegs       *acrn.VCPURegs
	ioreqMem      *memory.Guest // the memory the request buffer is in (the caller's)
	ioreqGPA      uint64        // GPA of the request buffer in ioreqMem; valid if ioreqSet
	finished      atomic.Uint64 // requests HC_NOTIFY_REQUEST_FINISH took from COMPLETE to FREE
	ioreqSet      bool
	serviceClient *ioreq.ServiceVMClient // the Service VM's side of the requests, or nil (upcall.go)
	regions       []*memRegion
	asyncIOs      []acrn.AsyncIOInfo
	run           *hv.Background // the run HC_START_VM started; nil before it and after HC_RESET_VM
	lastRun       *hv.Background // the latest run, kept across HC_RESET_VM for LookupVM
	refused       int            // valid passthrough requests refused with -ENODEV

	intrMu    sync.Mutex
	intrCount map[uint32]uint64 // source -> injections; source = GSI, or 0x10000|vector for MSIs
	intrDelay atomic.Int64      // INTR_CMD_DELAY_INT, in milliseconds
	intrQ     delayQueue        // the injections intrDelay postpones (intr_delay.go)

}

type sbufKey struct {
	pcpu uint16
	id   uint32
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

// reserved holds a slot of the table while its VM is being built; lookups
// do not see it.
var reserved = &hcVM{dead: true}

// reserve takes a VM ID for a VM about to be built: 0 for the Service VM
// guest, the lowest free ID from 1 otherwise. A plain VM that finds the table
// full still works (acrn.InvalidVMID); it simply cannot be a hypercall
// target.
func (t *vmTable) reserve(load int, flags uint64) (uint16, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if load == loadService {
		if t.serviceVM != nil || t.slots[0] != nil {
			return 0, ErrServiceVMExists
		}
		t.slots[0] = reserved
		return 0, nil
	}
	for i := 1; i < MaxVMs; i++ {
		if t.slots[i] == nil {
			t.slots[i] = reserved
			return uint16(i), nil
		}
	}
	if load == loadPost || flags&guestFlagsAllowingHypercalls != 0 {
		return 0, fmt.Errorf("hypercall: VM table full (%d VMs)", MaxVMs)
	}
	return acrn.InvalidVMID, nil
}

// fill puts e in the slot reserve took for it, or frees the slot if e is nil.
func (t *vmTable) fill(id uint16, e *hcVM) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id >= MaxVMs || t.slots[id] != reserved {
		return
	}
	t.slots[id] = e
	if e != nil && e.load == loadService {
		t.serviceVM = e
	}
}

// unregister removes e's entry when its VM is closed. When the Service VM
// guest goes, the VMs it created go first (their memory is its memory), and
// so do the shared buffers it registered.
func (e *hcVM) unregister() {
	e.intrQ.close()
	t := &e.h.table
	if e.load == loadService {
		for _, o := range t.all() {
			if o.load == loadPost {
				o.destroy()
			}
		}
		// Trace buffers it registered are in its RAM, which goes next.
		t.sbufs.forget(e.vm.Memory())
	}
	t.mu.Lock()
	if e.id < MaxVMs && t.slots[e.id] == e {
		t.slots[e.id] = nil
	}
	if t.serviceVM == e {
		t.serviceVM = nil
	}
	t.mu.Unlock()
}

// lookup returns the live entry with VM ID id.
func (t *vmTable) lookup(id uint64) *hcVM {
	if id >= MaxVMs {
		return nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if e := t.slots[id]; e != reserved {
		return e
	}
	return nil
}

// all returns the live entries.
func (t *vmTable) all() []*hcVM {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var es []*hcVM
	for _, e := range t.slots {
		if e != nil && e != reserved {
			es = append(es, e)
		}
	}
	return es
}

// closeAll destroys every VM created by hypercall, for Service.Close.
func (t *vmTable) closeAll() {
	for _, e := range t.all() {
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
	for _, e := range t.all() {
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
	e := h.table.lookup(uint64(id))
	if e == nil {
		return VMStatus{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	vm, _ := e.vm.(*hv.VM) // nil for a test's fake machine
	s := VMStatus{ID: e.id, VM: vm, Service: e.load == loadService, Hypercall: e.load == loadPost, Refused: e.refused}
	if e.load == loadPost {
		s.State = e.curState().String()
	}
	if e.lastRun != nil && e.lastRun.Finished() {
		s.Result = runResult(e.lastRun)
	}
	return s, true
}

// WaitVM waits until the run HC_START_VM started for VM id ends, or ctx is
// done, and returns how it ended.
func (h *Service) WaitVM(ctx context.Context, id uint16) (hv.Result, error) {
	e := h.table.lookup(uint64(id))
	if e == nil {
		return hv.Result{}, fmt.Errorf("hypercall: no VM %d", id)
	}
	e.mu.Lock()
	run := e.run
	e.mu.Unlock()
	if run == nil {
		return hv.Result{}, fmt.Errorf("hypercall: VM %d was not started", id)
	}
	select {
	case <-run.Done():
	case <-ctx.Done():
		return hv.Result{}, ctx.Err()
	}
	return runResult(run), nil
}
