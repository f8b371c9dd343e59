package edu

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"testing"

	"ember/devices/devicetest"
)

// fakeBus is the PCI bus's memory for tests: 64 KiB of RAM at 0, with an
// optional translation (an IOMMU) that adds offset and refuses addresses
// from refuseFrom on.
type fakeBus struct {
	ram        [64 << 10]byte
	offset     uint64
	refuseFrom uint64
	reads      []uint64
}

var errRefused = errors.New("refused")

func (b *fakeBus) at(addr uint64, n int) ([]byte, error) {
	if b.refuseFrom != 0 && addr >= b.refuseFrom {
		return nil, errRefused
	}
	addr += b.offset
	if addr+uint64(n) > uint64(len(b.ram)) {
		return nil, errRefused
	}
	return b.ram[addr : addr+uint64(n)], nil
}

func (b *fakeBus) DMARead(addr uint64, p []byte) error {
	b.reads = append(b.reads, addr)
	s, err := b.at(addr, len(p))
	if err == nil {
		copy(p, s)
	}
	return err
}

func (b *fakeBus) DMAWrite(addr uint64, p []byte) error {
	s, err := b.at(addr, len(p))
	if err == nil {
		copy(s, p)
	}
	return err
}

type msiRecord struct {
	addr uint64
	data uint32
}

type testDev struct {
	*Device
	devicetest.Registers
	bus  *fakeBus
	irq  *devicetest.IRQ
	msis []msiRecord
}

func newTestDev(t *testing.T) *testDev {
	t.Helper()
	td := &testDev{bus: &fakeBus{}, irq: &devicetest.IRQ{}}
	td.Device = New(Config{
		BAR: 0xc0100000, IRQ: td.irq, Line: 16, DMA: td.bus,
		MSI:    func(a uint64, d uint32) { td.msis = append(td.msis, msiRecord{a, d}) },
		Logger: slog.New(slog.DiscardHandler),
	})
	td.Registers = devicetest.Registers{Dev: td.Device}
	return td
}

func (td *testDev) cfgRead(reg uint16, n int) uint32 {
	var b [4]byte
	td.ConfigRead(0, 1, 0, reg, b[:n])
	return binary.LittleEndian.Uint32(b[:])
}

func (td *testDev) cfgWrite(reg uint16, n int, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	td.ConfigWrite(0, 1, 0, reg, b[:n])
}

func TestRegisters(t *testing.T) {
	td := newTestDev(t)
	if id := td.R32(regID); id != 0x010000ed {
		t.Errorf("ID %#x", id)
	}
	td.W32(regLiveness, 0x12345678)
	if v := td.R32(regLiveness); v != ^uint32(0x12345678) {
		t.Errorf("liveness %#x", v)
	}
	for _, f := range []struct{ n, want uint32 }{{0, 1}, {5, 120}, {12, 479001600}, {13, 1932053504}, {34, 0}, {0xffffffff, 0}} {
		td.W32(regFactorial, f.n)
		if got := td.R32(regFactorial); got != f.want || td.R32(regStatus)&statusComputing != 0 {
			t.Errorf("%d!: %d (status %#x), want %d", f.n, got, td.R32(regStatus), f.want)
		}
	}
	var b [2]byte
	td.Read(regID, b[:])
	if b != [2]byte{0xff, 0xff} {
		t.Errorf("2-byte read %x", b)
	}
	var q [8]byte
	td.Read(regID, q[:])
	if binary.LittleEndian.Uint64(q[:]) != ^uint64(0) {
		t.Errorf("8-byte read below 0x80: %x", q)
	}
	td.W64(regDMASrc, 0x1_2345_6789)
	if v := td.R32(regDMASrc); v != 0x23456789 {
		t.Errorf("DMA source low dword %#x", v)
	}
}

func TestInterruptsINTxAndMSI(t *testing.T) {
	td := newTestDev(t)
	td.W32(regIntRaise, 1)
	if !td.irq.High() || td.R32(regIntStatus) != 1 {
		t.Fatalf("raise: line %v, status %#x", td.irq.High(), td.R32(regIntStatus))
	}
	td.W32(regIntAck, 1)
	if td.irq.High() || td.R32(regIntStatus) != 0 {
		t.Fatal("acknowledged: line still high")
	}
	td.W32(regIntRaise, 0) // raising nothing: no interrupt
	if td.irq.High() {
		t.Error("a raise of 0 asserted the line")
	}
	// The MSI capability as kvm-unit-tests programs it: 64-bit address, data, enable.
	if id, ptr := td.cfgRead(msiCap, 1), td.cfgRead(regCapPtr, 1); id != capIDMSI || ptr != msiCap {
		t.Fatalf("capability list: ptr %#x id %#x", ptr, id)
	}
	if ctl := td.cfgRead(msiControl, 2); ctl&msi64Bit == 0 {
		t.Fatalf("MSI control %#x: not 64-bit", ctl)
	}
	td.cfgWrite(msiAddrLo, 4, 0xfee00030)
	td.cfgWrite(msiAddrHi, 4, 0)
	td.cfgWrite(msiData, 4, 0)
	td.cfgWrite(msiControl, 2, msiEnable)
	td.W32(regIntRaise, 1)
	if td.irq.High() || len(td.msis) != 1 || td.msis[0] != (msiRecord{0xfee00030, 0}) {
		t.Errorf("MSI raise: line %v, messages %v", td.irq.High(), td.msis)
	}
	td.W32(regIntAck, 1)
	td.cfgWrite(msiControl, 2, 0)
	td.cfgWrite(regCommand, 2, cmdMemory|cmdINTxDisable)
	td.W32(regIntRaise, 1)
	if td.irq.High() {
		t.Error("INTx disabled, yet the line rose")
	}
	td.cfgWrite(regCommand, 2, cmdMemory)
	if !td.irq.High() {
		t.Error("INTx enabled with the status set: the line stays low")
	}
}

