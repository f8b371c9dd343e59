package hv

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"ember/acrn/iorequest"
	"ember/devices"
	"ember/hv/internal/vcputhread"
	"ember/internal/sysmon"
	"ember/ioreq"
	"ember/kvm"
	"ember/x86"
)

// VCPU is one virtual CPU of a VM and the loop that runs it.
type VCPU struct {
	id  int
	vm  *VM
	kvm *kvm.VCPU

	exits      exitCounts   // its exits by reason (stats.go)
	tid        atomic.Int32 // the thread running the loop, or 0 (stats.go)
	guestStart atomic.Int64 // that thread's guest time when the loop began
}

// newVCPU creates vCPU id with its CPUID; hyperV, when not empty, are the
// Hyper-V leaves to offer, and the vCPU gets its SynIC.
func newVCPU(vm *VM, h *Hypervisor, id int, hyperV []kvm.CPUIDEntry) (*VCPU, error) {
	c, err := vm.kvm.CreateVCPU(id)
	if err != nil {
		return nil, fmt.Errorf("hv: creating vCPU %d: %w", id, err)
	}
	v := &VCPU{id: id, vm: vm, kvm: c}
	cfg := x86.CPUIDConfig{ID: id, Count: vm.cfg.VCPUs, Mask: vm.cfg.CPUIDMask, HyperV: hyperV,
		TSCDeadline: h.tscDeadline && !vm.cfg.NoIRQChip, Brand: h.brand}
	if err := c.SetCPUID2(x86.BuildCPUID(h.cpuid, cfg)); err != nil {
		c.Close()
		return nil, fmt.Errorf("hv: vCPU %d CPUID: %w", id, err)
	}
	if len(hyperV) > 0 {
		if err := h.enableSynIC(c); err != nil {
			c.Close()
			return nil, fmt.Errorf("vCPU %d: %w", id, err)
		}
	}
	return v, nil
}

// KVM returns the underlying KVM vCPU, for register access between runs.
func (c *VCPU) KVM() *kvm.VCPU { return c.kvm }

// loop runs the vCPU until the VM stops. KVM wants a vCPU's ioctls to come from
// one thread, and Kick signals that thread, so the goroutine stays locked to it.
func (c *VCPU) loop(stopped <-chan struct{}) {
	// The thread is never unlocked: it ends with the goroutine. A thread
	// KVM ran a vCPU on (and Kick signals) then serves no other goroutine,
	// and a daemon that ran a thousand VMs keeps no thousand idle threads.
	runtime.LockOSThread()
	if err := vcputhread.Name(c.id); err != nil {
		c.vm.log.Debug("vCPU thread keeps the process's name", "vcpu", c.id, "err", err)
	}
	sysmon.Budget.Start(sysmon.VCPU)
	defer sysmon.Budget.End(sysmon.VCPU)
	c.startThread()
	defer c.endThread()
	c.kvm.BindThread()
	// With a hot port trap KVM copies the registers into kvm_run on every
	// exit, so the trap reads them without an ioctl; other VMs do not pay
	// for that copy. Dirty bits left from an earlier run must not overwrite
	// what was set since (SetEntry).
	if c.vm.syncRegs() {
		c.kvm.SetSyncValid(kvm.SyncRegsGPRs | kvm.SyncRegsSRegs)
	} else {
		c.kvm.SetSyncValid(0)
	}
	c.kvm.SetSyncDirty(0)
	yield := vcputhread.NewYield(c.kvm)
	entry := vcputhread.NewEntry(c.kvm, &sysmon.Budget)
	defer entry.Drop()
	last := sysmon.Cputicks()
	// Stop, Pause and Sleep set their flag and then kick every vCPU, and a
	// kick's immediate_exit ends the next KVM_RUN at once even when it comes
	// between two exits; so the loop looks at the flags before its first
	// entry and after an ExitIntr only, not on every exit.
	look := true
	for {
		if look {
			select {
			case <-stopped:
				return
			default:
			}
			if c.vm.run.PauseRequested() {
				if !c.vm.run.Park(c.id, stopped) {
					return
				}
				// Resumed: drop the Pause's kick, then look at stopped and
				// paused again before entering, since either may have changed.
				c.kvm.SetImmediateExit(false)
				continue
			}
		}
		var exit kvm.Exit
		var err error
		switch {
		case entry.Holding():
			exit, err = c.kvm.RunHoldingP()
		case entry.HandingOver():
			exit, err = c.kvm.RunHandingOverP()
		default:
			exit, err = c.kvm.Run()
		}
		if err != nil {
			c.Fail(err)
			return
		}
		now := sysmon.Cputicks()
		entry.Ran(exit.Reason, now-last)
		last = now
		c.exits.add(exit.Reason)
		if look = exit.Reason == kvm.ExitIntr; look {
			// A kick (Stop or Pause) leaves immediate_exit set. Whoever kicks
			// sets its flag first, and the loop looks at the flags after
			// clearing, so no request is lost and a stale kick cannot make
			// every later entry return at once.
			c.kvm.SetImmediateExit(false)
		}
		if r, done := c.handle(exit); done {
			r.VCPU = c.id
			c.vm.stop(r)
			return
		}
		last, _ = yield.Maybe(now)
	}
}

