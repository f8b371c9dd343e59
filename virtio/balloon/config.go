package balloon

import "encoding/binary"

// Offsets in struct virtio_balloon_config (§5.5.4), little-endian.
// free_page_hint_cmd_id and poison_val follow, valid only with features the
// device does not offer; they read as zeros like every byte past the end.
const (
	cfgNumPages = 0 // le32, read-only: the pages the host wants in the balloon
	cfgActual   = 4 // le32, written by the driver: the pages in the balloon
	configSize  = 8
)

// ReadConfig reads num_pages (SetTarget's) and actual (the driver's).
// Bytes past them read as zeros.
func (d *Device) ReadConfig(off uint64, data []byte) {
	var c [configSize]byte
	binary.LittleEndian.PutUint32(c[cfgNumPages:], d.target.Load())
	binary.LittleEndian.PutUint32(c[cfgActual:], d.actual.Load())
	clear(data)
	if off < configSize {
		copy(data, c[off:])
	}
}

// WriteConfig stores the bytes the driver writes into actual, the one field
// it may write; a write that covers part of actual changes those bytes (a
// modern driver writes all four at once; the legacy notes of §5.5.6 tell of
// older ones writing them one by one). Writes elsewhere are ignored.
func (d *Device) WriteConfig(off uint64, data []byte) {
	for i, b := range data {
		at := off + uint64(i)
		if at < cfgActual || at >= cfgActual+4 || at < off {
			continue
		}
		shift := 8 * (at - cfgActual)
		for {
			old := d.actual.Load()
			v := old&^(0xff<<shift) | uint32(b)<<shift
			if d.actual.CompareAndSwap(old, v) {
				break
			}
		}
	}
}
