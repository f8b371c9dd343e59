package hv

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"ember/hv/eventfd"
	"ember/hyperv"
	"ember/kvm"
)

// HyperV is the VMM's side of a VM's Hyper-V SynICs (Config.HyperV): what
// KVM leaves to user space. It knows each vCPU's SynIC pages from KVM's
// SynIC exits, answers the hypercalls KVM hands over (HvPostMessage,
// HvSignalEvent) from its table of host-side connections, and makes SINT
// routes, by which a host-side device raises a vCPU's synthetic interrupt
// and puts messages and event flags into its pages.
//
// HvSignalEvent reaches ember as an exit too: ember registers no eventfd
// for it with KVM (KVM_HYPERV_EVENTFD), since setting the event flag in the
// guest's page is the VMM's work either way; from the exit it is done
// before the hypercall returns. Its methods are safe for concurrent use.
type HyperV struct {
	vm    *VM
	conns hyperv.Connections

	mu     sync.Mutex
	routes map[*SINTRoute]struct{} // open routes, closed with the VM
}

// ErrNoHyperV is returned when a VM made without Config.HyperV is asked
// for its SynICs.
var ErrNoHyperV = errors.New("hv: the VM has no Hyper-V enlightenments")

// HyperV returns the VM's Hyper-V SynIC service, or nil without
// Config.HyperV.
func (vm *VM) HyperV() *HyperV { return vm.hyperv }

// newHyperV makes the service and has the VM close its routes before it
// goes.
func newHyperV(vm *VM) *HyperV {
	h := &HyperV{vm: vm, routes: map[*SINTRoute]struct{}{}}
	vm.OnClose(h.closeRoutes)
	return h
}

// HandleMessages makes fn take what the guest posts to connection id conn
// with HvPostMessage; a nil fn removes the handler. A connection id has one
// message handler (hyperv.ErrConnectionInUse).
func (h *HyperV) HandleMessages(conn uint32, fn hyperv.MessageHandler) error {
	return h.conns.HandleMessages(conn, fn)
}

// HandleEvents makes fn take what the guest signals on connection id conn
// with HvSignalEvent; a nil fn removes the handler.
func (h *HyperV) HandleEvents(conn uint32, fn hyperv.EventHandler) error {
	return h.conns.HandleEvents(conn, fn)
}

// handleHyperV answers what KVM leaves of the Hyper-V enlightenments to
// userspace: a SynIC MSR write (control, event page, message page) KVM has
// already acted on is recorded, for messages and event flags the host
// posts; a hypercall KVM does not handle is answered from the VM's
// connections (an unknown call fails as on Hyper-V, with an invalid-code
// status). Synthetic-debugger exits need nothing.
func (c *VCPU) handleHyperV(exit kvm.Exit) {
	x := exit.Hyperv()
	switch x.Type {
	case kvm.HypervSynIC:
		c.synic.Update(x.Control, x.EventPage, x.MessagePage)
	case kvm.HypervHcall:
		st := hyperv.StatusInvalidHypercallCode
		if h := c.vm.hyperv; h != nil {
			st = h.conns.Hypercall(c.vm.mem, x.Input, x.Params[0])
		}
		exit.SetHypervResult(uint64(st))
	}
}

// A SINTRoute raises one synthetic interrupt source (SINT) of one vCPU's
// SynIC from the host: an eventfd bound with KVM_IRQFD to a GSI of its own,
// which the VM's GSI routing table (the one its MSI irqfds share) sends to
// the SINT (KVM_IRQ_ROUTING_HV_SINT). Signal raises the SINT inside the
// kernel; Post and SetEventFlag first put a message or an event flag into
// the vCPU's SynIC pages. A route made for messages also has KVM signal a
// resample eventfd when the guest acknowledges the SINT (EOM, or the EOI of
// its vector), on which a goroutine offers a message that found its slot
// busy again. Close releases all of it; the VM closes the routes left open.
type SINTRoute struct {
	h        *HyperV
	vp, sint uint32
	irq      *eventfd.IRQFD
	outbox   hyperv.Outbox
	resample *os.File      // messages only
	acks     chan struct{} // closed when the acknowledgement goroutine ends

	mu     sync.Mutex
	closed bool
}

