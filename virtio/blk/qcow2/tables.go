package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Table entries.
const (
	entryCopied     = 1 << 63 // L1 and L2: the cluster's reference count is exactly 1
	entryCompressed = 1 << 62 // L2: a compressed cluster
	entryZero       = 1 << 0  // L2, version 3: the cluster reads as zeros
	offsetMask      = 0x00fffffffffffe00
	l1Reserved      = 0x7f000000000001ff
	l2Reserved      = 0x3f000000000001fe
)

// l2CacheBytes bounds the L2 tables kept in memory: 4 MiB, which with
// 64 KiB clusters maps 32 GiB of disk.
const l2CacheBytes = 4 << 20

// l2Cache keeps L2 tables read, by their offset in the file. Tables are
// written through (an entry changed is written to the file at once), so
// one dropped to make room loses nothing.
type l2Cache struct {
	tables map[uint64][]uint64
	max    int
}

func (c *l2Cache) init(clusterSize uint64) {
	c.tables = make(map[uint64][]uint64)
	c.max = max(1, int(l2CacheBytes/clusterSize))
}

// put keeps t, dropping another table if the cache is full.
func (c *l2Cache) put(off uint64, t []uint64) {
	if len(c.tables) >= c.max {
		for k := range c.tables {
			delete(c.tables, k)
			break
		}
	}
	c.tables[off] = t
}

// kind is what an L2 entry says of a cluster.
type kind int

const (
	unallocated kind = iota // reads as zeros: no data, no backing file
	zeros                   // the zero flag: reads as zeros (its cluster, if any, is still the image's)
	data                    // the guest's bytes are at host
	compressed              // deflated at host, csize bytes at most
)

// mapping is where one cluster of the disk is, from its L2 entry.
type mapping struct {
	kind   kind
	host   uint64 // data: the cluster's offset; compressed: the data's
	clen   uint64 // compressed: how many bytes from host hold it
	copied bool   // data: the reference count is 1, writes may go in place
	l2     uint64 // the L2 table's offset (0: none allocated)
	idx    uint64 // the entry's index in it
	entry  uint64 // the entry as it is
}

// lookup returns where the disk's byte off lies; with noWait, it fails
// with errWouldWait rather than read an L2 table from the file. The
// caller holds im.mu.
func (im *Image) lookup(off uint64, noWait bool) (mapping, error) {
	h := im.h
	ci := off >> h.clusterBits
	l1i, l2i := ci/h.l2Entries(), ci%h.l2Entries()
	l1e := im.l1[l1i]
	if l1e&l1Reserved != 0 {
		return mapping{}, fmt.Errorf("%w: L1 entry %d is %#x", ErrCorrupt, l1i, l1e)
	}
	l2off := l1e & offsetMask
	if l2off == 0 {
		return mapping{}, nil
	}
	if l2off%im.csize != 0 {
		return mapping{}, fmt.Errorf("%w: L2 table at %#x, not a cluster's start", ErrCorrupt, l2off)
	}
	if im.overlapsTables(l2off, im.csize) {
		return mapping{}, fmt.Errorf("%w: L2 table at %#x, on the image's header, L1 or reference count table", ErrCorrupt, l2off)
	}
	t, err := im.l2Table(l2off, noWait)
	if err != nil {
		return mapping{}, err
	}
	m, err := im.decode(t[l2i])
	m.l2, m.idx = l2off, l2i
	return m, err
}

// l2Table returns the L2 table at off, from the cache or the file. The
// caller holds im.mu.
func (im *Image) l2Table(off uint64, noWait bool) ([]uint64, error) {
	if t, ok := im.l2.tables[off]; ok {
		return t, nil
	}
	if noWait {
		return nil, errWouldWait
	}
	b := make([]byte, im.csize)
	if _, err := im.f.ReadAt(b, int64(off)); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: reading the L2 table at %#x: %v", ErrCorrupt, off, err)
	}
	// A table past the file's end (allocated, its zeros not yet written
	// when a crash came) reads as zeros: every cluster unallocated, as
	// before it was.
	t := make([]uint64, len(b)/8)
	for i := range t {
		t[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	im.l2.put(off, t)
	return t, nil
}

// decode checks an L2 entry and says what it maps.
func (im *Image) decode(e uint64) (mapping, error) {
	if e&entryCompressed != 0 {
		// Bits 0 to x-1 are the offset, x to 61 the sectors beyond the
		// first, x being 62 - (cluster bits - 8).
		x := 62 - (im.h.clusterBits - 8)
		host := e & (1<<x - 1)
		sectors := (e&(1<<62-1))>>x + 1
		clen := sectors*512 - host%512
		if e&entryCopied != 0 || im.overlapsMeta(host, clen) {
			return mapping{}, fmt.Errorf("%w: compressed L2 entry %#x", ErrCorrupt, e)
		}
		return mapping{kind: compressed, host: host, clen: clen, entry: e}, nil
	}
	if e&l2Reserved != 0 {
		return mapping{}, fmt.Errorf("%w: L2 entry %#x", ErrCorrupt, e)
	}
	host := e & offsetMask
	if host%im.csize != 0 {
		return mapping{}, fmt.Errorf("%w: L2 entry %#x: data not at a cluster's start", ErrCorrupt, e)
	}
	if host != 0 && im.overlapsMeta(host, im.csize) {
		return mapping{}, fmt.Errorf("%w: L2 entry %#x: data on the image's header or tables", ErrCorrupt, e)
	}
	m := mapping{host: host, copied: e&entryCopied != 0, entry: e}
	switch {
	case e&entryZero != 0:
		if im.h.version < 3 {
			return mapping{}, fmt.Errorf("%w: zero flag in a version 2 image", ErrCorrupt)
		}
		m.kind = zeros
	case host != 0:
		m.kind = data
	}
	return m, nil
}

// setL2 writes entry i of the L2 table at off, on the file and in the
// cache. The caller holds im.mu.
func (im *Image) setL2(off, i, e uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], e)
	if err := im.writeMeta(b[:], off+8*i); err != nil {
		return fmt.Errorf("qcow2: writing L2 entry: %w", err)
	}
	if t, ok := im.l2.tables[off]; ok {
		t[i] = e
	}
	return nil
}

// l2For returns the L2 table that maps the disk's byte off, allocating an
// empty one if its L1 entry has none. An L2 table shared with a snapshot
// (its L1 entry not COPIED) cannot be changed in place; that is an error.
// The caller holds im.mu and has marked the image dirty.
func (im *Image) l2For(off uint64) (uint64, error) {
	h := im.h
	l1i := (off >> h.clusterBits) / h.l2Entries()
	l1e := im.l1[l1i]
	if l2off := l1e & offsetMask; l2off != 0 {
		if l1e&entryCopied == 0 {
			return 0, fmt.Errorf("%w: L2 table at %#x is shared (no COPIED flag)", ErrUnsupported, l2off)
		}
		return l2off, nil
	}
	l2off, err := im.allocCluster()
	if err != nil {
		return 0, err
	}
	clear(im.scratch)
	if err := im.writeMeta(im.scratch, l2off); err != nil {
		return 0, fmt.Errorf("qcow2: writing a new L2 table: %w", err)
	}
	e := l2off | entryCopied
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], e)
	if err := im.writeMeta(b[:], h.l1Offset+8*l1i); err != nil {
		return 0, fmt.Errorf("qcow2: writing L1 entry: %w", err)
	}
	im.l1[l1i] = e
	im.meta.add(l2off >> h.clusterBits)
	im.l2.put(l2off, make([]uint64, h.l2Entries()))
	return l2off, nil
}
