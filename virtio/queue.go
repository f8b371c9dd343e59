package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"ember/memory"
	"ember/virtio/internal/atomic16"
)

// Split virtqueue constants (virtio 1.2, §2.7).
const (
	// MaxQueueSize is the largest size a split virtqueue can have.
	MaxQueueSize = 32768

	DescNext     = 1 // VIRTQ_DESC_F_NEXT: the chain goes on at the descriptor's next
	DescWrite    = 2 // VIRTQ_DESC_F_WRITE: the buffer is device-writable
	DescIndirect = 4 // VIRTQ_DESC_F_INDIRECT: the buffer is a table of descriptors

	// AvailNoInterrupt is VIRTQ_AVAIL_F_NO_INTERRUPT in avail->flags: the
	// driver wants no used buffer notifications (without EVENT_IDX).
	AvailNoInterrupt = 1

	// MaxChainBytes is the most bytes a chain may describe: "drivers MUST
	// NOT add a descriptor chain longer than 2^32 bytes in total" (§2.7.5.2).
	MaxChainBytes = 1 << 32

	// MinIndirectLimit is the least number of descriptors Pop accepts in an
	// indirect table. §2.7.5.3.1 bounds a chain by the queue size, but Linux
	// builds indirect tables of as many entries as a request has segments
	// whatever the queue size, so a table may hold max(Size, MinIndirectLimit)
	// descriptors, as QEMU's 1024-entry bound allows.
	MinIndirectLimit = 1024
)

// Sizes of the ring structures (§2.7).
const (
	descSize     = 16 // struct virtq_desc
	usedElemSize = 8  // struct virtq_used_elem
	ringHeader   = 4  // flags and idx before each ring's entries
)

// Errors of a queue. Every error Validate and Pop return wraps one of them,
// and memory.ErrOutOfRange when guest RAM was the problem; so does every
// error of Push but the device's own misuse (a head outside the queue, more
// chains returned than taken).
var (
	// ErrInvalid is a queue whose configuration cannot work: a size that
	// is not a power of two up to MaxQueueSize, a misaligned area, an area
	// outside guest RAM, or a queue that is not ready.
	ErrInvalid = errors.New("virtio: invalid queue")
	// ErrBadRing is an available ring the driver broke: its index ran more
	// than the queue size ahead of the chains the device took. The queue
	// cannot go on; the device needs a reset.
	ErrBadRing = errors.New("virtio: driver broke the available ring")
	// ErrBadChain is a malformed descriptor chain (Pop returns it inside a
	// *ChainError). The chain is consumed; the queue can go on.
	ErrBadChain = errors.New("virtio: bad descriptor chain")
)

// ChainError is the error Pop returns for a malformed descriptor chain. The
// chain's entry in the available ring has been taken: a device that drops
// the request and goes on returns it with Push(mem, Head, 0) (Push refuses a
// Head outside the queue: that chain can only be dropped); one that gives
// up marks itself DEVICE_NEEDS_RESET. Err wraps ErrBadChain.
type ChainError struct {
	Head uint16 // the chain's head descriptor index
	Err  error
}

// Error returns the reason the chain was refused.
func (e *ChainError) Error() string { return e.Err.Error() }

// Unwrap returns the reason, which wraps ErrBadChain.
func (e *ChainError) Unwrap() error { return e.Err }

// Queue is one split virtqueue (virtio 1.2, §2.7) seen from the device: the
// transport fills in the exported fields as the driver configures the queue
// and calls Validate before it hands the queue to a device, which takes
// chains with Pop and returns them with Push.
//
// Every value the queue reads from guest memory is the driver's and is
// treated as hostile: indices are bounds-checked, chains are bounded in
// length, every buffer is checked to lie in guest RAM, and each descriptor is
// read once, so a driver that rewrites the rings under the device can make a
// request fail but can make the device neither panic, loop, nor touch memory
// outside guest RAM.
//
// A Queue is used by one goroutine at a time: the device's goroutine that
// serves it calls Pop, Push and NeedsInterrupt; the transport configures it
// before Device.Activate hands it over and resets it after Device.Reset took
// it back.
type Queue struct {
	// Size is the number of descriptors, as the driver set it: a power of
	// two from 1 to MaxQueueSize.
	Size uint16
	// Desc, Driver and Device are the guest-physical addresses of the
	// descriptor table, the available ring ("driver area") and the used
	// ring ("device area").
	Desc, Driver, Device uint64
	// Ready is true when the driver enabled the queue.
	Ready bool
	// EventIdx is true when VIRTIO_F_EVENT_IDX was negotiated: interrupts
	// follow used_event (§2.7.7) and the device publishes avail_event
	// (§2.7.10).
	EventIdx bool
	// IndirectDesc is true when VIRTIO_F_INDIRECT_DESC was negotiated:
	// chains may use indirect descriptor tables (§2.7.5.3).
	IndirectDesc bool
	// Kick, where the activator has one, is an eventfd the driver's
	// notifications of the queue signal: a back-end's, which ember's KVM
	// ioeventfd signals (virtio/backend). A KickWaiter device waits on
	// it itself (on a duplicate); others ignore it. nil: none.
	Kick *os.File

	nextAvail uint16 // the avail ring index of the next chain to take
	nextUsed  uint16 // the used ring index of the next element to put
	usedIdx   uint16 // used->idx as last published: the elements the driver may see
	signalled uint16 // usedIdx at the last NeedsInterrupt
}

