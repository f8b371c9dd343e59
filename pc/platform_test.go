package pc

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"ember/acrn"
	"ember/devices/fwcfg"
	"ember/devices/uart"
	"ember/ioreq"
	"ember/layout"
	"ember/memory"
	virtiopci "ember/virtio/pci"
)

// memBuf is guest memory for tests: a byte slice addressed from 0.
type memBuf []byte

func (m memBuf) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

func sum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// TestMPTableAsAGuestReadsIt parses the table the way Linux's mpparse does:
// find "_MP_", check both checksums, follow the pointer, count processors.
func TestMPTableAsAGuestReadsIt(t *testing.T) {
	for _, ncpus := range []int{1, 2, 8, mpMaxCPUs} {
		mem := make(memBuf, 1<<20)
		if err := WriteMPTable(mem, ncpus); err != nil {
			t.Fatal(err)
		}
		fp := mem[layout.MPTable : layout.MPTable+16]
		if !bytes.Equal(fp[:4], []byte("_MP_")) || sum(fp) != 0 || fp[8] != 1 || fp[9] != 4 {
			t.Fatalf("%d cpus: bad floating pointer % x", ncpus, fp)
		}
		addr := binary.LittleEndian.Uint32(fp[4:])
		hdr := mem[addr:]
		length := binary.LittleEndian.Uint16(hdr[4:])
		if !bytes.Equal(hdr[:4], []byte("PCMP")) || sum(hdr[:length]) != 0 {
			t.Fatalf("%d cpus: bad config table header", ncpus)
		}
		if addr+uint32(length) > layout.MPTable+mpTableMaxLen {
			t.Fatalf("%d cpus: table ends at %#x, past its KiB", ncpus, addr+uint32(length))
		}
		count := binary.LittleEndian.Uint16(hdr[34:])
		cpus, bsp, ioapics, ints := 0, -1, 0, 0
		sizes := map[byte]int{0: 20, 1: 8, 2: 8, 3: 8, 4: 8}
		for off, i := mpHeaderLen, 0; i < int(count); i++ {
			e := hdr[off:]
			switch e[0] {
			case 0:
				if e[3]&mpCPUEnabled != 0 {
					cpus++
				}
				if e[3]&mpCPUBootstrap != 0 {
					bsp = int(e[1])
				}
			case 2:
				ioapics++
				if binary.LittleEndian.Uint32(e[4:]) != layout.IOAPIC {
					t.Errorf("IOAPIC at %#x", binary.LittleEndian.Uint32(e[4:]))
				}
			case 3:
				ints++
			}
			off += sizes[e[0]]
		}
		if cpus != ncpus || bsp != 0 || ioapics != 1 || ints != 16 {
			t.Errorf("%d cpus: table lists %d cpus, BSP %d, %d IOAPICs, %d ISA interrupts", ncpus, cpus, bsp, ioapics, ints)
		}
	}
	if err := WriteMPTable(make(memBuf, 1<<20), mpMaxCPUs+1); err == nil {
		t.Error("an MP table for more vCPUs than fit was written")
	}
}

