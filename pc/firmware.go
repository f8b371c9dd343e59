package pc

import (
	"fmt"

	"golang.org/x/sys/unix"

	"ember/hv"
	"ember/layout"
	"ember/memory"
	"ember/x86"
)

// Firmware ROM limits: whole pages, at most 16 MiB (QEMU's limit for -bios;
// the space from layout.FirmwareTop down, above KVM's pages), and the part a
// PC also shows below 1 MiB, the last 128 KiB at most.
const (
	MaxFirmwareSize = 16 << 20
	lowBIOSSize     = 128 << 10
	lowBIOSEnd      = 1 << 20
)

// ResetVector is where a PC's CPU starts: F000:FFF0, in the low copy of the
// firmware's last 64 KiB.
var ResetVector = x86.Entry{Mode: x86.RealMode, RIP: 0xffff0}

// LoadFirmware maps rom as a PC's firmware: read-only at the top of the
// 4 GiB space (writes to it are dropped), and its last 128 KiB (all of it
// if smaller) copied into RAM just below 1 MiB, where the CPU starts at
// F000:FFF0 (ResetVector). The low copy covers the legacy area where Attach
// put the MP and ACPI tables: firmware brings its own. The ROM must be whole
// pages and at most MaxFirmwareSize.
func LoadFirmware(vm *hv.VM, rom []byte) error {
	if err := CheckFirmware(rom); err != nil {
		return err
	}
	host, err := unix.Mmap(-1, 0, len(rom), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("pc: memory for the firmware: %w", err)
	}
	copy(host, rom)
	if _, err := vm.MapMemory(layout.FirmwareTop-uint64(len(rom)), host, true); err != nil {
		unix.Munmap(host)
		return fmt.Errorf("pc: mapping the firmware below 4 GiB: %w", err)
	}
	vm.OnClose(func() { unix.Munmap(host) })
	low := rom[len(rom)-min(len(rom), lowBIOSSize):]
	if err := vm.LoadImage(low, lowBIOSEnd-uint64(len(low))); err != nil {
		return fmt.Errorf("pc: the firmware's copy below 1 MiB: %w", err)
	}
	return nil
}

// CheckFirmware refuses a ROM LoadFirmware cannot map, with the reason.
func CheckFirmware(rom []byte) error {
	switch {
	case len(rom) == 0:
		return fmt.Errorf("pc: the firmware image is empty")
	case len(rom)%memory.PageSize != 0:
		return fmt.Errorf("pc: the firmware image is %d bytes, not a multiple of %d", len(rom), memory.PageSize)
	case len(rom) > MaxFirmwareSize:
		return fmt.Errorf("pc: the firmware image is %d bytes, more than %d", len(rom), MaxFirmwareSize)
	}
	return nil
}
