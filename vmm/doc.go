// Package vmm is the libvmm API for programs that embed ember: the small set
// of calls a Go program needs to put a guest in a VM, drive its interrupts
// and control its life, after seL4's libvmm (seed 004).
//
//   - Guest wraps an hv.VM: New creates one, Start boots it in the background
//     at an entry point (Wait returns how the run ended), Stop pauses it,
//     Resume continues it, Restart resets every vCPU and interrupt controller,
//     clears RAM and boots again, possibly another image.
//   - SetupLinuxImages copies a Linux kernel, initrd and command line into
//     guest RAM and returns the entry point.
//   - VirqController raises guest interrupts on the in-kernel IOAPIC through
//     irqfds: Register a GSI with a function called on each guest EOI, Inject
//     it, or RegisterPassthrough a host eventfd that raises it with no trip
//     through user space.
//
// Calls and their libvmm counterparts:
//
//	linux_setup_images          SetupLinuxImages
//	virq_controller_init        Guest.Virq().Init
//	virq_register               VirqController.Register
//	virq_inject                 VirqController.Inject
//	virq_register_passthrough   VirqController.RegisterPassthrough
//	virq_handle_passthrough     VirqController.HandlePassthrough
//	guest_start                 Guest.Start
//	guest_stop                  Guest.Stop
//	guest_restart               Guest.Restart
package vmm