// Validate checks the queue's configuration against guest RAM: the size is
// a power of two up to MaxQueueSize, the three areas have the alignment
// §2.7 requires (descriptor table 16, available ring 2, used ring 4) and lie
// wholly in guest RAM, event index fields included, and the used ring, the
// one area the device writes, overlaps neither of the driver's: a device
// that rewrote the available ring as it returned chains could be kept
// popping forever. The transport calls it when the driver enables the queue.
func (q *Queue) Validate(mem *memory.Guest) error {
	_, err := q.rings(mem)
	return err
}

// Rings validates the queue (Validate) and returns its descriptor table,
// available ring and used ring as guest memory, for a data path outside
// ember that reaches them by address (vhost): what it is given has passed
// every check ember's own queue passes.
func (q *Queue) Rings(mem *memory.Guest) (desc, avail, used []byte, err error) {
	b, err := q.rings(mem)
	return b[0], b[1], b[2], err
}

// rings is Validate, returning the three areas' guest memory when they pass.
func (q *Queue) rings(mem *memory.Guest) ([3][]byte, error) {
	var b [3][]byte
	if err := q.checkLayout(); err != nil {
		return b, err
	}
	n := uint64(q.Size)
	desc := area{"descriptor table", q.Desc, descSize * n}
	avail := area{"available ring", q.Driver, ringHeader + 2*n + 2}
	used := area{"used ring", q.Device, ringHeader + usedElemSize*n + 2}
	for i, a := range []area{desc, avail, used} {
		s, err := mem.Slice(a.gpa, a.size)
		if err != nil {
			return [3][]byte{}, fmt.Errorf("%w: %s at %#x+%#x: %w", ErrInvalid, a.name, a.gpa, a.size, err)
		}
		b[i] = s
	}
	for _, a := range []area{desc, avail} {
		if a.overlaps(used) {
			return [3][]byte{}, fmt.Errorf("%w: %s at %#x+%#x overlaps the used ring at %#x+%#x", ErrInvalid, a.name, a.gpa, a.size, used.gpa, used.size)
		}
	}
	return b, nil
}

// area is one of a queue's three parts in guest memory.
type area struct {
	name      string
	gpa, size uint64
}

// overlaps says whether a and b share a byte; both are known to be in RAM,
// so their ends do not wrap.
func (a area) overlaps(b area) bool { return a.gpa < b.gpa+b.size && b.gpa < a.gpa+a.size }

// checkLayout checks what Validate checks without guest memory: the size
// and the alignments. Pop and Push check it too, so a queue the transport
// forgot to validate still cannot make them divide by zero.
func (q *Queue) checkLayout() error {
	switch {
	case q.Size == 0 || q.Size > MaxQueueSize || q.Size&(q.Size-1) != 0:
		return fmt.Errorf("%w: size %d is not a power of two from 1 to %d", ErrInvalid, q.Size, MaxQueueSize)
	case q.Desc%16 != 0:
		return fmt.Errorf("%w: descriptor table at %#x is not 16-byte aligned", ErrInvalid, q.Desc)
	case q.Driver%2 != 0:
		return fmt.Errorf("%w: available ring at %#x is not 2-byte aligned", ErrInvalid, q.Driver)
	case q.Device%4 != 0:
		return fmt.Errorf("%w: used ring at %#x is not 4-byte aligned", ErrInvalid, q.Device)
	}
	return nil
}

