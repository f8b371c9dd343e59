package hv

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"ember/acrn"
	"ember/devicemodel"
	"ember/kvm"
)

// GSIs of the in-kernel irqchip: 0-23 are the IOAPIC's pins (0-15 also the
// PICs'); irqfd MSI routes take GSIs from firstMSIGSI up.
const (
	irqchipGSIs = 24
	firstMSIGSI = irqchipGSIs
	// maxMSIGSIs bounds the MSI routes one VM's device models may hold; KVM
	// allows 4096 routing entries (KVM_MAX_IRQ_ROUTES), the irqchip's 40
	// among them.
	maxMSIGSIs = 1024
)

// EventFDs serves a VM's acrn_ioeventfd and acrn_irqfd (devicemodel.EventFDs) on
// KVM: an ioeventfd is a KVM_IOEVENTFD, an irqfd a KVM_IRQFD on a GSI of its
// own that the GSI routing table sends to the irqfd's MSI. Both work inside
// the kernel: a guest write that matches an ioeventfd signals it without an
// exit, and a signal on an irqfd injects its MSI without a trip through ember.
// Its methods are safe for concurrent use.
type EventFDs struct {
	vm      *kvm.VM
	irqchip bool

	mu     sync.Mutex
	routes map[uint32]kvm.IRQRoutingEntry // GSI -> MSI route of an irqfd in use
	irqfds map[uint64]uint32              // eventfd-id -> its GSI
}

var _ devicemodel.EventFDs = (*EventFDs)(nil)

// newEventFDs returns the eventfd service of a KVM VM; irqchip says whether
// it has the in-kernel irqchip (irqfds need one).
func newEventFDs(vm *kvm.VM, irqchip bool) *EventFDs {
	return &EventFDs{vm: vm, irqchip: irqchip, routes: map[uint32]kvm.IRQRoutingEntry{}, irqfds: map[uint64]uint32{}}
}

// EventFDs returns the VM's ioeventfd/irqfd service, the one an
// out-of-process device model's IOEVENTFD and IRQFD reach.
func (vm *VM) EventFDs() *EventFDs {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.eventfds == nil {
		vm.eventfds = newEventFDs(vm.kvm, !vm.cfg.NoIRQChip)
	}
	return vm.eventfds
}

// IOEventFD assigns (or with acrn.IOEventFDFlagDeassign removes) an ioeventfd:
// a guest write of e.Len bytes (0: any width) to port (acrn.IOEventFDFlagPIO)
// or guest-physical address e.Addr, of the value e.Data if
// acrn.IOEventFDFlagDataMatch, signals fd in the kernel. fd need only be
// valid during the call: KVM keeps its own reference. Errors wrap the errno
// (EINVAL for a bad argument, KVM's EEXIST for a duplicate, ENOENT for a
// deassign that matches nothing).
func (f *EventFDs) IOEventFD(e acrn.IOEventFD, fd int) error {
	const known = acrn.IOEventFDFlagPIO | acrn.IOEventFDFlagDataMatch | acrn.IOEventFDFlagDeassign
	if e.Flags&^known != 0 {
		return fmt.Errorf("hv: ioeventfd: %w: unknown flags %#x", unix.EINVAL, e.Flags&^known)
	}
	switch e.Len {
	case 0, 1, 2, 4, 8:
	default:
		return fmt.Errorf("hv: ioeventfd: %w: length %d", unix.EINVAL, e.Len)
	}
	if e.Len == 0 && e.Flags&acrn.IOEventFDFlagDataMatch != 0 {
		return fmt.Errorf("hv: ioeventfd: %w: data match needs a length", unix.EINVAL)
	}
	if e.Flags&acrn.IOEventFDFlagPIO != 0 && e.Addr+uint64(e.Len) > 0x10000 {
		return fmt.Errorf("hv: ioeventfd: %w: port %#x length %d", unix.EINVAL, e.Addr, e.Len)
	}
	k := kvm.IOEventFD{Addr: e.Addr, Len: e.Len, Fd: int32(fd)}
	if e.Flags&acrn.IOEventFDFlagPIO != 0 {
		k.Flags |= kvm.IOEventFDPIO
	}
	if e.Flags&acrn.IOEventFDFlagDataMatch != 0 {
		k.Flags |= kvm.IOEventFDDataMatch
		k.DataMatch = e.Data
	}
	if e.Flags&acrn.IOEventFDFlagDeassign != 0 {
		k.Flags |= kvm.IOEventFDDeassign
	}
	if err := f.vm.IOEventFD(k); err != nil {
		return fmt.Errorf("hv: ioeventfd at %#x: %w", e.Addr, err)
	}
	return nil
}