// handle dispatches one exit; it reports done with a Result when the exit ends the run.
func (c *VCPU) handle(exit kvm.Exit) (Result, bool) {
	switch exit.Reason {
	case kvm.ExitIO:
		c.handleIO(exit.IO())
	case kvm.ExitMMIO:
		c.handleMMIO(exit.MMIO())
	case kvm.ExitIntr:
		// A signal or a Kick; the loop checks whether the VM is stopping.
	case kvm.ExitHLT:
		return Result{Reason: StopHalted}, true
	case kvm.ExitShutdown:
		return Result{Reason: StopShutdown, Err: c.where()}, true
	case kvm.ExitHyperv:
		c.handleHyperV(exit)
	case kvm.ExitSystemEvent:
		switch exit.SystemEvent().Type {
		case kvm.SystemEventReset:
			return Result{Reason: StopReset}, true
		default:
			return Result{Reason: StopShutdown}, true
		}
	default:
		return Result{Reason: StopError, Err: fmt.Errorf("unhandled exit: %v", exit)}, true
	}
	return Result{}, false
}

// where describes the vCPU's state for a report of how the run ended: the
// instruction pointer and the control registers tell a triple fault's cause.
func (c *VCPU) where() error {
	r, err := c.kvm.GetRegs()
	if err != nil {
		return err
	}
	sr, err := c.kvm.GetSRegs()
	if err != nil {
		return err
	}
	if r.RIP == 0xfff0 && sr.CS.Selector == 0xf000 {
		// SVM KVM resets the vCPU when it sees the shutdown (the VMCB is
		// undefined after one); VMX KVM and kvm-pvm keep the state.
		return fmt.Errorf("KVM reset the vCPU at the shutdown, so its state before is lost")
	}
	return fmt.Errorf("RIP %#x RSP %#x RFLAGS %#x CS %#x CR0 %#x CR2 %#x CR3 %#x CR4 %#x EFER %#x",
		r.RIP, r.RSP, r.RFLAGS, sr.CS.Selector, sr.CR0, sr.CR2, sr.CR3, sr.CR4, sr.EFER)
}

// handleIO emulates a port access; a string instruction (Count > 1) is
// Count accesses of Size bytes each, in order. A trapped port (SetPortTrap)
// never becomes a request. An access an in-process device serves is done
// directly (ioreq.Dispatcher.Direct); any other becomes a request on the
// VM's I/O request path.
func (c *VCPU) handleIO(io kvm.IOExit) {
	if t := c.vm.trap; t.f != nil && io.Port == t.port && io.Direction == kvm.IOOut {
		t.f(c) // trap.go
		return
	}
	size := int(io.Size)
	if size != 1 && size != 2 && size != 4 {
		return // KVM never reports another size
	}
	write := io.Direction == kvm.IOOut
	for i := 0; i+size <= len(io.Data); i += size {
		d := io.Data[i : i+size]
		if c.vm.ioreq.Direct(iorequest.ReqPortIO, uint64(io.Port), write, d) {
			continue
		}
		dir := iorequest.DirRead
		if write {
			dir = iorequest.DirWrite
		}
		req := ioreq.PIORequest(dir, io.Port, size, uint32(devices.Uint(d)))
		c.emulate(&req, d)
	}
}

// handleMMIO emulates a memory-mapped access, directly for an in-process
// device, else through the I/O request path. A write to a write-protected
// page (SetWriteProtected) becomes a WP request.
func (c *VCPU) handleMMIO(m kvm.MMIOExit) {
	size := len(m.Data)
	if size == 0 {
		return
	}
	wp := m.IsWrite && c.vm.isWriteProtected(m.PhysAddr)
	if !wp && c.vm.ioreq.Direct(iorequest.ReqMMIO, m.PhysAddr, m.IsWrite, m.Data) {
		return
	}
	var req iorequest.IORequest
	switch {
	case wp:
		req = ioreq.WPRequest(m.PhysAddr, size, devices.Uint(m.Data))
	case m.IsWrite:
		req = ioreq.MMIORequest(iorequest.DirWrite, m.PhysAddr, size, devices.Uint(m.Data))
	default:
		req = ioreq.MMIORequest(iorequest.DirRead, m.PhysAddr, size, 0)
	}
	c.emulate(&req, m.Data)
}

// emulate sends req through the request path and, for a read, puts the value
// into data. Failures are logged by ioreq; a failed read gets all ones.
func (c *VCPU) emulate(req *iorequest.IORequest, data []byte) {
	req.CompletionPolling = c.vm.completionPolling()
	v, _ := c.vm.ioreq.Emulate(c.id, req)
	if ioreq.Dir(req) == iorequest.DirRead {
		devices.PutUint(data, v)
	}
}
