package kvm

import (
	"syscall"
	_ "unsafe" // go:linkname
)

// RunHandingOverP is Run for a vCPU expected to stay in the guest for
// long (a guest that halts): Go's scheduler is told the thread will block,
// so its P goes to another thread at once (the runtime's entersyscallblock,
// as for its own blocking calls) rather than when sysmon finds the call
// has lasted 10 ms. A P sysmon takes sets it polling every 20 µs again,
// about fifty wake-ups for each halt longer than 10 ms (hv's
// TestSysmonLeavesAHaltingVCPUAlone). The price is on the way out: the
// thread takes an idle P through the runtime's slower path, a lock
// Run's exit usually skips, which a long run makes small beside it.
// ember's vCPU loop also enters this way at every entry while a device's
// thread keeps sysmon awake (hv/internal/vcputhread), whatever the runs'
// lengths.
func (c *VCPU) RunHandingOverP() (Exit, error) {
	for {
		errno := runHandingOverP(uintptr(c.fd))
		if exit, again, err := c.ran(errno); !again {
			return exit, err
		}
	}
}

// runHandingOverP is syscall.Syscall's bracket around KVM_RUN with the
// blocking entry. Like syscall.Syscall it must not grow its stack
// between the two calls, hence nosplit, and runs no race-detector hooks
// in between, hence norace.
//
//go:nosplit
//go:norace
func runHandingOverP(fd uintptr) syscall.Errno {
	entersyscallblock()
	_, _, errno := syscall.RawSyscall(syscall.SYS_IOCTL, fd, kvmRun, 0)
	exitsyscall()
	return errno
}

// The runtime's system-call bracket. Both are internal to the runtime,
// which names gVisor (whose KVM platform uses them the same way) among the
// packages it keeps them reachable for.
//
//go:linkname entersyscallblock runtime.entersyscallblock
func entersyscallblock()

//go:linkname exitsyscall runtime.exitsyscall
func exitsyscall()
