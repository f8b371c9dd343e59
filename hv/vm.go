package hv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"ember/hv/eventfd"
	"ember/hv/internal/runstate"
	"ember/ioreq"
	"ember/kvm"
	"ember/kvm/kvmcap"
	"ember/layout"
	"ember/memory"
	"ember/x86"
)

// Config describes a VM to create.
type Config struct {
	// MemorySize is the bytes of RAM, rounded up to a page, laid out around
	// the MMIO hole. 0 gives a VM no RAM of its own: its owner maps memory
	// into it with MapMemory (the hypercall service's VMs, whose RAM is the
	// Service VM's).
	MemorySize uint64
	VCPUs      int       // number of vCPUs; 0 means 1
	NoIRQChip  bool      // leave out the in-kernel PIC/IOAPIC/LAPIC and PIT
	Console    io.Writer // where PortConsole output goes; nil discards it
	Logger     *slog.Logger
	// CPUIDMask names CPUID features to hide from the guest (see x86.CPUIDFeatures).
	CPUIDMask []string
	// HyperV offers the guest the Hyper-V enlightenments this host's KVM
	// supports (its CPUID leaves first in the hypervisor range, a SynIC
	// with its timers on every vCPU), as QEMU's -cpu hv_passthrough does:
	// for Windows guests and Hyper-V-aware tests. It needs the irqchip.
	// What KVM leaves to user space (SynIC messages and events) is
	// package hv/synic's, installed with ServeHyperV.
	HyperV bool
	// ID is the VM's ID as out-of-process device models are told it; the
	// hypercall service sets the ACRN VM ID here.
	ID uint16
	// CompletionPolling sets completion_polling in every I/O request: the
	// Service VM need not notify completion, the vCPU polls for it (ACRN's
	// GUEST_FLAG_IO_COMPLETION_POLLING).
	CompletionPolling bool
	// DeviceModelSocket, if set, is the path of a unix socket NewVM creates
	// for out-of-process device models (docs/ioreq-protocol.md); Close
	// removes it.
	DeviceModelSocket string
	// SharedMemory backs the guest's RAM with memfds (memory.NewShared),
	// as DeviceModelSocket does, so that another process can map it: an
	// out-of-process virtio back-end (virtio/backend). Without it RAM is
	// anonymous memory, which gets transparent huge pages.
	SharedMemory bool
}

// ErrRunning is returned by operations that need the VM not to be running.
var ErrRunning = errors.New("hv: VM is running")

// VM is a virtual machine: memory, vCPUs, buses and the KVM VM behind them.
type VM struct {
	cfg   Config
	log   *slog.Logger
	kvm   *kvm.VM
	mem   *memory.Guest
	vcpus []*VCPU

	slotMu    sync.Mutex        // guards the KVM memory slots (memory.go)
	nextSlot  uint32            // the lowest slot never used
	freeSlots []uint32          // slots used and released
	slotGPA   map[uint32]uint64 // where each MapMemory slot maps

	// PIO and MMIO dispatch port and memory-mapped accesses to devices.
	PIO, MMIO *Bus

	mu      sync.Mutex
	running bool
	stopped chan struct{} // closed by the first stop of a run
	result  Result
	// guestTime is the guest CPU time, in ns, of vCPU loops that have ended.
	guestTime atomic.Int64
	closed    bool

	run     runstate.Control // the run-state machine: Pause, Resume (hv/internal/runstate)
	powerOn *State           // what Reset restores, saved before the first run (state.go)

	onClose []func() // what Close runs first, newest first (OnClose)

	// ioreq is the one path every emulated access takes: a request in the
	// vCPU's slot of the VM's request buffer, routed to a client.
	ioreq *ioreq.Dispatcher
	// syncCap says KVM can share GPRs and segment registers through
	// kvm_run (KVM_CAP_SYNC_REGS), which a hot port trap uses (trap.go).
	syncCap bool
	trap    portTrap // SetPortTrap
	// wp holds the write-protected pages (SetWriteProtected) by GPA.
	wp sync.Map
	// wpPages counts the entries of wp.
	wpPages atomic.Int32

	eventfds *eventfd.Service   // ioeventfd/irqfd on KVM (eventfds.go)
	hyperv   hyperVExits        // ServeHyperV (hyperv.go)
	dmSocket *deviceModelSocket // with Config.DeviceModelSocket (ioreq_server.go)
}

