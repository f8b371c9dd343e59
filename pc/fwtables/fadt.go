package fwtables

import (
	"encoding/binary"

	"ember/devices/acpipm"
	"ember/layout"
)

// The ACPI power-management hardware of a PC VM: where the FADT says its
// registers are, and the interrupt it would signal on.
const (
	// PortACPIPM is the PM1a event block (4 ports) followed by the PM1a
	// control block (2 ports); QEMU's q35 machine uses the same base.
	PortACPIPM = 0x600
	IRQSCI     = 9 // the System Control Interrupt, as on PC chipsets
)

// FADT fields (ACPI 6.x §5.2.9, revision 6: 276 bytes).
const (
	fadtLen      = 276
	fadtRevision = 6

	fadtWBINVD    = 1 << 0 // WBINVD flushes caches (every x86)
	fadtProcC1    = 1 << 2 // C1 on every processor
	fadtPwrButton = 1 << 4 // no fixed-hardware power button
	fadtSlpButton = 1 << 5 // no fixed-hardware sleep button

	bootArchLegacy = 1 << 0 // ISA devices (COM1, the RTC) are present
	bootArch8042   = 1 << 1 // the i8042 is present
	bootArchNoVGA  = 1 << 2 // probing for VGA is pointless

	gasSystemIO = 1 // Generic Address Structure: I/O port space
	gasWord     = 2 // access size: 16 bits
)

// acpiFADT is the Fixed ACPI Description Table: the PM1 blocks on ports,
// the SCI, no SMI command port (the machine is always in ACPI mode), no PM
// timer, no GPE blocks, no C2/C3, and where the FACS and DSDT are.
func acpiFADT(facs, dsdt uint64) []byte {
	b := make([]byte, fadtLen-acpiHeaderLen)
	le := binary.LittleEndian
	at := func(off int) []byte { return b[off-acpiHeaderLen:] }
	le.PutUint32(at(36), uint32(facs))
	le.PutUint32(at(40), uint32(dsdt))
	le.PutUint16(at(46), IRQSCI)
	le.PutUint32(at(56), PortACPIPM)                      // PM1a_EVT_BLK
	le.PutUint32(at(64), PortACPIPM+acpipm.ControlOffset) // PM1a_CNT_BLK
	at(88)[0] = acpipm.EventLen                           // PM1_EVT_LEN
	at(89)[0] = acpipm.ControlLen                         // PM1_CNT_LEN
	le.PutUint16(at(96), 0x0fff)                          // P_LVL2_LAT > 100: no C2
	le.PutUint16(at(98), 0x0fff)                          // P_LVL3_LAT > 1000: no C3
	le.PutUint16(at(109), bootArchLegacy|bootArch8042|bootArchNoVGA)
	le.PutUint32(at(112), fadtWBINVD|fadtProcC1|fadtPwrButton|fadtSlpButton)
	le.PutUint64(at(132), facs)                                         // X_FIRMWARE_CTRL
	le.PutUint64(at(140), dsdt)                                         // X_DSDT
	putGAS(at(148), PortACPIPM, acpipm.EventLen)                        // X_PM1a_EVT_BLK
	putGAS(at(172), PortACPIPM+acpipm.ControlOffset, acpipm.ControlLen) // X_PM1a_CNT_BLK
	copy(at(268), "EMBER")                                              // hypervisor vendor identity
	return acpiTable("FACP", fadtRevision, b)
}

// putGAS writes a Generic Address Structure for a block of n I/O ports.
func putGAS(b []byte, port uint64, n int) {
	b[0], b[1], b[2], b[3] = gasSystemIO, byte(8*n), 0, gasWord
	binary.LittleEndian.PutUint64(b[4:], port)
}

// acpiFACS is the Firmware ACPI Control Structure (§5.2.10), version 2: the
// guest writes its waking vector for S3 into it (which package pc reads on a
// wake); no global lock, and no 64-bit wake (Flags 0).
func acpiFACS() []byte {
	b := make([]byte, 64)
	copy(b, "FACS")
	binary.LittleEndian.PutUint32(b[4:], 64)
	b[32] = 2 // version
	return b
}

// acpiDSDT is the Differentiated System Description Table: the PCI root
// bridge (bus 0, configuration mechanism #1, the I/O space around it and the
// 32-bit MMIO hole below the IOAPIC as its windows), \_S3, the sleep type
// of suspend to RAM, and \_S5, the one that powers the machine off.
func acpiDSDT() []byte {
	crs := resWordAddress(2, 0, 0, 0xff)                                             // bus numbers 0-255
	crs = append(crs, resIO(0xcf8, 0xcf8, 1, 8)...)                                  // configuration ports
	crs = append(crs, resWordAddress(1, 3, 0x0000, 0x0cf7)...)                       // I/O below them
	crs = append(crs, resWordAddress(1, 3, layout.PCIIOStart, layout.PCIIOEnd)...)   // and above
	crs = append(crs, resDWordMemory(layout.PCIMMIO32Start, layout.PCIMMIO32End)...) // 32-bit MMIO window
	crs = append(crs, resEnd()...)
	pci := amlDevice("PCI0",
		amlName("_HID", amlEISAID("PNP0A03")),
		amlName("_UID", amlInteger(0)),
		amlName("_BBN", amlInteger(0)),
		amlName("_CRS", amlBuffer(crs)),
	)
	body := amlScope(`\_SB`, pci)
	body = append(body, amlSleepType(`\_S3`, acpipm.SlpTypS3)...)
	body = append(body, amlSleepType(`\_S5`, acpipm.SlpTypS5)...)
	return acpiTable("DSDT", 2, body)
}

// amlSleepType is a \_Sx object (§7.4.2): the SLP_TYP values for PM1a_CNT
// and PM1b_CNT (the same: there is no PM1b block) and two reserved zeros.
func amlSleepType(name string, typ uint64) []byte {
	return amlName(name, amlPackage(amlInteger(typ), amlInteger(typ), amlInteger(0), amlInteger(0)))
}
