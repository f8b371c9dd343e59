package blk

import (
	"fmt"

	"ember/virtio/blk/qcow2"
)

// openQcow2 serves d's image as qcow2: the disk is the image's virtual
// size, and reads and writes go through its tables. A read the thread
// makes without waiting (readNow) stays one when the tables it needs are
// in memory and the data in the page cache; a compressed cluster, or an
// L2 table not read yet, hands the read to a goroutine.
func (d *Disk) openQcow2() error {
	im, err := qcow2.Open(d.file, d.cfg.ReadOnly)
	if err != nil {
		return fmt.Errorf("virtio-blk: %s: %w", d.cfg.Path, err)
	}
	d.qcow = im
	d.sectors = im.Size() / SectorSize
	d.xfer = d.qcowTransfer
	return nil
}

// qcowTransfer is transfer for a qcow2 image.
func (d *Disk) qcowTransfer(bufs [][]byte, off int64, op xferOp) (int, error) {
	switch op {
	case opWrite:
		return d.qcow.WriteAt(bufs, off)
	case opReadNow:
		return d.qcow.ReadAt(bufs, off, true)
	}
	return d.qcow.ReadAt(bufs, off, false)
}
