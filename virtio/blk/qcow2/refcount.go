package qcow2

import (
	"encoding/binary"
	"fmt"
	"os"
)

// refcounts is the reference count table of an image opened for writes,
// and where the next cluster is allocated. Counts are read from and
// written to their blocks in the file at each change (a block is not
// kept): allocation is at the file's end, so each new cluster's count is
// one read and one write.
type refcounts struct {
	f          *os.File
	table      []uint64 // the reference count table: offsets of its blocks
	tableOff   uint64
	bytes      uint64 // a count's width, 1 to 8 bytes
	perBlock   uint64 // counts in one block
	clusterLog uint32
	next       uint64 // the first cluster index that may be free: the file's end, then past what was allocated
}

// readRefcounts reads the reference count table of the image in f.
func readRefcounts(f *os.File, h *header) (*refcounts, error) {
	cs := h.clusterSize()
	b := make([]byte, uint64(h.refClusters)*cs)
	if _, err := f.ReadAt(b, int64(h.refOffset)); err != nil {
		return nil, fmt.Errorf("%w: reading the reference count table at %#x: %v", ErrCorrupt, h.refOffset, err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("qcow2: %w", err)
	}
	r := &refcounts{f: f, table: make([]uint64, len(b)/8), tableOff: h.refOffset,
		bytes: 1 << h.refcountOrder / 8, clusterLog: h.clusterBits,
		next: (uint64(st.Size()) + cs - 1) / cs}
	r.perBlock = cs / r.bytes
	for i := range r.table {
		e := binary.BigEndian.Uint64(b[8*i:])
		if e&0x1ff != 0 || e > maxOffset {
			return nil, fmt.Errorf("%w: reference count table entry %d is %#x", ErrCorrupt, i, e)
		}
		r.table[i] = e
	}
	return r, nil
}

// where returns the file offset of cluster c's count, or 0 if its block
// is not allocated; an error if c is beyond what the table can count.
func (r *refcounts) where(c uint64) (uint64, error) {
	ti := c / r.perBlock
	if ti >= uint64(len(r.table)) {
		return 0, fmt.Errorf("%w: the reference count table is full (cluster %d)", ErrUnsupported, c)
	}
	b := r.table[ti]
	if b == 0 {
		return 0, nil
	}
	if b%(1<<r.clusterLog) != 0 {
		return 0, fmt.Errorf("%w: reference count block at %#x", ErrCorrupt, b)
	}
	return b + c%r.perBlock*r.bytes, nil
}

// get returns cluster c's reference count.
func (r *refcounts) get(c uint64) (uint64, error) {
	at, err := r.where(c)
	if err != nil || at == 0 {
		return 0, err
	}
	var b [8]byte
	if _, err := r.f.ReadAt(b[8-r.bytes:], int64(at)); err != nil {
		return 0, fmt.Errorf("%w: reading a reference count at %#x: %v", ErrCorrupt, at, err)
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

// set writes cluster c's reference count, whose block must exist.
func (r *refcounts) set(c, n uint64) error {
	at, err := r.where(c)
	if err != nil {
		return err
	}
	if at == 0 {
		return fmt.Errorf("qcow2: cluster %d has no reference count block", c)
	}
	b := make([]byte, r.bytes)
	putCount(b, n)
	if _, err := r.f.WriteAt(b, int64(at)); err != nil {
		return fmt.Errorf("qcow2: writing a reference count: %w", err)
	}
	return nil
}

// maxFreed bounds the clusters kept to punch after the next flush: a
// guest that rewrites a compressed image and never flushes gets a flush
// of its own every maxFreed clusters.
const maxFreed = 1 << 16

// maxSkipped bounds the clusters past the file's end an allocation passes
// over as counted in use: an image whose counts say so is corrupt, and
// without a bound its counts could keep the search going for ever.
const maxSkipped = 1 << 16

// allocCluster returns the offset of a new cluster, its reference count
// set to 1: the first one from the file's end whose count is 0. A cluster
// whose count block does not exist yet gets one, placed at the next free
// cluster, counting itself where it can. The caller holds im.mu and has
// marked the image dirty; the cluster's contents are the caller's to write.
func (im *Image) allocCluster() (uint64, error) {
	r := im.refs
	for skipped := 0; ; skipped++ {
		c := r.next
		r.next++
		if c<<r.clusterLog > maxOffset {
			return 0, fmt.Errorf("%w: the image is at its largest", ErrUnsupported)
		}
		if skipped > maxSkipped {
			return 0, fmt.Errorf("%w: %d clusters past the file's end counted as in use", ErrCorrupt, skipped)
		}
		at, err := r.where(c)
		if err != nil {
			return 0, err
		}
		if at == 0 {
			if err := im.newRefBlock(c / r.perBlock); err != nil {
				return 0, err
			}
			r.next = c // c may have become the block itself
			continue
		}
		n, err := r.get(c)
		if err != nil {
			return 0, err
		}
		if n != 0 || im.clusterIsMeta(c) {
			continue // in use, or metadata whose count says otherwise
		}
		if err := r.set(c, 1); err != nil {
			return 0, err
		}
		return c << r.clusterLog, nil
	}
}

// newRefBlock allocates the reference count block for table entry ti at
// the next free cluster. If that cluster is one the block counts, the
// block counts itself; otherwise its own count goes in the block that
// covers it, made first the same way.
func (im *Image) newRefBlock(ti uint64) error {
	r := im.refs
	c := r.next
	for skipped := 0; ; skipped, c = skipped+1, c+1 {
		if skipped > maxSkipped {
			return fmt.Errorf("%w: %d clusters past the file's end counted as in use", ErrCorrupt, skipped)
		}
		fits, err := im.refBlockFits(c, ti)
		if err != nil {
			return err
		}
		if fits {
			break
		}
	}
	blk := make([]byte, 1<<r.clusterLog)
	self := c/r.perBlock == ti
	if self {
		putCount(blk[c%r.perBlock*r.bytes:][:r.bytes], 1)
	}
	if _, err := im.f.WriteAt(blk, int64(c<<r.clusterLog)); err != nil {
		return fmt.Errorf("qcow2: writing a reference count block: %w", err)
	}
	if !self {
		// c's own count is in another block, made first if missing.
		at, err := r.where(c)
		if err != nil {
			return err
		}
		if at == 0 {
			r.next = c + 1
			if err := im.newRefBlock(c / r.perBlock); err != nil {
				return err
			}
		}
		if err := r.set(c, 1); err != nil {
			return err
		}
	}
	var e [8]byte
	off := c << r.clusterLog
	binary.BigEndian.PutUint64(e[:], off)
	if _, err := im.f.WriteAt(e[:], int64(r.tableOff+8*ti)); err != nil {
		return fmt.Errorf("qcow2: writing the reference count table: %w", err)
	}
	r.table[ti] = off
	im.meta.add(c)
	if r.next <= c {
		r.next = c + 1
	}
	return nil
}

// refBlockFits reports whether the reference count block for table entry
// ti may go at cluster c: c is not metadata, and its count is 0 or not
// yet kept (its block is missing too, made after this one, or is this
// one).
func (im *Image) refBlockFits(c, ti uint64) (bool, error) {
	r := im.refs
	if im.clusterIsMeta(c) {
		return false, nil
	}
	at, err := r.where(c)
	if err != nil || at == 0 || c/r.perBlock == ti {
		return err == nil, err
	}
	n, err := r.get(c)
	return n == 0, err
}

// release drops one reference to the cluster at off (a data cluster the
// disk no longer maps, or the sectors of a compressed one). A cluster with
// none left is punched out of the file: at once if now, else after the
// next flush has made the L2 entry that stopped naming it durable (a
// cluster whose contents were copied on a write must survive until the
// new entry does).
func (im *Image) release(off uint64, now bool) error {
	r := im.refs
	c := off >> r.clusterLog
	n, err := r.get(c)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: cluster at %#x freed with no reference", ErrCorrupt, c<<r.clusterLog)
	}
	if err := r.set(c, n-1); err != nil {
		return err
	}
	switch {
	case n == 1 && now:
		im.punch(c << r.clusterLog)
	case n == 1:
		im.freed = append(im.freed, c<<r.clusterLog)
		if len(im.freed) >= maxFreed {
			return im.flushLocked() // punches them
		}
	}
	return nil
}

// putCount writes n big-endian in b, a count's width.
func putCount(b []byte, n uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
}
