package hv

// Pause stops the VM's vCPUs without ending its run: each is kicked out of
// KVM_RUN and waits, outside the guest, until Resume. Pause returns once every
// vCPU of a running VM has stopped (or the run has ended), so guest memory and
// vCPU registers are quiet when it returns. A vCPU waiting for a client to
// complete an I/O request counts as stopped (it parks when the answer comes,
// before it enters the guest again): Pause does not wait on requests, so the
// client may be the one pausing the VM. A VM paused when Run starts keeps
// its vCPUs waiting before their first entry. In-kernel devices (the LAPIC
// timer, irqfds) keep raising interrupts; the guest takes them when it
// resumes. Pausing a paused or closed VM does nothing.
func (vm *VM) Pause() {
	vm.mu.Lock()
	if vm.closed {
		vm.mu.Unlock()
		return
	}
	vm.run.Request(true)
	// A vCPU that checked the flag just before it was set is about to enter
	// KVM_RUN: the kick's immediate_exit makes that entry return at once.
	// Close cannot release the vCPUs meanwhile: it takes vm.mu.
	for _, c := range vm.vcpus {
		c.kvm.Kick()
	}
	vm.mu.Unlock()
	vm.run.WaitQuiet()
}

// Resume lets the vCPUs of a paused VM run again. It does nothing if the VM
// is not paused.
func (vm *VM) Resume() { vm.run.Request(false) }

// Paused reports whether the VM is paused (by Pause; a sleeping guest is
// not paused, see Sleeping).
func (vm *VM) Paused() bool { return vm.run.Paused() }
