package hv

import (
	"bytes"
	"errors"
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
	// maxMSIGSIs bounds the irqfd routes one VM's devices may hold; KVM
	// allows 4096 routing entries (KVM_MAX_IRQ_ROUTES), the irqchip's 40
	// among them.
	maxMSIGSIs = 1024
)

// EventFDs serves a VM's acrn_ioeventfd and acrn_irqfd (devicemodel.EventFDs) on
// KVM: an ioeventfd is a KVM_IOEVENTFD, an irqfd a KVM_IRQFD on a GSI of its
// own that the GSI routing table sends to the irqfd's MSI. Both work inside
// the kernel: a guest write that matches an ioeventfd signals it without an
// exit, and a signal on an irqfd injects its MSI without a trip through ember.
// Devices inside ember get irqfds of their own the same way (NewMSIVector);
// both kinds share the VM's MSI GSIs and its routing table. Its methods are
// safe for concurrent use.
type EventFDs struct {
	vm      *kvm.VM
	irqchip bool

	mu     sync.Mutex
	routes map[uint32]kvm.IRQRoutingEntry // GSI -> route of an irqfd in use (an MSI, or a SynIC's SINT)
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

// MSIRoutes returns how many MSI routes (so irqfds, a device model's and
// MSIVectors) are in use.
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

// An MSIVector is an irqfd for a device inside ember (a virtio-pci MSI-X
// vector): an eventfd of its own, bound with KVM_IRQFD to a GSI of its own
// whose route in the GSI routing table is an MSI. Signal, an 8-byte write to
// the eventfd, makes KVM inject the MSI from the writer's thread, inside the
// kernel: no ioctl, no vCPU thread, no trip through the I/O request path.
// SetMessage follows the guest when it reprograms the message; Close gives
// the GSI back.
//
// Signal may be called from any goroutine, also concurrently with
// SetMessage; Close must not race with the other methods (the owner
// serialises them, as virtio-pci does under its register lock). KVM drops the
// binding and the route with the VM, but the eventfd is the owner's: Close
// every vector while the VM is open (at the latest in a VM.OnClose
// function), since Close issues ioctls on the VM's descriptor.
type MSIVector struct {
	f    *EventFDs
	gsi  uint32
	fd   int      // the eventfd's number, for KVM_IRQFD
	file *os.File // the eventfd, written by Signal
	// closed is set by Close, under f.mu.
	closed bool
}

// NewMSIVector creates an MSIVector for the MSI with address addr and data
// data: a new eventfd, the lowest free GSI from 24 up routed to the MSI
// (KVM_SET_GSI_ROUTING), and the eventfd bound to it (KVM_IRQFD). Errors wrap
// the errno: ENOTSUP without an in-kernel irqchip, ENOSPC when every MSI GSI
// is taken, and KVM's.
func (f *EventFDs) NewMSIVector(addr uint64, data uint32) (*MSIVector, error) {
	b, err := f.bind(func(gsi uint32) kvm.IRQRoutingEntry { return kvm.MSIRoute(gsi, addr, data) }, nil)
	if err != nil {
		return nil, fmt.Errorf("hv: MSI vector %#x/%#x: %w", addr, data, err)
	}
	return &MSIVector{f: f, gsi: b.gsi, fd: b.fd, file: b.file}, nil
}

// boundIRQFD is an eventfd of ember's own bound with KVM_IRQFD to a GSI of
// its own.
type boundIRQFD struct {
	gsi  uint32
	fd   int
	file *os.File
}

// bind makes a new eventfd, routes the lowest free GSI from 24 up as route
// says and binds the eventfd to it; with a resample eventfd, KVM signals
// that one when the guest acknowledges the interrupt (KVM_IRQFD_FLAG_RESAMPLE).
func (f *EventFDs) bind(route func(gsi uint32) kvm.IRQRoutingEntry, resample *os.File) (boundIRQFD, error) {
	if !f.irqchip {
		return boundIRQFD{}, fmt.Errorf("%w: the VM has no in-kernel irqchip", unix.ENOTSUP)
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return boundIRQFD{}, fmt.Errorf("eventfd: %w", err)
	}
	file := os.NewFile(uintptr(fd), "irqfd")
	f.mu.Lock()
	defer f.mu.Unlock()
	gsi, ok := f.freeGSI()
	if !ok {
		file.Close()
		return boundIRQFD{}, fmt.Errorf("%w: all %d GSIs of irqfds in use", unix.ENOSPC, maxMSIGSIs)
	}
	f.routes[gsi] = route(gsi)
	if err := f.setRouting(); err != nil {
		delete(f.routes, gsi)
		file.Close()
		return boundIRQFD{}, fmt.Errorf("routing GSI %d: %w", gsi, err)
	}
	q := kvm.IRQFD{Fd: uint32(fd), GSI: gsi}
	if resample != nil {
		q.Flags, q.ResampleFd = kvm.IRQFDResample, uint32(resample.Fd())
	}
	if err := f.vm.IRQFD(q); err != nil {
		delete(f.routes, gsi)
		f.setRouting() // back to the table without it; it worked with it, so it works without
		file.Close()
		return boundIRQFD{}, fmt.Errorf("irqfd on GSI %d: %w", gsi, err)
	}
	return boundIRQFD{gsi: gsi, fd: fd, file: file}, nil
}

// unbind undoes bind: it unbinds the eventfd, drops the GSI's route and
// closes the eventfd, each even when an earlier step failed (KVM drops an
// irqfd whose eventfd is gone by itself); the error says which failed.
func (f *EventFDs) unbind(b boundIRQFD) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	if err := f.vm.IRQFD(kvm.IRQFD{Fd: uint32(b.fd), GSI: b.gsi, Flags: kvm.IRQFDDeassign}); err != nil {
		errs = append(errs, fmt.Errorf("removing the irqfd on GSI %d: %w", b.gsi, err))
	}
	delete(f.routes, b.gsi)
	if err := f.setRouting(); err != nil {
		errs = append(errs, fmt.Errorf("dropping the route of GSI %d: %w", b.gsi, err))
	}
	if err := b.file.Close(); err != nil {
		errs = append(errs, fmt.Errorf("eventfd of GSI %d: %w", b.gsi, err))
	}
	return errors.Join(errs...)
}

