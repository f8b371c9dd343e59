package hv

import (
	"errors"
	"fmt"

	"ember/x86"
)

// ErrNotSleeping is returned by Wake for a VM whose guest is not asleep.
var ErrNotSleeping = errors.New("hv: the guest is not asleep")

// ErrClosed is returned by Wake for a VM that has been closed.
var ErrClosed = errors.New("hv: VM is closed")

// Sleep puts the guest to sleep, as its request for a sleeping state with
// memory kept (ACPI S3) does on a PC: every vCPU leaves the guest before its
// next entry and waits outside it, as in Pause, until Wake. The run goes
// on; Run does not return. The vCPU that calls Sleep from a device's
// register write enters the guest no more, so nothing the guest does after
// that write runs; the others are kicked out of KVM_RUN. Sleep returns at
// once, so a device may call it on a vCPU's exit path. A host's Pause and
// Resume neither end a sleep nor are ended by Wake. Sleeping a sleeping or
// closed VM does nothing.
func (vm *VM) Sleep() {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed || !vm.run.Sleep(true) {
		return
	}
	// As in Pause: a vCPU that looked at the flag just before it was set
	// is about to enter KVM_RUN, and the kick makes that entry return.
	for _, c := range vm.vcpus {
		c.kvm.Kick()
	}
}

// Sleeping reports whether the guest is asleep (Sleep, and no Wake yet).
func (vm *VM) Sleeping() bool { return vm.run.Sleeping() }

// Wake ends the guest's sleep as a PC's firmware does on a wake event, with
// guest memory kept: once every vCPU is out of the guest (parked, or idle
// if the run has ended), the PIC, IOAPIC, PIT and every vCPU get their
// power-on state back as in Reset (the APs wait for INIT/SIPI again),
// prepare runs (the platform resets its devices there, with no vCPU in the
// guest), vCPU boot is set up for entry, and the vCPUs run again unless the
// host has paused the VM. A VM whose guest is not asleep gives
// ErrNotSleeping. Wake waits for vCPUs that are completing an I/O request,
// so it must not be called on a vCPU's exit path.
func (vm *VM) Wake(boot int, entry x86.Entry, prepare func()) error {
	if boot < 0 || boot >= vm.NumVCPUs() {
		return fmt.Errorf("hv: wake: no vCPU %d", boot)
	}
	if !vm.run.WaitParked() {
		return ErrNotSleeping
	}
	// A parked vCPU leaves its park only when the sleep ends or the run
	// stops: the devices are reset with nobody in the guest.
	if prepare != nil {
		prepare()
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed {
		return ErrClosed
	}
	// Under vm.mu no vCPU can leave its park but to end the run, which
	// takes vm.mu: the vCPUs stay out of the guest until the sleep ends.
	if !vm.run.Sleeping() {
		return ErrNotSleeping
	}
	if vm.powerOn != nil {
		if err := vm.restoreState(vm.powerOn); err != nil {
			return fmt.Errorf("hv: wake: %w", err)
		}
	}
	for _, c := range vm.vcpus {
		// A port trap's register changes not yet loaded would undo the
		// restored state on the next entry.
		c.kvm.SetSyncDirty(0)
	}
	if err := x86.Setup(vm.mem, vm.vcpus[boot].kvm, entry); err != nil {
		return fmt.Errorf("hv: wake: %w", err)
	}
	vm.run.Sleep(false)
	return nil
}