// IRQFD assigns (or with acrn.IRQFDFlagDeassign removes) an irqfd: a signal on
// fd injects the MSI q.MSI. Assigning takes a free GSI from 24 up, routes it
// to the MSI and binds fd to it; deassigning finds the GSI the eventfd was
// bound to (by the eventfd's identity, not its number, which differs between
// calls), unbinds it and drops its route. Errors wrap the errno: ENOTSUP
// without an in-kernel irqchip, EINVAL for a bad argument, ENOSPC when no
// GSI is free, ENOENT for a deassign of an eventfd not bound here, and KVM's
// (EBUSY: the eventfd is already an irqfd).
func (f *EventFDs) IRQFD(q acrn.IRQFD, fd int) error {
	if q.Flags&^acrn.IRQFDFlagDeassign != 0 {
		return fmt.Errorf("hv: irqfd: %w: unknown flags %#x", unix.EINVAL, q.Flags&^acrn.IRQFDFlagDeassign)
	}
	if !f.irqchip {
		return fmt.Errorf("hv: irqfd: %w: the VM has no in-kernel irqchip", unix.ENOTSUP)
	}
	id, err := eventfdID(fd)
	if err != nil {
		return fmt.Errorf("hv: irqfd: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if q.Flags&acrn.IRQFDFlagDeassign != 0 {
		return f.deassignIRQFD(id, fd)
	}
	if q.MSI.MSIData>>32 != 0 {
		return fmt.Errorf("hv: irqfd: %w: MSI data %#x wider than 32 bits", unix.EINVAL, q.MSI.MSIData)
	}
	if _, ok := f.irqfds[id]; ok {
		return fmt.Errorf("hv: irqfd: %w: the eventfd is already an irqfd", unix.EBUSY)
	}
	gsi, ok := f.freeGSI()
	if !ok {
		return fmt.Errorf("hv: irqfd: %w: all %d MSI routes in use", unix.ENOSPC, maxMSIGSIs)
	}
	f.routes[gsi] = kvm.MSIRoute(gsi, q.MSI.MSIAddr, uint32(q.MSI.MSIData))
	if err := f.setRouting(); err != nil {
		delete(f.routes, gsi)
		return fmt.Errorf("hv: irqfd: routing GSI %d to MSI %#x/%#x: %w", gsi, q.MSI.MSIAddr, q.MSI.MSIData, err)
	}
	if err := f.vm.IRQFD(kvm.IRQFD{Fd: uint32(fd), GSI: gsi}); err != nil {
		delete(f.routes, gsi)
		f.setRouting() // back to the table without it; it worked with it, so it works without
		return fmt.Errorf("hv: irqfd on GSI %d: %w", gsi, err)
	}
	f.irqfds[id] = gsi
	return nil
}

func (f *EventFDs) deassignIRQFD(id uint64, fd int) error {
	gsi, ok := f.irqfds[id]
	if !ok {
		return fmt.Errorf("hv: irqfd: %w: the eventfd is not an irqfd of this VM", unix.ENOENT)
	}
	if err := f.vm.IRQFD(kvm.IRQFD{Fd: uint32(fd), GSI: gsi, Flags: kvm.IRQFDDeassign}); err != nil {
		return fmt.Errorf("hv: irqfd: removing GSI %d: %w", gsi, err)
	}
	delete(f.irqfds, id)
	delete(f.routes, gsi)
	if err := f.setRouting(); err != nil {
		return fmt.Errorf("hv: irqfd: dropping the route of GSI %d: %w", gsi, err)
	}
	return nil
}

// freeGSI returns the lowest GSI from firstMSIGSI up without a route.
func (f *EventFDs) freeGSI() (uint32, bool) {
	for g := uint32(firstMSIGSI); g < firstMSIGSI+maxMSIGSIs; g++ {
		if _, used := f.routes[g]; !used {
			return g, true
		}
	}
	return 0, false
}

// MSIRoutes returns how many MSI routes (so irqfds) are in use.
func (f *EventFDs) MSIRoutes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.routes)
}

// setRouting installs the whole routing table: KVM_SET_GSI_ROUTING replaces
// it, so it is KVM's default irqchip table plus every MSI route in use.
func (f *EventFDs) setRouting() error {
	table := defaultIRQRoutes()
	for g := uint32(firstMSIGSI); g < firstMSIGSI+maxMSIGSIs && len(table) < irqchipRoutes+len(f.routes); g++ {
		if r, ok := f.routes[g]; ok {
			table = append(table, r)
		}
	}
	return f.vm.SetGSIRouting(table)
}

// irqchipRoutes is the length of KVM's default table.
const irqchipRoutes = irqchipGSIs + 16

// defaultIRQRoutes is the table KVM installs with KVM_CREATE_IRQCHIP
// (kvm_setup_default_irq_routing, arch/x86/kvm/irq_comm.c): GSI n goes to
// IOAPIC pin n for n < 24, and for n < 16 also to pin n%8 of the master
// (n < 8) or slave PIC. KVM's table keeps GSI 2 on PIC pin 2 (QEMU drops
// that one, since the cascade never carries a device's interrupt); ember
// keeps KVM's, so an irqfd's route changes nothing for the legacy lines.
func defaultIRQRoutes() []kvm.IRQRoutingEntry {
	t := make([]kvm.IRQRoutingEntry, 0, irqchipRoutes+8)
	for gsi := uint32(0); gsi < irqchipGSIs; gsi++ {
		t = append(t, kvm.IRQChipRoute(gsi, kvm.IRQChipIOAPIC, gsi))
		if gsi < 16 {
			chip := uint32(kvm.IRQChipPICMaster)
			if gsi >= 8 {
				chip = kvm.IRQChipPICSlave
			}
			t = append(t, kvm.IRQChipRoute(gsi, chip, gsi%8))
		}
	}
	return t
}

// eventfdID returns the kernel's id of the eventfd behind fd (its
// "eventfd-id" in /proc/self/fdinfo): the same for every descriptor of one
// eventfd, in this process or received from another, while it lives.
func eventfdID(fd int) (uint64, error) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, fmt.Errorf("%w: fd %d: %v", unix.EBADF, fd, err)
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("eventfd-id:")); ok {
			id, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%w: fd %d: eventfd-id %q", unix.EINVAL, fd, v)
			}
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: fd %d is not an eventfd", unix.EINVAL, fd)
}
