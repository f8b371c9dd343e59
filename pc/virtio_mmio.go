package pc

import (
	"fmt"
	"strings"

	"ember/hv"
	"ember/layout"
	"ember/virtio"
	"ember/virtio/mmio"
)

// mmioGSIs are the interrupt lines of virtio-mmio devices, one each in the
// order AddVirtioMMIO attaches them: the ISA lines ember's PC leaves free
// (not the PIT's 0, the keyboard's 1, the cascade's 2, COM1's 4, the RTC's
// 8, the ACPI SCI's 9, nor 5, 10 and 11, which intxGSIs gives virtio-pci
// functions). Linux maps ISA lines to IRQs of the same number without any
// ACPI description, which a device named only on the command line needs.
// Each is driven as a level (high while the device's InterruptStatus is
// non-zero), as the INTx lines are; Linux programs ISA lines
// edge-triggered, for which the transport makes a fresh edge when an
// acknowledgement leaves an interrupt pending. 12, the i8042's auxiliary port's line,
// is last: ember's i8042 has no auxiliary device, but a guest that probed
// one would claim the line for itself.
var mmioGSIs = []uint32{6, 7, 3, 13, 14, 15, 12}

// MaxVirtioMMIO is how many virtio-mmio devices the PC platform offers: one
// per free interrupt line, each with its own register block in
// layout.VirtioMMIO's area.
var MaxVirtioMMIO = min(len(mmioGSIs), (layout.VirtioMMIOEnd-layout.VirtioMMIO)/layout.VirtioMMIOSize)

// MMIOSlot is where the platform puts its i-th virtio-mmio device (from
// 0): the register block's base and its interrupt line.
func MMIOSlot(i int) (base uint64, gsi uint32, err error) {
	if i < 0 || i >= MaxVirtioMMIO {
		return 0, 0, fmt.Errorf("pc: no room for virtio-mmio device %d: the PC platform has %d (one per free ISA interrupt line)", i+1, MaxVirtioMMIO)
	}
	return layout.VirtioMMIO + uint64(i)*layout.VirtioMMIOSize, mmioGSIs[i], nil
}

// mmioDevice is a virtio-mmio device the platform attached: its transport,
// where it is and its line.
type mmioDevice struct {
	t    *mmio.Transport
	base uint64
	gsi  uint32
}

// AddVirtioMMIO puts dev on virtio-mmio (version 2), the counterpart of
// AddVirtio for kernels that take their devices from the command line: a
// 4 KiB register block at the next free place in layout.VirtioMMIO's area
// and the next free ISA interrupt line (mmioGSIs), driven as a level. A
// guest finds it only through VirtioMMIOCmdline. Queue notifications reach
// the device through ioeventfds (one per queue, matching the queue's index
// written to QueueNotify), so the data path does not pass through the vCPU
// thread. Call it before the VM runs; a Reset of the VM resets the device
// with it, and its Close stops the device.
func (p *Platform) AddVirtioMMIO(vm *hv.VM, dev virtio.Device) (*mmio.Transport, error) {
	base, gsi, err := MMIOSlot(len(p.mmio))
	if err != nil {
		return nil, err
	}
	t, err := mmio.New(dev, mmio.Config{Mem: vm.Memory(), IRQ: irqLine{vm.KVM(), vm.Logger(), gsi}, Logger: vm.Logger()})
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("virtio-mmio-%d", len(p.mmio))
	if err := vm.MMIO.Register(base, layout.VirtioMMIOSize, name, t); err != nil {
		return nil, fmt.Errorf("pc: %s: %w", name, err)
	}
	if _, err := startNotifiers(vm, t, notifyRegion{base: base, mapped: true, shared: true,
		offset: func(int) uint64 { return mmio.NotifyOffset }}); err != nil {
		return nil, err
	}
	vm.OnClose(t.Reset)
	p.mmio = append(p.mmio, mmioDevice{t, base, gsi})
	return t, nil
}

// VirtioMMIOCmdline is the Linux command-line arguments that name the
// virtio-mmio devices AddVirtioMMIO attached (virtio_mmio.device=, for
// kernels built with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES), space-separated,
// or "" without any.
func (p *Platform) VirtioMMIOCmdline() string {
	args := make([]string, len(p.mmio))
	for i, d := range p.mmio {
		args[i] = mmio.CmdlineArg(d.base, d.gsi)
	}
	return strings.Join(args, " ")
}
