package hv

import (
	"sync"
	"sync/atomic"
)

// runState is where one vCPU's goroutine is. The transitions, each made
// under runControl.mu and broadcast on its cond:
//
//	idle    ──Run starts the vCPU──────────────▶ running
//	running ──the loop sees a pause or sleep───▶ parked
//	parked  ──Resume, Wake (neither left)──────▶ running
//	running ──its request waits for a client───▶ waiting
//	waiting ──the client answers (or fails)────▶ running
//	running, parked ──the run stops────────────▶ idle
//
// Pause waits until no vCPU is running; Run returns once every vCPU is idle.
// A waiting vCPU counts as stopped: it is outside the guest and touches
// nothing until its client answers, and that client may be the one pausing
// the VM (a Service VM in HC_PAUSE_VM). When the answer comes it parks before
// entering the guest again.
type runState int

const (
	vcpuIdle    runState = iota // not in a run: before Run, or after it stopped
	vcpuRunning                 // in its loop, entering the guest
	vcpuParked                  // in its loop, waiting outside the guest for Resume
	vcpuWaiting                 // in its loop, waiting for a client to complete an I/O request
)

// runControl is a VM's run-state machine: what Pause and Resume ask for and
// where each vCPU is.
type runControl struct {
	mu       sync.Mutex
	cond     sync.Cond // signalled on every change below; L is &mu
	paused   bool      // Pause asked, Resume not yet
	sleeping bool      // the guest is asleep (Sleep), not yet woken (Wake)
	states   []runState
	// pauseFlag is paused || sleeping for the vCPU loop, which looks at it
	// on every exit without taking mu; it is written with them, under mu.
	pauseFlag atomic.Bool
}

// init sizes the machine for n vCPUs, all idle.
func (r *runControl) init(n int) {
	r.cond.L = &r.mu
	r.states = make([]runState, n)
}

// set moves vCPU i to s and wakes whoever waits for a change.
func (r *runControl) set(i int, s runState) {
	r.mu.Lock()
	r.states[i] = s
	r.cond.Broadcast()
	r.mu.Unlock()
}

// waiting is ioreq.Config.Waiting: vCPU i starts or stops waiting for an
// I/O request's client.
func (r *runControl) waiting(i int, on bool) {
	s := vcpuRunning
	if on {
		s = vcpuWaiting
	}
	r.set(i, s)
}

// wake lets parked vCPUs look at the world again (the run stopped).
func (r *runControl) wake() {
	r.mu.Lock()
	r.cond.Broadcast()
	r.mu.Unlock()
}

// pauseRequested reports whether a vCPU should park before its next entry.
func (r *runControl) pauseRequested() bool { return r.pauseFlag.Load() }

// park holds vCPU i outside the guest while the VM is paused. It reports
// false if the run stopped meanwhile, in which case the loop returns.
func (r *runControl) park(i int, stopped <-chan struct{}) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.paused || r.sleeping {
		if isClosed(stopped) {
			return false
		}
		r.states[i] = vcpuParked
		r.cond.Broadcast()
		r.cond.Wait()
	}
	r.states[i] = vcpuRunning
	r.cond.Broadcast()
	return !isClosed(stopped)
}

// request records a pause (on) or resume (off) request.
func (r *runControl) request(on bool) {
	r.mu.Lock()
	r.paused = on
	r.pauseFlag.Store(r.paused || r.sleeping)
	r.cond.Broadcast()
	r.mu.Unlock()
}

// sleep puts the guest to sleep (on) or wakes it (off); it reports whether
// that changed anything.
func (r *runControl) sleep(on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	was := r.sleeping
	r.sleeping = on
	r.pauseFlag.Store(r.paused || r.sleeping)
	r.cond.Broadcast()
	return was != on
}

// isPaused and isSleeping report the two reasons to park.
func (r *runControl) isPaused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paused
}

func (r *runControl) isSleeping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sleeping
}

// waitParked blocks until every vCPU is parked or idle, so none is in the
// guest or in a device, or until the guest is no longer asleep. It reports
// whether the guest is still asleep.
func (r *runControl) waitParked() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.sleeping && !r.allParked() {
		r.cond.Wait()
	}
	return r.sleeping
}

func (r *runControl) allParked() bool {
	for _, s := range r.states {
		if s != vcpuParked && s != vcpuIdle {
			return false
		}
	}
	return true
}

// waitQuiet blocks until no vCPU is running, or the pause was withdrawn.
func (r *runControl) waitQuiet() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.paused && r.anyRunning() {
		r.cond.Wait()
	}
}

func (r *runControl) anyRunning() bool {
	for _, s := range r.states {
		if s == vcpuRunning {
			return true
		}
	}
	return false
}

// isClosed reports whether ch is closed, without blocking.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

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
	vm.run.request(true)
	// A vCPU that checked the flag just before it was set is about to enter
	// KVM_RUN: the kick's immediate_exit makes that entry return at once.
	// Close cannot release the vCPUs meanwhile: it takes vm.mu.
	for _, c := range vm.vcpus {
		c.kvm.Kick()
	}
	vm.mu.Unlock()
	vm.run.waitQuiet()
}

// Resume lets the vCPUs of a paused VM run again. It does nothing if the VM
// is not paused.
func (vm *VM) Resume() { vm.run.request(false) }

// Paused reports whether the VM is paused (by Pause; a sleeping guest is
// not paused, see Sleeping).
func (vm *VM) Paused() bool { return vm.run.isPaused() }
