package pc

import (
	"errors"
	"fmt"

	"ember/acrn/iorequest"
	"ember/hv"
	"ember/ioreq"
	"ember/kvm"
	"ember/layout"
	"ember/virtio"
	virtiopci "ember/virtio/pci"
)

// intxGSIs are the ISA interrupt lines free on ember's PC (not the
// keyboard's 1, COM1's 4, the RTC's 8 or the ACPI SCI's 9), given to the
// first virtio functions as INTA#: a kernel without an ACPI _PRT entry for a
// function takes its Interrupt Line register, and only for ISA lines. Later
// functions have MSI-X only.
var intxGSIs = []uint32{5, 10, 11}

// maxPCISlots bounds the slots of bus 0: 00:00.0 is the host bridge.
const maxPCISlots = 32

// AddVirtio puts dev on the PCI bus as a modern virtio-pci function in the
// next free slot (00:01.0 first), with BAR0 in the PCI window at
// layout.VirtioBARs and BAR1, the I/O BAR the driver notifies queues in, at
// layout.VirtioPorts. Call it before the VM runs; a Reset of the VM resets
// the device with it, and its Close stops the device and releases what the
// function holds.
//
// The data path stays off the vCPU threads both ways: queue notifications
// reach the device through ioeventfds (KVM matches the guest's write and
// signals an eventfd, without an exit), in BAR1's ports and BAR0 alike,
// and each MSI-X vector the driver
// unmasks gets a KVM irqfd (eventfd.MSIVector: a GSI of its own routed to the
// vector's message), so an interrupt is an eventfd write from the device's
// goroutine. A device served by an out-of-process back-end
// (virtio.QueueEventFDs) goes further while it is active: each queue's
// ioeventfd signals the back-end's kick eventfd, and the back-end's call
// eventfd is bound to the queue's MSI-X vector's GSI while the vector is
// live, so neither passes through ember; a masked vector or INTx has ember
// relay the calls. If a route cannot be made (no in-kernel irqchip, the VM's MSI
// GSIs used up), the function logs a warning and sends its messages with
// KVM_SIGNAL_MSI instead.
func (p *Platform) AddVirtio(vm *hv.VM, dev virtio.Device) (*virtiopci.Function, error) {
	p.slots++
	slot := p.slots
	if slot >= maxPCISlots {
		return nil, fmt.Errorf("pc: no free PCI slot for a virtio device")
	}
	bar := uint32(layout.VirtioBARs + (slot-1)*layout.VirtioBARSize)
	port := uint16(layout.VirtioPorts + (slot-1)*layout.VirtioPortsSize)
	name := fmt.Sprintf("virtio-pci-%02x", slot)
	var f *virtiopci.Function
	var notify *notifiers
	mem := &barMapping{bus: vm.MMIO, name: name, size: virtiopci.BARSize, lo: layout.PCIMMIO32Start, hi: layout.PCIMMIO32End}
	ports := &barMapping{bus: vm.PIO, name: name, size: virtiopci.PortBARSize, lo: layout.PCIIOStart, hi: layout.PCIIOEnd}
	cfg := virtiopci.Config{
		Mem:     vm.Memory(),
		BAR:     bar,
		PortBAR: port,
		Logger:  vm.Logger(),
		MSI: func(lo, hi, data uint32) error {
			return vm.SignalMSI(kvm.MSI{AddressLo: lo, AddressHi: hi, Data: data})
		},
		NewVector: func(addr uint64, data uint32) (virtiopci.Vector, error) {
			v, err := vm.EventFDs().NewMSIVector(addr, data)
			if err != nil {
				return nil, err // not a nil *MSIVector in a non-nil Vector
			}
			return msixVector{v, vm.KVM()}, nil
		},
		Kick: func(q, fd int) error { return notify.route(q, fd) },
		MoveBAR: func(_, new uint32) error {
			mapped, err := mem.move(uint64(new))
			return errors.Join(err, notify.move(memRegion, uint64(new), mapped))
		},
		MovePortBAR: func(_, new uint32) error {
			mapped, err := ports.move(uint64(new))
			return errors.Join(err, notify.move(portRegion, uint64(new), mapped))
		},
	}
	if slot <= len(intxGSIs) {
		gsi := intxGSIs[slot-1]
		cfg.INTx, cfg.IRQ = irqLine{vm.KVM(), vm.Logger(), gsi}, uint8(gsi)
	}
	f, err := virtiopci.New(dev, cfg)
	if err != nil {
		return nil, err
	}
	mem.dev, ports.dev = f, f.Ports()
	regions := []notifyRegion{
		memRegion:  {base: uint64(bar), offset: f.NotifyOffset},
		portRegion: {pio: true, base: uint64(port), offset: f.PortNotifyOffset},
	}
	for i, m := range []*barMapping{memRegion: mem, portRegion: ports} {
		if _, err := m.move(regions[i].base); err != nil {
			return nil, err
		}
		regions[i].mapped = true
	}
	r := ioreq.Range{Type: iorequest.ReqPCICfg, Start: ioreq.PCIAddress(0, uint32(slot), 0, 0), End: ioreq.PCIAddress(0, uint32(slot), 0, 0xfff)}
	if err := vm.IORequests().Router().Claim(r, ioreq.InProcess(name, ioreq.PCIConfigHandler(f))); err != nil {
		return nil, fmt.Errorf("pc: %s: %w", name, err)
	}
	if notify, err = startNotifiers(vm, f, regions...); err != nil {
		return nil, err
	}
	vm.OnClose(f.Close)
	p.virtio = append(p.virtio, pciFunction{f, slot})
	return f, nil
}

// A virtio-pci function's notification regions, as startNotifiers takes
// them: BAR0's and BAR1's.
const (
	memRegion = iota
	portRegion
)
