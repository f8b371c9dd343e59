// Package pc is the PC platform a Linux guest expects around ember's VM core
// (package hv): the legacy devices of package devices wired onto a VM's
// buses and in-kernel irqchip (COM1, the i8042, the CMOS RTC, the ACPI PM
// block), the PCI host bridge, and the tables firmware would leave in guest
// RAM (the MP table and the ACPI tables, whose AML this package encodes).
//
// A caller creates the VM with hv and then calls Attach before the first run.
package pc
