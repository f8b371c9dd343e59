// Package eventfd is a VM's KVM eventfd plumbing: ioeventfds (a guest write
// that signals an eventfd inside the kernel, without an exit) and irqfds (an
// eventfd write that injects an interrupt inside the kernel), over one GSI
// routing table that every irqfd's route shares — a device model's MSI
// (ACRN's acrn_irqfd), a virtio-pci MSI-X vector of ember's own
// (MSIVector), a Hyper-V SynIC's SINT (hv's SINT routes). The VM core
// (hv.VM.EventFDs) owns one Service per VM; it is its own package so the
// core's vCPU and run-state code stays apart from the routing table's.
package eventfd

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
// PICs'); irqfd routes take GSIs from FirstGSI up.
const (
	irqchipGSIs = 24
	// FirstGSI is the GSI the first irqfd gets: the lowest one above the
	// irqchip's pins.
	FirstGSI = irqchipGSIs
	// maxMSIGSIs bounds the irqfd routes one VM's devices may hold; KVM
	// allows 4096 routing entries (KVM_MAX_IRQ_ROUTES), the irqchip's 40
	// among them.
	maxMSIGSIs = 1024
)

// Service serves a VM's acrn_ioeventfd and acrn_irqfd (devicemodel.EventFDs) on
// KVM: an ioeventfd is a KVM_IOEVENTFD, an irqfd a KVM_IRQFD on a GSI of its
// own that the GSI routing table sends to the irqfd's MSI. Both work inside
// the kernel: a guest write that matches an ioeventfd signals it without an
// exit, and a signal on an irqfd injects its MSI without a trip through ember.
// Devices inside ember get irqfds of their own the same way (NewMSIVector);
// both kinds share the VM's MSI GSIs and its routing table. Its methods are
// safe for concurrent use.
type Service struct {
	vm      *kvm.VM
	irqchip bool

	mu     sync.Mutex
	routes map[uint32]kvm.IRQRoutingEntry // GSI -> route of an irqfd in use (an MSI, or a SynIC's SINT)
	irqfds map[uint64]uint32              // eventfd-id -> its GSI
}

var _ devicemodel.EventFDs = (*Service)(nil)

// New returns the eventfd service of a KVM VM; irqchip says whether it has
// the in-kernel irqchip (irqfds need one).
func New(vm *kvm.VM, irqchip bool) *Service {
	return &Service{vm: vm, irqchip: irqchip, routes: map[uint32]kvm.IRQRoutingEntry{}, irqfds: map[uint64]uint32{}}
}

