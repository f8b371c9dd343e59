package fwtables

import (
	"encoding/binary"
	"fmt"
	"io"

	"ember/layout"
)

// ACPI tables tell a guest its processors and interrupt controllers the way
// modern firmware does; many distribution kernels (Debian's cloud kernel among
// them) are built without MP-table parsing and find other vCPUs only here.
// ember writes the minimum that carries that: an RSDP, an XSDT and a MADT
// (ACPI 6.x §5.2.5, §5.2.8, §5.2.12). Linux finds the RSDP by scanning
// 0xE0000-0xFFFFF, which the e820 map reserves (boot.MemoryMap).
const (
	acpiXSDTAddr = layout.ACPIStart + 0x40
	FACSAddr     = layout.ACPIStart + 0x80 // 64-byte aligned, as the FACS must be; pc reads the waking vector here
	acpiFADTAddr = layout.ACPIStart + 0xc0
	acpiDSDTAddr = layout.ACPIStart + 0x200
	MADTAddr     = layout.ACPIStart + 0x400  // pc's tests read the MADT in guest RAM here
	acpiDMARAddr = layout.ACPIStart + 0x1000 // past a MADT of 255 vCPUs

	acpiOEMID      = "EMBER "
	acpiOEMTableID = "EMBERVM "
	acpiHeaderLen  = 36
	rsdpLen        = 36

	madtLocalAPIC  = 0 // Processor Local APIC structure
	madtIOAPIC     = 1 // I/O APIC structure
	madtLAPICNMI   = 4 // Local APIC NMI structure
	madtPCATCompat = 1 // MADT flag: the PC's dual 8259s are present
	madtEnabled    = 1 // Local APIC flag: usable processor
)

// WriteACPI writes the ACPI tables of a PC VM with ncpus vCPUs:
//
//   - an RSDP at layout.ACPIStart and an XSDT listing the FADT and the MADT;
//   - a FADT (with its FACS) that puts the PM1 event and control registers
//     at PortACPIPM and the SCI on IRQ 9, so `poweroff` reaches ember;
//   - a DSDT with the PCI root bridge and its windows (Linux enumerates PCI
//     through it once ACPI is on) and the \_S5 sleep type;
//   - a MADT listing ncpus local APICs (APIC ids and processor UIDs
//     0..ncpus-1), the IOAPIC at 0xfec00000 with GSI base 0 (ISA IRQs map to
//     GSIs 1:1, KVM's default routing, so no source overrides), and NMI on
//     every LAPIC's LINT1.
func WriteACPI(mem io.WriterAt, ncpus int) error { return writeACPI(mem, ncpus, false) }

// WriteACPIWithDMAR writes the tables WriteACPI writes and a DMAR table
// describing the VT-d unit (pc.Config.IOMMU), listed in the XSDT.
func WriteACPIWithDMAR(mem io.WriterAt, ncpus int) error { return writeACPI(mem, ncpus, true) }

func writeACPI(mem io.WriterAt, ncpus int, dmar bool) error {
	if ncpus < 1 || ncpus > 255 {
		return fmt.Errorf("fwtables: ACPI MADT: %d vCPUs (1 to 255 fit)", ncpus)
	}
	le := binary.LittleEndian
	xsdt := le.AppendUint64(le.AppendUint64(nil, acpiFADTAddr), MADTAddr)
	if dmar {
		xsdt = le.AppendUint64(xsdt, acpiDMARAddr)
	}
	type table struct {
		addr, limit int64
		b           []byte
	}
	tables := []table{
		{layout.ACPIStart, acpiXSDTAddr, acpiRSDP(acpiXSDTAddr)},
		{acpiXSDTAddr, FACSAddr, acpiTable("XSDT", 1, xsdt)},
		{FACSAddr, acpiFADTAddr, acpiFACS()},
		{acpiFADTAddr, acpiDSDTAddr, acpiFADT(FACSAddr, acpiDSDTAddr)},
		{acpiDSDTAddr, MADTAddr, acpiDSDT()},
		{MADTAddr, acpiDMARAddr, acpiMADT(ncpus)},
	}
	if dmar {
		tables = append(tables, table{acpiDMARAddr, layout.ACPIEnd, acpiDMAR(uint8(ncpus))})
	}
	for _, w := range tables {
		if w.addr+int64(len(w.b)) > w.limit {
			return fmt.Errorf("fwtables: ACPI table at %#x overruns the next at %#x", w.addr, w.limit)
		}
		if _, err := mem.WriteAt(w.b, w.addr); err != nil {
			return fmt.Errorf("fwtables: writing ACPI tables at %#x: %w", w.addr, err)
		}
	}
	return nil
}

// acpiRSDP is the ACPI 2.0+ Root System Description Pointer: signature,
// checksum over the first 20 bytes, OEM ID, revision 2, no RSDT, length,
// the XSDT's address and the extended checksum over all 36 bytes.
func acpiRSDP(xsdt uint64) []byte {
	b := make([]byte, rsdpLen)
	copy(b, "RSD PTR ")
	copy(b[9:], acpiOEMID)
	b[15] = 2
	binary.LittleEndian.PutUint32(b[20:], rsdpLen)
	binary.LittleEndian.PutUint64(b[24:], xsdt)
	b[8] = checksum(b[:20])
	b[32] = checksum(b)
	return b
}

// acpiMADT is the Multiple APIC Description Table.
func acpiMADT(ncpus int) []byte {
	body := make([]byte, 8)
	binary.LittleEndian.PutUint32(body[0:], layout.LAPIC)
	binary.LittleEndian.PutUint32(body[4:], madtPCATCompat)
	for i := 0; i < ncpus; i++ {
		e := []byte{madtLocalAPIC, 8, byte(i), byte(i), 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(e[4:], madtEnabled)
		body = append(body, e...)
	}
	io := make([]byte, 12)
	io[0], io[1], io[2] = madtIOAPIC, 12, byte(ncpus)
	binary.LittleEndian.PutUint32(io[4:], layout.IOAPIC)
	body = append(body, io...)
	// NMI on LINT1 of every processor (UID 0xff), polarity and trigger as the bus says.
	body = append(body, madtLAPICNMI, 6, 0xff, 0, 0, 1)
	return acpiTable("APIC", 5, body)
}

// acpiTable prefixes body with a System Description Table header and sets
// the checksum.
func acpiTable(sig string, rev byte, body []byte) []byte {
	b := make([]byte, acpiHeaderLen, acpiHeaderLen+len(body))
	copy(b, sig)
	binary.LittleEndian.PutUint32(b[4:], uint32(acpiHeaderLen+len(body)))
	b[8] = rev
	copy(b[10:], acpiOEMID)
	copy(b[16:], acpiOEMTableID)
	binary.LittleEndian.PutUint32(b[24:], 1) // OEM revision
	copy(b[28:], "EMBR")                     // creator ID
	binary.LittleEndian.PutUint32(b[32:], 1) // creator revision
	b = append(b, body...)
	b[9] = checksum(b)
	return b
}
