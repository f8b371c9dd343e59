package main

import "strconv"

// qemuGuest is the command line of a QEMU baseline in the lab's
// benchmarks: KVM with the host's CPU, machine type machine, memory
// MiB and cpus vCPUs, no default devices, the serial console on
// standard output, then rest (devices, kernel, initrd, command line).
//
// -no-reboot makes a guest's reset end QEMU, as a triple fault ends
// ember's run: without it QEMU restarts the guest, which runs the
// benchmark again inside the same boot, and a guest that dies in the lab
// would be a long boot, not a failed one, under QEMU alone.
func qemuGuest(machine string, memMiB, cpus int, rest ...string) []string {
	argv := []string{qemuBinary, "-accel", "kvm", "-cpu", "host", "-M", machine,
		"-m", strconv.Itoa(memMiB) + "M", "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", "-serial", "stdio"}
	return append(argv, rest...)
}
