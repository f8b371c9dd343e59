// Package virtiotest plays a virtio driver against a split virtqueue in
// guest memory, so that tests of queues and devices need no guest: Driver
// lays out the rings, builds chains (direct or through an indirect table),
// makes them available and reads back the used ring, publishing and reading
// the ring indices with the same atomic accesses a device uses. For hostile
// cases it also writes raw descriptors and indices.
package virtiotest

import (
	"encoding/binary"
	"errors"
	"fmt"

	"ember/memory"
	"ember/virtio"
	"ember/virtio/internal/atomic16"
)

// usedNoNotify is VIRTQ_USED_F_NO_NOTIFY in used->flags: the device wants no
// available buffer notifications (without EVENT_IDX).
const usedNoNotify = 1

// Desc is a descriptor as the driver writes it into a table.
type Desc struct {
	Addr  uint64
	Len   uint32
	Flags uint16
	Next  uint16
}

// Buffer is one element of a chain the driver offers.
type Buffer struct {
	Data     []byte // the contents of a device-readable buffer
	Len      uint32 // the size of a device-writable buffer
	Writable bool
}

// Readable returns a device-readable buffer holding data.
func Readable(data []byte) Buffer { return Buffer{Data: data, Len: uint32(len(data))} }

// Writable returns a device-writable buffer of n bytes.
func Writable(n uint32) Buffer { return Buffer{Len: n, Writable: true} }

// Used is one element the device put in the used ring.
type Used struct {
	Head uint16
	Len  uint32
}

// Driver is the driver side of one split virtqueue. A Driver is used by one
// goroutine; the device may run concurrently on its own.
type Driver struct {
	// Queue is the queue as a transport would hand it to the device:
	// configured, validated and ready.
	Queue *virtio.Queue

	mem       *memory.Guest
	free      []uint16            // free descriptor indices
	chains    map[uint16][]uint16 // head -> the descriptors of its chain
	availIdx  uint16              // the driver's avail->idx
	usedSeen  uint16              // used elements read so far
	next, end uint64              // the bump allocator for buffers and tables
}

// Config places a queue in guest memory.
type Config struct {
	Base         uint64 // where the descriptor table starts (16-byte aligned)
	Size         uint16 // the queue size
	EventIdx     bool   // VIRTIO_F_EVENT_IDX negotiated
	IndirectDesc bool   // VIRTIO_F_INDIRECT_DESC negotiated
}

// New lays out a queue at cfg.Base: the descriptor table, the available ring
// right after it, the used ring at the next 4-byte boundary; buffers and
// indirect tables are allocated from the rest of the RAM region holding
// Base. The rings are zeroed, as a driver initialises them.
func New(mem *memory.Guest, cfg Config) (*Driver, error) {
	n := uint64(cfg.Size)
	q := &virtio.Queue{
		Size: cfg.Size, Desc: cfg.Base, Driver: cfg.Base + 16*n,
		Ready: true, EventIdx: cfg.EventIdx, IndirectDesc: cfg.IndirectDesc,
	}
	q.Device = align(q.Driver+6+2*n, 4)
	if err := q.Validate(mem); err != nil {
		return nil, fmt.Errorf("virtiotest: %w", err)
	}
	d := &Driver{Queue: q, mem: mem, chains: map[uint16][]uint16{}}
	d.next = align(q.Device+6+8*n, 16)
	d.end = regionEnd(mem, cfg.Base)
	ring, err := mem.Slice(q.Desc, d.next-q.Desc)
	if err != nil {
		return nil, fmt.Errorf("virtiotest: %w", err)
	}
	clear(ring)
	for i := cfg.Size; i > 0; i-- {
		d.free = append(d.free, i-1)
	}
	return d, nil
}

func align(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }

// regionEnd returns the end of the RAM region holding gpa.
func regionEnd(mem *memory.Guest, gpa uint64) uint64 {
	for _, r := range mem.Regions() {
		if gpa >= r.GPA && gpa < r.End() {
			return r.End()
		}
	}
	return gpa
}

