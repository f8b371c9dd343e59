package ioreq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"ember/acrn/iorequest"

	"golang.org/x/sys/unix"
)

// ErrBadTransition is the error every refused state change wraps: the slot
// was not in the state the transition starts from, or the pair of states is
// not an edge of FREE -> PENDING -> PROCESSING -> COMPLETE -> FREE.
var ErrBadTransition = errors.New("ioreq: illegal I/O request state transition")

// TransitionError describes a refused state change of one slot.
type TransitionError struct {
	Slot     int
	From, To iorequest.State // the transition asked for
	Actual   iorequest.State // the state the slot was in
}

func (e *TransitionError) Error() string {
	if e.Actual != e.From {
		return fmt.Sprintf("ioreq: slot %d: %v -> %v refused: slot is %v", e.Slot, e.From, e.To, e.Actual)
	}
	return fmt.Sprintf("ioreq: slot %d: %v -> %v is not a legal transition", e.Slot, e.From, e.To)
}

// Unwrap returns ErrBadTransition.
func (e *TransitionError) Unwrap() error { return ErrBadTransition }

// next is the life cycle of seed 000: each state's only successor.
var next = [...]iorequest.State{
	iorequest.StateFree:       iorequest.StatePending,
	iorequest.StatePending:    iorequest.StateProcessing,
	iorequest.StateProcessing: iorequest.StateComplete,
	iorequest.StateComplete:   iorequest.StateFree,
}

// Legal reports whether from -> to is an edge of the life cycle.
func Legal(from, to iorequest.State) bool {
	return from.Valid() && to.Valid() && next[from] == to
}

// Buffer is one VM's I/O request buffer: iorequest.RequestBufferSize bytes, slot i
// (at iorequest.SlotOffset(i)) belonging to vCPU i. The page may be shared with
// another process (NewBuffer: a sealed memfd) or be a page of a Service VM's
// RAM (NewBufferBytes), so every byte in it may change under ember's feet:
// the state field is only ever read and written with sync/atomic, and ember
// never trusts a body it reads back beyond the value of a read.
//
// Ownership follows seed 000: in FREE and COMPLETE a slot belongs to the
// hypervisor side (the vCPU), in PENDING and PROCESSING to the client side;
// the side that does not own a slot touches nothing but its state.
type Buffer struct {
	mem   []byte
	fd    int  // memfd, or -1
	owned bool // mem is our mapping, unmapped by Close
}

// NewBuffer creates a request buffer backed by a memfd (so that its fd can be
// handed to a device model, which maps it MAP_SHARED) and maps it here. Every
// slot starts FREE.
func NewBuffer() (*Buffer, error) {
	mem, fd, err := NewSharedMemory("ember-ioreq", iorequest.RequestBufferSize)
	if err != nil {
		return nil, fmt.Errorf("ioreq: request buffer: %w", err)
	}
	b := &Buffer{mem: mem, fd: fd, owned: true}
	b.Reset()
	return b, nil
}

// NewSharedMemory creates a memfd of size bytes, for memory ember shares
// with another process (a device model maps the fd with MapShared), maps
// it here, and returns the mapping and the fd; the caller unmaps and closes
// them. The memfd is sealed against shrinking and growing: a peer that
// could truncate it would make ember's next access SIGBUS.
func NewSharedMemory(name string, size int) ([]byte, int, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, -1, fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("ftruncate: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("seal: %w", err)
	}
	mem, err := MapShared(fd, size)
	if err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	return mem, fd, nil
}

// MapShared maps the first size bytes of fd, a memfd another process
// shares, readable, writable and MAP_SHARED.
func MapShared(fd, size int) ([]byte, error) {
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return mem, nil
}

