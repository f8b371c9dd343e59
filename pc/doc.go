// Package pc is the PC platform a Linux guest expects around ember's VM core
// (package hv): the legacy devices of package devices wired onto a VM's
// buses and in-kernel irqchip (COM1, the i8042, the CMOS RTC, the ACPI PM
// block, QEMU's fw_cfg), the PCI host bridge, and the tables firmware would
// leave in guest RAM (the MP table and the ACPI tables, which package
// fwtables lays out and Attach writes). On request it adds QEMU's debug devices, isa-debug-exit
// and pc-testdev, for test kernels such as kvm-unit-tests
// (Config.TestDevices, docs/qemu-devices.md). It also does the part of a
// PC's firmware ember has none of: resuming a guest from ACPI S3 at the
// waking vector it left in the FACS (sleep.go).
//
// A caller creates the VM with hv and then calls Attach before the first run.
package pc