// Alloc reserves n bytes of guest memory, 16-byte aligned, and returns their
// address.
func (d *Driver) Alloc(n uint64) (uint64, error) {
	gpa := d.next
	if n > d.end-gpa {
		return 0, fmt.Errorf("virtiotest: no room for %d more bytes", n)
	}
	d.next = align(gpa+n, 16)
	return gpa, nil
}

// Write copies data into guest memory at gpa.
func (d *Driver) Write(gpa uint64, data []byte) error {
	_, err := d.mem.WriteAt(data, int64(gpa))
	return err
}

// Read returns a copy of n bytes of guest memory at gpa.
func (d *Driver) Read(gpa uint64, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := d.mem.ReadAt(b, int64(gpa))
	return b, err
}

// SetDesc writes descriptor i of the queue's descriptor table. i may be out
// of range on purpose: the write lands where the table would have it.
func (d *Driver) SetDesc(i uint16, desc Desc) error {
	return d.WriteTable(d.Queue.Desc+16*uint64(i), []Desc{desc})
}

// WriteTable writes descs as a descriptor table at gpa: an indirect table,
// or a run of the queue's own.
func (d *Driver) WriteTable(gpa uint64, descs []Desc) error {
	b := make([]byte, 16*len(descs))
	for i, x := range descs {
		e := b[16*i:]
		binary.LittleEndian.PutUint64(e, x.Addr)
		binary.LittleEndian.PutUint32(e[8:], x.Len)
		binary.LittleEndian.PutUint16(e[12:], x.Flags)
		binary.LittleEndian.PutUint16(e[14:], x.Next)
	}
	return d.Write(gpa, b)
}

// Add builds a chain of bufs in free descriptors, makes it available and
// returns its head and the address of each buffer.
func (d *Driver) Add(bufs ...Buffer) (uint16, []uint64, error) {
	descs, gpas, err := d.buffers(bufs)
	if err != nil {
		return 0, nil, err
	}
	if len(descs) > len(d.free) {
		return 0, nil, fmt.Errorf("virtiotest: %d descriptors wanted, %d free", len(descs), len(d.free))
	}
	idx := d.free[len(d.free)-len(descs):]
	d.free = d.free[:len(d.free)-len(descs)]
	for i := range descs {
		if i+1 < len(descs) {
			descs[i].Next = idx[i+1]
		}
		if err := d.SetDesc(idx[i], descs[i]); err != nil {
			return 0, nil, err
		}
	}
	d.chains[idx[0]] = append([]uint16(nil), idx...)
	return idx[0], gpas, d.Offer(idx[0])
}

// AddIndirect builds a chain of bufs in an indirect table, referred to by one
// free descriptor, makes it available and returns its head and the address
// of each buffer.
func (d *Driver) AddIndirect(bufs ...Buffer) (uint16, []uint64, error) {
	descs, gpas, err := d.buffers(bufs)
	if err != nil {
		return 0, nil, err
	}
	for i := range descs[:max(len(descs)-1, 0)] {
		descs[i].Next = uint16(i + 1)
	}
	table, err := d.Alloc(16 * uint64(len(descs)))
	if err != nil {
		return 0, nil, err
	}
	if err := d.WriteTable(table, descs); err != nil {
		return 0, nil, err
	}
	if len(d.free) == 0 {
		return 0, nil, errors.New("virtiotest: no free descriptor")
	}
	head := d.free[len(d.free)-1]
	d.free = d.free[:len(d.free)-1]
	if err := d.SetDesc(head, Desc{Addr: table, Len: uint32(16 * len(descs)), Flags: virtio.DescIndirect}); err != nil {
		return 0, nil, err
	}
	d.chains[head] = []uint16{head}
	return head, gpas, d.Offer(head)
}

// buffers allocates and fills bufs and returns a descriptor for each, NEXT
// set on all but the last, and their addresses.
func (d *Driver) buffers(bufs []Buffer) ([]Desc, []uint64, error) {
	if len(bufs) == 0 {
		return nil, nil, errors.New("virtiotest: a chain of no buffers")
	}
	descs := make([]Desc, len(bufs))
	gpas := make([]uint64, len(bufs))
	for i, b := range bufs {
		gpa, err := d.Alloc(uint64(b.Len))
		if err != nil {
			return nil, nil, err
		}
		if err := d.Write(gpa, b.Data); err != nil {
			return nil, nil, err
		}
		descs[i] = Desc{Addr: gpa, Len: b.Len}
		if b.Writable {
			descs[i].Flags |= virtio.DescWrite
		}
		if i+1 < len(bufs) {
			descs[i].Flags |= virtio.DescNext
		}
		gpas[i] = gpa
	}
	return descs, gpas, nil
}

