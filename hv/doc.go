// Package hv is ember's VM core: it turns the KVM binding into running
// virtual machines. A VM here is guest memory (one memory.Guest, whose map
// can change while it runs: MapMemory), vCPUs each driven by a goroutine
// locked to its OS thread, and one I/O request path (ioreq) that every port
// and MMIO exit takes to whichever client claimed the address: an in-process
// device registered on a Bus, an out-of-process device model on the VM's
// device-model socket, or a Service VM.
//
// The boot story reads top to bottom in NewVM: request path, memory, the
// in-kernel interrupt controller, vCPUs, the built-in ABI ports. A caller
// then attaches a platform (package pc), loads a guest (LoadImage), sets
// where it starts (SetEntry), and calls Run, which returns when the guest
// exits, shuts down or is stopped. Pause/Resume park the vCPUs, and so
// does a guest's Sleep (ACPI S3) until Wake restores the reset state and
// starts the boot vCPU at its waking vector; SaveState, RestoreState and
// Reset move the VM's architectural state. Close releases
// every descriptor, mapping and goroutine the VM had.
//
// A running vCPU thread spends its time in KVM_RUN, a system call that
// holds a Go P, so while vCPUs run the process's GOMAXPROCS is raised by
// one per running vCPU thread (up to the host's CPU count) and put back
// when the last ends (hv/internal/vcputhread): the goroutines serving devices keep the
// Ps they had. A program that embeds ember sees GOMAXPROCS change. A vCPU
// loop also goes through the scheduler at its first exit 8 ms or more after
// it last did, so Go's sysmon does not take its P at every look (the same
// package). Where each vCPU is — running, parked, waiting — is
// hv/internal/runstate's machine.
//
// hv knows nothing of the PC platform (package pc) or of ACRN's hypercalls
// (package hypercall); those build on it through OnClose, SetPortTrap,
// MapMemory and SetWriteProtected.
package hv
