package qcow2

import (
	"fmt"
	"slices"
)

// Metadata the guest's data must not lie on.
//
// An image names its own tables by offset, and so do its L2 entries the
// guest's data: an image that names one cluster as both (made so, or
// broken) would have the guest's writes rewrite the image's tables, and
// through them name any cluster of the file as any sector of the disk.
// QEMU checks each write against its metadata for the same reason
// (overlap-check). Here every cluster an entry maps is checked against
// the header's cluster, the L1 table, the reference count table, every L2
// table the L1 table names and, in an image open for writes, every
// reference count block; an entry that meets one is an error (ErrCorrupt)
// for reads and writes alike, and such a cluster is never handed out as a
// new one.

// metaClusters is the set of clusters, by index in the file, that hold
// L2 tables and reference count blocks, sorted: an L1 table of at most
// 4 Mi entries (maxL1Bytes) and a reference count table of at most 1 Mi
// make it at most 40 MiB, no more than those tables themselves; a map of
// as many would take several times that.
type metaClusters struct{ c []uint64 }

// set makes the set the clusters cs (in any order, repeats allowed).
func (m *metaClusters) set(cs []uint64) {
	slices.Sort(cs)
	m.c = slices.Compact(cs)
}

// add puts cluster c in the set. New tables are allocated at the file's
// end, past every table there was, so the insertion is an append but
// where a table the image already named lies further on.
func (m *metaClusters) add(c uint64) {
	if i, found := slices.BinarySearch(m.c, c); !found {
		m.c = slices.Insert(m.c, i, c)
	}
}

// meets reports whether any cluster from first to last (inclusive) is in
// the set.
func (m *metaClusters) meets(first, last uint64) bool {
	i, _ := slices.BinarySearch(m.c, first)
	return i < len(m.c) && m.c[i] <= last
}

// collectL2Tables fills im.meta with the L2 tables the L1 table names (its
// entries with reserved bits or a table not at a cluster's start are left
// to lookup's errors).
func (im *Image) collectL2Tables() {
	cs := make([]uint64, 0, len(im.l1))
	for _, e := range im.l1 {
		if off := e & offsetMask; e&l1Reserved == 0 && off != 0 && off%im.csize == 0 {
			cs = append(cs, off>>im.h.clusterBits)
		}
	}
	im.meta.set(cs)
}

// addRefBlocks puts the image's reference count blocks in im.meta,
// refusing an image whose block lies on its header, L1 or reference count
// table, or on an L2 table: a count changed there would change the
// table.
func (im *Image) addRefBlocks() error {
	cs := slices.Clone(im.meta.c)
	for i, off := range im.refs.table {
		if off == 0 {
			continue
		}
		c := off >> im.h.clusterBits
		if im.overlapsTables(off, im.csize) || im.meta.meets(c, c) {
			return fmt.Errorf("%w: reference count block %d at %#x lies on the image's header or tables", ErrCorrupt, i, off)
		}
		cs = append(cs, c)
	}
	im.meta.set(cs)
	return nil
}

// overlapsTables reports whether n bytes at the file's off meet the
// header's cluster, the L1 table or the reference count table.
func (im *Image) overlapsTables(off, n uint64) bool {
	h := im.h
	meets := func(start, size uint64) bool { return off < start+size && start < off+n }
	return meets(0, im.csize) || meets(h.l1Offset, uint64(len(im.l1))*8) ||
		meets(h.refOffset, uint64(h.refClusters)*im.csize)
}

// clusterIsMeta reports whether the file's cluster c holds metadata
// (overlapsMeta). The caller holds im.mu.
func (im *Image) clusterIsMeta(c uint64) bool {
	return im.overlapsMeta(c<<im.h.clusterBits, im.csize)
}

// overlapsMeta reports whether n bytes (n > 0) at the file's off meet any
// of the image's metadata: overlapsTables, an L2 table or a reference
// count block. The caller holds im.mu.
func (im *Image) overlapsMeta(off, n uint64) bool {
	return im.overlapsTables(off, n) || im.meta.meets(off>>im.h.clusterBits, (off+n-1)>>im.h.clusterBits)
}
