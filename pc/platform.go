package pc

import (
	"fmt"
	"io"
	"log/slog"

	"ember/devices"
	"ember/devices/acpipm"
	"ember/devices/debugexit"
	"ember/devices/edu"
	"ember/devices/fwcfg"
	"ember/devices/hypervtestdev"
	"ember/devices/i8042"
	"ember/devices/rtc"
	"ember/devices/testdev"
	"ember/devices/uart"
	"ember/devices/vtd"
	"ember/hv"
	"ember/hv/synic"
	"ember/ioreq"
	"ember/kvm"
	"ember/memory"
	"ember/pc/fwtables"
	virtiopci "ember/virtio/pci"
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
	// FWCfg is QEMU's firmware configuration device at ports 0x510-0x511
	// and its DMA interface at 0x514: RAM size, CPUs, boot order, the e820
	// map and Config.FWCfgKernel for firmware and test kernels.
	FWCfg *fwcfg.FWCfg
	// DebugExit and TestDev are QEMU's isa-debug-exit and pc-testdev, with
	// Config.TestDevices only (nil otherwise).
	DebugExit *debugexit.Port
	TestDev   *testdev.Device
	// SynIC serves the Hyper-V SynICs (messages, events, SINT routes) of
	// a VM made with hv.Config.HyperV (nil otherwise).
	SynIC *synic.Service
	// HyperVTestDev is QEMU's hyperv-testdev, with Config.HyperVTestDev
	// only (nil otherwise).
	HyperVTestDev *hypervtestdev.Device
	// IOMMU is the VT-d remapping unit, with Config.IOMMU only (nil
	// otherwise); EDU is QEMU's edu device, with Config.EDU only.
	IOMMU *vtd.Unit
	EDU   *edu.Device

	slots   int           // PCI slots AddVirtio has used
	virtio  []pciFunction // the functions AddVirtio made
	mmio    []mmioDevice  // the devices AddVirtioMMIO made
	resumes resumeGroup   // resumes from S3 under way (sleep.go)
}

// pciFunction is a virtio function AddVirtio made and the PCI slot it is in.
type pciFunction struct {
	*virtiopci.Function
	slot int
}

// WriteTables writes the MP table and the ACPI tables into guest RAM again,
// for a machine reset that cleared it (Attach wrote them first).
func (p *Platform) WriteTables(vm *hv.VM) error { return writeTables(vm, p.IOMMU != nil) }

// ResetDevices resets the platform's virtio functions and devices, as a machine reset
// does: their devices stop using guest memory before it is cleared, and the
// next boot's drivers find them at power-on state. The ACPI PM registers
// are reset too, ending a sleep.
func (p *Platform) ResetDevices() {
	p.resetVirtio()
	p.PM.Reset()
	if p.IOMMU != nil {
		p.IOMMU.Reset()
	}
	if p.EDU != nil {
		p.EDU.Reset()
	}
}

// resetVirtio resets the virtio functions and devices.
func (p *Platform) resetVirtio() {
	for _, f := range p.virtio {
		f.Reset()
	}
	for _, d := range p.mmio {
		d.t.Reset()
	}
}

// Config configures the platform.
type Config struct {
	// Serial receives COM1's output; nil means the VM's console
	// (hv.Config.Console).
	Serial io.Writer
	// FWCfgKernel, if set, is a Linux kernel, initrd and command line that
	// fw_cfg offers firmware to boot (see FWCfgKernel).
	FWCfgKernel *FWCfgKernel
	// TestDevices adds QEMU's debug devices as kvm-unit-tests expects
	// them (docs/qemu-devices.md): an isa-debug-exit port, whose write of
	// v ends the run with status (v << 1) | 1, and a pc-testdev (ports
	// 0xe0-0xeb and 0x2000-0x2017, MMIO at 0xff000000). They take the
	// place of ember's ABI ports they cover (the exit port 0xf4 and the
	// console port 0xe9). Off by default: they let the guest end the run,
	// drive any ISA interrupt line and change the host's page protections.
	TestDevices bool
	// DebugExitPort and DebugExitSize place the isa-debug-exit port (its
	// iobase and iosize); zero means 0xf4 and 4, what kvm-unit-tests
	// passes QEMU. Only with TestDevices.
	DebugExitPort, DebugExitSize uint16
	// HyperVTestDev adds QEMU's hyperv-testdev (port 0x3000), with which
	// kvm-unit-tests' SynIC tests make SINT routes and message and event
	// connections (docs/qemu-devices.md). It needs a VM with Hyper-V
	// enlightenments (hv.Config.HyperV). Off by default: it lets the
	// guest raise any SINT of any vCPU.
	HyperVTestDev bool
	// IOMMU adds a VT-d remapping unit at layout.VTd (Q35's address),
	// described by an ACPI DMAR table, with DMA remapping and interrupt
	// remapping for the devices ember routes through it (EDU's): what
	// kvm-unit-tests' intel_iommu runs QEMU with (-device
	// intel-iommu,intremap=on,eim=off). Off by default: a test machine's
	// device (docs/qemu-devices.md says what it does not remap).
	IOMMU bool
	// EDU adds QEMU's edu educational PCI device (1234:11e8, BAR0 at
	// layout.EduBAR, INTA# on IOAPIC pin 16, MSI), whose DMA engine and
	// interrupts go through the IOMMU when there is one. Off by default:
	// it lets the guest DMA into its own RAM and raise interrupts at will.
	EDU bool
}

