// Package qcow2 serves a qcow2 image (QEMU's copy-on-write format,
// versions 2 and 3, docs/interop/qcow2.txt in QEMU's tree) as a disk's
// bytes: reads, writes that allocate clusters at the file's end with
// their reference counts, zeroing and discarding whole clusters, flushes.
// virtio-blk serves a qcow2 image through it (blk.Config.Format).
//
// The image is input from outside, as a guest's requests are: every
// table entry is checked before it is used — offsets aligned and bounded,
// reserved bits clear, compressed clusters inflated into a buffer of one
// cluster and no more — and an entry that fails is an I/O error for the
// request, never a read or write outside what the entry may name.
//
// What it does not serve: backing files, encryption, external data files,
// extended L2 entries and zstd compression (the image is refused at Open);
// writes to an image with internal snapshots, a version 2 image, or one
// marked dirty or corrupt (refused unless opened read-only: qemu-img
// amend -o compat=1.1 makes a version 3 image; qemu-img check -r all
// repairs a dirty one).
//
// Crash safety follows QEMU's lazy reference counts: before the first
// change to the image's tables the header's dirty bit is set and made
// durable, and Flush clears it again once everything before it is on the
// file. A crash in between leaves reference counts that may be too high
// or too low, never a table that names data not written; qemu-img check
// -r all repairs the counts, as QEMU does itself when it opens such an
// image.
package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Header fields (big-endian), at their offsets in the first cluster.
const (
	hdrMagic           = 0
	hdrVersion         = 4
	hdrBackingOffset   = 8
	hdrClusterBits     = 20
	hdrSize            = 24
	hdrCryptMethod     = 32
	hdrL1Size          = 36
	hdrL1Offset        = 40
	hdrRefTableOffset  = 48
	hdrRefTableCluster = 56
	hdrSnapshots       = 60
	hdrIncompatible    = 72 // version 3 from here
	hdrCompatible      = 80
	hdrAutoclear       = 88
	hdrRefcountOrder   = 96
	hdrLength          = 100
	hdrCompressionType = 104

	v2HeaderLen = 72
	v3HeaderLen = 104
)

// Incompatible feature bits (version 3).
const (
	incompatDirty        = 1 << 0 // reference counts may be wrong
	incompatCorrupt      = 1 << 1 // the tables are known to be inconsistent
	incompatExternalData = 1 << 2 // the guest's data is in another file
	incompatCompression  = 1 << 3 // the compression type field is not zlib's default
	incompatExtendedL2   = 1 << 4 // L2 entries with subcluster bitmaps
	incompatKnown        = incompatDirty | incompatCorrupt | incompatExternalData | incompatCompression | incompatExtendedL2
)

// Limits of what an image may ask of ember, as QEMU bounds them: cluster
// sizes from 512 bytes to 2 MiB, an L1 table of at most 32 MiB and a
// reference count table of at most 8 MiB, both read whole into memory.
const (
	minClusterBits = 9
	maxClusterBits = 21
	maxL1Bytes     = 32 << 20
	maxRefTable    = 8 << 20
)

// magic is "QFI\xfb".
var magic = []byte{'Q', 'F', 'I', 0xfb}

// ErrUnsupported is an image that uses what this package does not serve
// (a backing file, encryption, ...); the error says what.
var ErrUnsupported = errors.New("qcow2: not supported")

// ErrCorrupt is an image whose header or tables are not what the format
// allows; the error says where.
var ErrCorrupt = errors.New("qcow2: corrupt image")

// header is what Open takes from an image's header.
type header struct {
	version       uint32
	clusterBits   uint32
	size          uint64 // the disk's size in bytes
	l1Size        uint32 // entries
	l1Offset      uint64
	refOffset     uint64
	refClusters   uint32
	snapshots     uint32
	incompatible  uint64
	autoclear     uint64
	refcountOrder uint32
}

