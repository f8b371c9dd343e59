package fwtables

import (
	"encoding/binary"
	"fmt"
	"io"

	"ember/layout"
)

// The MP table (Intel MultiProcessor Specification 1.4) tells a guest without
// ACPI how many processors there are and how ISA interrupts reach the IOAPIC.
// Linux scans the last KiB of base memory for its floating pointer, so ember
// puts it at 639 KiB, inside the range the e820 map reserves (boot.MemoryMap).
const (
	mpTableMaxLen = 0x400

	mpSpecRev      = 4 // MP spec 1.4
	lapicVersion   = 0x14
	ioapicVersion  = 0x11
	mpISABusID     = 0
	mpFloatLen     = 16
	mpHeaderLen    = 44
	mpCPUEntryLen  = 20
	mpOtherEntry   = 8
	MPMaxCPUs      = (mpTableMaxLen - mpFloatLen - mpHeaderLen - 2*mpOtherEntry - 18*mpOtherEntry) / mpCPUEntryLen
	mpIntTypeINT   = 0
	mpIntTypeNMI   = 1
	mpIntTypeExt   = 3
	mpCPUEnabled   = 1
	mpCPUBootstrap = 2
)

// WriteMPTable writes an MP floating pointer and configuration table at
// layout.MPTable describing ncpus processors (APIC ids 0..ncpus-1, 0 the BSP),
// one ISA bus, the IOAPIC, ISA IRQs 0-15 wired to IOAPIC pins 0-15 (KVM's
// default GSI routing), and ExtINT/NMI on every LAPIC's LINT0/LINT1.
func WriteMPTable(mem io.WriterAt, ncpus int) error {
	if ncpus < 1 || ncpus > MPMaxCPUs {
		return fmt.Errorf("fwtables: MP table: %d vCPUs (1 to %d fit)", ncpus, MPMaxCPUs)
	}
	ioapicID := uint8(ncpus)
	var entries []byte
	for i := 0; i < ncpus; i++ {
		e := make([]byte, mpCPUEntryLen)
		e[0], e[1], e[2] = 0, uint8(i), lapicVersion
		e[3] = mpCPUEnabled
		if i == 0 {
			e[3] |= mpCPUBootstrap
		}
		binary.LittleEndian.PutUint32(e[4:], 0x600) // CPU signature: family 6
		binary.LittleEndian.PutUint32(e[8:], 0x201) // features: FPU, APIC
		entries = append(entries, e...)
	}
	entries = append(entries, 1, mpISABusID, 'I', 'S', 'A', ' ', ' ', ' ')
	ioapic := []byte{2, ioapicID, ioapicVersion, 1, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(ioapic[4:], layout.IOAPIC)
	entries = append(entries, ioapic...)
	for irq := uint8(0); irq < 16; irq++ {
		entries = append(entries, 3, mpIntTypeINT, 0, 0, mpISABusID, irq, ioapicID, irq)
	}
	entries = append(entries,
		4, mpIntTypeExt, 0, 0, mpISABusID, 0, 0xff, 0, // ExtINT -> LINT0 of all
		4, mpIntTypeNMI, 0, 0, mpISABusID, 0, 0xff, 1) // NMI -> LINT1 of all

	table := make([]byte, mpHeaderLen, mpHeaderLen+len(entries))
	copy(table, "PCMP")
	binary.LittleEndian.PutUint16(table[4:], uint16(mpHeaderLen+len(entries)))
	table[6] = mpSpecRev
	copy(table[8:], "EMBER   ")
	copy(table[16:], "EMBERVM     ")
	binary.LittleEndian.PutUint16(table[34:], uint16(ncpus+1+1+16+2))
	binary.LittleEndian.PutUint32(table[36:], layout.LAPIC)
	table = append(table, entries...)
	table[7] = checksum(table)

	float := make([]byte, mpFloatLen)
	copy(float, "_MP_")
	binary.LittleEndian.PutUint32(float[4:], layout.MPTable+mpFloatLen)
	float[8], float[9] = 1, mpSpecRev // length in 16-byte units, revision
	float[10] = checksum(float)

	if _, err := mem.WriteAt(append(float, table...), layout.MPTable); err != nil {
		return fmt.Errorf("fwtables: writing the MP table: %w", err)
	}
	return nil
}
