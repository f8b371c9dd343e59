package pc

import (
	"encoding/binary"
	"fmt"
	"log/slog"

	"ember/acrn/iorequest"
	"ember/devices/edu"
	"ember/devices/vtd"
	"ember/hv"
	"ember/ioreq"
	"ember/kvm"
	"ember/layout"
	"ember/memory"
)

// eduGSI is the edu function's INTA#: IOAPIC pin 16, the first past the
// ISA lines, which no platform device, pc-testdev line or PIC shares.
const eduGSI = 16

// ioapicRTEs is where kvm_ioapic_state's redirection table starts in
// kvm.IRQChip.Chip.
const ioapicRTEs = 24

// attachIOMMU makes the VT-d unit (Config.IOMMU) and claims its register
// page. Its own interrupts (fault and invalidation events) are
// compatibility-format messages, sent with KVM_SIGNAL_MSI.
func (p *Platform) attachIOMMU(vm *hv.VM) error {
	log := vm.Logger()
	p.IOMMU = vtd.New(vtd.Config{
		Mem: vm.Memory(),
		Interrupt: func(m vtd.Message) {
			signalMSI(vm, log, m.Addr, m.Data)
		},
		Logger: log,
	})
	if err := vm.MMIO.Register(vtd.RegisterBase, vtd.RegisterSize, "vtd", p.IOMMU); err != nil {
		return fmt.Errorf("pc: VT-d: %w", err)
	}
	return nil
}

// attachEDU puts QEMU's edu device on the PCI bus in the next free slot
// (Config.EDU), BAR0 at layout.EduBAR, INTA# on eduGSI. With the VT-d unit
// its DMA is translated and its interrupts remapped (eduInterrupts).
func (p *Platform) attachEDU(vm *hv.VM) error {
	p.slots++
	slot := p.slots
	if slot >= maxPCISlots {
		return fmt.Errorf("pc: no free PCI slot for edu")
	}
	log := vm.Logger()
	sid := uint16(slot << 3) // bus 0, device slot, function 0
	name := "edu"
	bar := &barMapping{bus: vm.MMIO, name: name, size: edu.BARSize, lo: layout.PCIMMIO32Start, hi: layout.PCIMMIO32End}
	d := edu.New(edu.Config{
		BAR:  layout.EduBAR,
		Line: eduGSI,
		IRQ:  &remappedLine{vm: vm, iommu: p.IOMMU, gsi: eduGSI, log: log},
		MSI: func(addr uint64, data uint32) {
			p.deviceMSI(vm, vtd.Source(sid), addr, data)
		},
		DMA: busDMA{mem: vm.Memory(), iommu: p.IOMMU, sid: sid},
		MoveBAR: func(_, new uint32) {
			if _, err := bar.move(uint64(new)); err != nil {
				log.Warn("edu: BAR0 unmapped", "bar", new, "err", err)
			}
		},
		Logger: log,
	})
	bar.dev = d
	if _, err := bar.move(layout.EduBAR); err != nil {
		return err
	}
	r := ioreq.Range{Type: iorequest.ReqPCICfg, Start: ioreq.PCIAddress(0, uint32(slot), 0, 0), End: ioreq.PCIAddress(0, uint32(slot), 0, 0xfff)}
	if err := vm.IORequests().Router().Claim(r, ioreq.InProcess(name, ioreq.PCIConfigHandler(d))); err != nil {
		return fmt.Errorf("pc: edu: %w", err)
	}
	p.EDU = d
	return nil
}

// deviceMSI sends a PCI function's MSI: through the VT-d unit's interrupt
// remapping when there is one (a refused request is its fault record, and
// nothing is sent), then to the LAPICs with KVM_SIGNAL_MSI.
func (p *Platform) deviceMSI(vm *hv.VM, src vtd.Source, addr uint64, data uint32) {
	m := vtd.Message{Addr: addr, Data: data}
	if p.IOMMU != nil {
		var err error
		if m, _, err = p.IOMMU.RemapMSI(src, m); err != nil {
			vm.Logger().Debug("an MSI refused by the VT-d unit", "err", err)
			return
		}
	}
	signalMSI(vm, vm.Logger(), m.Addr, m.Data)
}

