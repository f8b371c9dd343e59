package fwtables

import (
	"encoding/binary"
	"testing"

	"ember/layout"
)

// TestDMARTable follows RSDP → XSDT → DMAR as Linux's DMAR parser does: the
// table is listed, its checksum holds, and its one DRHD covers every PCI
// function with the unit at layout.VTd and the IOAPIC (the MADT's ID) in
// its scope.
func TestDMARTable(t *testing.T) {
	for _, ncpus := range []int{1, 4, 255} {
		mem := make(memBuf, 1<<20)
		if err := WriteACPIWithDMAR(mem, ncpus); err != nil {
			t.Fatal(err)
		}
		le := binary.LittleEndian
		xsdt := le.Uint64(mem[layout.ACPIStart+24:])
		n := le.Uint32(mem[xsdt+4:])
		if n != 36+3*8 {
			t.Fatalf("%d cpus: XSDT of %d bytes, want three entries", ncpus, n)
		}
		addr := le.Uint64(mem[xsdt+36+16:])
		d := mem[addr:]
		size := le.Uint32(d[4:])
		if string(d[:4]) != "DMAR" || sum(d[:size]) != 0 {
			t.Fatalf("%d cpus: bad DMAR at %#x", ncpus, addr)
		}
		if d[36] != 38 || d[37]&dmarIntrRemap == 0 {
			t.Errorf("host address width %d, flags %#x", d[36]+1, d[37])
		}
		drhd := d[48:size]
		if le.Uint16(drhd) != 0 || int(le.Uint16(drhd[2:])) != len(drhd) || drhd[4]&drhdIncludeAll == 0 || le.Uint64(drhd[8:]) != layout.VTd {
			t.Errorf("DRHD % x", drhd)
		}
		if scope := drhd[16:]; len(scope) != 8 || scope[0] != scopeIOAPIC || scope[4] != byte(ncpus) {
			t.Errorf("DRHD device scope % x, want the IOAPIC with ID %d", scope, ncpus)
		}
		// The MADT ends before the DMAR begins.
		madt := le.Uint64(mem[xsdt+36+8:])
		if end := madt + uint64(le.Uint32(mem[madt+4:])); end > addr || addr+uint64(size) > layout.ACPIEnd {
			t.Errorf("%d cpus: MADT ends at %#x, DMAR at %#x-%#x", ncpus, end, addr, addr+uint64(size))
		}
	}
}
