package hv

import (
	"fmt"

	"ember/kvm"
	"ember/memory"
)

// setupMemory maps the guest's RAM and gives it to KVM, one slot per region.
func (vm *VM) setupMemory() error {
	size := (vm.cfg.MemorySize + memory.PageSize - 1) &^ (memory.PageSize - 1)
	newMem := memory.New
	if vm.cfg.DeviceModelSocket != "" || vm.cfg.SharedMemory {
		newMem = memory.NewShared // so device models can map the guest's RAM
	}
	var ranges []memory.Range
	if size > 0 {
		ranges = memory.PCLayout(size)
	}
	mem, err := newMem(ranges)
	if err != nil {
		return fmt.Errorf("hv: guest memory: %w", err)
	}
	vm.mem = mem
	for _, r := range mem.Regions() {
		reg := kvm.MemoryRegion{Slot: vm.allocSlot(), GuestPhysAddr: r.GPA, Memory: r.Host}
		if err := vm.kvm.SetUserMemoryRegion(reg); err != nil {
			return fmt.Errorf("hv: mapping RAM at %#x: %w", r.GPA, err)
		}
	}
	return nil
}

// MapMemory makes host, memory another owner keeps mapped for as long as
// this VM may use it, the guest's RAM at gpa: a KVM memory slot (read-only if
// readOnly; guest writes then exit as MMIO) and a region of Memory(), so the
// checked accessor sees what the guest sees. It returns the slot, for
// UnmapMemory. gpa and len(host) must be page-aligned and clear of the RAM
// mapped so far. A running VM should be paused: a vCPU must not see a
// half-made map.
func (vm *VM) MapMemory(gpa uint64, host []byte, readOnly bool) (slot uint32, err error) {
	if err := vm.mem.Map(gpa, host); err != nil {
		return 0, fmt.Errorf("hv: %w", err)
	}
	var flags uint32
	if readOnly {
		flags = kvm.MemReadonly
	}
	vm.slotMu.Lock()
	defer vm.slotMu.Unlock()
	slot = vm.allocSlotLocked()
	r := kvm.MemoryRegion{Slot: slot, Flags: flags, GuestPhysAddr: gpa, Memory: host}
	if err := vm.kvm.SetUserMemoryRegion(r); err != nil {
		vm.freeSlots = append(vm.freeSlots, slot)
		vm.mem.Unmap(gpa)
		return 0, fmt.Errorf("hv: mapping %#x+%#x: %w", gpa, len(host), err)
	}
	vm.slotGPA[slot] = gpa
	return slot, nil
}

// UnmapMemory removes a mapping MapMemory made.
func (vm *VM) UnmapMemory(slot uint32) error {
	vm.slotMu.Lock()
	defer vm.slotMu.Unlock()
	gpa, ok := vm.slotGPA[slot]
	if !ok {
		return fmt.Errorf("hv: no mapping in slot %d", slot)
	}
	if err := vm.kvm.DeleteMemoryRegion(slot); err != nil {
		return fmt.Errorf("hv: unmapping slot %d: %w", slot, err)
	}
	delete(vm.slotGPA, slot)
	vm.freeSlots = append(vm.freeSlots, slot)
	return vm.mem.Unmap(gpa)
}

// allocSlot returns a free KVM memory slot number.
func (vm *VM) allocSlot() uint32 {
	vm.slotMu.Lock()
	defer vm.slotMu.Unlock()
	return vm.allocSlotLocked()
}

func (vm *VM) allocSlotLocked() uint32 {
	if n := len(vm.freeSlots); n > 0 {
		s := vm.freeSlots[n-1]
		vm.freeSlots = vm.freeSlots[:n-1]
		return s
	}
	if vm.slotGPA == nil {
		vm.slotGPA = map[uint32]uint64{}
	}
	vm.nextSlot++
	return vm.nextSlot - 1
}
