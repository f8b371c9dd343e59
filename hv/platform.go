package hv

import (
	"fmt"

	"ember/devices"
	"ember/devices/acpipm"
	"ember/devices/i8042"
	"ember/devices/rtc"
	"ember/devices/uart"
	"ember/ioreq"
	"ember/kvm"
	"ember/memory"
)

// Legacy PC port ranges and ISA interrupt lines.
const (
	portI8042Data   = 0x60
	portI8042Status = 0x64
	portRTC         = 0x70
	irqKeyboard     = 1
	irqRTC          = 8
)

// Platform is the PC platform a Linux guest expects besides what KVM
// emulates in the kernel (PIC, IOAPIC, LAPIC, PIT): the devices are plain
// models from package devices, wired onto the VM's buses and irqchip.
type Platform struct {
	COM1  *uart.UART
	I8042 *i8042.Controller
	RTC   *rtc.RTC
	PCI   *PCIHost
	PM    *acpipm.PM
}

// irqLine drives a GSI of the in-kernel irqchip, for device models.
type irqLine struct {
	vm  *VM
	gsi uint32
}

// SetLevel raises or lowers the line with KVM_IRQ_LINE.
func (l irqLine) SetLevel(high bool) {
	if err := l.vm.kvm.IRQLine(l.gsi, high); err != nil {
		l.vm.log.Warn("raising an interrupt line failed", "gsi", l.gsi, "err", err)
	}
}

// offsetDevice shifts the offsets a bus passes to a device, for a device whose
// registers are spread over ranges that are registered separately.
type offsetDevice struct {
	dev devices.PortDevice
	add uint64
}

func (d offsetDevice) Read(off uint64, data []byte)  { d.dev.Read(off+d.add, data) }
func (d offsetDevice) Write(off uint64, data []byte) { d.dev.Write(off+d.add, data) }

// setupPC attaches the PC platform: COM1 on IRQ 4, the i8042 (whose reset line
// stops the VM with StopReset), the CMOS RTC with the memory size, the PCI
// host bridge, the ACPI PM registers (whose S5 stops the VM with
// StopPowerOff), the MP table and the ACPI tables that list every vCPU, and
// the MSRs Linux expects.
func (vm *VM) setupPC() error {
	if vm.cfg.NoIRQChip {
		return fmt.Errorf("hv: the PC platform needs the in-kernel irqchip")
	}
	out := vm.cfg.Serial
	if out == nil {
		out = vm.cfg.Console
	}
	below, above := ramAround4G(vm.mem)
	p := &Platform{
		COM1:  uart.New(uart.Config{IRQ: irqLine{vm, uart.COM1IRQ}, Output: out, Logger: vm.log}),
		I8042: i8042.New(i8042.Config{IRQ: irqLine{vm, irqKeyboard}, Reset: vm.guestReset, Logger: vm.log}),
		RTC:   rtc.New(rtc.Config{MemBelow4G: below, MemAbove4G: above, IRQ: irqLine{vm, irqRTC}, Logger: vm.log}),
		PCI:   NewPCIHost(),
		PM:    acpipm.New(acpipm.Config{PowerOff: vm.guestPowerOff, Logger: vm.log}),
	}
	vm.platform = p
	regs := []struct {
		base, size uint64
		name       string
		dev        Device
	}{
		{uart.COM1Base, uart.PortLen, "com1", p.COM1},
		{portI8042Data, 1, "i8042-data", offsetDevice{p.I8042, 0}},
		{portI8042Status, 1, "i8042-status", offsetDevice{p.I8042, 4}},
		{portRTC, 2, "rtc", p.RTC},
		{PortACPIPM, acpipm.Len, "acpi-pm", p.PM},
	}
	for _, r := range regs {
		if err := vm.PIO.Register(r.base, r.size, r.name, r.dev); err != nil {
			return err
		}
	}
	// Configuration mechanism #1 (0xCF8/0xCFC) is decoded by the I/O
	// request path; the host bridge answers for 00:00.0 as a PCICFG client.
	// Functions nobody claims read as all ones: an empty slot.
	if err := vm.ioreq.Router().Claim(PCIHostRange, ioreq.InProcess("pci-host", ioreq.PCIConfigHandler(p.PCI))); err != nil {
		return fmt.Errorf("hv: PCI host bridge: %w", err)
	}
	// The MP table holds at most 40 processors in its KiB; beyond that the
	// ACPI MADT alone describes them, as on modern firmware.
	if n := len(vm.vcpus); n <= mpMaxCPUs {
		if err := WriteMPTable(vm.mem, n); err != nil {
			return err
		}
	} else {
		vm.log.Debug("no MP table: too many vCPUs for it; ACPI describes them", "vcpus", n)
	}
	if err := WriteACPI(vm.mem, len(vm.vcpus)); err != nil {
		return err
	}
	for _, c := range vm.vcpus {
		c.setBootMSRs()
		c.presetXCR0()
	}
	return nil
}

