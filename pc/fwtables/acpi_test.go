package fwtables

import (
	"encoding/binary"
	"testing"

	"ember/layout"
)

// TestACPITablesAsAGuestReadsThem follows RSDP → XSDT → MADT the way Linux's
// early ACPI code does, checking every checksum and counting what the MADT
// describes.
func TestACPITablesAsAGuestReadsThem(t *testing.T) {
	for _, ncpus := range []int{1, 2, 64} {
		mem := make(memBuf, 1<<20)
		if err := WriteACPI(mem, ncpus); err != nil {
			t.Fatal(err)
		}
		rsdp := mem[layout.ACPIStart : layout.ACPIStart+36]
		if string(rsdp[:8]) != "RSD PTR " || sum(rsdp[:20]) != 0 || sum(rsdp) != 0 || rsdp[15] != 2 {
			t.Fatalf("%d cpus: bad RSDP % x", ncpus, rsdp)
		}
		table := func(addr uint64, sig string) []byte {
			t.Helper()
			h := mem[addr:]
			n := binary.LittleEndian.Uint32(h[4:])
			if string(h[:4]) != sig || sum(h[:n]) != 0 {
				t.Fatalf("%d cpus: bad %s at %#x", ncpus, sig, addr)
			}
			return h[36:n]
		}
		xsdt := table(binary.LittleEndian.Uint64(rsdp[24:]), "XSDT")
		if len(xsdt) != 16 {
			t.Fatalf("XSDT lists %d bytes of entries, want the FADT and the MADT", len(xsdt))
		}
		fadt := table(binary.LittleEndian.Uint64(xsdt), "FACP")
		madt := table(binary.LittleEndian.Uint64(xsdt[8:]), "APIC")
		// The FADT points at the DSDT and the FACS (both ways) and at the PM
		// registers ember serves.
		at := func(off int) []byte { return fadt[off-36:] }
		dsdt := binary.LittleEndian.Uint64(at(140))
		if uint64(binary.LittleEndian.Uint32(at(40))) != dsdt {
			t.Errorf("FADT DSDT %#x and X_DSDT %#x differ", binary.LittleEndian.Uint32(at(40)), dsdt)
		}
		table(dsdt, "DSDT")
		facs := binary.LittleEndian.Uint64(at(132))
		if string(mem[facs:facs+4]) != "FACS" || facs%64 != 0 || uint64(binary.LittleEndian.Uint32(at(36))) != facs {
			t.Errorf("FACS at %#x: % x", facs, mem[facs:facs+8])
		}
		if evt, cnt := binary.LittleEndian.Uint32(at(56)), binary.LittleEndian.Uint32(at(64)); evt != PortACPIPM || cnt != PortACPIPM+4 || at(88)[0] != 4 || at(89)[0] != 2 {
			t.Errorf("FADT PM1a event block %#x/%d, control block %#x/%d", evt, at(88)[0], cnt, at(89)[0])
		}
		if binary.LittleEndian.Uint32(madt) != layout.LAPIC {
			t.Errorf("MADT local APIC address %#x", binary.LittleEndian.Uint32(madt))
		}
		cpus, ioapics := 0, 0
		for e := madt[8:]; len(e) > 0; e = e[e[1]:] {
			switch e[0] {
			case madtLocalAPIC:
				if e[3] != byte(cpus) || binary.LittleEndian.Uint32(e[4:])&madtEnabled == 0 {
					t.Errorf("LAPIC entry % x", e[:8])
				}
				cpus++
			case madtIOAPIC:
				ioapics++
				if binary.LittleEndian.Uint32(e[4:]) != layout.IOAPIC || binary.LittleEndian.Uint32(e[8:]) != 0 {
					t.Errorf("IOAPIC entry % x", e[:12])
				}
			}
			if e[1] == 0 {
				t.Fatal("zero-length MADT entry")
			}
		}
		if cpus != ncpus || ioapics != 1 {
			t.Errorf("MADT lists %d LAPICs and %d IOAPICs, want %d and 1", cpus, ioapics, ncpus)
		}
		// The tables must lie inside the range the e820 map reserves for
		// firmware, below the BIOS image area.
		if end := MADTAddr + 36 + len(madt); end > layout.ACPIEnd {
			t.Errorf("ACPI tables end at %#x, past %#x", end, layout.ACPIEnd)
		}
	}
	if err := WriteACPI(make(memBuf, 1<<20), 256); err == nil {
		t.Error("a MADT for 256 vCPUs was written")
	}
}