func signalMSI(vm *hv.VM, log *slog.Logger, addr uint64, data uint32) {
	if err := vm.SignalMSI(kvm.MSI{AddressLo: uint32(addr), AddressHi: uint32(addr >> 32), Data: data}); err != nil {
		log.Warn("sending an MSI failed", "addr", addr, "data", data, "err", err)
	}
}

// remappedLine is a device's interrupt line on an IOAPIC pin of KVM's
// in-kernel IOAPIC, with the VT-d unit's interrupt remapping in between.
//
// KVM's IOAPIC does not know remappable-format redirection entries: it
// would read an entry's interrupt index as a destination. So while
// remapping is on, a rising edge of the line reads the pin's entry
// (KVM_GET_IRQCHIP) and, if it is unmasked and remappable, makes the
// request the IOAPIC would (vtd.IOAPICMessage), has the unit remap it, and
// sends the IRTE's message with KVM_SIGNAL_MSI instead of raising the pin.
// A compatibility-format entry the unit lets through (GSTS.CFIS) raises
// the pin as usual, and one it blocks is its fault record. Limits: a
// remapped level-triggered entry is delivered once per rising edge (KVM's
// remote IRR and re-delivery at EOI are bypassed, so a line still high at
// EOI is not delivered again), and only the lines of devices ember wires
// this way (edu's) are remapped; the PC platform's own ISA devices and
// virtio's INTx go to KVM's IOAPIC directly.
type remappedLine struct {
	vm    *hv.VM
	iommu *vtd.Unit
	gsi   uint32
	log   *slog.Logger
}

// SetLevel drives the line.
func (l *remappedLine) SetLevel(high bool) {
	if high && l.iommu != nil && l.iommu.Remapping() && l.remap() {
		return
	}
	if err := l.vm.IRQLine(l.gsi, high); err != nil {
		l.log.Warn("raising an interrupt line failed", "gsi", l.gsi, "err", err)
	}
}

// remap delivers a rising edge through the unit; false leaves it to the
// pin (a compatibility-format entry let through).
func (l *remappedLine) remap() bool {
	chip, err := l.vm.KVM().GetIRQChip(kvm.IRQChipIOAPIC)
	if err != nil {
		l.log.Warn("reading the IOAPIC for interrupt remapping failed", "gsi", l.gsi, "err", err)
		return true
	}
	rte := binary.LittleEndian.Uint64(chip.Chip[ioapicRTEs+8*l.gsi:])
	if rte&(1<<16) != 0 {
		return true // masked: the IOAPIC would send nothing
	}
	m, remapped, err := l.iommu.RemapMSI(vtd.SourceUnknown, vtd.IOAPICMessage(rte))
	switch {
	case err != nil:
		l.log.Debug("an IOAPIC interrupt refused by the VT-d unit", "gsi", l.gsi, "err", err)
		return true
	case !remapped:
		return false
	}
	signalMSI(l.vm, l.log, m.Addr, m.Data)
	return true
}

// busDMA is a PCI function's DMA: through the VT-d unit with its source ID
// when there is one, straight to guest RAM otherwise.
type busDMA struct {
	mem   *memory.Guest
	iommu *vtd.Unit
	sid   uint16
}

func (b busDMA) DMARead(addr uint64, p []byte) error {
	if b.iommu != nil {
		return b.iommu.DMARead(b.sid, addr, p)
	}
	_, err := b.mem.ReadAt(p, int64(addr))
	return err
}

func (b busDMA) DMAWrite(addr uint64, p []byte) error {
	if b.iommu != nil {
		return b.iommu.DMAWrite(b.sid, addr, p)
	}
	_, err := b.mem.WriteAt(p, int64(addr))
	return err
}
