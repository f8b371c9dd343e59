package hv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"ember/acrn"
	"ember/ioreq"
	"ember/memory"
)

// MaxVMs is the size of the VM table (CONFIG_MAX_VM_NUM in ACRN's terms):
// VM IDs run from 0, the Service VM, to MaxVMs-1.
const MaxVMs = 32

// ServiceMemorySize is the size of the host control plane's own memory: when
// the host acts as the Service VM, pointer parameters are guest-physical
// addresses in this memory (Hypervisor.ServiceMemory), as they are addresses
// in a Service VM guest's own RAM when it makes the call.
const ServiceMemorySize = 16 << 20

// ErrServiceVMExists is returned by NewVM for a second Config.ServiceVM guest.
var ErrServiceVMExists = errors.New("hv: a Service VM guest already exists")

// Load orders of a table entry, ACRN's enum acrn_vm_load_order.
const (
	loadPre  = acrn.PreLaunchedVM  // created by the host with NewVM
	loadSOS  = acrn.SOSVM          // the Service VM guest
	loadPost = acrn.PostLaunchedVM // created by HC_CREATE_VM
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
	serviceVM *hcVM // the Service VM guest in slot 0, or nil: the host is the Service VM
	callback  uint8 // upcall vector, HC_SET_CALLBACK_VECTOR
	offline   map[uint32]bool
	sbufs     sbufTable // the shared buffers, with a lock of their own (hc_debug.go)
	// hostUpcall is the host control plane's upcall handler (upcall.go).
	hostUpcall ServiceUpcall

	svcOnce sync.Once
	svcMem  *memory.Guest // the host control plane's memory
	svcErr  error
}

// hcVM is a VM's entry in the table: its ACRN identity and the state the
// hypercalls keep about it.
//
// Locking: mu serialises lifecycle and configuration hypercalls on the VM
// (create, start, pause, reset, destroy, regs, memory map, devices). It is
// never taken on the VM's own vCPU threads, so a hypercall that waits for
// those threads (pause, destroy) cannot deadlock with them; state that vCPU
// threads touch (WP requests, interrupt counts, the secure world) has its own
// lock.
type hcVM struct {
	h     *Hypervisor
	id    uint16
	vm    *VM
	load  int
	flags uint64 // GUEST_FLAG_* bits

	mu         sync.Mutex
	dead       bool
	state      vmState // for loadPost
	affinity   uint64
	bspRegs    *acrn.VCPURegs
	ioreqMem   *memory.Guest // the memory the request buffer is in (the caller's)
	ioreqGPA   uint64        // GPA of the request buffer in ioreqMem; valid if ioreqSet
	finished   atomic.Uint64 // requests HC_NOTIFY_REQUEST_FINISH took from COMPLETE to FREE
	ioreqSet   bool
	svm        *ioreq.ServiceVMClient // the Service VM's side of the requests, or nil (upcall.go)
	regions    []*memRegion
	asyncIOs   []acrn.AsyncIOInfo
	cancel     context.CancelFunc
	done       chan struct{} // closed when the run started by HC_START_VM ends
	lastResult Result        // guarded by wpMu: the run's goroutine sets it
	refused    int           // valid passthrough requests refused with -ENODEV

	wpMu   sync.Mutex
	wpReq  []acrn.IORequest // WP requests not yet taken (see WPRequests)
	wpOnce sync.Once
	wpCl   ioreq.Client // the client WP pages are claimed for

	intrMu    sync.Mutex
	intrCount map[uint32]uint64 // source -> injections; source = GSI, or 0x10000|vector for MSIs
	intrDelay atomic.Int64      // INTR_CMD_DELAY_INT, in milliseconds

	sworld sworldState // Trusty (hc_trusty.go)
}

type sbufKey struct {
	pcpu uint16
	id   uint32
}

// ServiceMemory returns the host control plane's memory. When the host makes
// a hypercall (Hypercall), the pointer parameters are guest-physical
// addresses in it: write a structure with WriteAt, pass its address, read the
// answer back with ReadAt. It is allocated on first use and lives as long as
// the Hypervisor.
func (h *Hypervisor) ServiceMemory() (*memory.Guest, error) {
	t := &h.table
	t.svcOnce.Do(func() {
		t.svcMem, t.svcErr = memory.New([]memory.Range{{GPA: 0, Size: ServiceMemorySize}})
	})
	return t.svcMem, t.svcErr
}

