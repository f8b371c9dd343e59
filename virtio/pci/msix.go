package pci

import (
	"encoding/binary"
	"log/slog"
)

// msixTable is the function's MSI-X table and pending-bit array (PCI Local
// Bus 3.0, §6.8.2), in BAR0.
type msixTable struct {
	n       int
	entries []byte // 16 bytes a vector: address low, high, data, vector control
	pending []bool
	enabled bool
	masked  bool // the function mask
}

// init sizes the table for n vectors, each masked, as at reset.
func (t *msixTable) init(n int) {
	*t = msixTable{n: n, entries: make([]byte, 16*n), pending: make([]bool, n)}
	for i := range n {
		t.entries[16*i+12] = msixVectorMask
	}
}

// accept returns v if it names a vector of the table, else NO_VECTOR: the
// driver reads the register back to learn its choice was refused.
func (t *msixTable) accept(v uint16) uint16 {
	if int(v) < t.n {
		return v
	}
	return noVector
}

// setControl applies the message control's enable and function-mask bits,
// delivering what unmasking releases.
func (t *msixTable) setControl(ctl uint16, send func(lo, hi, data uint32) error) {
	t.enabled, t.masked = ctl&msixEnable != 0, ctl&msixMaskAll != 0
	t.flush(send)
}

// read reads the table or the PBA at off (from the table's start).
func (t *msixTable) read(off uint64, data []byte) {
	clear(data)
	switch {
	case off < uint64(len(t.entries)):
		copy(data, t.entries[off:])
	case off >= msixPBAOff-msixTableOff:
		var bits uint64
		base := int(off-(msixPBAOff-msixTableOff)) * 8
		for i := 0; i < 64 && base+i < t.n; i++ {
			if t.pending[base+i] {
				bits |= 1 << i
			}
		}
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], bits)
		copy(data, b[:])
	}
}

// write writes the table at off; unmasking a vector with its pending bit
// set delivers it.
func (t *msixTable) write(off uint64, data []byte, send func(lo, hi, data uint32) error) {
	if off >= uint64(len(t.entries)) {
		return
	}
	copy(t.entries[off:], data)
	t.flush(send)
}

// signal sends vector's message, or marks it pending while it is masked.
func (t *msixTable) signal(v uint16, send func(lo, hi, data uint32) error, log *slog.Logger) {
	if int(v) >= t.n {
		return // NO_VECTOR: the driver asked for no interrupt
	}
	if t.masked || t.entries[16*int(v)+12]&msixVectorMask != 0 {
		t.pending[v] = true
		return
	}
	e := t.entries[16*int(v):]
	le := binary.LittleEndian
	if err := send(le.Uint32(e), le.Uint32(e[4:]), le.Uint32(e[8:])); err != nil {
		log.Warn("virtio-pci: MSI-X message refused", "vector", v, "err", err)
	}
}

// flush delivers pending vectors that are no longer masked.
func (t *msixTable) flush(send func(lo, hi, data uint32) error) {
	if !t.enabled || t.masked {
		return
	}
	for i, p := range t.pending {
		if p && t.entries[16*i+12]&msixVectorMask == 0 {
			t.pending[i] = false
			e := t.entries[16*i:]
			le := binary.LittleEndian
			send(le.Uint32(e), le.Uint32(e[4:]), le.Uint32(e[8:]))
		}
	}
}