// NewSINTRoute makes a route to SINT sint (0-15) of the SynIC of the vCPU
// with VP index vp (ember's vCPU index); messages says the route will carry
// messages (Post). Errors: vp or sint out of range, or what routing the GSI
// and binding the eventfd met (ENOSPC: every irqfd GSI in use).
func (h *HyperV) NewSINTRoute(vp, sint uint32, messages bool) (*SINTRoute, error) {
	if vp >= uint32(len(h.vm.vcpus)) || sint >= hyperv.SINTs {
		return nil, fmt.Errorf("hv: SINT route to vCPU %d SINT %d: %w: the VM has %d vCPUs of %d SINTs",
			vp, sint, unix.EINVAL, len(h.vm.vcpus), hyperv.SINTs)
	}
	r := &SINTRoute{h: h, vp: vp, sint: sint}
	if messages {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return nil, fmt.Errorf("hv: SINT route to vCPU %d SINT %d: resample eventfd: %w", vp, sint, err)
		}
		r.resample = os.NewFile(uintptr(fd), "sint-resample")
	}
	q, err := h.vm.EventFDs().NewIRQFD(func(gsi uint32) kvm.IRQRoutingEntry { return kvm.HvSintRoute(gsi, vp, sint) }, r.resample)
	if err != nil {
		if r.resample != nil {
			r.resample.Close()
		}
		return nil, fmt.Errorf("hv: SINT route to vCPU %d SINT %d: %w", vp, sint, err)
	}
	r.irq = q
	if messages {
		r.acks = make(chan struct{})
		go r.retryOnAck()
	}
	h.mu.Lock()
	h.routes[r] = struct{}{}
	h.mu.Unlock()
	return r, nil
}

// retryOnAck offers a waiting message again each time the guest
// acknowledges the SINT, until Close closes the resample eventfd.
func (r *SINTRoute) retryOnAck() {
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
func (r *SINTRoute) GSI() uint32 { return r.irq.GSI() }

// Signal raises the SINT: KVM delivers it to the vCPU as the vector the
// guest programmed into the SINT's MSR, unless the guest masked it.
func (r *SINTRoute) Signal() error {
	if err := r.irq.Signal(); err != nil {
		return fmt.Errorf("hv: SINT %d of vCPU %d: %w", r.sint, r.vp, err)
	}
	return nil
}

// Post puts m into the SINT's slot of the vCPU's message page and raises
// the SINT, and answers the hypercall that posted it: a message that finds
// the slot busy waits for the guest to free it (the route must have been
// made for messages), a second one meanwhile is refused
// (hyperv.StatusInsufficientBuffers); see hyperv.Outbox.
func (r *SINTRoute) Post(m hyperv.Message) hyperv.Status {
	if r.resample == nil {
		return hyperv.StatusInvalidHypercallInput
	}
	return r.outbox.Post(m, r.deliver)
}

func (r *SINTRoute) deliver(m *hyperv.Message) (hyperv.Delivery, error) {
	d, err := hyperv.Deliver(r.h.vm.mem, &r.h.vm.vcpus[r.vp].synic, r.sint, m)
	if err == nil && d == hyperv.Delivered {
		err = r.Signal()
	}
	return d, err
}

// SetEventFlag sets event flag n of the SINT's slot in the vCPU's event
// flags page and, if it was clear, raises the SINT.
func (r *SINTRoute) SetEventFlag(n uint32) error {
	set, err := hyperv.SetEventFlag(r.h.vm.mem, &r.h.vm.vcpus[r.vp].synic, r.sint, n)
	if err != nil {
		return fmt.Errorf("hv: event flag %d of SINT %d of vCPU %d: %w", n, r.sint, r.vp, err)
	}
	if !set {
		return nil
	}
	return r.Signal()
}

// Close unbinds the route's eventfd, frees its GSI and ends its
// acknowledgement goroutine. Closing a closed route does nothing.
func (r *SINTRoute) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.h.mu.Lock()
	delete(r.h.routes, r)
	r.h.mu.Unlock()
	err := r.irq.Close()
	if r.resample != nil {
		r.resample.Close() // wakes retryOnAck's Read
		<-r.acks
	}
	if err != nil {
		return fmt.Errorf("hv: SINT %d of vCPU %d: %w", r.sint, r.vp, err)
	}
	return nil
}

// closeRoutes closes the routes the VM's devices left open.
func (h *HyperV) closeRoutes() {
	h.mu.Lock()
	routes := make([]*SINTRoute, 0, len(h.routes))
	for r := range h.routes {
		routes = append(routes, r)
	}
	h.mu.Unlock()
	for _, r := range routes {
		if err := r.Close(); err != nil {
			h.vm.log.Warn("closing a SINT route with the VM", "err", err)
		}
	}
}
