package guest

import "ember/x86"

// HCUpcall is a Service VM guest that serves a User VM's port I/O through
// its request buffer and the upcall (package hypercall's end-to-end upcall
// tests). With RSI = 0 it takes upcalls on 0xF3; otherwise it first makes
// RSI the vector with HC_SET_CALLBACK_VECTOR and reports the result. It
// reports the results of HC_CREATE_VM, HC_VM_SET_MEMORY_REGIONS,
// HC_SET_VCPU_REGS, HC_SET_IOREQ_BUFFER and HC_START_VM; then, for each
// request the User VM makes, its direction, port, size and value (reads are
// answered 0xC0DE0000 | port) and the result of HC_NOTIFY_REQUEST_FINISH.
// The User VM reads a dword from port 0x5a0 and a word from 0x5a2, writes
// the word to 0x5a8 and the dword to 0x5ac, and exits with the dword; after
// the second write the Service VM exits 0. RDX selects a mode (the
// HCUpcall* constants) that changes what the Service VM does; see
// guest/src/hc_upcall.S.
var HCUpcall = load("hc_upcall", x86.LongMode)

// HCUpcall's modes, in RDX.
const (
	// HCUpcallServe serves every request and notifies.
	HCUpcallServe = iota
	// HCUpcallPolling creates the User VM with
	// GUEST_FLAG_IO_COMPLETION_POLLING and never notifies; it reports each
	// slot's completion_polling where HCUpcallServe reports the notify's
	// result.
	HCUpcallPolling
	// HCUpcallPauseDestroy answers the first request with HC_PAUSE_VM
	// (reporting its result, then the slot's state and port) and
	// HC_DESTROY_VM (reporting its result), and exits 0.
	HCUpcallPauseDestroy
	// HCUpcallLate claims the first request and leaves it; once ember has
	// taken the slot back after its time-out it completes it anyway and
	// reports HC_NOTIFY_REQUEST_FINISH's result, then lets the User VM go
	// on and serves the rest as HCUpcallServe.
	HCUpcallLate
)

func init() { All = append(All, HCUpcall) }
