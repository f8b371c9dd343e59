package kvm

import (
	"fmt"
	"runtime"
	"unsafe"

	"ember/kvm/kvmcap"

	"golang.org/x/sys/unix"
)

// VM ioctl numbers (include/uapi/linux/kvm.h).
var (
	kvmCreateVCPU          = io(0x41)
	kvmGetDirtyLog         = iow(0x42, sizeof[dirtyLog]())
	kvmSetUserMemoryRegion = iow(0x46, sizeof[userspaceMemoryRegion]())
	kvmSetTSSAddr          = io(0x47)
	kvmSetIdentityMapAddr  = iow(0x48, 8)
	kvmCreateIRQChip       = io(0x60)
	kvmIRQLine             = iow(0x61, sizeof[irqLevel]())
	kvmGetIRQChip          = iowr(0x62, sizeof[IRQChip]())
	kvmSetIRQChip          = ior(0x63, sizeof[IRQChip]())
	kvmIRQLineStatus       = iowr(0x67, sizeof[irqLevel]())
	kvmSetGSIRouting       = iow(0x6a, 8)
	kvmIRQFD               = iow(0x76, sizeof[IRQFD]())
	kvmCreatePIT2          = iow(0x77, sizeof[PITConfig]())
	kvmSetBootCPUID        = io(0x78)
	kvmIOEventFD           = iow(0x79, sizeof[IOEventFD]())
	kvmSetClock            = iow(0x7b, sizeof[ClockData]())
	kvmGetClock            = ior(0x7c, sizeof[ClockData]())
	kvmGetPIT2             = ior(0x9f, sizeof[PITState2]())
	kvmSetPIT2             = iow(0xa0, sizeof[PITState2]())
	kvmEnableCap           = iow(0xa3, sizeof[EnableCap]())
	kvmSignalMSI           = iow(0xa5, sizeof[MSI]())
	kvmCheckExtensionVM    = io(0x03)
)

// VM is a KVM virtual machine: the handle for VM ioctls. A VM owns its vCPUs'
// creation, its guest-physical memory map and its in-kernel devices.
type VM struct {
	fd      int
	sys     *System
	runSize int // KVM_GET_VCPU_MMAP_SIZE, from when the VM was created
}

// Fd returns the VM's raw descriptor.
func (vm *VM) Fd() int { return vm.fd }

// Close closes the VM descriptor. The kernel frees the VM once its vCPU
// descriptors and mappings are gone too.
func (vm *VM) Close() error {
	if vm.fd < 0 {
		return ErrClosed
	}
	err := unix.Close(vm.fd)
	vm.fd = -1
	return err
}

// CheckExtension issues KVM_CHECK_EXTENSION on the VM (KVM_CAP_CHECK_EXTENSION_VM):
// some capabilities answer per VM, e.g. KVM_CAP_MAX_VCPUS.
func (vm *VM) CheckExtension(c kvmcap.Cap) (int, error) {
	r, err := ioctlValue(vm.fd, "KVM_CHECK_EXTENSION", kvmCheckExtensionVM, uintptr(c))
	return int(r), err
}

// MemoryRegion describes one memory slot: guest-physical addresses
// [GuestPhysAddr, GuestPhysAddr+len(Memory)) backed by the host memory Memory.
type MemoryRegion struct {
	Slot          uint32
	Flags         uint32 // MemLogDirtyPages, MemReadonly
	GuestPhysAddr uint64
	Memory        []byte // page-aligned host memory, e.g. from unix.Mmap
}

// SetUserMemoryRegion issues KVM_SET_USER_MEMORY_REGION: it creates, moves or
// changes the flags of a memory slot. Memory must stay mapped, and must not be
// reused, for as long as the slot exists. Slots may not overlap in guest-physical
// space (EEXIST). An empty Memory deletes the slot.
func (vm *VM) SetUserMemoryRegion(r MemoryRegion) error {
	u := userspaceMemoryRegion{
		Slot:          r.Slot,
		Flags:         r.Flags,
		GuestPhysAddr: r.GuestPhysAddr,
		MemorySize:    uint64(len(r.Memory)),
	}
	if len(r.Memory) > 0 {
		u.UserspaceAddr = uint64(uintptr(sliceptr(r.Memory))) // mmap'd, outside Go's heap: it does not move
	}
	_, err := ioctl(vm.fd, "KVM_SET_USER_MEMORY_REGION", kvmSetUserMemoryRegion, ptr(&u))
	return err
}

