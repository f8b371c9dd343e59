package blk

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"

	"ember/virtio"
	"ember/virtio/internal/fileio"
)

// Request types and statuses (§5.2.6).
const (
	typeIn          = 0
	typeOut         = 1
	typeFlush       = 4
	typeGetID       = 8
	typeDiscard     = 11
	typeWriteZeroes = 13

	statusOK     = 0
	statusIOErr  = 1
	statusUnsupp = 2

	headerSize  = 16 // struct virtio_blk_req's type, reserved, sector
	segmentSize = 16 // struct virtio_blk_discard_write_zeroes
	idLen       = 20 // VIRTIO_BLK_ID_BYTES
	flagUnmap   = 1  // in a WRITE_ZEROES segment
)

// serve performs one request and returns the bytes it wrote into the
// chain's writable buffers, status byte included, and true; or, on the
// disk's thread (w.wait false), returns false for a request that may wait
// for the host's disk, untouched, for a goroutine to serve. A chain with
// no writable byte for the status is dropped (0 bytes written).
func (w *worker) serve(c *virtio.Chain) (uint32, bool) {
	data, status := splitStatus(w.data[:0], c.Writable)
	w.data = data
	if status == nil {
		w.d.log.Warn("virtio-blk: request without a status byte dropped", "queue", w.i)
		return 0, true
	}
	var hdr [headerSize]byte
	if virtio.Gather(hdr[:], c.Readable) < headerSize {
		w.d.log.Warn("virtio-blk: request shorter than its header", "queue", w.i)
		*status = statusIOErr
		w.d.stats.errors.Add(1)
		return 1, true
	}
	typ, sector := binary.LittleEndian.Uint32(hdr[0:]), binary.LittleEndian.Uint64(hdr[8:])
	in := virtio.Skip(c.Readable, headerSize)
	n, st := uint64(0), byte(statusOK)
	switch typ {
	case typeIn:
		var served bool
		if n, st, served = w.read(data, sector); !served {
			return 0, false
		}
	case typeOut:
		if !w.canServe(virtio.Len(in)) {
			return 0, false
		}
		st = w.d.write(in, sector)
	case typeFlush:
		if !w.canServe(0) {
			return 0, false
		}
		st = w.d.flush()
	case typeGetID:
		n = w.d.getID(data)
	case typeDiscard, typeWriteZeroes:
		if !w.canServe(0) {
			return 0, false
		}
		st = w.d.zeroRanges(in, typ == typeDiscard)
	default:
		st = statusUnsupp
	}
	*status = st
	moved := n // a read's bytes into the guest; a write's are the guest's
	if typ == typeOut {
		moved = virtio.Len(in)
	}
	w.d.stats.count(typ, moved, st)
	return uint32(n) + 1, true
}

// read serves a read if it cannot wait for the host's disk (readNow), or
// if w may wait; it reports whether it did.
func (w *worker) read(bufs [][]byte, sector uint64) (uint64, byte, bool) {
	if n, st, ok := w.d.readNow(bufs, sector, w.nowLen()); ok {
		return n, st, true
	}
	if !w.wait {
		return 0, 0, false
	}
	n, st := w.d.read(bufs, sector)
	return n, st, true
}

// canServe reports whether w serves a write of n bytes, a flush or a hole
// punched (n 0) itself: those may wait for the host's disk, unless the
// image's file system is memory, and a write longer than w's nowLen takes
// long enough to copy in any case; only a goroutine (w.wait) serves those.
func (w *worker) canServe(n uint64) bool {
	return w.wait || (w.d.now.get() == nowMemory && n <= w.nowLen())
}

// nowLen is the longest read or write w serves without waiting where it
// takes it: maxNowLen, or, on the thread with no request behind the one
// it holds, maxAloneLen (now.go).
func (w *worker) nowLen() uint64 {
	if w.alone {
		return maxAloneLen
	}
	return maxNowLen
}

// splitStatus separates the last writable byte, the status, from the data
// buffers before it, which it appends to dst.
func splitStatus(dst, bufs [][]byte) ([][]byte, *byte) {
	for len(bufs) > 0 && len(bufs[len(bufs)-1]) == 0 {
		bufs = bufs[:len(bufs)-1]
	}
	if len(bufs) == 0 {
		return nil, nil
	}
	last := bufs[len(bufs)-1]
	data := append(dst, bufs[:len(bufs)-1]...)
	if len(last) > 1 {
		data = append(data, last[:len(last)-1])
	}
	return data, &last[len(last)-1]
}

// span checks that n bytes from sector lie within the disk, whole sectors,
// and returns the byte offset.
func (d *Disk) span(sector, n uint64) (int64, bool) {
	if n%SectorSize != 0 || sector > d.sectors || n/SectorSize > d.sectors-sector {
		return 0, false
	}
	return int64(sector * SectorSize), true
}

