package blk

import "encoding/binary"

// Offsets in struct virtio_blk_config (§5.2.4).
const (
	cfgCapacity         = 0
	cfgSegMax           = 12
	cfgBlkSize          = 20
	cfgNumQueues        = 34
	cfgMaxDiscard       = 36
	cfgMaxDiscardSeg    = 40
	cfgDiscardAlign     = 44
	cfgMaxWriteZeroes   = 48
	cfgMaxWriteZeroSeg  = 52
	cfgWriteZeroesUnmap = 56
	configSize          = 60
)

// maxRangeSectors bounds one DISCARD or WRITE_ZEROES segment.
const maxRangeSectors = 1 << 22 // 2 GiB

// ReadConfig reads the configuration space.
func (d *Disk) ReadConfig(off uint64, data []byte) {
	var c [configSize]byte
	le := binary.LittleEndian
	le.PutUint64(c[cfgCapacity:], d.sectors)
	le.PutUint32(c[cfgSegMax:], maxSegments)
	le.PutUint32(c[cfgBlkSize:], SectorSize)
	le.PutUint16(c[cfgNumQueues:], uint16(d.cfg.Queues))
	le.PutUint32(c[cfgMaxDiscard:], maxRangeSectors)
	le.PutUint32(c[cfgMaxDiscardSeg:], 1)
	le.PutUint32(c[cfgDiscardAlign:], 1)
	le.PutUint32(c[cfgMaxWriteZeroes:], maxRangeSectors)
	le.PutUint32(c[cfgMaxWriteZeroSeg:], 1)
	c[cfgWriteZeroesUnmap] = 1
	clear(data)
	if off < configSize {
		copy(data, c[off:])
	}
}

// WriteConfig ignores writes: the writable field (writeback) belongs to
// VIRTIO_BLK_F_CONFIG_WCE, which the disk does not offer.
func (d *Disk) WriteConfig(uint64, []byte) {}
