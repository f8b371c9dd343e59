package pc

import (
	"fmt"

	"ember/devices/fwcfg"
	"ember/hv"
	"ember/layout"
	"ember/memory"
)

// e820 types of the fw_cfg memory map.
const (
	e820RAM      = 1
	e820Reserved = 2
)

// newFWCfg returns the fw_cfg device for vm, QEMU's items filled in: RAM
// size, CPU counts, no display, and "etc/e820", the memory map firmware
// reads.
func newFWCfg(vm *hv.VM) (*fwcfg.FWCfg, error) {
	f := fwcfg.New()
	f.SetU64(fwcfg.KeyRAMSize, vm.Memory().Size())
	f.SetU16(fwcfg.KeyNBCPUs, uint16(vm.NumVCPUs()))
	f.SetU16(fwcfg.KeyMaxCPUs, uint16(vm.NumVCPUs()))
	f.SetU16(fwcfg.KeyNoGraphic, 1)
	if err := f.AddFile("etc/e820", fwcfg.E820(e820For(vm.Memory()))); err != nil {
		return nil, fmt.Errorf("pc: fw_cfg: %w", err)
	}
	return f, nil
}

// e820For is guest RAM as a PC memory map: the first region split around
// the legacy area (the EBDA up to 1 MiB is reserved), every other region
// RAM.
func e820For(mem *memory.Guest) []fwcfg.E820Entry {
	var es []fwcfg.E820Entry
	for _, r := range mem.Regions() {
		if r.GPA != 0 || r.Size <= layout.HighRAM {
			es = append(es, fwcfg.E820Entry{Addr: r.GPA, Size: r.Size, Type: e820RAM})
			continue
		}
		es = append(es,
			fwcfg.E820Entry{Addr: 0, Size: layout.EBDA, Type: e820RAM},
			fwcfg.E820Entry{Addr: layout.EBDA, Size: layout.HighRAM - layout.EBDA, Type: e820Reserved},
			fwcfg.E820Entry{Addr: layout.HighRAM, Size: r.Size - layout.HighRAM, Type: e820RAM})
	}
	return es
}