// NewVM creates a VM on the hypervisor h, in the order a machine is built:
// memory, interrupt controller, vCPUs, ABI ports.
func (h *Hypervisor) NewVM(cfg Config) (vm *VM, err error) {
	if cfg.VCPUs == 0 {
		cfg.VCPUs = 1
	}
	if cfg.Console == nil {
		cfg.Console = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	vm = &VM{cfg: cfg, log: cfg.Logger}
	vm.run.Init(cfg.VCPUs)
	// On failure, release what was built so far. The returns below set vm
	// to nil, so the cleanup holds its own reference.
	built := vm
	defer func() {
		if err != nil {
			built.Close()
		}
	}()
	if err = vm.setupIORequests(); err != nil {
		return nil, err
	}
	if vm.kvm, err = h.sys.CreateVM(); err != nil {
		return nil, fmt.Errorf("hv: creating VM: %w", err)
	}
	if v, err := vm.kvm.CheckExtension(kvmcap.SyncRegs); err == nil && v&(kvm.SyncRegsGPRs|kvm.SyncRegsSRegs) == kvm.SyncRegsGPRs|kvm.SyncRegsSRegs {
		vm.syncCap = true
	}
	if err = vm.setupMemory(); err != nil {
		return nil, err
	}
	if err = vm.setupPlatform(); err != nil {
		return nil, err
	}
	if err = vm.createVCPUs(h); err != nil {
		return nil, err
	}
	if err = vm.registerABIPorts(); err != nil {
		return nil, err
	}
	if err = vm.startDeviceModelSocket(); err != nil {
		return nil, err
	}
	return vm, nil
}

// setupPlatform creates what KVM emulates in the kernel: on Intel the real-mode
// helper pages, and unless disabled the PIC/IOAPIC/LAPIC and the PIT. The
// irqchip must exist before the first vCPU.
func (vm *VM) setupPlatform() error {
	if err := vm.kvm.SetIdentityMapAddr(layout.KVMIdentityMap); err != nil {
		return fmt.Errorf("hv: %w", err)
	}
	if err := vm.kvm.SetTSSAddr(layout.KVMTSS); err != nil {
		return fmt.Errorf("hv: %w", err)
	}
	if vm.cfg.NoIRQChip {
		return nil
	}
	if err := vm.kvm.CreateIRQChip(); err != nil {
		return fmt.Errorf("hv: in-kernel irqchip: %w", err)
	}
	if err := vm.kvm.CreatePIT2(kvm.PITConfig{Flags: kvm.PITSpeakerDummy}); err != nil {
		return fmt.Errorf("hv: in-kernel PIT: %w", err)
	}
	return nil
}

func (vm *VM) createVCPUs(h *Hypervisor) error {
	var hyperV []kvm.CPUIDEntry
	if vm.cfg.HyperV {
		if vm.cfg.NoIRQChip {
			return fmt.Errorf("hv: Hyper-V enlightenments need the in-kernel irqchip")
		}
		var err error
		if hyperV, err = h.hyperVCPUID(); err != nil {
			return err
		}
	}
	for i := 0; i < vm.cfg.VCPUs; i++ {
		c, err := newVCPU(vm, h, i, hyperV)
		if err != nil {
			return err
		}
		vm.vcpus = append(vm.vcpus, c)
	}
	return nil
}

func (vm *VM) registerABIPorts() error {
	if err := vm.PIO.Register(PortConsole, 1, "console", &consolePort{w: vm.cfg.Console}); err != nil {
		return err
	}
	return vm.PIO.Register(PortExit, 4, "exit", &exitPort{stop: vm.stop})
}

// OnClose registers f to run when the VM is closed, before its vCPUs, KVM
// descriptor and memory go: a platform or service built on the VM releases
// what it holds there. The VM must not be running.
func (vm *VM) OnClose(f func()) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.onClose = append(vm.onClose, f)
}

// Config returns the configuration the VM was created with, defaults filled in.
func (vm *VM) Config() Config { return vm.cfg }

// Logger returns the VM's logger, for the devices built on it.
func (vm *VM) Logger() *slog.Logger { return vm.log }

// ID returns the VM's ID (Config.ID).
func (vm *VM) ID() uint16 { return vm.cfg.ID }

// Memory returns the guest's RAM, the checked accessor for every guest-physical access.
func (vm *VM) Memory() *memory.Guest { return vm.mem }

// KVM returns the underlying KVM VM, for in-kernel devices (ioeventfd, irqfd, routing).
func (vm *VM) KVM() *kvm.VM { return vm.kvm }

// VCPU returns vCPU i.
func (vm *VM) VCPU(i int) *VCPU { return vm.vcpus[i] }

// NumVCPUs returns the number of vCPUs.
func (vm *VM) NumVCPUs() int { return len(vm.vcpus) }

