package console

import "encoding/binary"

// Offsets in struct virtio_console_config (§5.3.4), little-endian as every
// field of a modern device.
const (
	cfgCols       = 0 // le16, valid with VIRTIO_CONSOLE_F_SIZE
	cfgRows       = 2 // le16, valid with VIRTIO_CONSOLE_F_SIZE
	cfgMaxNrPorts = 4 // le32, valid with VIRTIO_CONSOLE_F_MULTIPORT
	cfgEmergWr    = 8 // le32, write-only, with VIRTIO_CONSOLE_F_EMERG_WRITE
	configSize    = 12
)

// ReadConfig reads the configuration space: the size Resize last set (or
// Config's), max_nr_ports 1 (meaningless without VIRTIO_CONSOLE_F_MULTIPORT,
// but true), and emerg_wr, which is write-only, as 0. Bytes past the end
// read as zeros. cols and rows come from one load, so a driver reading both
// at once never sees half of a resize.
func (d *Device) ReadConfig(off uint64, data []byte) {
	var c [configSize]byte
	size := d.size.Load()
	binary.LittleEndian.PutUint16(c[cfgCols:], uint16(size))
	binary.LittleEndian.PutUint16(c[cfgRows:], uint16(size>>16))
	binary.LittleEndian.PutUint32(c[cfgMaxNrPorts:], 1)
	clear(data)
	if off < configSize {
		copy(data, c[off:])
	}
}

// WriteConfig handles the one writable field, emerg_wr: a write of 1 to 4
// bytes at its offset puts its low byte (the first, little-endian) on
// Output. The spec asks the device to accept it "even on an unconfigured
// device" (§5.3.4), so it works in any state, with or without the feature
// negotiated, whether or not Activate ran. Every other write is ignored.
func (d *Device) WriteConfig(off uint64, data []byte) {
	if off != cfgEmergWr || len(data) == 0 || len(data) > 4 {
		return
	}
	if err := d.write(data[:1]); err != nil {
		d.log.Debug("virtio-console: emergency write failed", "err", err)
	}
}
