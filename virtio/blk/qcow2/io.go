package qcow2

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"ember/virtio"
	"ember/virtio/internal/fileio"
)

// errWouldWait is a read with noWait that would have to read a table, or
// inflate a compressed cluster, first.
var errWouldWait = fmt.Errorf("qcow2: would wait: %w", unix.EAGAIN)

// ErrReadOnly is a write to an image opened read-only.
var ErrReadOnly = errors.New("qcow2: the image is open read-only")

// ErrOutOfRange is a read or write beyond the disk's size.
var ErrOutOfRange = errors.New("qcow2: beyond the disk's end")

// piece is one cluster's part of a request: n bytes at the disk's off,
// which is within one cluster.
type piece struct{ off, n uint64 }

// pieces calls fn for each cluster's part of n bytes at off, in order,
// until fn fails.
func (im *Image) pieces(off, n uint64, fn func(piece) error) error {
	if off > im.h.size || n > im.h.size-off {
		return ErrOutOfRange
	}
	for n > 0 {
		in := off & (im.csize - 1)
		k := min(n, im.csize-in)
		if err := fn(piece{off, k}); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// ReadAt fills bufs with the disk's bytes from off and returns how many
// it read. With noWait it reads only what the host's page cache holds and
// the tables in memory say where to find (preadv2 with RWF_NOWAIT),
// failing with an error that wraps unix.EAGAIN where it would wait. The
// clusters are looked up under one hold of the lock, and clusters that
// lie one after another in the file are read with one preadv.
func (im *Image) ReadAt(bufs [][]byte, off int64, noWait bool) (int, error) {
	var local [2]extent // enough for most requests, on the stack
	exts, err := im.mapRange(local[:0], uint64(off), virtio.Len(bufs), noWait)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, e := range exts {
		if err := im.readExtent(sub(bufs, e.at, e.n), e, noWait); err != nil {
			return done, err
		}
		done += int(e.n)
	}
	return done, nil
}

// extent is a run of a request that reads one way: zeros, one stretch of
// the file, or part of one compressed cluster.
type extent struct {
	m  mapping
	in uint64 // where the run starts in its first cluster
	at uint64 // where it starts in the request's buffers
	n  uint64
}

// continuedBy reports whether a piece that starts in bytes into a cluster
// mapped m reads on from where e ends: zeros after zeros, or data in the
// file right after e's.
func (e *extent) continuedBy(m mapping, in uint64) bool {
	switch e.m.kind {
	case unallocated, zeros:
		return m.kind == unallocated || m.kind == zeros
	case data:
		return m.kind == data && m.host+in == e.m.host+e.in+e.n
	}
	return false
}

// mapRange looks up every cluster of n bytes at off and appends them to
// dst as extents, neighbours that read alike merged.
func (im *Image) mapRange(dst []extent, off, n uint64, noWait bool) ([]extent, error) {
	return im.extents(dst, off, n, noWait, nil)
}

// extents is mapRange, under one hold of the lock, failing with the error
// of check (if not nil) for the first cluster check refuses.
func (im *Image) extents(dst []extent, off, n uint64, noWait bool, check func(mapping) error) ([]extent, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	exts := dst
	var at uint64
	err := im.pieces(off, n, func(p piece) error {
		m, err := im.lookup(p.off, noWait)
		if err == nil && check != nil {
			err = check(m)
		}
		if err != nil {
			return err
		}
		in := p.off & (im.csize - 1)
		if k := len(exts); k > 0 && exts[k-1].continuedBy(m, in) {
			exts[k-1].n += p.n
		} else {
			exts = append(exts, extent{m: m, in: in, at: at, n: p.n})
		}
		at += p.n
		return nil
	})
	return exts, err
}

// readExtent reads one extent into dst.
func (im *Image) readExtent(dst [][]byte, e extent, noWait bool) error {
	switch e.m.kind {
	case unallocated, zeros:
		for _, b := range dst {
			clear(b)
		}
		return nil
	case compressed:
		if noWait {
			return errWouldWait
		}
		c, err := im.inflate(e.m)
		if err != nil {
			return err
		}
		virtio.Scatter(dst, c[e.in:e.in+e.n])
		return nil
	}
	read := fileio.ReadAt
	if noWait {
		read = fileio.ReadAtNoWait
	}
	got, err := read(im.fd, dst, int64(e.m.host+e.in))
	if err != nil {
		return err
	}
	// Past the file's end: a cluster allocated but never written there (a
	// crash before a write the guest had not flushed) reads as zeros, as
	// a hole does.
	for _, b := range sub(dst, uint64(got), e.n-uint64(got)) {
		clear(b)
	}
	return nil
}

// writeAt writes all of src at the file's off.
func (im *Image) writeAt(src [][]byte, off uint64) error {
	n, err := fileio.WriteAt(im.fd, src, int64(off))
	if err == nil && uint64(n) < virtio.Len(src) {
		err = io.ErrShortWrite
	}
	return err
}

// inflate reads and inflates a compressed cluster: raw deflate (zlib's
// stream without its header, as QEMU writes it), which must give exactly
// one cluster.
func (im *Image) inflate(m mapping) ([]byte, error) {
	src := make([]byte, m.clen)
	n, err := im.f.ReadAt(src, int64(m.host))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("qcow2: reading a compressed cluster at %#x: %w", m.host, err)
	}
	out := make([]byte, im.csize)
	r := flate.NewReader(bytes.NewReader(src[:n]))
	defer r.Close()
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, fmt.Errorf("%w: compressed cluster at %#x: %v", ErrCorrupt, m.host, err)
	}
	return out, nil
}

