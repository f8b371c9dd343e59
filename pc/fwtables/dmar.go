package fwtables

import (
	"encoding/binary"

	"ember/layout"
)

// DMAR table values (Intel VT-d specification, chapter 8).
const (
	dmarHostAddressWidth = 39 - 1 // DMA addresses of 39 bits, as QEMU's default
	dmarIntrRemap        = 1 << 0 // flags: interrupt remapping supported
	dmarX2APICOptOut     = 1 << 1 // flags: keep xAPIC mode (no extended interrupt mode)
	drhdIncludeAll       = 1 << 0 // DRHD flags: every PCI function of the segment
	scopeIOAPIC          = 3
	ioapicSourceID       = 0x1f << 3 // 00:1f.0, where Q35 puts its IOAPIC's requester ID
)

// acpiDMAR is the DMA Remapping table: one remapping hardware unit
// definition (DRHD) for the unit at layout.VTd covering every PCI function
// (INCLUDE_PCI_ALL), with the IOAPIC (id ioapicID, the MADT's) in its
// device scope, which a guest needs to remap the IOAPIC's interrupts.
func acpiDMAR(ioapicID uint8) []byte {
	body := make([]byte, 12)
	body[0] = dmarHostAddressWidth
	body[1] = dmarIntrRemap | dmarX2APICOptOut
	drhd := make([]byte, 16)
	binary.LittleEndian.PutUint16(drhd[0:], 0) // type: DRHD
	drhd[4] = drhdIncludeAll
	binary.LittleEndian.PutUint16(drhd[6:], 0) // segment 0
	binary.LittleEndian.PutUint64(drhd[8:], layout.VTd)
	scope := []byte{scopeIOAPIC, 8, 0, 0, ioapicID, 0, ioapicSourceID >> 3, ioapicSourceID & 7}
	drhd = append(drhd, scope...)
	binary.LittleEndian.PutUint16(drhd[2:], uint16(len(drhd)))
	return acpiTable("DMAR", 1, append(body, drhd...))
}
