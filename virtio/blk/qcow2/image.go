package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Image is an open qcow2 image. Its methods may be called from several
// goroutines at once: the tables are read and changed under one lock, and
// reads and writes of clusters already allocated are made outside it.
type Image struct {
	f        *os.File
	fd       int
	readOnly bool
	h        *header
	csize    uint64 // cluster size

	mu      sync.Mutex
	l1      []uint64     // the L1 table as the file has it
	l2      l2Cache      // L2 tables read
	meta    metaClusters // the clusters of L2 tables and reference count blocks (overlap.go)
	refs    *refcounts   // nil read-only
	dirty   bool         // the header's dirty bit is set on the file (by us)
	freed   []uint64     // clusters with no reference left, to punch after the next flush
	closed  bool
	scratch []byte // a cluster's buffer for allocating writes, under mu
}

// Open reads the header and the L1 table of the qcow2 image f and returns
// it; f stays the caller's to close after Close. readOnly opens it for
// reads alone (f may be read-only then); otherwise the image must be one
// this package can write (version 3, no snapshots, not dirty or corrupt),
// and any autoclear feature bits are cleared, as the format asks of a
// program that changes an image without keeping what they describe.
func Open(f *os.File, readOnly bool) (*Image, error) {
	im, err := inspect(f, readOnly)
	if err != nil || readOnly {
		return im, err
	}
	if err := im.openForWrites(); err != nil {
		return nil, err
	}
	return im, nil
}

// Check reports whether Open would refuse the image in f, from its header
// and L1 table, without changing it: what a program checks before it
// builds a VM (f may be open read-only).
func Check(f *os.File, readOnly bool) error {
	_, err := inspect(f, readOnly)
	return err
}

// inspect reads the header and the L1 table and, unless readOnly, refuses
// an image this package cannot write.
func inspect(f *os.File, readOnly bool) (*Image, error) {
	hb := make([]byte, v3HeaderLen+8)
	if _, err := f.ReadAt(hb, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("qcow2: reading the header: %w", err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	im := &Image{f: f, fd: int(f.Fd()), readOnly: readOnly, h: h, csize: h.clusterSize()}
	im.l2.init(h.clusterSize())
	if err := im.readL1(); err != nil {
		return nil, err
	}
	im.collectL2Tables()
	if !readOnly {
		if err := h.writable(); err != nil {
			return nil, err
		}
	}
	return im, nil
}

// writable refuses an image this package cannot write.
func (h *header) writable() error {
	switch {
	case h.version < 3:
		return fmt.Errorf("%w: writes to a version 2 image (qemu-img amend -o compat=1.1 makes it version 3; or open it read-only)", ErrUnsupported)
	case h.snapshots != 0:
		return fmt.Errorf("%w: writes to an image with %d internal snapshots (open it read-only)", ErrUnsupported, h.snapshots)
	case h.incompatible&incompatDirty != 0:
		return fmt.Errorf("%w: the image is marked dirty, its reference counts not to be trusted: repair it (qemu-img check -r all) or open it read-only", ErrUnsupported)
	case h.incompatible&incompatCorrupt != 0:
		return fmt.Errorf("%w: the image is marked corrupt (qemu-img check -r all; or open it read-only)", ErrCorrupt)
	case h.refcountOrder < 3:
		return fmt.Errorf("%w: writes with %d-bit reference counts", ErrUnsupported, 1<<h.refcountOrder)
	}
	return nil
}

// openForWrites reads the reference count table and clears the autoclear
// bits.
func (im *Image) openForWrites() error {
	h := im.h
	refs, err := readRefcounts(im.f, h)
	if err != nil {
		return err
	}
	im.refs = refs
	if err := im.addRefBlocks(); err != nil {
		return err
	}
	im.scratch = make([]byte, im.csize)
	if h.autoclear != 0 {
		var b [8]byte
		if err := im.writeMeta(b[:], hdrAutoclear); err != nil {
			return fmt.Errorf("qcow2: clearing the autoclear features: %w", err)
		}
		h.autoclear = 0
	}
	return nil
}

// readL1 reads the entries of the L1 table the disk's size needs.
func (im *Image) readL1() error {
	n := im.h.l1Needed()
	b := make([]byte, n*8)
	if _, err := im.f.ReadAt(b, int64(im.h.l1Offset)); err != nil {
		return fmt.Errorf("%w: reading the L1 table at %#x: %v", ErrCorrupt, im.h.l1Offset, err)
	}
	im.l1 = make([]uint64, n)
	for i := range im.l1 {
		im.l1[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return nil
}

// Size returns the disk's size in bytes.
func (im *Image) Size() uint64 { return im.h.size }

// ClusterSize returns the image's cluster size in bytes.
func (im *Image) ClusterSize() uint64 { return im.csize }

// Flush makes every write before it durable (fdatasync) and, if the
// tables changed since the last Flush, clears the header's dirty bit: the
// reference counts on the file are right again.
func (im *Image) Flush() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.flushLocked()
}

func (im *Image) flushLocked() error {
	if err := unix.Fdatasync(im.fd); err != nil {
		return fmt.Errorf("qcow2: flush: %w", err)
	}
	for _, off := range im.freed {
		im.punch(off)
	}
	im.freed = im.freed[:0]
	if !im.dirty {
		return nil
	}
	if err := im.setIncompatible(im.h.incompatible &^ incompatDirty); err != nil {
		return err
	}
	im.dirty = false
	return nil
}

// Close flushes the image (which leaves it clean) and stops serving it;
// the file stays open, the caller's.
func (im *Image) Close() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return nil
	}
	im.closed = true
	if im.readOnly {
		return nil
	}
	return im.flushLocked()
}

// markDirty sets the header's dirty bit and makes it durable before the
// first change to the tables since the last flush.
func (im *Image) markDirty() error {
	if im.dirty {
		return nil
	}
	if err := im.setIncompatible(im.h.incompatible | incompatDirty); err != nil {
		return err
	}
	if err := unix.Fdatasync(im.fd); err != nil {
		return fmt.Errorf("qcow2: marking the image dirty: %w", err)
	}
	im.dirty = true
	return nil
}

// setIncompatible writes the header's incompatible feature bits.
func (im *Image) setIncompatible(v uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	if err := im.writeMeta(b[:], hdrIncompatible); err != nil {
		return fmt.Errorf("qcow2: writing the header's features: %w", err)
	}
	im.h.incompatible = v
	return nil
}

// writeMeta writes b to the file at off, whole.
func (im *Image) writeMeta(b []byte, off uint64) error {
	_, err := im.f.WriteAt(b, int64(off))
	return err
}