// TestPCIConfigMechanism1 probes the bus as a guest does through 0xCF8/0xCFC:
// the accesses go through the I/O request path (PCICFG requests) to the host
// bridge, and unclaimed functions read as all ones.
func TestPCIConfigMechanism1(t *testing.T) {
	buf, err := ioreq.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	d := ioreq.NewDispatcher(buf, ioreq.NewRouter(), ioreq.Config{PCIConf1: true})
	if err := d.Router().Claim(PCIHostRange, ioreq.InProcess("pci-host", ioreq.PCIConfigHandler(NewPCIHost()))); err != nil {
		t.Fatal(err)
	}
	pio := func(dir acrn.Direction, port uint16, size int, v uint32) uint64 {
		req := ioreq.PIORequest(dir, port, size, v)
		got, err := d.Emulate(0, &req)
		if err != nil {
			t.Fatalf("port %#x: %v", port, err)
		}
		return got
	}
	cfg := func(b, dv, f, reg uint32) uint32 {
		pio(acrn.DirWrite, 0xcf8, 4, 1<<31|b<<16|dv<<11|f<<8|reg)
		return uint32(pio(acrn.DirRead, 0xcfc, 4, 0))
	}
	tests := []struct {
		name         string
		b, d, f, reg uint32
		want         uint32
	}{
		{"host bridge vendor and device", 0, 0, 0, 0, hostBridgeDevice<<16 | hostBridgeVendor},
		{"host bridge class", 0, 0, 0, 8, classHostBridge<<8 | 2},
		{"empty slot reads all ones", 0, 1, 0, 0, 0xffffffff},
		{"other bus reads all ones", 1, 0, 0, 0, 0xffffffff},
		{"function 1 of the bridge is absent", 0, 0, 1, 0, 0xffffffff},
	}
	for _, tt := range tests {
		if got := cfg(tt.b, tt.d, tt.f, tt.reg); got != tt.want {
			t.Errorf("%s: %#x, want %#x", tt.name, got, tt.want)
		}
	}
	// Linux's conf1 probe: the address register reads back what was written.
	pio(acrn.DirWrite, 0xcf8, 4, 0x80000000)
	if got := pio(acrn.DirRead, 0xcf8, 4, 0); got != 0x80000000 {
		t.Errorf("CONFIG_ADDRESS reads back %#x", got)
	}
	// A byte read at 0xCFE returns byte 2 of the register (the device id's low byte).
	cfg(0, 0, 0, 0)
	if got := pio(acrn.DirRead, 0xcfe, 1, 0); got != hostBridgeDevice&0xff {
		t.Errorf("byte read at 0xcfe = %#x", got)
	}
	// The command register keeps what a driver writes.
	pio(acrn.DirWrite, 0xcf8, 4, 1<<31|4)
	pio(acrn.DirWrite, 0xcfc, 2, 0x0106)
	if got := cfg(0, 0, 0, 4) & 0xffff; got != 0x0106 {
		t.Errorf("command register reads %#x after writing 0x106", got)
	}
}

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
		if end := acpiMADTAddr + 36 + len(madt); end > layout.ACPIEnd {
			t.Errorf("ACPI tables end at %#x, past %#x", end, layout.ACPIEnd)
		}
	}
	if err := WriteACPI(make(memBuf, 1<<20), 256); err == nil {
		t.Error("a MADT for 256 vCPUs was written")
	}
}

// TestVirtioBARsFitTheLayout: the layout's window per virtio function holds
// a function's whole BAR0.
func TestVirtioBARsFitTheLayout(t *testing.T) {
	if layout.VirtioBARSize < virtiopci.BARSize || layout.VirtioBARs%virtiopci.BARSize != 0 {
		t.Errorf("layout gives %#x-byte windows at %#x; a virtio-pci BAR0 is %#x bytes", layout.VirtioBARSize, layout.VirtioBARs, virtiopci.BARSize)
	}
}

// TestFWCfgE820: the memory map fw_cfg gives firmware, for RAM below the
// hole and for RAM that continues above 4 GiB.
func TestFWCfgE820(t *testing.T) {
	e := func(addr, size uint64, typ uint32) fwcfg.E820Entry {
		return fwcfg.E820Entry{Addr: addr, Size: size, Type: typ}
	}
	legacy := []fwcfg.E820Entry{e(0, layout.EBDA, 1), e(layout.EBDA, layout.HighRAM-layout.EBDA, 2)}
	for _, tt := range []struct {
		size uint64
		want []fwcfg.E820Entry
	}{
		{64 << 20, append(legacy[:2:2], e(layout.HighRAM, 63<<20, 1))},
		{4 << 30, append(legacy[:2:2], e(layout.HighRAM, layout.MMIOHoleStart-layout.HighRAM, 1), e(4<<30, 1<<30, 1))},
	} {
		mem, err := memory.New(memory.PCLayout(tt.size))
		if err != nil {
			t.Fatal(err)
		}
		if got := e820For(mem); !slices.Equal(got, tt.want) {
			t.Errorf("%d MiB: %+v, want %+v", tt.size>>20, got, tt.want)
		}
		mem.Close()
	}
}

// TestVirtioINTxLinesAreFree: no virtio function's INTx shares a GSI with a
// platform device; two devices driving one line with KVM_IRQ_LINE levels
// would lower each other's interrupt.
func TestVirtioINTxLinesAreFree(t *testing.T) {
	used := map[uint32]string{irqKeyboard: "i8042", uart.COM1IRQ: "COM1", irqRTC: "RTC", irqSCI: "ACPI SCI"}
	for _, g := range intxGSIs {
		if dev, ok := used[g]; ok {
			t.Errorf("virtio INTx on GSI %d, the %s's line", g, dev)
		}
	}
}
