package pc

import (
	"strings"
	"testing"
	"time"

	"ember/guest"
	"ember/hv"
	"ember/layout"
	"ember/pc/fwtables"
)

// TestUARTLoopbackAndInterruptDrivenTransmit runs a guest that does what a
// serial driver does: a loopback self-test, then a transmit paced by
// THR-empty interrupts arriving through the in-kernel PIC on IRQ 4.
func TestUARTLoopbackAndInterruptDrivenTransmit(t *testing.T) {
	h := openHV(t)
	var serial strings.Builder
	res, _, vals := runProgram(t, h, guest.UART, hv.Config{}, Config{Serial: &serial})
	if res.Reason != hv.StopExit || res.Status != 0 {
		t.Fatalf("result %v; reports %#x; COM1 %q", res, vals, serial.String())
	}
	const msg = "sent by interrupts\n"
	// LSR after the loopback write: data ready (bit 0), THR and transmitter empty (5, 6).
	if len(vals) != 3 || vals[0]&0x61 != 0x61 || vals[1] != 'L' || vals[2] != uint64(len(msg)) {
		t.Errorf("guest reported %#x; want LSR with DR|THRE|TEMT, 'L', %d bytes sent", vals, len(msg))
	}
	if serial.String() != msg {
		t.Errorf("COM1 output %q, want %q (loopback bytes must not reach the host)", serial.String(), msg)
	}
}

// TestPITInterruptsReachTheGuest runs a guest that programs the in-kernel PIT
// for 10 ms ticks and counts five of them in its IRQ 0 handler.
func TestPITInterruptsReachTheGuest(t *testing.T) {
	h := openHV(t)
	start := time.Now()
	res, _, vals := runProgram(t, h, guest.PIT, hv.Config{}, Config{})
	elapsed := time.Since(start)
	if res.Reason != hv.StopExit || res.Status != 0 || len(vals) != 1 || vals[0] != 5 {
		t.Fatalf("result %v, reports %v; want exit 0 after 5 ticks", res, vals)
	}
	// Five periods of 10 ms, the first possibly short: at least 40 ms.
	if elapsed < 40*time.Millisecond {
		t.Errorf("5 ticks of 10 ms took only %v", elapsed)
	}
}

// TestI8042ResetEndsTheRun checks that the guest's CPU reset through the
// keyboard controller stops the run with StopReset (the caller then ends or
// reboots the VM, see ember run --reboot).
func TestI8042ResetEndsTheRun(t *testing.T) {
	h := openHV(t)
	res, _, _ := runProgram(t, h, guest.Reset, hv.Config{}, Config{})
	if res.Reason != hv.StopReset {
		t.Fatalf("result %v, want reset", res)
	}
}

// TestAPStartsByINITAndSIPI runs a 2-vCPU guest whose BSP wakes the AP with
// INIT and a startup IPI through the in-kernel LAPIC, as Linux's SMP boot does.
func TestAPStartsByINITAndSIPI(t *testing.T) {
	h := openHV(t)
	res, _, vals := runProgram(t, h, guest.SMP, hv.Config{VCPUs: 2}, Config{})
	if res.Reason != hv.StopExit || res.Status != 1 || len(vals) != 1 || vals[0] != 0x101 {
		t.Fatalf("result %v, reports %#x; want exit 1 and 0x101 (the AP, APIC id 1)", res, vals)
	}
}

// TestManyVCPUsOnThePCPlatform: more vCPUs than an MP table holds still make
// a PC VM; ACPI describes them all.
func TestManyVCPUsOnThePCPlatform(t *testing.T) {
	h := openHV(t)
	vm := newPC(t, h, hv.Config{VCPUs: fwtables.MPMaxCPUs + 2}, Config{})
	mem := vm.Memory()
	fp := make([]byte, 4)
	mem.ReadAt(fp, layout.MPTable)
	if string(fp) == "_MP_" {
		t.Error("an MP table was written for more vCPUs than it can hold")
	}
	// The MADT in guest RAM lists one enabled local APIC per vCPU.
	madt := make([]byte, 36+8+(fwtables.MPMaxCPUs+2)*8)
	if _, err := mem.ReadAt(madt, fwtables.MADTAddr); err != nil {
		t.Fatal(err)
	}
	lapics := 0
	for e := madt[44:]; len(e) >= 8 && e[0] == 0; /* MADT Processor Local APIC */ e = e[8:] {
		lapics++
	}
	if string(madt[:4]) != "APIC" || lapics != fwtables.MPMaxCPUs+2 {
		t.Errorf("guest RAM holds a %q table with %d local APICs, want APIC with %d", madt[:4], lapics, fwtables.MPMaxCPUs+2)
	}
}