// Platform returns the PC platform devices, or nil if Config.PC was not set.
func (vm *VM) Platform() *Platform { return vm.platform }

// guestReset is the i8042's CPU reset line: the run ends with StopReset (the
// caller decides whether that ends the VM or reboots it). Repeated pulses
// before the run has stopped are one reset, as vm.stop keeps the first cause.
func (vm *VM) guestReset() { vm.stop(Result{Reason: StopReset}) }

// guestPowerOff is the ACPI PM block's S5: the run ends with StopPowerOff.
func (vm *VM) guestPowerOff() { vm.stop(Result{Reason: StopPowerOff}) }

// closePlatform stops the devices' timers.
func (vm *VM) closePlatform() {
	if vm.platform != nil {
		vm.platform.RTC.Close()
	}
}

// ramAround4G splits guest RAM into what lies below and above 4 GiB.
func ramAround4G(mem *memory.Guest) (below, above uint64) {
	for _, r := range mem.Regions() {
		if r.GPA >= 4<<30 {
			above += r.Size
		} else {
			below += r.Size
		}
	}
	return below, above
}

// Model-specific registers set at entry, the values Linux expects from firmware.
const (
	msrIA32MiscEnable = 0x1a0
	miscEnableFastStr = 1 << 0
)

// setBootMSRs sets the MSRs Linux expects firmware to have set. A host that
// refuses one is logged, not fatal: KVM hosts differ (DESIGN.md's notes on
// IA32_ARCH_CAPABILITIES).
func (c *VCPU) setBootMSRs() {
	entries := []kvm.MSREntry{{Index: msrIA32MiscEnable, Data: miscEnableFastStr}}
	n, err := c.kvm.SetMSRs(entries)
	if err != nil || n < len(entries) {
		c.vm.log.Debug("host refused a boot MSR", "vcpu", c.id, "set", n, "of", len(entries), "err", err)
	}
}

// xfeaturesLinux are the XSAVE state components Linux enables in XCR0 for
// user space when the CPU has them: x87, SSE, AVX, the three AVX-512
// components, PKRU and AMX (its XCR0 bits; XFD gates their use).
const xfeaturesLinux = 0x7 | 0xe0 | 0x200 | 0x60000

// presetXCR0 sets XCR0 to the XSAVE components the vCPU's CPUID offers and
// Linux enables, before the guest runs. The guest sets the same value with
// XSETBV; on a host that intercepts XSETBV (every real VMX or SVM KVM)
// presetting changes nothing. Where the L0 under KVM does not intercept it
// (QEMU's software SVM, the lab) KVM never learns the guest's XCR0: CPUID
// 0xD then reports the XSAVE area size for x87 alone, Linux warns "XSAVE
// consistency problem" and turns XSAVE off, and KVM reloads the stale XCR0 on
// every entry. Presetting keeps KVM's view and the guest's equal.
func (c *VCPU) presetXCR0() {
	entries, err := c.kvm.GetCPUID2()
	if err != nil {
		return
	}
	var xsave bool
	var mask uint64
	for _, e := range entries {
		switch {
		case e.Function == 1:
			xsave = e.ECX&(1<<26) != 0
		case e.Function == 0xd && e.Index == 0:
			mask = (uint64(e.EDX)<<32 | uint64(e.EAX)) & xfeaturesLinux
		}
	}
	if !xsave || mask&3 != 3 {
		return // no XSAVE, or not even x87 and SSE: leave the reset value
	}
	x := kvm.XCRs{NrXCRs: 1}
	x.XCRs[0] = kvm.XCR{XCR: 0, Value: mask}
	if err := c.kvm.SetXCRs(x); err != nil {
		c.vm.log.Debug("host refused the XCR0 preset", "vcpu", c.id, "xcr0", mask, "err", err)
	}
}