// WriteAt writes bufs to the disk at off and returns how many bytes it
// wrote. A cluster allocated to this image alone is written in place;
// any other (unallocated, zero, compressed, shared) gets a new cluster at
// the file's end holding its old contents with the write laid over them,
// which its L2 entry then names.
func (im *Image) WriteAt(bufs [][]byte, off int64) (int, error) {
	if im.readOnly {
		return 0, ErrReadOnly
	}
	var local [2]extent
	if exts, ok := im.inPlace(local[:0], uint64(off), virtio.Len(bufs)); ok {
		done := 0
		for _, e := range exts {
			if err := im.writeAt(sub(bufs, e.at, e.n), e.m.host+e.in); err != nil {
				return done, err
			}
			done += int(e.n)
		}
		return done, nil
	}
	done := 0
	err := im.pieces(uint64(off), virtio.Len(bufs), func(p piece) error {
		src := sub(bufs, uint64(done), p.n)
		if err := im.writePiece(src, p); err != nil {
			return err
		}
		done += int(p.n)
		return nil
	})
	return done, err
}

// inPlace appends to dst the extents of a write of n bytes at off if every
// cluster it touches may be written in place (data the image's alone,
// before the file's end), neighbours in the file merged, so that a write
// over allocated clusters is one pwritev a run; false if any needs a new
// cluster, or fails to map, for the cluster-by-cluster path.
func (im *Image) inPlace(dst []extent, off, n uint64) ([]extent, bool) {
	exts, err := im.extents(dst, off, n, false, func(m mapping) error {
		if !im.writableInPlace(m) {
			return errNotInPlace
		}
		return nil
	})
	return exts, err == nil
}

// writableInPlace reports whether a write to the cluster m maps may go to
// its place in the file: data the image's alone (COPIED), before the
// file's end. The caller holds im.mu.
func (im *Image) writableInPlace(m mapping) bool {
	return m.kind == data && m.copied && m.host < im.refs.next<<im.h.clusterBits
}

// errNotInPlace ends inPlace's look at a cluster that needs a new one.
var errNotInPlace = errors.New("qcow2: not in place")

// writePiece writes one cluster's part.
func (im *Image) writePiece(src [][]byte, p piece) error {
	in := p.off & (im.csize - 1)
	im.mu.Lock()
	m, err := im.lookup(p.off, false)
	if err == nil && im.writableInPlace(m) {
		im.mu.Unlock()
		return im.writeAt(src, m.host+in)
	}
	defer im.mu.Unlock()
	if err != nil {
		return err
	}
	return im.copyOnWrite(m, src, p)
}

