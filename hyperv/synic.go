package hyperv

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// SynIC MSRs whose writes KVM reports to the VMM (KVM_EXIT_HYPERV_SYNIC).
const (
	MSRSControl = 0x40000080 // HV_X64_MSR_SCONTROL: bit 0 enables the SynIC
	MSRSIEFP    = 0x40000082 // HV_X64_MSR_SIEFP: the event flags page
	MSRSIMP     = 0x40000083 // HV_X64_MSR_SIMP: the message page
)

// SINTs is the number of synthetic interrupt sources of a SynIC, and of
// slots in its message and event-flag pages.
const SINTs = 16

// pageEnable is the enable bit of SCONTROL, SIMP and SIEFP; the rest of
// SIMP and SIEFP is the page's guest physical address.
const pageEnable = 1

// SynIC is what the VMM knows of one vCPU's SynIC: the values of its
// control, event-page and message-page MSRs as KVM last reported them. It
// is written by the vCPU's own thread (Update, at a KVM_EXIT_HYPERV_SYNIC)
// and read by any (a message posted from another vCPU), so its fields are
// atomic. The zero value is a disabled SynIC.
type SynIC struct {
	control, eventPage, messagePage atomic.Uint64
}

// Update records the SynIC MSRs a KVM_EXIT_HYPERV_SYNIC reports; KVM gives
// all three at every such exit.
func (s *SynIC) Update(control, eventPage, messagePage uint64) {
	s.control.Store(control)
	s.eventPage.Store(eventPage)
	s.messagePage.Store(messagePage)
}

// MessagePage returns the guest physical address of the message page, if
// the SynIC and its message page are enabled.
func (s *SynIC) MessagePage() (uint64, bool) { return s.page(&s.messagePage) }

// EventPage returns the guest physical address of the event flags page, if
// the SynIC and its event page are enabled.
func (s *SynIC) EventPage() (uint64, bool) { return s.page(&s.eventPage) }

func (s *SynIC) page(msr *atomic.Uint64) (uint64, bool) {
	v := msr.Load()
	if s.control.Load()&pageEnable == 0 || v&pageEnable == 0 {
		return 0, false
	}
	return v &^ (pageSize - 1), true
}

// Layout of a message (HV_MESSAGE): a 16-byte header (type, payload size,
// flags, sender) and the payload; a message page holds one per SINT.
const (
	MessageSize        = 256
	MessagePayloadSize = MessageSize - 16
	// messagePending is the msg_pending bit of the header's flags byte
	// (byte 5), as a bit of the header's first 8 bytes.
	messagePending = 1 << 40
)

// Message is a SynIC message as it lands in the guest's message page.
type Message struct {
	Type        uint32 // 0 (HVMSG_NONE) marks a free slot
	PayloadSize uint8
	Sender      uint64
	Payload     [MessagePayloadSize]byte
}

// Delivery is what became of a message handed to a slot.
type Delivery int

const (
	// Delivered: the message is in the slot; the SINT is to be raised.
	Delivered Delivery = iota
	// Busy: the slot holds a message the guest has not consumed; its
	// pending flag is now set, so the guest will write EOM when it has,
	// and the message is to be offered again then.
	Busy
)

// Errors of Deliver and SetEventFlag.
var (
	ErrNoPage     = errors.New("hyperv: the SynIC or its page is not enabled")
	ErrNotRAM     = errors.New("hyperv: the SynIC page is not guest RAM")
	ErrBadSINT    = errors.New("hyperv: no such SINT")
	ErrBadFlag    = errors.New("hyperv: no such event flag")
	ErrMisaligned = errors.New("hyperv: the SynIC page is not 8-byte aligned in host memory")
	ErrContended  = errors.New("hyperv: the message slot kept changing under the delivery")
)

// Deliver puts m into the message slot of sint in s's message page, as the
// TLFS has the hypervisor do: into a free slot (type 0) goes the message,
// its flags clear; on a busy one only the pending flag is set. The header's
// first 8 bytes (type, size, flags) change with one atomic compare-and-swap,
// so a guest consuming the slot at the same time (it clears the type, then
// writes EOM if it sees the pending flag) never loses a message.
func Deliver(mem Memory, s *SynIC, sint uint32, m *Message) (Delivery, error) {
	slot, err := slotOf(mem, s.MessagePage, sint, MessageSize)
	if err != nil {
		return 0, err
	}
	hdr, err := word(slot, 0)
	if err != nil {
		return 0, err
	}
	// A guest that rewrites the header without end could keep the swap
	// failing; it gets a bounded number of tries.
	for range maxSwaps {
		old := atomic.LoadUint64(hdr)
		if uint32(old) != 0 {
			if old&messagePending != 0 || atomic.CompareAndSwapUint64(hdr, old, old|messagePending) {
				return Busy, nil
			}
			continue
		}
		// The slot is free, so the guest does not read it: the body first,
		// then the header that hands the slot over.
		putUint64(slot[8:], m.Sender)
		copy(slot[16:], m.Payload[:])
		if atomic.CompareAndSwapUint64(hdr, old, uint64(m.Type)|uint64(m.PayloadSize)<<32) {
			return Delivered, nil
		}
	}
	return 0, ErrContended
}

// maxSwaps bounds Deliver's compare-and-swap attempts.
const maxSwaps = 64

// SetEventFlag sets event flag n of sint in s's event flags page, with an
// atomic OR, and reports whether it was clear before: only then is the SINT
// to be raised (a flag already set has its interrupt on the way).
func SetEventFlag(mem Memory, s *SynIC, sint, n uint32) (bool, error) {
	const slotSize = 256 // 2048 flags
	if n >= slotSize*8 {
		return false, fmt.Errorf("%w: %d", ErrBadFlag, n)
	}
	slot, err := slotOf(mem, s.EventPage, sint, slotSize)
	if err != nil {
		return false, err
	}
	w, err := word(slot, n/64*8)
	if err != nil {
		return false, err
	}
	bit := uint64(1) << (n % 64)
	return atomic.OrUint64(w, bit)&bit == 0, nil
}

// slotOf returns slot sint (of size bytes) of the page page returns.
func slotOf(mem Memory, page func() (uint64, bool), sint uint32, size uint64) ([]byte, error) {
	if sint >= SINTs {
		return nil, fmt.Errorf("%w: %d", ErrBadSINT, sint)
	}
	gpa, ok := page()
	if !ok {
		return nil, ErrNoPage
	}
	b, err := mem.Slice(gpa+uint64(sint)*size, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotRAM, err)
	}
	return b, nil
}

// word returns the 8 bytes at off of b as a *uint64 for atomic access.
// Guest RAM is page-aligned host memory, so that holds at every 8-byte
// aligned guest address; the check keeps a fake memory honest.
func word(b []byte, off uint32) (*uint64, error) {
	if uint64(off)+8 > uint64(len(b)) {
		return nil, fmt.Errorf("hyperv: word at %d past a %d-byte slot", off, len(b))
	}
	p := unsafe.Pointer(&b[off])
	if uintptr(p)%8 != 0 {
		return nil, ErrMisaligned
	}
	return (*uint64)(p), nil
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}
