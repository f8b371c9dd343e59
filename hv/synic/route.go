package synic

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"ember/hv/eventfd"
	"ember/hyperv"
	"ember/kvm"
)

// A Route raises one synthetic interrupt source (SINT) of one vCPU's SynIC
// from the host: an eventfd bound with KVM_IRQFD to a GSI of its own, which
// the VM's GSI routing table (the one its MSI irqfds share) sends to the
// SINT (KVM_IRQ_ROUTING_HV_SINT). Signal raises the SINT inside the kernel;
// Post and SetEventFlag first put a message or an event flag into the
// vCPU's SynIC pages. A route made for messages also has KVM signal a
// resample eventfd when the guest acknowledges the SINT (EOM, or the EOI of
// its vector), on which a goroutine offers a message that found its slot
// busy again. Close releases all of it; the VM closes the routes left open.
type Route struct {
	s        *Service
	vp, sint uint32
	irq      *eventfd.IRQFD
	outbox   hyperv.Outbox
	resample *os.File      // messages only
	acks     chan struct{} // closed when the acknowledgement goroutine ends

	mu     sync.Mutex
	closed bool
}

// NewRoute makes a route to SINT sint (0-15) of the SynIC of the vCPU with
// VP index vp (ember's vCPU index); messages says the route will carry
// messages (Post). Errors: vp or sint out of range, or what routing the GSI
// and binding the eventfd met (ENOSPC: every irqfd GSI in use).
func (s *Service) NewRoute(vp, sint uint32, messages bool) (*Route, error) {
	if vp >= uint32(len(s.synics)) || sint >= hyperv.SINTs {
		return nil, fmt.Errorf("synic: route to vCPU %d SINT %d: %w: the VM has %d vCPUs of %d SINTs",
			vp, sint, unix.EINVAL, len(s.synics), hyperv.SINTs)
	}
	r := &Route{s: s, vp: vp, sint: sint}
	if messages {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return nil, fmt.Errorf("synic: route to vCPU %d SINT %d: resample eventfd: %w", vp, sint, err)
		}
		r.resample = os.NewFile(uintptr(fd), "sint-resample")
	}
	q, err := s.vm.EventFDs().NewIRQFD(func(gsi uint32) kvm.IRQRoutingEntry { return kvm.HvSintRoute(gsi, vp, sint) }, r.resample)
	if err != nil {
		if r.resample != nil {
			r.resample.Close()
		}
		return nil, fmt.Errorf("synic: route to vCPU %d SINT %d: %w", vp, sint, err)
	}
	r.irq = q
	if messages {
		r.acks = make(chan struct{})
		go r.retryOnAck()
	}
	s.mu.Lock()
	s.routes[r] = struct{}{}
	s.mu.Unlock()
	return r, nil
}

// retryOnAck offers a waiting message again each time the guest
// acknowledges the SINT, until Close closes the resample eventfd.
func (r *Route) retryOnAck() {
	defer close(r.acks)
	var b [8]byte
	for {
		if _, err := r.resample.Read(b[:]); err != nil {
			return // closed
		}
		r.outbox.Retry(r.deliver)
	}
}

// GSI returns the GSI the route's eventfd is bound to.
func (r *Route) GSI() uint32 { return r.irq.GSI() }

// Signal raises the SINT: KVM delivers it to the vCPU as the vector the
// guest programmed into the SINT's MSR, unless the guest masked it.
func (r *Route) Signal() error {
	if err := r.irq.Signal(); err != nil {
		return fmt.Errorf("synic: SINT %d of vCPU %d: %w", r.sint, r.vp, err)
	}
	return nil
}

// Post puts m into the SINT's slot of the vCPU's message page and raises
// the SINT, and answers the hypercall that posted it: a message that finds
// the slot busy waits for the guest to free it (the route must have been
// made for messages), a second one meanwhile is refused
// (hyperv.StatusInsufficientBuffers); see hyperv.Outbox.
func (r *Route) Post(m hyperv.Message) hyperv.Status {
	if r.resample == nil {
		return hyperv.StatusInvalidHypercallInput
	}
	return r.outbox.Post(m, r.deliver)
}

func (r *Route) deliver(m *hyperv.Message) (hyperv.Delivery, error) {
	d, err := hyperv.Deliver(r.s.vm.Memory(), &r.s.synics[r.vp], r.sint, m)
	if err == nil && d == hyperv.Delivered {
		err = r.Signal()
	}
	return d, err
}

// SetEventFlag sets event flag n of the SINT's slot in the vCPU's event
// flags page and, if it was clear, raises the SINT.
func (r *Route) SetEventFlag(n uint32) error {
	set, err := hyperv.SetEventFlag(r.s.vm.Memory(), &r.s.synics[r.vp], r.sint, n)
	if err != nil {
		return fmt.Errorf("synic: event flag %d of SINT %d of vCPU %d: %w", n, r.sint, r.vp, err)
	}
	if !set {
		return nil
	}
	return r.Signal()
}

// Close unbinds the route's eventfd, frees its GSI and ends its
// acknowledgement goroutine. Closing a closed route does nothing.
func (r *Route) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.s.mu.Lock()
	delete(r.s.routes, r)
	r.s.mu.Unlock()
	err := r.irq.Close()
	if r.resample != nil {
		r.resample.Close() // wakes retryOnAck's Read
		<-r.acks
	}
	if err != nil {
		return fmt.Errorf("synic: SINT %d of vCPU %d: %w", r.sint, r.vp, err)
	}
	return nil
}
