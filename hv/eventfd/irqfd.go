package eventfd

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"ember/kvm"
)

// An IRQFD is an irqfd of ember's own: an eventfd bound with KVM_IRQFD to a
// GSI of its own, whose route in the VM's GSI routing table its maker chose
// (an MSI, a SynIC's SINT). Signal, an 8-byte write to the eventfd, makes
// KVM raise the route's interrupt from the writer's thread, inside the
// kernel: no ioctl, no vCPU thread, no trip through the I/O request path.
// Close gives the GSI back.
//
// Signal may be called from any goroutine; Close must not race with the
// owner's other calls. KVM drops the binding and the route with the VM, but
// the eventfd is the owner's: Close every IRQFD while the VM is open (at the
// latest in a VM.OnClose function), since Close issues ioctls on the VM's
// descriptor.
type IRQFD struct {
	f    *Service
	gsi  uint32
	fd   int      // the eventfd's number, for KVM_IRQFD
	file *os.File // the eventfd, written by Signal
	// closed is set by Close, under f.mu.
	closed bool
}

// NewIRQFD makes a new eventfd, routes the lowest free GSI from FirstGSI up
// as route says and binds the eventfd to it; with a resample eventfd, KVM
// signals that one when the guest acknowledges the interrupt
// (KVM_IRQFD_FLAG_RESAMPLE). Errors wrap the errno: ENOTSUP without an
// in-kernel irqchip, ENOSPC when every irqfd GSI is taken, and KVM's.
func (f *Service) NewIRQFD(route func(gsi uint32) kvm.IRQRoutingEntry, resample *os.File) (*IRQFD, error) {
	if !f.irqchip {
		return nil, fmt.Errorf("%w: the VM has no in-kernel irqchip", unix.ENOTSUP)
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	file := os.NewFile(uintptr(fd), "irqfd")
	f.mu.Lock()
	defer f.mu.Unlock()
	gsi, ok := f.freeGSI()
	if !ok {
		file.Close()
		return nil, fmt.Errorf("%w: all %d GSIs of irqfds in use", unix.ENOSPC, maxMSIGSIs)
	}
	f.routes[gsi] = route(gsi)
	if err := f.setRouting(); err != nil {
		delete(f.routes, gsi)
		file.Close()
		return nil, fmt.Errorf("routing GSI %d: %w", gsi, err)
	}
	q := kvm.IRQFD{Fd: uint32(fd), GSI: gsi}
	if resample != nil {
		q.Flags, q.ResampleFd = kvm.IRQFDResample, uint32(resample.Fd())
	}
	if err := f.vm.IRQFD(q); err != nil {
		delete(f.routes, gsi)
		f.setRouting() // back to the table without it; it worked with it, so it works without
		file.Close()
		return nil, fmt.Errorf("irqfd on GSI %d: %w", gsi, err)
	}
	return &IRQFD{f: f, gsi: gsi, fd: fd, file: file}, nil
}

// GSI returns the GSI the eventfd is bound to.
func (q *IRQFD) GSI() uint32 { return q.gsi }

// Signal raises the interrupt the GSI routes to: it adds 1 to the eventfd,
// and KVM's irqfd, woken in the same system call, delivers it. After Close
// it returns an error wrapping os.ErrClosed.
func (q *IRQFD) Signal() error {
	var one = [8]byte{1} // little-endian 1
	if _, err := q.file.Write(one[:]); err != nil {
		return fmt.Errorf("eventfd: irqfd on GSI %d: %w", q.gsi, err)
	}
	return nil
}

// Close unbinds the eventfd (KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN), drops
// the GSI's route and closes the eventfd: the GSI is free again. The
// eventfd is closed and the GSI freed even when an ioctl fails (KVM drops
// an irqfd whose eventfd is gone by itself); the error says which one did.
// Closing a closed IRQFD does nothing.
func (q *IRQFD) Close() error {
	f := q.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	var errs []error
	if err := f.vm.IRQFD(kvm.IRQFD{Fd: uint32(q.fd), GSI: q.gsi, Flags: kvm.IRQFDDeassign}); err != nil {
		errs = append(errs, fmt.Errorf("removing the irqfd on GSI %d: %w", q.gsi, err))
	}
	delete(f.routes, q.gsi)
	if err := f.setRouting(); err != nil {
		errs = append(errs, fmt.Errorf("dropping the route of GSI %d: %w", q.gsi, err))
	}
	if err := q.file.Close(); err != nil {
		errs = append(errs, fmt.Errorf("eventfd of GSI %d: %w", q.gsi, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	return nil
}

// An MSIVector is an IRQFD whose route is an MSI, for a device inside
// ember (a virtio-pci MSI-X vector). SetMessage follows the guest when it
// reprograms the message. SetMessage may run concurrently with Signal;
// Close must not race with either (the owner serialises them, as
// virtio-pci does under its register lock).
type MSIVector struct{ *IRQFD }

// NewMSIVector creates an MSIVector for the MSI with address addr and data
// data: a new eventfd, the lowest free GSI from FirstGSI up routed to the
// MSI (KVM_SET_GSI_ROUTING), and the eventfd bound to it (KVM_IRQFD). Errors
// are NewIRQFD's.
func (f *Service) NewMSIVector(addr uint64, data uint32) (*MSIVector, error) {
	q, err := f.NewIRQFD(func(gsi uint32) kvm.IRQRoutingEntry { return kvm.MSIRoute(gsi, addr, data) }, nil)
	if err != nil {
		return nil, fmt.Errorf("eventfd: MSI vector %#x/%#x: %w", addr, data, err)
	}
	return &MSIVector{q}, nil
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
		return fmt.Errorf("eventfd: MSI vector on GSI %d: %w", v.gsi, os.ErrClosed)
	}
	old := f.routes[v.gsi]
	f.routes[v.gsi] = kvm.MSIRoute(v.gsi, addr, data)
	if err := f.setRouting(); err != nil {
		f.routes[v.gsi] = old
		return fmt.Errorf("eventfd: MSI vector: routing GSI %d to MSI %#x/%#x: %w", v.gsi, addr, data, err)
	}
	return nil
}