// register gives vm a table entry and, with room, a VM ID: 0 for the Service
// VM guest, the lowest free ID from 1 otherwise. A plain VM that finds the
// table full still works; it simply cannot be a hypercall target.
func (h *Hypervisor) register(vm *VM, load int) (*hcVM, error) {
	e := &hcVM{h: h, vm: vm, load: load, flags: vm.cfg.GuestFlags, id: acrn.InvalidVMID, intrCount: map[uint32]uint64{}}
	t := &h.table
	t.mu.Lock()
	defer t.mu.Unlock()
	if load == loadSOS {
		if t.serviceVM != nil {
			return nil, ErrServiceVMExists
		}
		if t.slots[0] != nil {
			return nil, fmt.Errorf("hv: VM ID 0 is taken")
		}
		e.id = 0
		t.slots[0] = e
		t.serviceVM = e
		vm.hc = e
		return e, nil
	}
	for i := 1; i < MaxVMs; i++ {
		if t.slots[i] == nil {
			e.id = uint16(i)
			t.slots[i] = e
			break
		}
	}
	if e.id == acrn.InvalidVMID && (load == loadPost || e.flags&guestFlagsAllowingHypercalls != 0) {
		return nil, fmt.Errorf("hv: VM table full (%d VMs)", MaxVMs)
	}
	vm.hc = e
	return e, nil
}

// registerNew registers a VM NewVM built, by its Config: a Service VM guest,
// or a pre-launched VM in ACRN's terms.
func (h *Hypervisor) registerNew(vm *VM) error {
	load := loadPre
	if vm.cfg.ServiceVM {
		load = loadSOS
	}
	if vm.cfg.byHypercall {
		load = loadPost
	}
	_, err := h.register(vm, load)
	return err
}

// unregister removes vm's entry. When the Service VM guest goes, the VMs it
// created go first: their memory is its memory.
func (vm *VM) unregister() {
	e := vm.hc
	if e == nil {
		return
	}
	t := &e.h.table
	if e.load == loadSOS {
		for _, o := range t.all() {
			if o.load == loadPost {
				o.destroy()
			}
		}
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
	return t.slots[id]
}

// all returns the live entries.
func (t *vmTable) all() []*hcVM {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var es []*hcVM
	for _, e := range t.slots {
		if e != nil {
			es = append(es, e)
		}
	}
	return es
}

// closeAll destroys every VM created by hypercall, for Hypervisor.Close.
func (t *vmTable) closeAll() {
	for _, e := range t.all() {
		if e.load == loadPost {
			e.destroy()
		}
	}
}

// VMID returns the VM's ACRN VM ID, or acrn.InvalidVMID if it has none.
func (vm *VM) VMID() uint16 {
	if vm.hc == nil {
		return acrn.InvalidVMID
	}
	return vm.hc.id
}

// VMStatus describes an entry of the VM table.
type VMStatus struct {
	ID        uint16
	VM        *VM
	Service   bool   // the Service VM guest
	Hypercall bool   // created by HC_CREATE_VM
	State     string // for VMs created by hypercall: created, running, paused, powered-off
	Result    Result // how the last run started by HC_START_VM ended
	// Refused counts the passthrough requests (PCI, MMIO, interrupt
	// remapping) that were valid but refused for want of VFIO.
	Refused int
}

// LookupVM returns the table entry for VM ID id.
func (h *Hypervisor) LookupVM(id uint16) (VMStatus, bool) {
	e := h.table.lookup(uint64(id))
	if e == nil {
		return VMStatus{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := VMStatus{ID: e.id, VM: e.vm, Service: e.load == loadSOS, Hypercall: e.load == loadPost, Refused: e.refused}
	if e.load == loadPost {
		s.State = e.curState().String()
	}
	e.wpMu.Lock()
	s.Result = e.lastResult
	e.wpMu.Unlock()
	return s, true
}

// WaitVM waits until the run HC_START_VM started for VM id ends, or ctx is
// done, and returns how it ended.
func (h *Hypervisor) WaitVM(ctx context.Context, id uint16) (Result, error) {
	e := h.table.lookup(uint64(id))
	if e == nil {
		return Result{}, fmt.Errorf("hv: no VM %d", id)
	}
	e.mu.Lock()
	done := e.done
	e.mu.Unlock()
	if done == nil {
		return Result{}, fmt.Errorf("hv: VM %d was not started", id)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	e.wpMu.Lock()
	defer e.wpMu.Unlock()
	return e.lastResult, nil
}
