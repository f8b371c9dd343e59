package blk

import "sync/atomic"

// Stats are a disk's running totals since Open, by request type: what a
// host's tools read of a disk (QEMU's query-blockstats, Firecracker's and
// Cloud Hypervisor's block counters) for its load and its failures. A
// request is counted once it is answered, whatever its status; its bytes
// only if it succeeded.
type Stats struct {
	Reads, ReadBytes   uint64 // VIRTIO_BLK_T_IN: requests, bytes read into the guest
	Writes, WriteBytes uint64 // VIRTIO_BLK_T_OUT: requests, bytes written to the image
	Flushes            uint64 // VIRTIO_BLK_T_FLUSH
	Discards           uint64 // VIRTIO_BLK_T_DISCARD and WRITE_ZEROES
	// Errors counts requests answered VIRTIO_BLK_S_IOERR: outside the
	// disk, malformed, a write to a read-only disk, or the host's I/O
	// failing.
	Errors uint64
	// Unsupported counts requests answered VIRTIO_BLK_S_UNSUPP: a type
	// the disk does not serve.
	Unsupported uint64
}

// counters are Stats as the thread and the goroutines update them.
type counters struct {
	reads, readBytes, writes, writeBytes atomic.Uint64
	flushes, discards                    atomic.Uint64
	errors, unsupported                  atomic.Uint64
}

// count records one answered request of type typ, which moved n bytes
// (data read into the guest, or data the guest gave) if status is OK.
func (c *counters) count(typ uint32, n uint64, status byte) {
	switch status {
	case statusIOErr:
		c.errors.Add(1)
	case statusUnsupp:
		c.unsupported.Add(1)
	}
	ok := status == statusOK
	switch typ {
	case typeIn:
		c.reads.Add(1)
		if ok {
			c.readBytes.Add(n)
		}
	case typeOut:
		c.writes.Add(1)
		if ok {
			c.writeBytes.Add(n)
		}
	case typeFlush:
		c.flushes.Add(1)
	case typeDiscard, typeWriteZeroes:
		c.discards.Add(1)
	}
}

// Stats returns the disk's totals so far. Each counter is read on its
// own, so a request being answered meanwhile may show in one and not yet
// in another.
func (d *Disk) Stats() Stats {
	c := &d.stats
	return Stats{Reads: c.reads.Load(), ReadBytes: c.readBytes.Load(),
		Writes: c.writes.Load(), WriteBytes: c.writeBytes.Load(),
		Flushes: c.flushes.Load(), Discards: c.discards.Load(),
		Errors: c.errors.Load(), Unsupported: c.unsupported.Load()}
}