// copyOnWrite gives the cluster of p a new cluster: its old contents,
// with src laid over at p's place, then the L2 entry, then the old
// cluster's reference dropped. The caller holds im.mu.
func (im *Image) copyOnWrite(m mapping, src [][]byte, p piece) error {
	if err := im.markDirty(); err != nil {
		return err
	}
	l2off, err := im.l2For(p.off) // before the cluster is built in scratch, which a new table uses
	if err != nil {
		return err
	}
	in := p.off & (im.csize - 1)
	c := im.scratch
	if err := im.oldContents(m, c, in, p.n); err != nil {
		return err
	}
	virtio.Gather(c[in:in+p.n], src)
	host, err := im.allocCluster()
	if err != nil {
		return err
	}
	if _, err := im.f.WriteAt(c, int64(host)); err != nil {
		return fmt.Errorf("qcow2: writing a new cluster: %w", err)
	}
	if m.kind == data || m.kind == compressed {
		// The new cluster holds data the guest did not write now: it must
		// be on the file before the entry that names it is, or a crash
		// between the two would lose it.
		if err := unix.Fdatasync(im.fd); err != nil {
			return fmt.Errorf("qcow2: flushing a copied cluster: %w", err)
		}
	}
	ci := p.off >> im.h.clusterBits
	if err := im.setL2(l2off, ci%im.h.l2Entries(), host|entryCopied); err != nil {
		return err
	}
	return im.dropOld(m, false)
}

// oldContents fills c with what the cluster of m holds now, but for the n
// bytes at in, which the write replaces: zeros, the inflated cluster, or
// the shared cluster's bytes.
func (im *Image) oldContents(m mapping, c []byte, in, n uint64) error {
	switch m.kind {
	case compressed:
		old, err := im.inflate(m)
		if err != nil {
			return err
		}
		copy(c, old)
		return nil
	case data:
		if in == 0 && n == im.csize {
			return nil
		}
		got, err := im.f.ReadAt(c, int64(m.host))
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("qcow2: reading cluster at %#x: %w", m.host, err)
		}
		clear(c[got:]) // past the file's end: zeros, not what c held before
		return nil
	}
	clear(c)
	return nil
}

// dropOld drops the reference an L2 entry no longer holds: a data or
// zero cluster's own, or one to each cluster a compressed one's bytes lie
// in; now is release's. The caller holds im.mu.
func (im *Image) dropOld(m mapping, now bool) error {
	switch {
	case m.kind == compressed:
		first, last := m.host&^(im.csize-1), (m.host+m.clen-1)&^(im.csize-1)
		for c := first; c <= last; c += im.csize {
			if err := im.release(c, now); err != nil {
				return err
			}
		}
	case m.host != 0:
		return im.release(m.host, now)
	}
	return nil
}

// Zero makes n bytes at off read as zeros: whole clusters lose their
// allocation (their L2 entry cleared, their space punched out of the file
// once nothing refers to it), the parts of clusters at either end are
// written with zeros where they hold data. discard and write-zeroes do
// the same here: with no backing file, an unallocated cluster reads as
// zeros.
func (im *Image) Zero(off, n int64) error {
	if im.readOnly {
		return ErrReadOnly
	}
	return im.pieces(uint64(off), uint64(n), func(p piece) error {
		if p.n == im.csize {
			return im.deallocate(p.off)
		}
		im.mu.Lock()
		m, err := im.lookup(p.off, false)
		im.mu.Unlock()
		if err != nil || m.kind == unallocated || m.kind == zeros {
			return err
		}
		return im.writePiece([][]byte{make([]byte, p.n)}, p)
	})
}

// deallocate clears the L2 entry of the cluster at off and drops the
// reference it held.
func (im *Image) deallocate(off uint64) error {
	im.mu.Lock()
	defer im.mu.Unlock()
	m, err := im.lookup(off, false)
	if err != nil || m.l2 == 0 || m.entry == 0 {
		return err
	}
	if err := im.markDirty(); err != nil {
		return err
	}
	if _, err := im.l2For(off); err != nil { // refuses a shared table
		return err
	}
	if err := im.setL2(m.l2, m.idx, 0); err != nil {
		return err
	}
	return im.dropOld(m, true) // the guest asked for zeros: freed at once
}

// punch frees the cluster at the file's off, which nothing refers to; a
// file system that cannot only keeps the space.
func (im *Image) punch(off uint64) {
	unix.Fallocate(im.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(im.csize))
}