// Offer puts head in the next available ring entry and publishes it: the
// entry first, then avail->idx with an atomic store.
func (d *Driver) Offer(head uint16) error {
	q := d.Queue
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], head)
	if err := d.Write(q.Driver+4+2*uint64(d.availIdx%q.Size), b[:]); err != nil {
		return err
	}
	return d.SetAvailIdx(d.availIdx + 1)
}

// SetAvailIdx publishes avail->idx = idx, whatever the ring holds.
func (d *Driver) SetAvailIdx(idx uint16) error {
	d.availIdx = idx
	return atomic16.Store(d.mem, d.Queue.Driver+2, idx)
}

// SetAvailFlags writes avail->flags (virtio.AvailNoInterrupt).
func (d *Driver) SetAvailFlags(flags uint16) error {
	return atomic16.Store(d.mem, d.Queue.Driver, flags)
}

// SetUsedEvent writes used_event, the used index after which the driver
// wants an interrupt (with EVENT_IDX).
func (d *Driver) SetUsedEvent(idx uint16) error {
	return atomic16.Store(d.mem, d.Queue.Driver+4+2*uint64(d.Queue.Size), idx)
}

// AvailEvent reads avail_event, the available index at which the device
// wants a notification (with EVENT_IDX).
func (d *Driver) AvailEvent() (uint16, error) {
	return atomic16.Load(d.mem, d.Queue.Device+4+8*uint64(d.Queue.Size))
}

// UsedIdx reads used->idx.
func (d *Driver) UsedIdx() (uint16, error) {
	return atomic16.Load(d.mem, d.Queue.Device+2)
}

// Used returns the next element the device put in the used ring, and false
// when there is none yet. The descriptors of a chain the driver built are
// freed for reuse.
func (d *Driver) Used() (Used, bool, error) {
	idx, err := d.UsedIdx()
	if err != nil || idx == d.usedSeen {
		return Used{}, false, err
	}
	q := d.Queue
	b, err := d.Read(q.Device+4+8*uint64(d.usedSeen%q.Size), 8)
	if err != nil {
		return Used{}, false, err
	}
	d.usedSeen++
	u := Used{Head: uint16(binary.LittleEndian.Uint32(b)), Len: binary.LittleEndian.Uint32(b[4:])}
	d.free = append(d.free, d.chains[u.Head]...)
	delete(d.chains, u.Head)
	return u, true, nil
}

// AvailIdx returns the driver's avail->idx: the chains it made available.
func (d *Driver) AvailIdx() uint16 { return d.availIdx }

// NeedsNotify says whether the driver must notify the device after moving
// avail->idx from old to its current value, as a driver decides (§2.7.10):
// without EVENT_IDX unless the device set VIRTQ_USED_F_NO_NOTIFY in
// used->flags, with it when avail->idx passed avail_event. It reads the
// device's field after the atomic store of avail->idx, so it cannot miss a
// device that asked for a notification.
func (d *Driver) NeedsNotify(old uint16) (bool, error) {
	q := d.Queue
	if !q.EventIdx {
		flags, err := atomic16.Load(d.mem, q.Device)
		return flags&usedNoNotify == 0, err
	}
	ev, err := d.AvailEvent()
	return d.availIdx-ev-1 < d.availIdx-old, err
}

// ArmInterrupt asks the device for an interrupt at the next used element:
// with EVENT_IDX it sets used_event to the elements read so far, without it
// it clears VIRTQ_AVAIL_F_NO_INTERRUPT. Call Used again afterwards: an
// element the device put before it saw the request brings no interrupt.
func (d *Driver) ArmInterrupt() error {
	if d.Queue.EventIdx {
		return d.SetUsedEvent(d.usedSeen)
	}
	return d.SetAvailFlags(0)
}
