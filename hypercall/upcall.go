package hypercall

import (
	"errors"
	"fmt"

	"ember/acrn"
	"ember/ioreq"
	"ember/kvm"
	"ember/memory"
)

// Service VM upcalls (DESIGN.md, flow 3; docs/abi.md, "Service VM upcalls").
//
// When a Service VM sets a post-launched VM's request buffer with
// HC_SET_IOREQ_BUFFER, the page it names
// becomes the page of an ioreq.ServiceVMClient, and that client becomes the
// target VM's router default: every access no in-process device claims is
// written into the requesting vCPU's slot of the page (PENDING), the
// Service VM is told by an upcall, and the vCPU waits until the Service VM
// sets the slot COMPLETE and calls HC_NOTIFY_REQUEST_FINISH.
//
// Who the Service VM is decides what the upcall is:
//   - a Service VM guest (Config.ServiceVM): the callback vector (0xF3, or
//     the one HC_SET_CALLBACK_VECTOR set, read at each upcall) is sent to
//     its vCPU0 as a fixed MSI to LAPIC ID 0 through the in-kernel irqchip;
//   - the host control plane (Service.Hypercall, page in ServiceMemory):
//     the function registered with SetServiceUpcall is called. Without one
//     the buffer is only recorded, as before upcalls existed: the target's
//     unclaimed accesses keep reading all ones, and HC_NOTIFY_REQUEST_FINISH
//     only takes a COMPLETE slot back to FREE.

// ServiceUpcall is the host control plane's upcall handler: VM vmid's vCPU
// vcpu has a PENDING request in the buffer page the host registered for it
// in ServiceMemory. It runs on that vCPU's thread and must return promptly;
// it must not make hypercalls itself (serve the request from another
// goroutine, then call HC_NOTIFY_REQUEST_FINISH there). A non-nil error
// fails the request: the vCPU's read gets all ones.
type ServiceUpcall func(vmid uint16, vcpu int) error

// SetServiceUpcall registers f as the host control plane's upcall handler
// (nil removes it). It applies to request buffers the host sets from now on;
// a buffer set before keeps the handler (or the lack of one) it was set with.
func (h *Service) SetServiceUpcall(f ServiceUpcall) {
	t := &h.table
	t.mu.Lock()
	t.hostUpcall = f
	t.mu.Unlock()
}

// upcallMSI is the MSI that delivers vector to the LAPIC with ID apicID:
// physical destination mode, fixed delivery, edge-triggered.
func upcallMSI(apicID uint32, vector uint8) kvm.MSI {
	return kvm.MSI{AddressLo: 0xfee00000 | apicID<<12, Data: uint32(vector)}
}

// errNoIRQChip is an upcall to a Service VM guest without a LAPIC.
var errNoIRQChip = errors.New("hypercall: the Service VM has no in-kernel irqchip to take upcalls")

// guestUpcall returns the upcall into the Service VM guest: the callback
// vector to its vCPU0.
func (h *Service) guestUpcall(serviceVM *hcVM) func(int) error {
	vm := serviceVM.vm
	return func(int) error {
		if vm.Config().NoIRQChip {
			return errNoIRQChip
		}
		if err := vm.SignalMSI(upcallMSI(0, h.CallbackVector())); err != nil {
			return fmt.Errorf("hypercall: upcall to the Service VM: %w", err)
		}
		return nil
	}
}

// attachServiceVM makes the page buf, in mem, the Service VM's side of e's
// requests, and its client e's router default; or, for a host caller without
// a ServiceUpcall, detaches any earlier client. mem is the caller's memory:
// the Service VM guest's RAM or the host's ServiceMemory (only those two may
// make the calls that get here). The caller holds e.mu.
func (e *hcVM) attachServiceVM(mem *memory.Guest, buf []byte) {
	t := &e.h.table
	serviceVM := t.serviceVM()
	t.mu.RLock()
	hostUp := t.hostUpcall
	t.mu.RUnlock()
	var upcall func(int) error
	switch {
	case serviceVM != nil && serviceVM.vm.Memory() == mem:
		upcall = e.h.guestUpcall(serviceVM)
	case hostUp != nil:
		id := e.id
		upcall = func(vcpu int) error { return hostUp(id, vcpu) }
	}
	router := e.vm.IORequests().Router()
	if upcall == nil {
		e.serviceClient = nil
		router.SetDefault(nil)
		return
	}
	page, err := ioreq.NewBufferBytes(buf)
	if err != nil { // cannot happen: ioreqSlice checked size and alignment
		e.serviceClient = nil
		router.SetDefault(nil)
		return
	}
	e.serviceClient = ioreq.NewServiceVMClient(fmt.Sprintf("service-vm:%d", e.id), page, upcall)
	router.SetDefault(e.serviceClient)
}

// finishErrno maps ServiceVMClient.Finish's errors to the hypercall's
// result: no request in flight (ioreq.ErrNoRequest), no such slot
// (ioreq.ErrNoSlot), a slot the Service VM has not set COMPLETE
// (*ioreq.TransitionError; the request keeps waiting) and a request the
// vCPU already gave up on are all -EINVAL.
func finishErrno(err error) acrn.Errno {
	if err == nil {
		return 0
	}
	return acrn.EINVAL
}