// irqLine drives a GSI of the in-kernel irqchip, for device models.
type irqLine struct {
	vm  *kvm.VM
	log *slog.Logger
	gsi uint32
}

// SetLevel raises or lowers the line with KVM_IRQ_LINE.
func (l irqLine) SetLevel(high bool) {
	if err := l.vm.IRQLine(l.gsi, high); err != nil {
		l.log.Warn("raising an interrupt line failed", "gsi", l.gsi, "err", err)
	}
}

// offsetDevice shifts the offsets a bus passes to a device, for a device whose
// registers are spread over ranges that are registered separately.
type offsetDevice struct {
	dev devices.Device
	add uint64
}

func (d offsetDevice) Read(off uint64, data []byte)  { d.dev.Read(off+d.add, data) }
func (d offsetDevice) Write(off uint64, data []byte) { d.dev.Write(off+d.add, data) }

// Attach wires the PC platform onto vm, which has the in-kernel irqchip and
// has not run yet: COM1 on IRQ 4, the i8042 (whose reset line ends the run
// with hv.StopReset), the CMOS RTC with the memory size, the PCI host bridge,
// the ACPI PM registers (whose S5 ends the run with hv.StopPowerOff and
// whose S3 puts the guest to sleep until an RTC alarm or Wake, sleep.go),
// fw_cfg, the MP table and the ACPI tables that list every vCPU, and the
// MSRs Linux expects; with hv.Config.HyperV the SynIC service; with cfg.TestDevices, QEMU's debug devices too, and
// with cfg.HyperVTestDev its hyperv-testdev, with cfg.IOMMU the VT-d unit
// and with cfg.EDU QEMU's edu device.
// Closing the VM stops the devices.
func Attach(vm *hv.VM, cfg Config) (*Platform, error) {
	vcfg := vm.Config()
	if vcfg.NoIRQChip {
		return nil, fmt.Errorf("pc: the PC platform needs the in-kernel irqchip")
	}
	out := cfg.Serial
	if out == nil {
		out = vcfg.Console
	}
	log := vm.Logger()
	line := func(gsi uint32) irqLine { return irqLine{vm.KVM(), log, gsi} }
	below, above := ramAround4G(vm.Memory())
	p := &Platform{
		COM1:  uart.New(uart.Config{IRQ: line(uart.COM1IRQ), Output: out, Logger: log}),
		I8042: i8042.New(i8042.Config{IRQ: line(irqKeyboard), Reset: func() { vm.StopWith(hv.Result{Reason: hv.StopReset}) }, Logger: log}),
		PCI:   NewPCIHost(),
	}
	p.PM = acpipm.New(acpipm.Config{
		PowerOff: func() { vm.StopWith(hv.Result{Reason: hv.StopPowerOff}) },
		Suspend:  func() { p.suspend(vm) },
		Resume:   func() { p.startResume(vm) },
		Logger:   log,
	})
	p.RTC = rtc.New(rtc.Config{MemBelow4G: below, MemAbove4G: above, IRQ: line(irqRTC), Alarm: p.PM.RTCAlarm, Logger: log})
	vm.OnClose(p.RTC.Close)
	vm.OnClose(p.resumes.close)
	fw, err := newFWCfg(vm.Memory(), vm.NumVCPUs(), cfg.FWCfgKernel, log)
	if err != nil {
		return nil, err
	}
	p.FWCfg = fw
	if err := p.wire(vm); err != nil {
		return nil, err
	}
	if vcfg.HyperV {
		if p.SynIC, err = synic.New(vm); err != nil {
			return nil, fmt.Errorf("pc: %w", err)
		}
	}
	if cfg.TestDevices {
		if err := p.attachTestDevices(vm, cfg); err != nil {
			return nil, err
		}
	}
	if cfg.HyperVTestDev {
		if err := p.attachHyperVTestDev(vm); err != nil {
			return nil, err
		}
	}
	if cfg.IOMMU {
		if err := p.attachIOMMU(vm); err != nil {
			return nil, err
		}
	}
	if cfg.EDU {
		if err := p.attachEDU(vm); err != nil {
			return nil, err
		}
	}
	if err := writeTables(vm, cfg.IOMMU); err != nil {
		return nil, err
	}
	for i := range vm.NumVCPUs() {
		setBootMSRs(vm.VCPU(i).KVM(), i, log)
		presetXCR0(vm.VCPU(i).KVM(), i, log)
	}
	return p, nil
}

