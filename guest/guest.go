// Package guest holds ember's tiny guest programs: flat x86 binaries assembled
// from src/*.S (GNU as) by the Makefile, committed under bin/ and embedded
// here. Tests, benchmarks and the `ember run` demo load them at LoadAddr and
// start them in the mode each one is written for.
//
// They speak ember's guest ABI (docs/abi.md): bytes written to PortConsole are
// console output, a write to PortExit ends the VM with that status, and values
// written to PortReport are collected by tests.
package guest

import (
	"embed"
	"fmt"

	"ember/layout"
	"ember/x86"
)

// Ports of ember's guest ABI used by the tiny guests (see src/abi.h).
const (
	PortConsole = 0xe9
	PortReport  = 0xf0
	PortExit    = 0xf4
)

// LoadAddr is where every tiny guest is linked and must be loaded.
const LoadAddr = layout.ImageLoad

// CounterAddr is where Counter keeps its count.
const CounterAddr = 0x20000

//go:embed bin/*.bin
var bins embed.FS

// Program is one tiny guest: its code and the mode it starts in.
type Program struct {
	Name string
	Mode x86.Mode
	Code []byte
}

// Entry returns the CPU state the program starts in.
func (p Program) Entry() x86.Entry { return x86.Entry{Mode: p.Mode, RIP: LoadAddr} }

// The tiny guests.
var (
	// Demo greets the console, counts primes at ring 3 and exits 0.
	Demo = load("demo", x86.LongMode)
	// Real reports CR0 and a 16-bit value from real mode and exits 0.
	Real = load("real", x86.RealMode)
	// Prot32 reports CR0 and CS from 32-bit protected mode and exits 0.
	Prot32 = load("prot32", x86.ProtectedMode)
	// Long64 reports CR0, CS, EFER and a 64-bit value's high half, exits 0.
	Long64 = load("long64", x86.LongMode)
	// HVPost is a Hyper-V guest's first steps (hv.Config.HyperV): it
	// enables the hypercall page at 0x20000 and its SynIC with the message
	// page at 0x23000, posts a message (connection 7, type 0x55, payload
	// 0xfeedbeef) with HvPostMessage, reports its status and exits 0.
	HVPost = load("hv_post", x86.LongMode)
	// Ring3 drops from ring 0 to ring 3 with IRETQ, reports CS, exits 3.
	Ring3 = load("ring3", x86.LongMode)
	// Triple triple-faults (UD2 with an empty IDT).
	Triple = load("triple", x86.LongMode)
	// Virq routes IOAPIC pin RSI&0xff to a vector, reports 0 (ready), takes
	// RSI>>8 interrupts (reporting a running count, EOI'ing each), exits 0x56.
	Virq = load("virq", x86.LongMode)
	// Counter increments the 64-bit value at CounterAddr forever at ring 3.
	Counter = load("counter", x86.LongMode)
	// Second reports 0x5ec0d and RSI, and exits 2: a second image for restarts.
	Second = load("second", x86.LongMode)
	// UART does a COM1 loopback round trip, then an interrupt-driven
	// transmit (IRQ 4 through the PIC), reports, and exits 0.
	UART = load("uart", x86.RealMode)
	// PIT takes five 10 ms PIT ticks (IRQ 0 through the PIC), reports, exits 0.
	PIT = load("pit", x86.RealMode)
	// Reset pulls the CPU reset line through the i8042.
	Reset = load("reset", x86.RealMode)
	// SMP starts the AP of a 2-vCPU VM with INIT/SIPI, reports the AP's
	// 0x100|APIC id, and exits 1.
	SMP = load("smp", x86.ProtectedMode)
	// BenchPIO, BenchMMIO and BenchHello are the benchmark harness's 64 KiB
	// reset-vector images (package bench loads them at 0xF0000).
	BenchPIO   = load("bench_pio", x86.RealMode)
	BenchMMIO  = load("bench_mmio", x86.RealMode)
	BenchHello = load("bench_hello", x86.RealMode)
	// Echo prints "echo> " on COM1 and echoes what it receives (on the
	// receive interrupt, halting between keys); 'q' ends it with status 0.
	Echo = load("echo", x86.RealMode)
	// FWCfg reads QEMU's fw_cfg through its ports and its DMA interface on
	// a PC machine given a kernel command line for firmware
	// (pc.Config.FWCfgKernel): reports what it read, prints the command
	// line, and exits 0.
	FWCfg = load("fwcfg", x86.ProtectedMode)
	// TestDev uses QEMU's pc-testdev on a PC machine with test devices
	// (pc.Config.TestDevices), reports what it read, and ends the run
	// through isa-debug-exit: status 0x29.
	TestDev = load("testdev", x86.ProtectedMode)
	// Sleep suspends a PC machine to RAM (ACPI S3) and, woken at its
	// waking vector, reports what it finds (src/sleep.S) and exits 3. It
	// arms the RTC alarm to wake it, unless SI is non-zero: then the host
	// must (pc.Platform.Wake).
	Sleep = load("sleep", x86.RealMode)
)

// All lists every tiny guest, for tests that check them all.
var All = []Program{Demo, Real, Prot32, Long64, HVPost, Ring3, Triple, Virq, Counter, Second, UART, PIT, Reset, SMP, BenchPIO, BenchMMIO, BenchHello, Echo, FWCfg, TestDev, Sleep}

// Multiboot is a multiboot (v1) kernel, not a flat image: it is linked at
// 1 MiB, its header's address fields (the a.out kludge) say where it goes,
// and package multiboot loads and enters it (Entry does not apply). It prints
// the multiboot information it was given on the console (EAX, the flags,
// mem_lower and mem_upper, the command line, the boot loader's name, each
// module's range, first four bytes and string, each memory map entry, and
// the first word of its bss), then exits 0, or 1 if EAX did not hold the
// boot magic. src/multiboot.S gives the exact format.
var Multiboot = load("multiboot", x86.ProtectedMode)

// Kernels lists the guests that are kernels for a boot protocol rather than
// flat images loaded at LoadAddr: not in All, so that `ember run --guest`
// does not offer them.
var Kernels = []Program{Multiboot}

func load(name string, mode x86.Mode) Program {
	b, err := bins.ReadFile("bin/" + name + ".bin")
	if err != nil {
		panic(fmt.Sprintf("guest: embedded %s.bin missing: %v", name, err))
	}
	return Program{Name: name, Mode: mode, Code: b}
}

// ByName returns the tiny guest called name.
func ByName(name string) (Program, bool) {
	for _, p := range All {
		if p.Name == name {
			return p, true
		}
	}
	return Program{}, false
}