// read fills bufs from the image at sector.
func (d *Disk) read(bufs [][]byte, sector uint64) (uint64, byte) {
	n := virtio.Len(bufs)
	off, ok := d.span(sector, n)
	if !ok {
		d.log.Warn("virtio-blk: read outside the disk", "sector", sector, "bytes", n)
		return 0, statusIOErr
	}
	got, err := d.xfer(bufs, off, opRead)
	if err != nil || uint64(got) != n {
		d.log.Error("virtio-blk: read failed", "sector", sector, "bytes", n, "got", got, "err", err)
		return uint64(got), statusIOErr
	}
	return n, statusOK
}

// write writes bufs to the image at sector.
func (d *Disk) write(bufs [][]byte, sector uint64) byte {
	if d.cfg.ReadOnly {
		return statusIOErr
	}
	n := virtio.Len(bufs)
	off, ok := d.span(sector, n)
	if !ok {
		d.log.Warn("virtio-blk: write outside the disk", "sector", sector, "bytes", n)
		return statusIOErr
	}
	if put, err := d.xfer(bufs, off, opWrite); err != nil || uint64(put) != n {
		d.log.Error("virtio-blk: write failed", "sector", sector, "bytes", n, "put", put, "err", err)
		return statusIOErr
	}
	return statusOK
}

// flush is FLUSH: everything written before is made durable.
func (d *Disk) flush() byte {
	if err := d.Flush(); err != nil {
		d.log.Error("virtio-blk: flush failed", "err", err)
		return statusIOErr
	}
	return statusOK
}

// getID writes the serial, NUL-padded to 20 bytes or as much as fits.
func (d *Disk) getID(bufs [][]byte) uint64 {
	var id [idLen]byte
	copy(id[:], d.cfg.Serial)
	var n uint64
	for _, b := range bufs {
		c := copy(b, id[n:])
		n += uint64(c)
	}
	return n
}

// zeroRanges is DISCARD (punch holes) and WRITE_ZEROES (zero the range,
// punching holes where the driver allows unmapping) for each segment.
func (d *Disk) zeroRanges(bufs [][]byte, discard bool) byte {
	if d.cfg.ReadOnly {
		return statusIOErr
	}
	// The length is checked before anything is allocated: a chain may
	// describe up to 4 GiB.
	n := virtio.Len(bufs)
	if n == 0 || n%segmentSize != 0 || n > maxSegments*segmentSize {
		return statusUnsupp
	}
	raw := make([]byte, n)
	virtio.Gather(raw, bufs)
	for s := raw; len(s) > 0; s = s[segmentSize:] {
		sector, num, flags := binary.LittleEndian.Uint64(s), binary.LittleEndian.Uint32(s[8:]), binary.LittleEndian.Uint32(s[12:])
		if flags&^flagUnmap != 0 || (discard && flags != 0) {
			return statusUnsupp
		}
		off, ok := d.span(sector, uint64(num)*SectorSize)
		if !ok || num > maxRangeSectors {
			return statusIOErr
		}
		if err := d.zero(off, int64(num)*SectorSize, discard || flags&flagUnmap != 0); err != nil {
			d.log.Error("virtio-blk: zeroing a range failed", "sector", sector, "sectors", num, "err", err)
			return statusIOErr
		}
	}
	return statusOK
}

// zero makes [off, off+n) of the image read as zeros: by punching a hole,
// or, where the range must stay allocated, with FALLOC_FL_ZERO_RANGE (a
// hole where the file system cannot).
func (d *Disk) zero(off, n int64, punch bool) error {
	if d.qcow != nil {
		return d.qcow.Zero(off, n)
	}
	fd := int(d.file.Fd())
	if !punch {
		err := unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return err
		}
	}
	return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// transfer reads the image into bufs, or writes them to it, at off: through
// the page cache with preadv/pwritev (or preadv2 with RWF_NOWAIT, for
// readNow), or, for cache=none, through an aligned bounce buffer with
// O_DIRECT.
func (d *Disk) transfer(bufs [][]byte, off int64, op xferOp) (int, error) {
	fd := int(d.file.Fd())
	switch {
	case d.cfg.Direct:
		return directIO(fd, bufs, off, op == opWrite)
	case op == opReadNow:
		return fileio.ReadAtNoWait(fd, bufs, off)
	case op == opWrite:
		return fileio.WriteAt(fd, bufs, off)
	}
	return fileio.ReadAt(fd, bufs, off)
}

// xferOp is what a transfer does.
type xferOp int

const (
	opRead    xferOp = iota // the image into bufs
	opWrite                 // bufs into the image
	opReadNow               // a read from the page cache alone: EAGAIN where it would wait
)