// GSI returns the GSI the vector's eventfd is bound to.
func (v *MSIVector) GSI() uint32 { return v.gsi }

// Signal injects the vector's MSI: it adds 1 to the eventfd, and KVM's
// irqfd, woken in the same system call, delivers the MSI the GSI routes to.
// After Close it returns an error wrapping os.ErrClosed.
func (v *MSIVector) Signal() error {
	var one = [8]byte{1} // little-endian 1
	if _, err := v.file.Write(one[:]); err != nil {
		return fmt.Errorf("hv: MSI vector on GSI %d: %w", v.gsi, err)
	}
	return nil
}

// SetMessage routes the vector's GSI to the MSI with address addr and data
// data, replacing the routing table (KVM_SET_GSI_ROUTING); the eventfd stays
// bound, and KVM's irqfd picks up the new route. On error the old route
// stays in force.
func (v *MSIVector) SetMessage(addr uint64, data uint32) error {
	f := v.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if v.closed {
		return fmt.Errorf("hv: MSI vector on GSI %d: %w", v.gsi, os.ErrClosed)
	}
	old := f.routes[v.gsi]
	f.routes[v.gsi] = kvm.MSIRoute(v.gsi, addr, data)
	if err := f.setRouting(); err != nil {
		f.routes[v.gsi] = old
		return fmt.Errorf("hv: MSI vector: routing GSI %d to MSI %#x/%#x: %w", v.gsi, addr, data, err)
	}
	return nil
}

// Close unbinds the eventfd (KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN), drops
// the GSI's route and closes the eventfd: the GSI is free again. The
// eventfd is closed and the GSI freed even when an ioctl fails (KVM drops
// an irqfd whose eventfd is gone by itself); the error says which one did.
// Closing a closed vector does nothing.
func (v *MSIVector) Close() error {
	f := v.f
	f.mu.Lock()
	if v.closed {
		f.mu.Unlock()
		return nil
	}
	v.closed = true
	f.mu.Unlock()
	if err := f.unbind(boundIRQFD{gsi: v.gsi, fd: v.fd, file: v.file}); err != nil {
		return fmt.Errorf("hv: MSI vector: %w", err)
	}
	return nil
}