// usable is checkLayout for a queue in use: it must also be ready.
func (q *Queue) usable() error {
	if !q.Ready {
		return fmt.Errorf("%w: not ready", ErrInvalid)
	}
	return q.checkLayout()
}

// Reset returns the queue to its unconfigured state, as after a device
// reset: no size, no areas, not ready, indices at zero.
func (q *Queue) Reset() { *q = Queue{} }

// The addresses of the ring fields.
func (q *Queue) availIdxAddr() uint64 { return q.Driver + 2 }
func (q *Queue) usedIdxAddr() uint64  { return q.Device + 2 }
func (q *Queue) availEntry(i uint16) uint64 {
	return q.Driver + ringHeader + 2*uint64(i%q.Size)
}
func (q *Queue) usedElem(i uint16) uint64 {
	return q.Device + ringHeader + usedElemSize*uint64(i%q.Size)
}
func (q *Queue) usedEvent() uint64  { return q.Driver + ringHeader + 2*uint64(q.Size) }
func (q *Queue) availEvent() uint64 { return q.Device + ringHeader + usedElemSize*uint64(q.Size) }

// Pop takes the next chain the driver made available, or returns (nil, nil)
// when there is none. The chain's buffers are guest memory itself, checked
// to lie in guest RAM: the device reads and writes them in place, and they
// stay valid while the guest's RAM stays mapped.
//
// avail->idx is read with an atomic load (an acquire: see package
// atomic16), so the ring entry and descriptors the driver wrote before it
// are seen. An index more than Size ahead of the chains taken is ErrBadRing:
// the queue is unusable. A malformed chain is a *ChainError wrapping
// ErrBadChain, and is consumed.
//
// With EventIdx, Pop finding the queue empty sets avail_event to the index
// of the next chain it will take, which asks the driver to notify the device
// when it adds one (§2.7.10), and then reads avail->idx again, since a chain
// added before the driver saw avail_event brings no notification.
func (q *Queue) Pop(mem *memory.Guest) (*Chain, error) {
	c := new(Chain)
	if ok, err := q.PopInto(mem, c); !ok {
		return nil, err
	}
	return c, nil
}

// PopInto is Pop into a chain the caller keeps: it reports whether it took
// one, and reuses c's slices, so a device that serves one chain at a time
// allocates nothing per request. c's earlier buffers are forgotten.
func (q *Queue) PopInto(mem *memory.Guest, c *Chain) (bool, error) {
	if err := q.usable(); err != nil {
		return false, err
	}
	avail, err := q.availIdx(mem)
	if err == nil && avail == q.nextAvail {
		avail, err = q.armNotify(mem)
	}
	if err != nil || avail == q.nextAvail {
		return false, err
	}
	if ahead := avail - q.nextAvail; ahead > q.Size {
		return false, fmt.Errorf("%w: avail idx %d is %d ahead of the %d taken, queue size %d", ErrBadRing, avail, ahead, q.nextAvail, q.Size)
	}
	table, err := mem.Slice(q.Desc, descSize*uint64(q.Size))
	if err != nil {
		return false, fmt.Errorf("%w: descriptor table: %w", ErrInvalid, err)
	}
	entry, err := mem.Slice(q.availEntry(q.nextAvail), 2)
	if err != nil {
		return false, fmt.Errorf("%w: available ring: %w", ErrInvalid, err)
	}
	head := binary.LittleEndian.Uint16(entry)
	q.nextAvail++
	if err := q.walk(mem, table, head, c); err != nil {
		return false, &ChainError{Head: head, Err: fmt.Errorf("%w: head %d: %w", ErrBadChain, head, err)}
	}
	return true, nil
}

// Offered reports whether the driver has made a chain available that the
// device has not taken, without taking it and without asking for a
// notification: a device deciding whether anything waits behind the
// chain it holds. An unreadable index reports none (Pop will say why).
func (q *Queue) Offered(mem *memory.Guest) bool {
	if q.usable() != nil {
		return false
	}
	avail, err := q.availIdx(mem)
	return err == nil && avail != q.nextAvail
}

// availIdx reads avail->idx with an acquire.
func (q *Queue) availIdx(mem *memory.Guest) (uint16, error) {
	v, err := atomic16.Load(mem, q.availIdxAddr())
	if err != nil {
		return 0, fmt.Errorf("%w: avail idx: %w", ErrInvalid, err)
	}
	return v, nil
}

