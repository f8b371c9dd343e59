package hv

import "fmt"

// StopReason says why a VM stopped running.
type StopReason int

// Why a VM stops.
const (
	StopExit     StopReason = iota + 1 // the guest wrote its status to PortExit
	StopShutdown                       // the guest triple-faulted or asked KVM to shut down
	StopHalted                         // a vCPU halted with no interrupt controller to wake it
	StopReset                          // the guest asked for a reset
	StopHost                           // the host called Stop or cancelled the context
	StopError                          // a vCPU hit an exit ember cannot handle
	StopPowerOff                       // the guest powered off (ACPI S5)
)

func (r StopReason) String() string {
	switch r {
	case StopExit:
		return "exit"
	case StopShutdown:
		return "shutdown"
	case StopHalted:
		return "halted"
	case StopReset:
		return "reset"
	case StopHost:
		return "stopped by host"
	case StopError:
		return "error"
	case StopPowerOff:
		return "powered off"
	}
	return fmt.Sprintf("StopReason(%d)", int(r))
}

// Result is how a VM run ended.
type Result struct {
	Reason StopReason
	Status int   // the guest's status for StopExit
	VCPU   int   // the vCPU that caused the stop
	Err    error // the cause, for StopError; the vCPU's state, for StopShutdown
}

func (r Result) String() string {
	switch r.Reason {
	case StopExit:
		return fmt.Sprintf("guest exited with status %d", r.Status)
	case StopShutdown:
		if r.Err != nil {
			return fmt.Sprintf("guest shut down (triple fault) on vCPU %d: %v", r.VCPU, r.Err)
		}
		return fmt.Sprintf("guest shut down (triple fault) on vCPU %d", r.VCPU)
	case StopError:
		return fmt.Sprintf("vCPU %d failed: %v", r.VCPU, r.Err)
	}
	return r.Reason.String()
}