// IOEventFD assigns (or with acrn.IOEventFDFlagDeassign removes) an ioeventfd:
// a guest write of e.Len bytes (0: any width) to port (acrn.IOEventFDFlagPIO)
// or guest-physical address e.Addr, of the value e.Data if
// acrn.IOEventFDFlagDataMatch, signals fd in the kernel. fd need only be
// valid during the call: KVM keeps its own reference. Errors wrap the errno
// (EINVAL for a bad argument, KVM's EEXIST for a duplicate, ENOENT for a
// deassign that matches nothing).
func (f *Service) IOEventFD(e acrn.IOEventFD, fd int) error {
	const known = acrn.IOEventFDFlagPIO | acrn.IOEventFDFlagDataMatch | acrn.IOEventFDFlagDeassign
	if e.Flags&^known != 0 {
		return fmt.Errorf("eventfd: ioeventfd: %w: unknown flags %#x", unix.EINVAL, e.Flags&^known)
	}
	switch e.Len {
	case 0, 1, 2, 4, 8:
	default:
		return fmt.Errorf("eventfd: ioeventfd: %w: length %d", unix.EINVAL, e.Len)
	}
	if e.Len == 0 && e.Flags&acrn.IOEventFDFlagDataMatch != 0 {
		return fmt.Errorf("eventfd: ioeventfd: %w: data match needs a length", unix.EINVAL)
	}
	if e.Flags&acrn.IOEventFDFlagPIO != 0 && e.Addr+uint64(e.Len) > 0x10000 {
		return fmt.Errorf("eventfd: ioeventfd: %w: port %#x length %d", unix.EINVAL, e.Addr, e.Len)
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
		return fmt.Errorf("eventfd: ioeventfd at %#x: %w", e.Addr, err)
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
func (f *Service) IRQFD(q acrn.IRQFD, fd int) error {
	if q.Flags&^acrn.IRQFDFlagDeassign != 0 {
		return fmt.Errorf("eventfd: irqfd: %w: unknown flags %#x", unix.EINVAL, q.Flags&^acrn.IRQFDFlagDeassign)
	}
	if !f.irqchip {
		return fmt.Errorf("eventfd: irqfd: %w: the VM has no in-kernel irqchip", unix.ENOTSUP)
	}
	id, err := eventfdID(fd)
	if err != nil {
		return fmt.Errorf("eventfd: irqfd: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if q.Flags&acrn.IRQFDFlagDeassign != 0 {
		return f.deassignIRQFD(id, fd)
	}
	if q.MSI.MSIData>>32 != 0 {
		return fmt.Errorf("eventfd: irqfd: %w: MSI data %#x wider than 32 bits", unix.EINVAL, q.MSI.MSIData)
	}
	if _, ok := f.irqfds[id]; ok {
		return fmt.Errorf("eventfd: irqfd: %w: the eventfd is already an irqfd", unix.EBUSY)
	}
	gsi, ok := f.freeGSI()
	if !ok {
		return fmt.Errorf("eventfd: irqfd: %w: all %d MSI routes in use", unix.ENOSPC, maxMSIGSIs)
	}
	f.routes[gsi] = kvm.MSIRoute(gsi, q.MSI.MSIAddr, uint32(q.MSI.MSIData))
	if err := f.setRouting(); err != nil {
		delete(f.routes, gsi)
		return fmt.Errorf("eventfd: irqfd: routing GSI %d to MSI %#x/%#x: %w", gsi, q.MSI.MSIAddr, q.MSI.MSIData, err)
	}
	if err := f.vm.IRQFD(kvm.IRQFD{Fd: uint32(fd), GSI: gsi}); err != nil {
		delete(f.routes, gsi)
		f.setRouting() // back to the table without it; it worked with it, so it works without
		return fmt.Errorf("eventfd: irqfd on GSI %d: %w", gsi, err)
	}
	f.irqfds[id] = gsi
	return nil
}

func (f *Service) deassignIRQFD(id uint64, fd int) error {
	gsi, ok := f.irqfds[id]
	if !ok {
		return fmt.Errorf("eventfd: irqfd: %w: the eventfd is not an irqfd of this VM", unix.ENOENT)
	}
	if err := f.vm.IRQFD(kvm.IRQFD{Fd: uint32(fd), GSI: gsi, Flags: kvm.IRQFDDeassign}); err != nil {
		return fmt.Errorf("eventfd: irqfd: removing GSI %d: %w", gsi, err)
	}
	delete(f.irqfds, id)
	delete(f.routes, gsi)
	if err := f.setRouting(); err != nil {
		return fmt.Errorf("eventfd: irqfd: dropping the route of GSI %d: %w", gsi, err)
	}
	return nil
}

// freeGSI returns the lowest GSI from FirstGSI up without a route.
func (f *Service) freeGSI() (uint32, bool) {
	for g := uint32(FirstGSI); g < FirstGSI+maxMSIGSIs; g++ {
		if _, used := f.routes[g]; !used {
			return g, true
		}
	}
	return 0, false
}

// MSIRoutes returns how many irqfd routes (a device model's irqfds,
// MSIVectors, SINT routes) are in use.
func (f *Service) MSIRoutes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.routes)
}

// Route returns the route the routing table gives gsi, if an irqfd holds
// it: what KVM delivers a signal on that irqfd as.
func (f *Service) Route(gsi uint32) (kvm.IRQRoutingEntry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.routes[gsi]
	return r, ok
}

// setRouting installs the whole routing table: KVM_SET_GSI_ROUTING replaces
// it, so it is KVM's default irqchip table plus every MSI route in use.
func (f *Service) setRouting() error {
	table := defaultIRQRoutes()
	for g := uint32(FirstGSI); g < FirstGSI+maxMSIGSIs && len(table) < irqchipRoutes+len(f.routes); g++ {
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