// wire claims the devices' ports and the host bridge's configuration space.
// A repeated reset pulse or S5 before the run has stopped is one stop, as
// only the first cause of a run counts.
func (p *Platform) wire(vm *hv.VM) error {
	regs := []struct {
		base, size uint64
		name       string
		dev        devices.Device
	}{
		{uart.COM1Base, uart.PortLen, "com1", p.COM1},
		{portI8042Data, 1, "i8042-data", offsetDevice{p.I8042, 0}},
		{portI8042Status, 1, "i8042-status", offsetDevice{p.I8042, 4}},
		{portRTC, 2, "rtc", p.RTC},
		{fwtables.PortACPIPM, acpipm.Len, "acpi-pm", p.PM},
		{fwcfg.Port, fwcfg.PortLen, "fw_cfg", p.FWCfg},
		{fwcfg.DMAPort, fwcfg.DMAPortLen, "fw_cfg-dma", offsetDevice{p.FWCfg, fwcfg.DMAOffset}},
	}
	for _, r := range regs {
		if err := vm.PIO.Register(r.base, r.size, r.name, r.dev); err != nil {
			return err
		}
	}
	// Configuration mechanism #1 (0xCF8/0xCFC) is decoded by the I/O
	// request path; the host bridge answers for 00:00.0 as a PCICFG client.
	// Functions nobody claims read as all ones: an empty slot.
	if err := vm.IORequests().Router().Claim(PCIHostRange, ioreq.InProcess("pci-host", ioreq.PCIConfigHandler(p.PCI))); err != nil {
		return fmt.Errorf("pc: PCI host bridge: %w", err)
	}
	return nil
}

// writeTables writes the MP table and the ACPI tables. The MP table holds at
// most 40 processors in its KiB; beyond that the ACPI MADT alone describes
// them, as on modern firmware.
func writeTables(vm *hv.VM, iommu bool) error {
	n := vm.NumVCPUs()
	if n <= fwtables.MPMaxCPUs {
		if err := fwtables.WriteMPTable(vm.Memory(), n); err != nil {
			return err
		}
	} else {
		vm.Logger().Debug("no MP table: too many vCPUs for it; ACPI describes them", "vcpus", n)
	}
	if iommu {
		return fwtables.WriteACPIWithDMAR(vm.Memory(), n)
	}
	return fwtables.WriteACPI(vm.Memory(), n)
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
func setBootMSRs(c *kvm.VCPU, id int, log *slog.Logger) {
	entries := []kvm.MSREntry{{Index: msrIA32MiscEnable, Data: miscEnableFastStr}}
	n, err := c.SetMSRs(entries)
	if err != nil || n < len(entries) {
		log.Debug("host refused a boot MSR", "vcpu", id, "set", n, "of", len(entries), "err", err)
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
func presetXCR0(c *kvm.VCPU, id int, log *slog.Logger) {
	entries, err := c.GetCPUID2()
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
	if err := c.SetXCRs(x); err != nil {
		log.Debug("host refused the XCR0 preset", "vcpu", id, "xcr0", mask, "err", err)
	}
}
