package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"ember/memory"
)

// Chain is one request a driver made available: the head descriptor's index,
// which Push returns to the driver, and the chain's buffers as guest memory,
// device-readable ones first (§2.7.4.2). A device reads Readable and writes
// Writable in place. Zero-length descriptors, which are legal, contribute no
// buffer; a buffer that spans adjoining RAM regions is split at the boundary,
// so buffers need not match descriptors one to one (a device must not rely
// on the framing anyway, §2.7.4.1).
type Chain struct {
	Head     uint16
	Readable [][]byte
	Writable [][]byte
}

// ReadableLen returns the total size of the device-readable buffers.
func (c *Chain) ReadableLen() uint64 { return totalLen(c.Readable) }

// WritableLen returns the total size of the device-writable buffers.
func (c *Chain) WritableLen() uint64 { return totalLen(c.Writable) }

func totalLen(bufs [][]byte) uint64 {
	var n uint64
	for _, b := range bufs {
		n += uint64(len(b))
	}
	return n
}

// Reader returns an io.Reader over the device-readable buffers, in order:
// a device parses a request header with it as from a stream.
func (c *Chain) Reader() *ChainReader { return &ChainReader{bufs: c.Readable} }

// Writer returns an io.Writer over the device-writable buffers, in order,
// which counts what it wrote for Push.
func (c *Chain) Writer() *ChainWriter { return &ChainWriter{bufs: c.Writable} }

// ChainReader reads a chain's device-readable buffers as one stream. It
// leaves the Chain's slices as they are.
type ChainReader struct {
	bufs [][]byte
	off  int // bytes of bufs[0] already read
}

