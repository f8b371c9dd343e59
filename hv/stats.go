package hv

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"ember/internal/threadstat"
	"ember/kvm"
)

// maxExitReason bounds the per-reason exit counters; KVM's reasons are below
// it, and any later one is counted in the last slot.
const maxExitReason = 64

// exitCounts counts a vCPU's exits by KVM exit reason. One atomic add to a
// counter of its own is all the vCPU loop pays (no cache line is shared
// with another vCPU's loop); readers sum on demand.
type exitCounts [maxExitReason]atomic.Uint64

// add counts one exit of reason r.
func (c *exitCounts) add(r kvm.ExitReason) {
	if r >= maxExitReason {
		r = maxExitReason - 1
	}
	c[r].Add(1)
}

// ExitsByReason returns how many exits of each KVM exit reason the VM's
// vCPUs have taken so far (reasons never seen are left out), for metrics.
// KVM_EXIT_INTR, the kicks of Stop and Pause and host signals, is counted
// here though Exits leaves it out.
func (vm *VM) ExitsByReason() map[kvm.ExitReason]uint64 {
	m := map[kvm.ExitReason]uint64{}
	for _, c := range vm.vcpus {
		for i := range c.exits {
			if n := c.exits[i].Load(); n > 0 {
				m[kvm.ExitReason(i)] += n
			}
		}
	}
	return m
}

// GuestTime returns the CPU time the VM's vCPU threads have spent running the
// guest (the kernel's guest_time of each thread while it ran a vCPU), so
// metrics can tell a busy guest from an idle one without a clock read on
// every exit.
func (vm *VM) GuestTime() time.Duration {
	d := time.Duration(vm.guestTime.Load())
	for _, c := range vm.vcpus {
		if tid := c.tid.Load(); tid != 0 {
			d += threadstat.GuestTime(int(tid)) - time.Duration(c.guestStart.Load())
		}
	}
	return d
}

// startThread records the vCPU's thread and its guest time so far, when the
// loop locks itself to the thread.
func (c *VCPU) startThread() {
	tid := unix.Gettid()
	c.guestStart.Store(int64(threadstat.GuestTime(tid)))
	c.tid.Store(int32(tid))
}

// endThread adds the guest time the thread spent on this vCPU to the VM's
// total, before the loop unlocks the thread.
func (c *VCPU) endThread() {
	tid := c.tid.Swap(0)
	if tid == 0 {
		return
	}
	c.vm.guestTime.Add(int64(threadstat.GuestTime(int(tid)) - time.Duration(c.guestStart.Load())))
}