func TestDMA(t *testing.T) {
	td := newTestDev(t)
	td.cfgWrite(regCommand, 2, cmdMemory|cmdBusMaster)
	td.bus.offset = 0x1000 // the "IOMMU" maps bus address a to RAM a+0x1000
	binary.LittleEndian.PutUint32(td.bus.ram[0x1000:], 0x12345678)
	dma := func(src, dst, count, cmd uint64) {
		td.W64(regDMASrc, src)
		td.W64(regDMADst, dst)
		td.W64(regDMACount, count)
		td.W32(regDMACmd, uint32(cmd))
		if td.R32(regDMACmd)&cmdStart != 0 {
			t.Fatal("DMA still running after its write")
		}
	}
	dma(0, BufferBase, 4, cmdStart)                      // RAM -> buffer[0]
	dma(BufferBase, 4, 4, cmdStart|cmdFromDevice|cmdIRQ) // buffer[0] -> bus 4
	if got := binary.LittleEndian.Uint32(td.bus.ram[0x1004:]); got != 0x12345678 {
		t.Errorf("bus address 4 holds %#x after the round trip", got)
	}
	if td.R32(regIntStatus) != intDMA || !td.irq.High() {
		t.Errorf("DMA interrupt: status %#x line %v", td.R32(regIntStatus), td.irq.High())
	}
	td.bus.reads = nil
	dma(1<<28|0x10, BufferBase, 4, cmdStart) // bus addresses are masked to 28 bits
	if len(td.bus.reads) != 1 || td.bus.reads[0] != 0x10 {
		t.Errorf("DMA read at %#x, want 0x10", td.bus.reads)
	}
	td.bus.reads = nil
	dma(0, BufferBase+BufferSize-2, 4, cmdStart) // past the buffer: dropped
	dma(0, 0x1000, 4, cmdStart)                  // not the buffer at all: dropped
	if len(td.bus.reads) != 0 {
		t.Errorf("transfers outside the buffer went to the bus: %v", td.bus.reads)
	}
	td.bus.refuseFrom = 0x100
	dma(BufferBase, 0x100, 4, cmdStart|cmdFromDevice) // refused by the "IOMMU": completes, nothing written
	td.cfgWrite(regCommand, 2, cmdMemory)
	dma(0, BufferBase, 4, cmdStart)
	if len(td.bus.reads) != 0 {
		t.Error("DMA without bus mastering reached the bus")
	}
}

func TestConfigSpace(t *testing.T) {
	td := newTestDev(t)
	if v, d := td.cfgRead(0, 2), td.cfgRead(2, 2); v != VendorID || d != DeviceID {
		t.Errorf("ID %04x:%04x", v, d)
	}
	if line, pin := td.cfgRead(regIntLine, 1), td.cfgRead(regIntPin, 1); line != 16 || pin != 1 {
		t.Errorf("interrupt line %d pin %d", line, pin)
	}
	var moved [2]uint32
	td.cfg.MoveBAR = func(old, new uint32) { moved = [2]uint32{old, new} }
	td.cfgWrite(regBAR0, 4, 0xffffffff)
	if size := td.cfgRead(regBAR0, 4); ^size+1 != BARSize {
		t.Errorf("BAR0 sizing reads %#x", size)
	}
	td.cfgWrite(regBAR0, 4, 0xc0100000)
	if moved != [2]uint32{0xfff00000, 0xc0100000} {
		t.Errorf("MoveBAR calls ended with %#x", moved)
	}
	td.cfgWrite(regBAR0, 4, 0xc0200000)
	td.W32(regLiveness, 7)
	td.W32(regIntRaise, 1)
	td.Reset()
	if moved != [2]uint32{0xc0200000, 0xc0100000} || td.cfgRead(regBAR0, 4) != 0xc0100000 {
		t.Errorf("reset: BAR0 %#x, last move %#x", td.cfgRead(regBAR0, 4), moved)
	}
	if td.irq.High() || td.R32(regIntStatus) != 0 || td.R32(regLiveness) != ^uint32(0) {
		t.Error("reset left the interrupt or the registers")
	}
	td.cfgWrite(0, 4, 0) // IDs are read-only
	if td.cfgRead(0, 2) != VendorID {
		t.Error("vendor ID changed")
	}
	if v := td.cfgRead(0x100, 4); v != 0xffffffff {
		t.Errorf("extended configuration space reads %#x", v)
	}
}
