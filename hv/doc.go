// Package hv is ember's hypervisor service: it turns the KVM binding into
// running virtual machines. A VM here is guest memory, vCPUs each driven by a
// goroutine locked to its OS thread, and two buses (port I/O and MMIO) that
// every exit is dispatched through to devices.
//
// The boot story reads top to bottom in NewVM: memory, the in-kernel
// interrupt controller, vCPUs, the built-in ABI ports. A caller then loads a
// guest (LoadImage), sets where it starts (SetEntry), and calls Run, which
// returns when the guest exits, shuts down or is stopped. Close releases every
// descriptor, mapping and goroutine the VM had.
package hv