// DeleteMemoryRegion removes a memory slot (KVM_SET_USER_MEMORY_REGION with size 0).
func (vm *VM) DeleteMemoryRegion(slot uint32) error {
	return vm.SetUserMemoryRegion(MemoryRegion{Slot: slot})
}

// GetDirtyLog issues KVM_GET_DIRTY_LOG for a slot created with MemLogDirtyPages:
// one bit per page, set if the guest wrote the page since the last call (the
// call also clears the log). bitmap must hold at least one bit per page of the
// slot, rounded up to 64 bits.
func (vm *VM) GetDirtyLog(slot uint32, bitmap []uint64) error {
	if len(bitmap) == 0 {
		return fmt.Errorf("kvm: KVM_GET_DIRTY_LOG: empty bitmap")
	}
	// The bitmap's address travels inside the struct, as a number: it must
	// be memory that does not move, so it is copied into (and back out of)
	// a buffer of its own on the heap, which Go never moves.
	heap := make([]uint64, len(bitmap))
	d := dirtyLog{Slot: slot, Bitmap: uintptr(sliceptr(heap))}
	_, err := ioctl(vm.fd, "KVM_GET_DIRTY_LOG", kvmGetDirtyLog, ptr(&d))
	runtime.KeepAlive(heap)
	copy(bitmap, heap)
	return err
}

// SetTSSAddr issues KVM_SET_TSS_ADDR: three pages of guest-physical address
// space, not used by the guest, that Intel VT-x needs for real-mode emulation.
func (vm *VM) SetTSSAddr(addr uint64) error {
	_, err := ioctlValue(vm.fd, "KVM_SET_TSS_ADDR", kvmSetTSSAddr, uintptr(addr))
	return err
}

// SetIdentityMapAddr issues KVM_SET_IDENTITY_MAP_ADDR: one page of
// guest-physical address space for the identity page table VT-x uses in real
// mode. It must be called before the first vCPU is created.
func (vm *VM) SetIdentityMapAddr(addr uint64) error {
	_, err := ioctl(vm.fd, "KVM_SET_IDENTITY_MAP_ADDR", kvmSetIdentityMapAddr, ptr(&addr))
	return err
}

// CreateIRQChip issues KVM_CREATE_IRQCHIP: an in-kernel PIC pair, IOAPIC and a
// local APIC per vCPU, with GSIs 0-15 routed to the PICs and IOAPIC and 16-23 to
// the IOAPIC. It must come before the first KVM_CREATE_VCPU.
func (vm *VM) CreateIRQChip() error {
	_, err := ioctlValue(vm.fd, "KVM_CREATE_IRQCHIP", kvmCreateIRQChip, 0)
	return err
}

// IRQLine issues KVM_IRQ_LINE: sets the level of a GSI on the in-kernel irqchip
// (for an edge-triggered line, raise then lower it).
func (vm *VM) IRQLine(gsi uint32, high bool) error {
	l := irqLevel{IRQ: gsi, Level: b2u(high)}
	_, err := ioctl(vm.fd, "KVM_IRQ_LINE", kvmIRQLine, ptr(&l))
	return err
}

// IRQLineStatus issues KVM_IRQ_LINE_STATUS: like IRQLine, and returns the
// delivery status (>0 delivered, 0 coalesced with a pending one, <0 masked).
func (vm *VM) IRQLineStatus(gsi uint32, high bool) (int32, error) {
	l := irqLevel{IRQ: gsi, Level: b2u(high)}
	_, err := ioctl(vm.fd, "KVM_IRQ_LINE_STATUS", kvmIRQLineStatus, ptr(&l))
	return int32(l.IRQ), err
}

// GetIRQChip issues KVM_GET_IRQCHIP for chip (IRQChipPICMaster, IRQChipPICSlave
// or IRQChipIOAPIC).
func (vm *VM) GetIRQChip(chip uint32) (*IRQChip, error) {
	c := &IRQChip{ChipID: chip}
	if _, err := ioctl(vm.fd, "KVM_GET_IRQCHIP", kvmGetIRQChip, ptr(c)); err != nil {
		return nil, err
	}
	return c, nil
}

// SetIRQChip issues KVM_SET_IRQCHIP with the state of the chip c.ChipID.
func (vm *VM) SetIRQChip(c *IRQChip) error {
	_, err := ioctl(vm.fd, "KVM_SET_IRQCHIP", kvmSetIRQChip, ptr(c))
	return err
}

