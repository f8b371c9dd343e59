package iorequest

import "fmt"

// State is the processed field of an I/O request (ACRN_IOREQ_STATE_*). A
// request moves FREE -> PENDING -> PROCESSING -> COMPLETE -> FREE; in FREE
// and COMPLETE the hypervisor owns it, in PENDING and PROCESSING the Service
// VM (HSM, device model or client) does, and the other side touches nothing
// but this field. Accesses to it must be atomic: see StateOffset.
type State uint32

// The I/O request states, ACRN_IOREQ_STATE_* in acrn_common.h and
// <linux/acrn.h>.
const (
	StatePending    State = 0 // ACRN_IOREQ_STATE_PENDING: filled in, waiting for the Service VM
	StateComplete   State = 1 // ACRN_IOREQ_STATE_COMPLETE: handled, result in the request
	StateProcessing State = 2 // ACRN_IOREQ_STATE_PROCESSING: claimed by a client
	StateFree       State = 3 // ACRN_IOREQ_STATE_FREE: slot unused
)

// String returns the state's name as in ACRN_IOREQ_STATE_<name>.
func (s State) String() string {
	switch s {
	case StatePending:
		return "PENDING"
	case StateComplete:
		return "COMPLETE"
	case StateProcessing:
		return "PROCESSING"
	case StateFree:
		return "FREE"
	}
	return fmt.Sprintf("State(%d)", uint32(s))
}

// Valid reports whether s is one of the four defined states.
func (s State) Valid() bool { return s <= StateFree }

// ReqType is the type field of an I/O request (ACRN_IOREQ_TYPE_*); it says
// which member of the reqs union is live.
type ReqType uint32

// The I/O request types. ACRN_IOREQ_TYPE_WP is in acrn_common.h only (the
// hypervisor raises it for a write to a write-protected page, and the
// request uses the MMIO member); <linux/acrn.h> stops at PCICFG.
const (
	ReqPortIO ReqType = 0 // ACRN_IOREQ_TYPE_PORTIO: PIORequest
	ReqMMIO   ReqType = 1 // ACRN_IOREQ_TYPE_MMIO: MMIORequest
	ReqPCICfg ReqType = 2 // ACRN_IOREQ_TYPE_PCICFG: PCIRequest
	ReqWP     ReqType = 3 // ACRN_IOREQ_TYPE_WP: MMIORequest, always a write
)

// String returns the type's name as in ACRN_IOREQ_TYPE_<name>.
func (t ReqType) String() string {
	switch t {
	case ReqPortIO:
		return "PORTIO"
	case ReqMMIO:
		return "MMIO"
	case ReqPCICfg:
		return "PCICFG"
	case ReqWP:
		return "WP"
	}
	return fmt.Sprintf("ReqType(%d)", uint32(t))
}

// Direction is the direction field of every reqs member (ACRN_IOREQ_DIR_*).
type Direction uint32

// The access directions.
const (
	DirRead  Direction = 0 // ACRN_IOREQ_DIR_READ: the guest reads; the handler fills in value
	DirWrite Direction = 1 // ACRN_IOREQ_DIR_WRITE: the guest writes value
)

// String returns "READ" or "WRITE".
func (d Direction) String() string {
	switch d {
	case DirRead:
		return "READ"
	case DirWrite:
		return "WRITE"
	}
	return fmt.Sprintf("Direction(%d)", uint32(d))
}
