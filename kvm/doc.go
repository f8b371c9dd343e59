// Package kvm is ember's binding to the Linux KVM API (Documentation/virt/kvm/api.rst,
// seed 002 in shared/seeds): typed, cgo-free, and the only package in ember that
// issues ioctls.
//
// There is one type per file descriptor, as the KVM API has three classes of
// ioctl: [System] for /dev/kvm, [VM] for a virtual machine and [VCPU] for a
// virtual CPU. Every ioctl is one method on the type whose descriptor it is issued
// on, and every failure is an [*Error] that names the ioctl and carries the errno,
// so callers can test it with errors.Is(err, unix.EEXIST) and friends.
//
// Struct types mirror the C layouts of include/uapi/linux/kvm.h and
// arch/x86/include/uapi/asm/kvm.h byte for byte; a test compiles a C program
// against the host's headers and compares every size, offset and ioctl number.
//
// A minimal guest:
//
//	sys, _ := kvm.Open()
//	vm, _ := sys.CreateVM()
//	mem, _ := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
//	vm.SetUserMemoryRegion(kvm.MemoryRegion{Slot: 0, GuestPhysAddr: 0, Memory: mem})
//	cpu, _ := vm.CreateVCPU(0)
//	exit, _ := cpu.Run()
package kvm
