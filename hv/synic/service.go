package synic

import (
	"errors"
	"fmt"
	"sync"

	"ember/hv"
	"ember/hyperv"
)

// Service serves one VM's SynICs. HvSignalEvent reaches ember as an exit
// too: ember registers no eventfd for it with KVM (KVM_HYPERV_EVENTFD),
// since setting the event flag in the guest's page is the VMM's work either
// way; from the exit it is done before the hypercall returns. Its methods
// are safe for concurrent use.
type Service struct {
	vm     *hv.VM
	synics []hyperv.SynIC // each vCPU's, as its SynIC exits report it
	conns  hyperv.Connections

	mu     sync.Mutex
	routes map[*Route]struct{} // open routes, closed with the VM
}

// ErrNoHyperV is returned when a VM made without hv.Config.HyperV is asked
// for its SynICs.
var ErrNoHyperV = errors.New("synic: the VM has no Hyper-V enlightenments")

// New makes vm's SynIC service and installs it as the VM's Hyper-V exit
// handler; the VM closes the routes left open when it closes. Make it
// before the VM runs (hv.VM.ServeHyperV). Errors: ErrNoHyperV, or a VM
// already served.
func New(vm *hv.VM) (*Service, error) {
	if !vm.Config().HyperV {
		return nil, ErrNoHyperV
	}
	s := &Service{vm: vm, synics: make([]hyperv.SynIC, vm.NumVCPUs()), routes: map[*Route]struct{}{}}
	if err := vm.ServeHyperV(s); err != nil {
		return nil, fmt.Errorf("synic: %w", err)
	}
	vm.OnClose(s.closeRoutes)
	return s, nil
}

// HandleMessages makes fn take what the guest posts to connection id conn
// with HvPostMessage; a nil fn removes the handler. A connection id has one
// message handler (hyperv.ErrConnectionInUse).
func (s *Service) HandleMessages(conn uint32, fn hyperv.MessageHandler) error {
	return s.conns.HandleMessages(conn, fn)
}

// HandleEvents makes fn take what the guest signals on connection id conn
// with HvSignalEvent; a nil fn removes the handler.
func (s *Service) HandleEvents(conn uint32, fn hyperv.EventHandler) error {
	return s.conns.HandleEvents(conn, fn)
}

// SynIC records a SynIC MSR write of vCPU vcpu that KVM has already acted
// on (control, event page, message page), for the messages and event flags
// the host posts (hv.HyperVExits).
func (s *Service) SynIC(vcpu int, control, eventPage, messagePage uint64) {
	if vcpu >= 0 && vcpu < len(s.synics) {
		s.synics[vcpu].Update(control, eventPage, messagePage)
	}
}

// Hypercall answers a hypercall KVM does not handle from the VM's
// connections; an unknown call fails as on Hyper-V, with an invalid-code
// status (hv.HyperVExits).
func (s *Service) Hypercall(_ int, input, param uint64) uint64 {
	return uint64(s.conns.Hypercall(s.vm.Memory(), input, param))
}

// closeRoutes closes the routes the VM's devices left open.
func (s *Service) closeRoutes() {
	s.mu.Lock()
	routes := make([]*Route, 0, len(s.routes))
	for r := range s.routes {
		routes = append(routes, r)
	}
	s.mu.Unlock()
	for _, r := range routes {
		if err := r.Close(); err != nil {
			s.vm.Logger().Warn("closing a SINT route with the VM", "err", err)
		}
	}
}
