// Package threadstat reads what the kernel counts for a thread in /proc:
// its CPU time, the part of it spent running a guest (guest_time), and its
// context switches. Package hv reads a vCPU thread's guest time at the
// start and end of its loop, so VM.GuestTime can tell a busy guest from an
// idle one without a clock read on every exit; the lab's benchmark boots
// (lab/internal/bootcost) read every thread of the VMM, ember's or QEMU's,
// to split its CPU time between the guest, the vCPU threads' own work and
// the other threads. The parsing stands alone so it is tested on /proc
// lines, without a vCPU.
package threadstat
