// Package atomic16 reads and writes the 16-bit fields a virtio driver and
// device share in guest memory (avail->idx, used->idx, used_event,
// avail_event) with atomic operations, so that neither the Go compiler nor the
// CPU moves the ring accesses around them.
//
// sync/atomic has no 16-bit operations, so each access goes to the naturally
// aligned 32-bit word that holds the field: a load reads the word and keeps
// its half, a store swaps in its half with a compare-and-swap, which leaves
// the other half (another field, or a neighbouring byte the driver owns)
// exactly as it was. Guest RAM regions are page-aligned, so the word of a
// field that is in RAM is in RAM too.
//
// The ordering this gives: on x86-64 an atomic load is a plain MOV, which
// total store order makes an acquire; a compare-and-swap is LOCK CMPXCHG, a
// full barrier, so it is a release and also orders a later load after it (the
// store-then-load that event-index notification suppression needs). In Go's
// memory model sync/atomic operations are sequentially consistent, so the
// compiler keeps them in program order with the plain accesses around them.
// The guest is not Go code; what Go must guarantee is that it neither
// reorders nor elides these accesses, and that is what sync/atomic gives.
//
// The fields are little-endian, as the host is (ember runs on x86-64).
package atomic16

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"ember/memory"
)

// ErrUnaligned is returned for a field that is not 2-byte aligned, or whose
// host memory is not 4-byte aligned: it cannot be accessed atomically.
var ErrUnaligned = errors.New("atomic16: unaligned field")

// ErrContended is returned by Store when the other half of the field's word
// changed under every attempt: only a driver that writes next to a device
// field without pause does that.
var ErrContended = errors.New("atomic16: field's word changed under every store attempt")

// storeTries bounds Store's compare-and-swap loop, so that a driver that
// hammers the neighbouring bytes cannot keep the device spinning.
const storeTries = 1 << 10

// Load reads the little-endian u16 at guest-physical address gpa atomically.
func Load(mem *memory.Guest, gpa uint64) (uint16, error) {
	w, shift, err := word(mem, gpa)
	if err != nil {
		return 0, err
	}
	return uint16(atomic.LoadUint32(w) >> shift), nil
}

// Store writes v as the little-endian u16 at guest-physical address gpa
// atomically, leaving the rest of its 32-bit word unchanged.
func Store(mem *memory.Guest, gpa uint64, v uint16) error {
	w, shift, err := word(mem, gpa)
	if err != nil {
		return err
	}
	mask := uint32(0xffff) << shift
	for range storeTries {
		old := atomic.LoadUint32(w)
		if atomic.CompareAndSwapUint32(w, old, old&^mask|uint32(v)<<shift) {
			return nil
		}
	}
	return fmt.Errorf("%w: %#x", ErrContended, gpa)
}

// word returns the aligned 32-bit word of guest memory that holds the u16 at
// gpa, and the bit position of the u16 in it.
func word(mem *memory.Guest, gpa uint64) (*uint32, uint, error) {
	if gpa%2 != 0 {
		return nil, 0, fmt.Errorf("%w: %#x", ErrUnaligned, gpa)
	}
	s, err := mem.Slice(gpa&^3, 4)
	if err != nil {
		return nil, 0, err
	}
	p := unsafe.Pointer(unsafe.SliceData(s))
	if uintptr(p)%4 != 0 {
		return nil, 0, fmt.Errorf("%w: host memory of %#x", ErrUnaligned, gpa)
	}
	return (*uint32)(p), uint(gpa&2) * 8, nil
}