// Exits returns how many exits the VM's vCPUs have handled so far, not
// counting KVM_EXIT_INTR (kicks and signals).
func (vm *VM) Exits() uint64 {
	var n uint64
	for _, c := range vm.vcpus {
		for r := range c.exits {
			if kvm.ExitReason(r) != kvm.ExitIntr {
				n += c.exits[r].Load()
			}
		}
	}
	return n
}

// LoadImage copies a flat image into guest memory at gpa.
func (vm *VM) LoadImage(image []byte, gpa uint64) error {
	if _, err := vm.mem.WriteAt(image, int64(gpa)); err != nil {
		return fmt.Errorf("hv: loading %d-byte image at %#x: %w", len(image), gpa, err)
	}
	return nil
}

// SetEntry puts vCPU i in the CPU state e describes (mode, tables, registers).
func (vm *VM) SetEntry(i int, e x86.Entry) error {
	return x86.Setup(vm.mem, vm.vcpus[i].kvm, e)
}

// Run runs every vCPU until the guest exits, shuts down, fails, or ctx is
// cancelled (or Stop is called), and returns how it ended.
func (vm *VM) Run(ctx context.Context) (Result, error) {
	vm.mu.Lock()
	if vm.closed {
		vm.mu.Unlock()
		return Result{}, errors.New("hv: VM is closed")
	}
	if vm.running {
		vm.mu.Unlock()
		return Result{}, ErrRunning
	}
	if err := vm.savePowerOn(); err != nil {
		vm.mu.Unlock()
		return Result{}, err
	}
	vm.running = true
	vm.ioreq.Reopen()
	vm.stopped = make(chan struct{})
	vm.result = Result{}
	stopped := vm.stopped
	vm.mu.Unlock()

	var wg sync.WaitGroup
	for _, c := range vm.vcpus {
		c.kvm.SetImmediateExit(false)
		vm.run.Set(c.id, runstate.Running) // before Run returns to a Pause waiting for it
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer vm.run.Set(c.id, runstate.Idle)
			c.loop(stopped)
		}()
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		vm.stop(Result{Reason: StopHost})
	}
	// A vCPU waiting for a client fails its request at once instead of
	// sitting out the time-out, and every vCPU may be in KVM_RUN: kick each
	// until its goroutine has returned.
	vm.ioreq.Abort()
	for _, c := range vm.vcpus {
		c.kvm.Kick()
	}
	wg.Wait()

	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.running = false
	return vm.result, nil
}

// Stop asks a running VM to stop; Run then returns with StopHost.
func (vm *VM) Stop() { vm.stop(Result{Reason: StopHost}) }

// StopWith ends the current run with r, as a device does when the guest
// resets or powers off the machine. Only the first cause of a run counts.
func (vm *VM) StopWith(r Result) { vm.stop(r) }

// stop records the first reason a run ends and wakes Run. Later calls of the
// same run are ignored, so the first cause wins.
func (vm *VM) stop(r Result) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if !vm.running || vm.stopped == nil {
		return
	}
	select {
	case <-vm.stopped:
		return
	default:
	}
	vm.result = r
	close(vm.stopped)
	vm.run.Wake() // parked vCPUs see the stop
	// And running ones before they enter the guest again: the vCPU loop
	// looks at stopped only after a kick (vcpu.go). A device that stops the
	// VM on a vCPU's thread so keeps the guest from running past the access.
	for _, c := range vm.vcpus {
		c.kvm.Kick()
	}
}

// Close releases everything the VM holds: vCPU descriptors and kvm_run
// mappings, the VM descriptor, and guest memory. It must not be called while
// Run is running.
func (vm *VM) Close() error {
	vm.mu.Lock()
	if vm.running {
		vm.mu.Unlock()
		return ErrRunning
	}
	if vm.closed {
		vm.mu.Unlock()
		return nil
	}
	vm.closed = true
	vm.mu.Unlock()
	errs := []error{vm.closeDeviceModelSocket()}
	for i := len(vm.onClose) - 1; i >= 0; i-- {
		vm.onClose[i]()
	}
	// vm.vcpus stays as it is: methods that look at it (Pause) check
	// vm.closed first, under vm.mu.
	for _, c := range vm.vcpus {
		errs = append(errs, c.kvm.Close())
	}
	if vm.kvm != nil {
		errs = append(errs, vm.kvm.Close())
	}
	if vm.ioreq != nil {
		errs = append(errs, vm.ioreq.Buffer().Close())
	}
	// Memory goes last: KVM may reference it until the VM descriptor is closed.
	if vm.mem != nil {
		errs = append(errs, vm.mem.Close())
	}
	return errors.Join(errs...)
}
