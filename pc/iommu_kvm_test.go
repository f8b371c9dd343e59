package pc

import (
	"encoding/binary"
	"testing"

	"ember/hv"
	"ember/kvm"
)

// Guest-physical addresses of TestIOMMUWithEDU's tables.
const (
	e2eRoot  = 0x10000
	e2eCtx   = 0x11000
	e2eL3    = 0x12000
	e2eL2    = 0x13000
	e2eL1    = 0x14000
	e2eIRT   = 0x15000
	e2ePage  = 0x20000
	e2eQueue = 0x16000
)

// TestIOMMUWithEDU (KVM): with Config.IOMMU and Config.EDU, what
// kvm-unit-tests' intel_iommu does, checked from the host where KVM puts
// it: edu's DMA goes through the guest's second-level tables, its INTx
// through a remappable-format IOAPIC entry and its MSI through a
// remappable-format address arrive at the LAPIC as the IRTEs' vectors (not
// as KVM's own reading of the entry would have them), and a request whose
// IRTE is not present is a recorded fault.
func TestIOMMUWithEDU(t *testing.T) {
	h := openHV(t)
	vm, err := h.NewVM(hv.Config{MemorySize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	p, err := Attach(vm, Config{IOMMU: true, EDU: true})
	if err != nil {
		t.Fatal(err)
	}
	mem := vm.Memory()
	put := func(gpa, v uint64) {
		if _, err := mem.WriteAt(binary.LittleEndian.AppendUint64(nil, v), int64(gpa)); err != nil {
			t.Fatal(err)
		}
	}
	reg32 := func(dev interface{ Write(uint64, []byte) }, off uint64, v uint32) {
		dev.Write(off, binary.LittleEndian.AppendUint32(nil, v))
	}
	reg64 := func(dev interface{ Write(uint64, []byte) }, off, v uint64) {
		dev.Write(off, binary.LittleEndian.AppendUint64(nil, v))
	}
	gsts := func() uint32 {
		var b [4]byte
		p.IOMMU.Read(0x1c, b[:])
		return binary.LittleEndian.Uint32(b[:])
	}
	command := func(bit uint32) { reg32(p.IOMMU, 0x18, gsts()|bit) }

	// The unit as vtd_init sets it up: QI, root table, IR table, DMAR, IR.
	const sid = 1 << 3 // edu in slot 1
	put(e2eRoot, e2eCtx|1)
	put(e2eCtx+sid*16, e2eL3|1|1<<1) // present, FPD
	put(e2eCtx+sid*16+8, 1|sid<<8)   // 39-bit, domain sid
	put(e2eL3, e2eL2|3)
	put(e2eL2, e2eL1|3)
	put(e2eL1, e2ePage|3)         // IOVA 0 -> e2ePage
	put(e2eIRT+1*16, 1|0x51<<16)  // IRTE 1: vector 0x51 to APIC 0
	put(e2eIRT+1*16+8, sid|1<<18) // checking edu's source ID, which an IOAPIC request skips
	put(e2eIRT+2*16, 1|0x62<<16)  // IRTE 2: vector 0x62 to APIC 0
	put(e2eIRT+2*16+8, sid|1<<18) // IRTE 3 is not present
	put(e2ePage, 0x12345678)
	reg64(p.IOMMU, 0x90, e2eQueue)
	command(1 << 26)
	reg64(p.IOMMU, 0x20, e2eRoot)
	command(1 << 30)
	reg64(p.IOMMU, 0xb8, e2eIRT|3) // 16 entries
	command(1 << 24)
	command(1 << 31)
	command(1 << 25)
	if got := gsts(); got != 1<<26|1<<30|1<<24|1<<31|1<<25 {
		t.Fatalf("GSTS %#x", got)
	}

	// A software-enabled LAPIC to receive what arrives.
	c := vm.VCPU(0).KVM()
	lapic, err := c.GetLAPIC()
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(lapic.Regs[0xf0:], 0x1ff)
	if err := c.SetLAPIC(lapic); err != nil {
		t.Fatal(err)
	}
	pending := func(vector int) bool {
		t.Helper()
		l, err := c.GetLAPIC()
		if err != nil {
			t.Fatal(err)
		}
		return binary.LittleEndian.Uint32(l.Regs[0x200+vector/32*16:])&(1<<(vector%32)) != 0
	}

	// DMA: IOVA 0 -> the buffer -> IOVA 4, as vtd_test_dmar.
	p.EDU.ConfigWrite(0, 1, 0, 0x04, []byte{0x06, 0}) // memory, bus master
	dma := func(src, dst, cmd uint64) {
		reg64(p.EDU, 0x80, src)
		reg64(p.EDU, 0x88, dst)
		reg64(p.EDU, 0x90, 4)
		reg32(p.EDU, 0x98, uint32(cmd))
	}
	dma(0, 0x40000, 1)
	dma(0x40000, 4, 3)
	var b [8]byte
	if _, err := mem.ReadAt(b[:], e2ePage); err != nil || binary.LittleEndian.Uint32(b[4:]) != 0x12345678 {
		t.Errorf("after the DMA round trip the page holds % x", b)
	}

	// INTx: pin 16's entry in the remappable format, index 1; its own
	// vector field says 0xed, which KVM would deliver if it read the entry.
	chip, err := vm.KVM().GetIRQChip(kvm.IRQChipIOAPIC)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(chip.Chip[ioapicRTEs+8*eduGSI:], 0xed|1<<48|1<<49)
	if err := vm.KVM().SetIRQChip(chip); err != nil {
		t.Fatal(err)
	}
	reg32(p.EDU, 0x60, 1)
	if !pending(0x51) || pending(0xed) {
		t.Errorf("INTx through IRTE 1: vector 0x51 pending %v, 0xed pending %v", pending(0x51), pending(0xed))
	}
	reg32(p.EDU, 0x64, 1)

	// MSI: a remappable-format address with handle 2.
	p.EDU.ConfigWrite(0, 1, 0, 0x44, binary.LittleEndian.AppendUint32(nil, 0xfee00000|1<<4|2<<5))
	p.EDU.ConfigWrite(0, 1, 0, 0x48, []byte{0, 0, 0, 0})
	p.EDU.ConfigWrite(0, 1, 0, 0x4c, []byte{0, 0})
	p.EDU.ConfigWrite(0, 1, 0, 0x42, []byte{1, 0})
	reg32(p.EDU, 0x60, 1)
	if !pending(0x62) {
		t.Error("MSI through IRTE 2: vector 0x62 not pending")
	}
	reg32(p.EDU, 0x64, 1)

	// Handle 3: IRTE 3 is not present. The request is refused and recorded.
	p.EDU.ConfigWrite(0, 1, 0, 0x44, binary.LittleEndian.AppendUint32(nil, 0xfee00000|1<<4|3<<5))
	reg32(p.EDU, 0x60, 1)
	p.IOMMU.Read(0x34, b[:4])
	fsts := binary.LittleEndian.Uint32(b[:4])
	p.IOMMU.Read(0x228, b[:])
	if frcd := binary.LittleEndian.Uint64(b[:]); fsts&2 == 0 || frcd>>63 == 0 || frcd>>32&0xff != 0x22 || uint16(frcd) != sid {
		t.Errorf("FSTS %#x, fault record %#x: want reason 0x22 from %04x", fsts, frcd, sid)
	}
}