// Read copies the next bytes of the buffers into p; io.EOF after the last.
func (r *ChainReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && len(r.bufs) > 0 {
		n += advance(&r.bufs, &r.off, func(b []byte) int { return copy(p[n:], b) })
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// ChainWriter writes a chain's device-writable buffers as one stream.
type ChainWriter struct {
	bufs    [][]byte
	off     int // bytes of bufs[0] already written
	written uint64
}

// Write copies p into the next bytes of the buffers; io.ErrShortWrite, after
// filling them, when p does not fit.
func (w *ChainWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) && len(w.bufs) > 0 {
		n += advance(&w.bufs, &w.off, func(b []byte) int { return copy(b, p[n:]) })
	}
	w.written += uint64(n)
	if n < len(p) {
		return n, io.ErrShortWrite
	}
	return n, nil
}

// advance applies f to the rest of the first buffer, bufs[0][*off:], moves
// past the bytes f says it used, and drops the buffer once it is used up.
func advance(bufs *[][]byte, off *int, f func([]byte) int) int {
	k := f((*bufs)[0][*off:])
	if *off += k; *off == len((*bufs)[0]) {
		*bufs, *off = (*bufs)[1:], 0
	}
	return k
}

// Written returns the bytes written so far, for Push. A chain may describe
// up to 2^32 bytes, one more than a used element's length holds; the count
// saturates there, an underestimate §2.7.8 permits.
func (w *ChainWriter) Written() uint32 { return uint32(min(w.written, math.MaxUint32)) }

// desc is one descriptor, copied out of guest memory once: the driver may
// rewrite the table while the device walks it, so no field is read twice.
type desc struct {
	addr  uint64
	len   uint32
	flags uint16
	next  uint16
}

// readDesc copies descriptor i of table, which holds more than i.
func readDesc(table []byte, i uint16) desc {
	b := table[descSize*int(i):][:descSize]
	return desc{
		addr:  binary.LittleEndian.Uint64(b),
		len:   binary.LittleEndian.Uint32(b[8:]),
		flags: binary.LittleEndian.Uint16(b[12:]),
		next:  binary.LittleEndian.Uint16(b[14:]),
	}
}

// walker collects a chain's buffers as walk visits its descriptors.
type walker struct {
	mem     *memory.Guest
	chain   *Chain
	total   uint64 // bytes the chain describes so far
	writing bool   // a device-writable descriptor was seen
}

// walk follows the chain whose head is head through table, the queue's
// descriptor table, and through at most one indirect table. No chain can
// make it loop: it visits at most as many descriptors as each table holds
// (a chain that visits more has a loop), and each visit is constant work.
// It fills c, reusing its slices.
func (q *Queue) walk(mem *memory.Guest, table []byte, head uint16, c *Chain) error {
	*c = Chain{Head: head, Readable: c.Readable[:0], Writable: c.Writable[:0]}
	w := walker{mem: mem, chain: c}
	where, i, seen, indirect := "descriptor", head, 0, false
	for {
		entries := len(table) / descSize
		if int(i) >= entries {
			return fmt.Errorf("%s %d: outside a table of %d", where, i, entries)
		}
		if seen == entries {
			return fmt.Errorf("%s %d: chain longer than its table of %d: a loop", where, i, entries)
		}
		seen++
		d := readDesc(table, i)
		if d.flags&DescIndirect != 0 {
			var err error
			if table, err = q.indirectTable(mem, d, indirect); err != nil {
				return fmt.Errorf("%s %d: %w", where, i, err)
			}
			where, i, seen, indirect = "indirect descriptor", 0, 0, true
			continue
		}
		if err := w.add(d); err != nil {
			return fmt.Errorf("%s %d: %w", where, i, err)
		}
		if d.flags&DescNext == 0 {
			return nil
		}
		i = d.next
	}
}

// indirectTable checks descriptor d, which refers to an indirect table, and
// returns the table (§2.7.5.3). Its WRITE flag is ignored, as the spec
// requires.
func (q *Queue) indirectTable(mem *memory.Guest, d desc, nested bool) ([]byte, error) {
	limit := max(int(q.Size), MinIndirectLimit)
	switch {
	case !q.IndirectDesc:
		return nil, errors.New("indirect descriptor, but VIRTIO_F_INDIRECT_DESC was not negotiated")
	case nested:
		return nil, errors.New("indirect descriptor inside an indirect table")
	case d.flags&DescNext != 0:
		return nil, errors.New("indirect descriptor with NEXT set")
	case d.len == 0 || d.len%descSize != 0:
		return nil, fmt.Errorf("indirect table of %d bytes, not a non-zero multiple of %d", d.len, descSize)
	case int(d.len/descSize) > limit:
		return nil, fmt.Errorf("indirect table of %d descriptors, more than %d", d.len/descSize, limit)
	}
	table, err := mem.Slice(d.addr, uint64(d.len))
	if err != nil {
		return nil, fmt.Errorf("indirect table: %w", err)
	}
	return table, nil
}

// add checks buffer descriptor d and appends its buffer to the chain: no
// device-readable buffer after a device-writable one (§2.7.4.2), no more
// than MaxChainBytes in all, every byte in guest RAM.
func (w *walker) add(d desc) error {
	writable := d.flags&DescWrite != 0
	if w.writing && !writable {
		return errors.New("device-readable buffer after a device-writable one")
	}
	w.writing = writable
	if w.total += uint64(d.len); w.total > MaxChainBytes {
		return fmt.Errorf("chain longer than %d bytes", uint64(MaxChainBytes))
	}
	if d.len == 0 {
		return nil
	}
	bufs := &w.chain.Readable
	if writable {
		bufs = &w.chain.Writable
	}
	var err error
	*bufs, err = appendGuest(w.mem, *bufs, d.addr, uint64(d.len))
	return err
}

// appendGuest appends the guest memory [gpa, gpa+n) to bufs, one slice per
// RAM region it covers: guest RAM lent region by region (memory.Guest.Map)
// may adjoin, and a buffer may cross from one into the next. Any byte
// outside RAM is memory.ErrOutOfRange.
func appendGuest(mem *memory.Guest, bufs [][]byte, gpa, n uint64) ([][]byte, error) {
	if b, err := mem.Slice(gpa, n); err == nil {
		return append(bufs, b), nil
	}
	for start, left := gpa, n; left > 0; {
		k := min(regionLeft(mem, start), left)
		b, err := mem.Slice(start, k)
		if err != nil || k == 0 {
			return bufs, fmt.Errorf("buffer %#x+%#x: %w", gpa, n, memory.ErrOutOfRange)
		}
		bufs = append(bufs, b)
		start, left = start+k, left-k
	}
	return bufs, nil
}

// regionLeft returns how many bytes of RAM there are from gpa to the end of
// the region holding it; 0 if gpa is not RAM.
func regionLeft(mem *memory.Guest, gpa uint64) uint64 {
	for _, r := range mem.Regions() {
		if gpa >= r.GPA && gpa-r.GPA < r.Size {
			return r.Size - (gpa - r.GPA)
		}
	}
	return 0
}