// NewBufferBytes uses mem, which must hold at least iorequest.RequestBufferSize
// bytes starting at a 4-byte aligned address, as a request buffer: for
// example a page of a Service VM's RAM from memory.Guest.Slice. The slots'
// states are left as they are. Close does not unmap mem.
func NewBufferBytes(mem []byte) (*Buffer, error) {
	if len(mem) < iorequest.RequestBufferSize {
		return nil, fmt.Errorf("ioreq: request buffer of %d bytes, need %d", len(mem), iorequest.RequestBufferSize)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%4 != 0 {
		return nil, fmt.Errorf("ioreq: request buffer at %p is not 4-byte aligned", &mem[0])
	}
	return &Buffer{mem: mem[:iorequest.RequestBufferSize:iorequest.RequestBufferSize], fd: -1}, nil
}

// FD returns the memfd behind the buffer, or -1 if it was built over bytes.
// The fd stays owned by the Buffer.
func (b *Buffer) FD() int { return b.fd }

// Bytes returns the whole page. Only tests and the Service VM mirror read it
// directly; everything else goes through the slot methods.
func (b *Buffer) Bytes() []byte { return b.mem }

// MapBuffer maps the request buffer whose memfd an out-of-process device
// model received from ember (package devicemodel), shared and writable. The
// fd may be closed afterwards; Close unmaps the buffer.
func MapBuffer(fd int) (*Buffer, error) {
	mem, err := MapShared(fd, iorequest.RequestBufferSize)
	if err != nil {
		return nil, fmt.Errorf("ioreq: request buffer: %w", err)
	}
	return &Buffer{mem: mem, fd: -1, owned: true}, nil
}

// Close unmaps the page and closes the memfd of a buffer from NewBuffer.
// No vCPU or client may use the buffer afterwards; a device model that mapped
// the memfd keeps its own mapping.
func (b *Buffer) Close() error {
	var err error
	if b.owned && b.mem != nil {
		err = unix.Munmap(b.mem)
	}
	if b.fd >= 0 {
		if cerr := unix.Close(b.fd); err == nil {
			err = cerr
		}
	}
	b.mem, b.fd = nil, -1
	return err
}

// Reset marks every slot FREE, for a buffer no one is using yet (a VM being
// created or reset).
func (b *Buffer) Reset() {
	for i := range iorequest.IORequestMax {
		b.state(i).Store(uint32(iorequest.StateFree))
	}
}

// state returns the slot's processed field as an atomic. iorequest.StateOffset is
// 4-byte aligned and so is the page (NewBuffer maps a page, NewBufferBytes
// checks), so this is a naturally aligned x86 doubleword: a plain MOV is
// atomic and XCHG/LOCK CMPXCHG are full barriers, which is what sync/atomic
// compiles to. The device model on the other side uses the same field the
// same way.
func (b *Buffer) state(i int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&b.mem[iorequest.SlotStateOffset(i)]))
}

func (b *Buffer) slot(i int) []byte {
	off := iorequest.SlotOffset(i)
	return b.mem[off : off+iorequest.IORequestSize]
}

// SetPolling atomically stores slot i's completion_polling: 1 while the
// vCPU is looking at the slot (a device model need not signal completion),
// 0 before it sleeps. It is a store then the vCPU's load of the state, and a
// device model completes then loads this field: with both atomic, either the
// model sees 0 and signals, or the vCPU sees COMPLETE and does not sleep
// (docs/ioreq-protocol.md, "Completion").
func (b *Buffer) SetPolling(i int, on bool) {
	var v uint32
	if on {
		v = 1
	}
	b.polling(i).Store(v)
}

// Polling atomically loads slot i's completion_polling.
func (b *Buffer) Polling(i int) bool { return b.polling(i).Load() != 0 }

func (b *Buffer) polling(i int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&b.mem[iorequest.SlotOffset(i)+iorequest.CompletionPollingOffset]))
}

// StateWord returns slot i's state word, for FutexWait and FutexWake (the
// futex hand-off): a vCPU waits on it, a device model that stores COMPLETE
// wakes it.
func (b *Buffer) StateWord(i int) *atomic.Uint32 { return b.state(i) }

// State atomically loads slot i's state. The load is the acquire half of the
// ordering rules: a party that sees the state another wrote also sees every
// byte that party wrote to the slot before it.
func (b *Buffer) State(i int) iorequest.State { return iorequest.State(b.state(i).Load()) }

// Transition moves slot i from one state to the next with a compare-and-swap,
// and refuses (with a *TransitionError wrapping ErrBadTransition) a pair that
// is not an edge of the life cycle or a slot that is not in state from.
func (b *Buffer) Transition(i int, from, to iorequest.State) error {
	if !Legal(from, to) {
		return &TransitionError{Slot: i, From: from, To: to, Actual: b.State(i)}
	}
	if !b.state(i).CompareAndSwap(uint32(from), uint32(to)) {
		return &TransitionError{Slot: i, From: from, To: to, Actual: b.State(i)}
	}
	return nil
}

// Issue is FREE -> PENDING, done by the vCPU that owns slot i: it writes req's
// body into the slot and then publishes it.
//
// Ordering rule (a) "happens before" (b), and "setting PENDING is the last
// operation when issuing a request": the body is written with plain stores
// while the slot is FREE (the hypervisor's), and the atomic store of PENDING
// comes after them and is the release. Whoever claims the slot does so with
// an atomic on the same field (Claim), the acquire, so it sees the whole body.
// After PENDING the vCPU touches nothing but the state.
//
// Issue refuses a slot that is not FREE: one vCPU never has two requests in
// flight.
func (b *Buffer) Issue(i int, req *iorequest.IORequest) error {
	if s := b.State(i); s != iorequest.StateFree {
		return &TransitionError{Slot: i, From: iorequest.StateFree, To: iorequest.StatePending, Actual: s}
	}
	if err := req.EncodeBody(b.slot(i)); err != nil {
		return err
	}
	return b.Transition(i, iorequest.StateFree, iorequest.StatePending)
}

