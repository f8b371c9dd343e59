// Package sbuf is ACRN's shared buffer (sbuf, ACRN v2.6): the ring the
// hypervisor writes trace and log records into for the Service VM to read.
// An sbuf lives in the Service VM's memory: a 64-byte header (struct
// shared_buf) followed by ele_num elements of ele_size bytes; the
// hypervisor writes at tail, the Service VM reads from head.
//
// Buffer is one sbuf, checked; Table holds the sbufs a Service VM registered
// with HC_SETUP_SBUF, per host CPU and kind, and writes trace records into
// them. The Service VM owns the memory and may change the header at any
// time, so every write checks the header again.
package sbuf

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"unsafe"

	"ember/acrn"
	"ember/memory"
)

// The sbuf format.
const (
	Magic       = 0x5aa57aa71aa13aa3 // SBUF_MAGIC
	HeadSize    = 64                 // sizeof(struct shared_buf)
	OverrunFlag = 1 << 0             // OVERRUN_CNT_EN: count records dropped when full
	// EntrySize is sizeof(struct trace_entry), the smallest element Open
	// accepts: every element must hold a trace record.
	EntrySize = 32
)

// Offsets in the header.
const (
	offEleNum  = 8
	offEleSize = 12
	offHead    = 16
	offTail    = 20
	offOverrun = 32
	offSize    = 36
)

// ErrInvalid is Open's error for memory that holds no usable sbuf.
var ErrInvalid = errors.New("sbuf: not a valid shared buffer")

// Header returns the header of an empty sbuf of n elements of size bytes:
// what a Service VM writes before it registers the buffer.
func Header(n, size uint32) []byte {
	hdr := make([]byte, HeadSize)
	le := binary.LittleEndian
	le.PutUint64(hdr, Magic)
	le.PutUint32(hdr[offEleNum:], n)
	le.PutUint32(hdr[offEleSize:], size)
	le.PutUint32(hdr[offSize:], n*size)
	return hdr
}

// Buffer is an sbuf in guest memory whose header Open has checked: the
// header and the data area after it.
type Buffer struct {
	hdr, data []byte
}

// Open checks the sbuf at gpa in mem and returns it: gpa 8-byte aligned,
// magic SBUF_MAGIC, ele_num >= 2, ele_size >= EntrySize and a multiple of 8,
// size = ele_num*ele_size, and header and data wholly in mem; ErrInvalid
// otherwise.
func Open(mem *memory.Guest, gpa uint64) (Buffer, error) {
	hdr, err := mem.Slice(gpa, HeadSize)
	if err != nil || gpa%8 != 0 {
		return Buffer{}, ErrInvalid
	}
	le := binary.LittleEndian
	n, sz, size := uint64(le.Uint32(hdr[offEleNum:])), uint64(le.Uint32(hdr[offEleSize:])), uint64(le.Uint32(hdr[offSize:]))
	if le.Uint64(hdr) != Magic || n < 2 || sz < EntrySize || sz%8 != 0 || n*sz != size {
		return Buffer{}, ErrInvalid
	}
	data, err := mem.Slice(gpa+HeadSize, size)
	if err != nil {
		return Buffer{}, ErrInvalid
	}
	return Buffer{hdr, data}, nil
}

// Put appends one element at tail: fill writes the record into the zeroed
// element, then tail moves past it with an atomic store, which publishes
// the record to a reader that loads tail. A full buffer (the next tail
// would be head) drops the record and counts it in the header's overrun
// count; so does a tail the Service VM has bent out of shape. Put reports
// whether the record went in. Writers of one Buffer must not run at once.
func (b Buffer) Put(fill func(rec []byte)) bool {
	le := binary.LittleEndian
	sz := le.Uint32(b.hdr[offEleSize:])
	size := le.Uint32(b.hdr[offSize:])
	head := atomic.LoadUint32((*uint32)(unsafe.Pointer(&b.hdr[offHead])))
	tail := le.Uint32(b.hdr[offTail:])
	if tail%sz != 0 || tail >= size {
		return false
	}
	next := (tail + sz) % size
	if next == head {
		le.PutUint32(b.hdr[offOverrun:], le.Uint32(b.hdr[offOverrun:])+1)
		return false
	}
	rec := b.data[tail : tail+sz]
	clear(rec)
	fill(rec)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b.hdr[offTail])), next)
	return true
}

// Key names a registered buffer: the host CPU it is for and its kind
// (acrn.SbufTrace, acrn.SbufHVLog, ...).
type Key struct {
	PCPU uint16
	ID   uint32
}

// Table holds the registered shared buffers. A hypercall service looks for
// a trace buffer on every hypercall, so the lookup has a lock of its own,
// and costs one atomic load while no trace buffer is registered.
type Table struct {
	mu     sync.Mutex
	bufs   map[Key]ref
	traces atomic.Int32 // entries of bufs of kind acrn.SbufTrace
}

// ref is a registered shared buffer: where it is.
type ref struct {
	mem *memory.Guest
	gpa uint64
}

// Set registers the sbuf at gpa in mem under k, in place of any earlier
// one; a gpa of 0 removes k's buffer. The caller has checked it (Open).
func (t *Table) Set(k Key, mem *memory.Guest, gpa uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, had := t.bufs[k]; had && k.ID == acrn.SbufTrace {
		t.traces.Add(-1)
	}
	delete(t.bufs, k)
	if gpa == 0 {
		return
	}
	if t.bufs == nil {
		t.bufs = map[Key]ref{}
	}
	t.bufs[k] = ref{mem, gpa}
	if k.ID == acrn.SbufTrace {
		t.traces.Add(1)
	}
}

// Forget removes every buffer in mem: the VM whose memory it is is going.
func (t *Table) Forget(mem *memory.Guest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, r := range t.bufs {
		if r.mem != mem {
			continue
		}
		delete(t.bufs, k)
		if k.ID == acrn.SbufTrace {
			t.traces.Add(-1)
		}
	}
}

// Traces returns how many trace buffers are registered.
func (t *Table) Traces() int { return int(t.traces.Load()) }

// Trace appends a record to the trace buffer of host CPU pcpu, if one is
// registered and still valid (Buffer.Put); fill writes the record.
func (t *Table) Trace(pcpu uint16, fill func(rec []byte)) {
	if t.traces.Load() == 0 {
		return
	}
	t.mu.Lock() // one writer per buffer at a time
	defer t.mu.Unlock()
	r, ok := t.bufs[Key{pcpu, acrn.SbufTrace}]
	if !ok {
		return
	}
	if b, err := Open(r.mem, r.gpa); err == nil {
		b.Put(fill)
	}
}