// armNotify is Pop's step on an empty queue: with EventIdx it sets
// avail_event to the next index to take, unless it already holds it, and
// reads avail->idx again after that store (the compare-and-swap is a full
// barrier). Without EventIdx the driver notifies for every chain.
func (q *Queue) armNotify(mem *memory.Guest) (uint16, error) {
	if !q.EventIdx {
		return q.nextAvail, nil
	}
	ev, err := atomic16.Load(mem, q.availEvent())
	if err == nil && ev == q.nextAvail {
		return q.nextAvail, nil
	}
	if err == nil {
		err = atomic16.Store(mem, q.availEvent(), q.nextAvail)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: avail_event: %w", ErrInvalid, err)
	}
	return q.availIdx(mem)
}

// Push returns the chain whose head is head to the driver with written bytes
// put in its device-writable buffers: Put, then Publish. Call
// NeedsInterrupt after one or more Push.
func (q *Queue) Push(mem *memory.Guest, head uint16, written uint32) error {
	if err := q.Put(mem, head, written); err != nil {
		return err
	}
	return q.Publish(mem)
}

// Put writes the used ring element that returns the chain whose head is
// head with written bytes put in its device-writable buffers, without
// showing it to the driver: Publish does, for every element Put since the
// last. A device whose reply spans several chains puts them all and
// publishes once, so the driver sees all of them or none — a received
// packet in mergeable buffers must be (§5.1.6.4: "the device MUST use
// all buffers used by a single receive packet together"); Linux's driver
// drops a packet whose other buffers are not there when it reads its
// head.
func (q *Queue) Put(mem *memory.Guest, head uint16, written uint32) error {
	if err := q.usable(); err != nil {
		return err
	}
	if head >= q.Size {
		return fmt.Errorf("virtio: push: head %d is outside a queue of size %d", head, q.Size)
	}
	if q.nextUsed == q.nextAvail {
		return fmt.Errorf("virtio: push: head %d: every chain taken was already returned", head)
	}
	elem, err := mem.Slice(q.usedElem(q.nextUsed), usedElemSize)
	if err != nil {
		return fmt.Errorf("%w: used ring: %w", ErrInvalid, err)
	}
	binary.LittleEndian.PutUint32(elem, uint32(head))
	binary.LittleEndian.PutUint32(elem[4:], written)
	q.nextUsed++
	return nil
}

// Publish shows the driver every used element Put since the last Publish:
// it stores used->idx with an atomic compare-and-swap (a release), so the
// driver sees the elements, and the buffer bytes written before them,
// when it sees the index (§2.7.8). Nothing Put since: nothing to do.
func (q *Queue) Publish(mem *memory.Guest) error {
	if q.usedIdx == q.nextUsed {
		return nil
	}
	if err := atomic16.Store(mem, q.usedIdxAddr(), q.nextUsed); err != nil {
		return fmt.Errorf("%w: used idx: %w", ErrInvalid, err)
	}
	q.usedIdx = q.nextUsed
	return nil
}

// NeedsInterrupt says whether the driver wants a used buffer notification
// for what Push or Publish showed it in the used ring since the last call
// (§2.7.7): without EventIdx unless it set AvailNoInterrupt in
// avail->flags; with EventIdx when the used index passed used_event, the
// vring_need_event rule. It reads the driver's field after Publish's
// store of used->idx (the store is a full barrier), so a driver that
// updates used_event and then checks used->idx cannot miss an interrupt.
// It returns false when nothing was published since the last call, and
// true when the driver's field is unreadable: a spurious interrupt is
// harmless (drivers must handle them), a lost one is not. An element Put
// and not yet published does not count.
func (q *Queue) NeedsInterrupt(mem *memory.Guest) bool {
	old, now := q.signalled, q.usedIdx
	q.signalled = now
	if old == now || q.usable() != nil {
		return old != now
	}
	if !q.EventIdx {
		flags, err := atomic16.Load(mem, q.Driver)
		return err != nil || flags&AvailNoInterrupt == 0
	}
	ev, err := atomic16.Load(mem, q.usedEvent())
	return err != nil || needEvent(ev, now, old)
}

// needEvent is the spec's vring_need_event (virtio_ring.h, §2.7.7): whether
// moving an index from old to now passed event, counting modulo 2^16.
func needEvent(event, now, old uint16) bool {
	return now-event-1 < now-old
}