// Claim is PENDING -> PROCESSING, done by the party that assigns the request
// to a client (the HSM's role, played by ember's dispatcher, or a Service VM).
// Ordering rule (b): the compare-and-swap acquires what Issue released.
// Rule (c) "happens before" (d): a client is handed the request (called, or
// woken through its eventfd) only after Claim has succeeded, and reads the
// body only after it has loaded PROCESSING itself.
func (b *Buffer) Claim(i int) error {
	return b.Transition(i, iorequest.StatePending, iorequest.StateProcessing)
}

// Complete is PROCESSING -> COMPLETE, done by the client when it has handled
// the request. "Setting COMPLETE is the last operation of request handling":
// the client writes the read value (WriteBody) first, and the atomic store of
// COMPLETE releases it to the vCPU.
func (b *Buffer) Complete(i int) error {
	return b.Transition(i, iorequest.StateProcessing, iorequest.StateComplete)
}

// Release is COMPLETE -> FREE, done by the vCPU after it has loaded COMPLETE
// (the acquire that makes the client's value visible) and copied the value out
// (ReadValue). Rule (e) "happens before" (f): the vCPU resumes with the value
// first, and the slot becomes FREE as the last step of the post-work, after
// which it may issue its next request.
func (b *Buffer) Release(i int) error {
	return b.Transition(i, iorequest.StateComplete, iorequest.StateFree)
}

// Reclaim forces slot i back to FREE whatever its state, and returns the
// state it was in. It is not a transition of the life cycle: the dispatcher
// uses it only when a client has failed to complete a request in time or has
// gone away, to take the slot back from the client side.
func (b *Buffer) Reclaim(i int) iorequest.State {
	return iorequest.State(b.state(i).Swap(uint32(iorequest.StateFree)))
}

// Request decodes slot i's 256 bytes. The caller must own the slot in its
// current state (a client in PROCESSING, the vCPU in COMPLETE), having loaded
// that state first; a request read from a shared page is hostile, so
// Validate it before acting on it.
// completion_polling, which the vCPU may change meanwhile (SetPolling), is
// loaded atomically.
func (b *Buffer) Request(i int) (iorequest.IORequest, error) {
	var body [iorequest.IORequestSize]byte
	slot := b.slot(i)
	copy(body[:iorequest.CompletionPollingOffset], slot)
	binary.LittleEndian.PutUint32(body[iorequest.CompletionPollingOffset:], b.polling(i).Load())
	copy(body[iorequest.CompletionPollingOffset+4:iorequest.StateOffset], slot[iorequest.CompletionPollingOffset+4:])
	binary.LittleEndian.PutUint32(body[iorequest.StateOffset:], b.state(i).Load())
	copy(body[iorequest.StateOffset+4:], slot[iorequest.StateOffset+4:])
	var r iorequest.IORequest
	err := r.Decode(body[:])
	return r, err
}

// WriteBody writes req's body into slot i: everything but the state and
// completion_polling, which the vCPU keeps to itself while the request is in
// flight (SetPolling). Only the owner of the slot's current state may call
// it: a client in PROCESSING, before Complete.
func (b *Buffer) WriteBody(i int, req *iorequest.IORequest) error {
	var body [iorequest.IORequestSize]byte
	if err := req.EncodeBody(body[:]); err != nil {
		return err
	}
	slot := b.slot(i)
	copy(slot[:iorequest.CompletionPollingOffset], body[:iorequest.CompletionPollingOffset])
	copy(slot[iorequest.CompletionPollingOffset+4:iorequest.StateOffset], body[iorequest.CompletionPollingOffset+4:iorequest.StateOffset])
	return nil
}

// ReadValue returns the value field of slot i interpreted as the kind of
// request orig is (the vCPU's own copy, not the shared bytes), truncated to
// orig's access size: a client can put anything in the page, and the vCPU
// takes only the value from it.
func (b *Buffer) ReadValue(i int, orig *iorequest.IORequest) uint64 {
	s := b.slot(i)[iorequest.ReqsOffset:]
	var v uint64
	switch orig.Type {
	case iorequest.ReqMMIO, iorequest.ReqWP:
		v = binary.LittleEndian.Uint64(s[24:])
	default: // PIO and PCI both keep a 32-bit value at reqs+24
		v = uint64(binary.LittleEndian.Uint32(s[24:]))
	}
	return v & sizeMask(accessSize(orig))
}

// sizeMask is the mask of an access of n bytes; all ones for 8 or more.
func sizeMask(n uint64) uint64 {
	if n >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*n) - 1
}
