package vtd

import "fmt"

// Reason is a fault reason of the VT-d specification (chapter 7): what the
// fault recording register says about a refused request.
type Reason uint8

// The fault reasons the unit records.
const (
	ReasonRootNotPresent    Reason = 0x1  // the bus's root entry is not present
	ReasonContextNotPresent Reason = 0x2  // the function's context entry is not present
	ReasonContextInvalid    Reason = 0x3  // a context entry the unit does not support (address width)
	ReasonBeyondAGAW        Reason = 0x4  // the address is past the context's address width
	ReasonWrite             Reason = 0x5  // a write where a page is not writable (or not present)
	ReasonRead              Reason = 0x6  // a read where a page is not readable (or not present)
	ReasonPagingAccess      Reason = 0x7  // a paging entry outside guest RAM
	ReasonRootAccess        Reason = 0x8  // the root entry outside guest RAM
	ReasonContextAccess     Reason = 0x9  // the context entry outside guest RAM
	ReasonRootReserved      Reason = 0xa  // a reserved bit set in the root entry
	ReasonContextReserved   Reason = 0xb  // a reserved bit set in the context entry
	ReasonPagingReserved    Reason = 0xc  // a reserved bit set in a paging entry
	ReasonTranslationType   Reason = 0xd  // a translation type the unit does not offer
	ReasonIRRequestReserved Reason = 0x20 // a reserved bit set in the interrupt request
	ReasonIRIndex           Reason = 0x21 // the interrupt index is past the table
	ReasonIRTENotPresent    Reason = 0x22 // the IRTE is not present
	ReasonIRTableAccess     Reason = 0x23 // the IRTE outside guest RAM
	ReasonIRTEReserved      Reason = 0x24 // a reserved bit set, or an unsupported mode, in the IRTE
	ReasonIRCompatBlocked   Reason = 0x25 // a compatibility-format interrupt while they are blocked
	ReasonIRSourceID        Reason = 0x26 // the requester fails the IRTE's source-ID check
)

// Fault is the error of a refused DMA or interrupt request.
type Fault struct {
	Reason Reason
	Source uint16 // the requester's source ID (bus << 8 | devfn)
	Addr   uint64 // the DMA address, or the interrupt index for interrupt faults
	Write  bool   // the request was a DMA write
}

func (f *Fault) Error() string {
	if f.Reason >= ReasonIRRequestReserved {
		return fmt.Sprintf("vtd: interrupt request from %04x, index %#x: fault reason %#x", f.Source, f.Addr, uint8(f.Reason))
	}
	return fmt.Sprintf("vtd: DMA from %04x at %#x: fault reason %#x", f.Source, f.Addr, uint8(f.Reason))
}

// record puts f into the fault recording register unless record is false
// (fault processing disabled for its context or IRTE): a free register takes
// it and raises a fault event; a full one sets FSTS.PFO instead.
func (u *Unit) record(f *Fault, record bool) *Fault {
	if !record {
		return f
	}
	if u.frcd[1]&frcdF != 0 {
		if u.fsts&fstsPFO == 0 {
			u.fsts |= fstsPFO
			u.faultEvent()
		}
		return f
	}
	lo := f.Addr &^ 0xfff
	if f.Reason >= ReasonIRRequestReserved {
		lo = f.Addr << 48 // FI[63:48]: the interrupt index
	}
	hi := uint64(f.Source) | uint64(f.Reason)<<32 | frcdF
	if !f.Write && f.Reason < ReasonIRRequestReserved {
		hi |= 1 << 62 // T: a read request
	}
	u.frcd = [2]uint64{lo, hi}
	u.faultEvent()
	return f
}