// CreatePIT2 issues KVM_CREATE_PIT2: an in-kernel i8254 PIT on ports 0x40-0x43
// raising GSI 0. It needs the in-kernel irqchip first (KVM answers ENOENT).
func (vm *VM) CreatePIT2(c PITConfig) error {
	_, err := ioctl(vm.fd, "KVM_CREATE_PIT2", kvmCreatePIT2, ptr(&c))
	return err
}

// GetPIT2 issues KVM_GET_PIT2: the in-kernel PIT's state.
func (vm *VM) GetPIT2() (*PITState2, error) {
	s := &PITState2{}
	if _, err := ioctl(vm.fd, "KVM_GET_PIT2", kvmGetPIT2, ptr(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// SetPIT2 issues KVM_SET_PIT2.
func (vm *VM) SetPIT2(s *PITState2) error {
	_, err := ioctl(vm.fd, "KVM_SET_PIT2", kvmSetPIT2, ptr(s))
	return err
}

// SetGSIRouting issues KVM_SET_GSI_ROUTING: it replaces the whole GSI routing
// table with entries. A GSI may appear more than once (delivered to each).
func (vm *VM) SetGSIRouting(entries []IRQRoutingEntry) error {
	es := unsafe.Sizeof(IRQRoutingEntry{})
	w := make([]uint64, 1+(uintptr(len(entries))*es)/8)
	*(*uint32)(unsafe.Pointer(&w[0])) = uint32(len(entries))
	if len(entries) > 0 {
		dst := unsafe.Slice((*IRQRoutingEntry)(unsafe.Pointer(&w[1])), len(entries))
		copy(dst, entries)
	}
	_, err := ioctl(vm.fd, "KVM_SET_GSI_ROUTING", kvmSetGSIRouting, sliceptr(w))
	return err
}

// SignalMSI issues KVM_SIGNAL_MSI: it injects one MSI. It returns >0 if the
// interrupt was delivered, 0 if the guest blocked it.
func (vm *VM) SignalMSI(m MSI) (int, error) {
	r, err := ioctl(vm.fd, "KVM_SIGNAL_MSI", kvmSignalMSI, ptr(&m))
	return int(r), err
}

// IOEventFD issues KVM_IOEVENTFD: it assigns (or, with IOEventFDDeassign,
// removes) an ioeventfd.
func (vm *VM) IOEventFD(e IOEventFD) error {
	_, err := ioctl(vm.fd, "KVM_IOEVENTFD", kvmIOEventFD, ptr(&e))
	return err
}

// IRQFD issues KVM_IRQFD: it assigns (or, with IRQFDDeassign, removes) an irqfd.
func (vm *VM) IRQFD(f IRQFD) error {
	_, err := ioctl(vm.fd, "KVM_IRQFD", kvmIRQFD, ptr(&f))
	return err
}

// SetBootCPUID issues KVM_SET_BOOT_CPU_ID: which vCPU id is the BSP (default 0).
// It must come before any vCPU is created.
func (vm *VM) SetBootCPUID(id uint32) error {
	_, err := ioctlValue(vm.fd, "KVM_SET_BOOT_CPU_ID", kvmSetBootCPUID, uintptr(id))
	return err
}

// EnableCap issues KVM_ENABLE_CAP on the VM (KVM_CAP_ENABLE_CAP_VM): turns on a
// capability that changes VM behaviour, with its arguments.
func (vm *VM) EnableCap(c EnableCap) error {
	_, err := ioctl(vm.fd, "KVM_ENABLE_CAP", kvmEnableCap, ptr(&c))
	return err
}

// GetClock issues KVM_GET_CLOCK: the VM's kvmclock value.
func (vm *VM) GetClock() (ClockData, error) {
	var c ClockData
	_, err := ioctl(vm.fd, "KVM_GET_CLOCK", kvmGetClock, ptr(&c))
	return c, err
}

// SetClock issues KVM_SET_CLOCK.
func (vm *VM) SetClock(c ClockData) error {
	_, err := ioctl(vm.fd, "KVM_SET_CLOCK", kvmSetClock, ptr(&c))
	return err
}

// CreateVCPU issues KVM_CREATE_VCPU and maps the new vCPU's kvm_run structure.
// id is the vCPU's APIC id; KVM refuses ids at or above KVM_CAP_MAX_VCPU_ID (EINVAL)
// and a second vCPU with the same id (EEXIST).
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	size := vm.runSize
	r, err := ioctlValue(vm.fd, "KVM_CREATE_VCPU", kvmCreateVCPU, uintptr(id))
	if err != nil {
		return nil, err
	}
	fd := int(r)
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kvm: mmap kvm_run of vCPU %d: %w", id, err)
	}
	return newVCPU(fd, id, mem), nil
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
