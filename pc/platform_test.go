package pc

import (
	"slices"
	"testing"

	"ember/acrn/iorequest"
	"ember/devices/fwcfg"
	"ember/devices/uart"
	"ember/ioreq"
	"ember/layout"
	"ember/memory"
	"ember/pc/fwtables"
	virtiopci "ember/virtio/pci"
)

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
	pio := func(dir iorequest.Direction, port uint16, size int, v uint32) uint64 {
		req := ioreq.PIORequest(dir, port, size, v)
		got, err := d.Emulate(0, &req)
		if err != nil {
			t.Fatalf("port %#x: %v", port, err)
		}
		return got
	}
	cfg := func(b, dv, f, reg uint32) uint32 {
		pio(iorequest.DirWrite, 0xcf8, 4, 1<<31|b<<16|dv<<11|f<<8|reg)
		return uint32(pio(iorequest.DirRead, 0xcfc, 4, 0))
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
	pio(iorequest.DirWrite, 0xcf8, 4, 0x80000000)
	if got := pio(iorequest.DirRead, 0xcf8, 4, 0); got != 0x80000000 {
		t.Errorf("CONFIG_ADDRESS reads back %#x", got)
	}
	// A byte read at 0xCFE returns byte 2 of the register (the device id's low byte).
	cfg(0, 0, 0, 0)
	if got := pio(iorequest.DirRead, 0xcfe, 1, 0); got != hostBridgeDevice&0xff {
		t.Errorf("byte read at 0xcfe = %#x", got)
	}
	// The command register keeps what a driver writes.
	pio(iorequest.DirWrite, 0xcf8, 4, 1<<31|4)
	pio(iorequest.DirWrite, 0xcfc, 2, 0x0106)
	if got := cfg(0, 0, 0, 4) & 0xffff; got != 0x0106 {
		t.Errorf("command register reads %#x after writing 0x106", got)
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
	used := map[uint32]string{irqKeyboard: "i8042", uart.COM1IRQ: "COM1", irqRTC: "RTC", fwtables.IRQSCI: "ACPI SCI"}
	for _, g := range intxGSIs {
		if dev, ok := used[g]; ok {
			t.Errorf("virtio INTx on GSI %d, the %s's line", g, dev)
		}
	}
}