// parseHeader checks the header at the start of b (at least v3HeaderLen
// bytes of the image, zero-padded if the file is shorter) and returns it.
func parseHeader(b []byte) (*header, error) {
	be := binary.BigEndian
	if string(b[:4]) != string(magic) {
		return nil, fmt.Errorf("%w: no qcow2 signature", ErrCorrupt)
	}
	h := &header{
		version:       be.Uint32(b[hdrVersion:]),
		clusterBits:   be.Uint32(b[hdrClusterBits:]),
		size:          be.Uint64(b[hdrSize:]),
		l1Size:        be.Uint32(b[hdrL1Size:]),
		l1Offset:      be.Uint64(b[hdrL1Offset:]),
		refOffset:     be.Uint64(b[hdrRefTableOffset:]),
		refClusters:   be.Uint32(b[hdrRefTableCluster:]),
		snapshots:     be.Uint32(b[hdrSnapshots:]),
		refcountOrder: 4, // version 2: 16-bit counts
	}
	switch h.version {
	case 2:
	case 3:
		h.incompatible = be.Uint64(b[hdrIncompatible:])
		h.autoclear = be.Uint64(b[hdrAutoclear:])
		h.refcountOrder = be.Uint32(b[hdrRefcountOrder:])
		n := be.Uint32(b[hdrLength:])
		if n < v3HeaderLen || n%8 != 0 {
			return nil, fmt.Errorf("%w: header length %d", ErrCorrupt, n)
		}
		if n > hdrCompressionType && b[hdrCompressionType] != 0 {
			return nil, fmt.Errorf("%w: compression type %d (only zlib's deflate is)", ErrUnsupported, b[hdrCompressionType])
		}
	default:
		return nil, fmt.Errorf("%w: version %d", ErrUnsupported, h.version)
	}
	if err := h.check(be.Uint64(b[hdrBackingOffset:]), be.Uint32(b[hdrCryptMethod:])); err != nil {
		return nil, err
	}
	return h, nil
}

// check refuses what the header asks that ember does not serve, and
// fields out of the format's bounds.
func (h *header) check(backing uint64, crypt uint32) error {
	switch {
	case backing != 0:
		return fmt.Errorf("%w: the image has a backing file (qemu-img convert -O qcow2 makes one without)", ErrUnsupported)
	case crypt != 0:
		return fmt.Errorf("%w: encryption method %d", ErrUnsupported, crypt)
	case h.incompatible&^incompatKnown != 0:
		return fmt.Errorf("%w: incompatible features %#x", ErrUnsupported, h.incompatible&^incompatKnown)
	case h.incompatible&incompatExternalData != 0:
		return fmt.Errorf("%w: an external data file", ErrUnsupported)
	case h.incompatible&incompatExtendedL2 != 0:
		return fmt.Errorf("%w: extended L2 entries (subclusters)", ErrUnsupported)
	case h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits:
		return fmt.Errorf("%w: cluster bits %d (%d to %d)", ErrCorrupt, h.clusterBits, minClusterBits, maxClusterBits)
	case h.refcountOrder > 6:
		return fmt.Errorf("%w: refcount order %d", ErrCorrupt, h.refcountOrder)
	case h.size > maxOffset:
		return fmt.Errorf("%w: disk size %d", ErrCorrupt, h.size)
	case uint64(h.l1Size)*8 > maxL1Bytes:
		return fmt.Errorf("%w: L1 table of %d entries", ErrCorrupt, h.l1Size)
	case uint64(h.l1Size) < h.l1Needed():
		return fmt.Errorf("%w: L1 table of %d entries for a disk that needs %d", ErrCorrupt, h.l1Size, h.l1Needed())
	case h.l1Offset%h.clusterSize() != 0 || h.l1Offset > maxOffset:
		return fmt.Errorf("%w: L1 table at %#x", ErrCorrupt, h.l1Offset)
	case h.refOffset%h.clusterSize() != 0 || h.refOffset > maxOffset:
		return fmt.Errorf("%w: reference count table at %#x", ErrCorrupt, h.refOffset)
	case uint64(h.refClusters)*h.clusterSize() > maxRefTable:
		return fmt.Errorf("%w: reference count table of %d clusters", ErrCorrupt, h.refClusters)
	}
	return nil
}

// maxOffset bounds every offset in the image, the file's and the disk's:
// the 56 bits an L2 entry has for one.
const maxOffset = 1<<56 - 1

func (h *header) clusterSize() uint64 { return 1 << h.clusterBits }

// l2Entries is the number of entries of one L2 table: a cluster of them.
func (h *header) l2Entries() uint64 { return h.clusterSize() / 8 }

// l1Needed is the number of L1 entries the disk's size takes.
func (h *header) l1Needed() uint64 {
	per := h.clusterSize() * h.l2Entries()
	return (h.size + per - 1) / per
}
