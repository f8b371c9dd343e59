package fwcfg

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Control bits of a DMA access (FWCfgDmaAccess.control, QEMU's
// FW_CFG_DMA_CTL_*). The top 16 bits hold the key DMASelect selects.
const (
	DMAError  = 1 << 0 // set by the device: the transfer failed
	DMARead   = 1 << 1 // copy the item's next Length bytes to Address
	DMASkip   = 1 << 2 // move the item's offset on by Length
	DMASelect = 1 << 3 // select the key in bits 16-31 first
	DMAWrite  = 1 << 4 // copy Length bytes at Address into the item
)

// DMAAccessSize is the size of a DMA access structure in guest memory.
const DMAAccessSize = 16

// DMAAccess is QEMU's FWCfgDmaAccess, the structure in guest RAM whose
// address a guest writes to the DMA address register: what to do
// (Control), how many bytes (Length) and the guest-physical address of the
// guest's buffer (Address). In guest memory every field is big endian.
type DMAAccess struct {
	Control uint32
	Length  uint32
	Address uint64
}

// ParseDMAAccess decodes a DMA access structure from the first
// DMAAccessSize bytes of b.
func ParseDMAAccess(b []byte) (DMAAccess, error) {
	if len(b) < DMAAccessSize {
		return DMAAccess{}, fmt.Errorf("fwcfg: DMA access structure of %d bytes, want %d", len(b), DMAAccessSize)
	}
	be := binary.BigEndian
	return DMAAccess{Control: be.Uint32(b), Length: be.Uint32(b[4:]), Address: be.Uint64(b[8:])}, nil
}

// Bytes encodes a as it lies in guest memory: big endian, 16 bytes.
func (a DMAAccess) Bytes() []byte {
	b := binary.BigEndian.AppendUint32(nil, a.Control)
	b = binary.BigEndian.AppendUint32(b, a.Length)
	return binary.BigEndian.AppendUint64(b, a.Address)
}

// Key returns the key a DMASelect access selects.
func (a DMAAccess) Key() uint16 { return uint16(a.Control >> 16) }

// dmaLocked runs the transfer described by the access structure at addr
// and writes its status back to the structure's control word. It returns
// the writable file's callback to run once the mutex is released, if the
// transfer wrote one.
func (f *FWCfg) dmaLocked(addr uint64) (written func()) {
	var raw [DMAAccessSize]byte
	if addr > math.MaxInt64 {
		f.anomalies.Report("DMA access structure outside guest RAM", "addr", addr)
		return nil
	}
	if _, err := f.mem.ReadAt(raw[:], int64(addr)); err != nil {
		// Nowhere to report the error: the guest sees its control word
		// unchanged, a transfer that never completes.
		f.anomalies.Report("DMA access structure outside guest RAM", "addr", addr, "err", err)
		return nil
	}
	a, _ := ParseDMAAccess(raw[:])
	status, written := f.transferLocked(a)
	var ctl [4]byte
	binary.BigEndian.PutUint32(ctl[:], status)
	if _, err := f.mem.WriteAt(ctl[:], int64(addr)); err != nil {
		// The structure was RAM a moment ago: the memory map changed.
		f.anomalies.Report("DMA access structure vanished", "addr", addr, "err", err)
	}
	return written
}

// transferLocked carries out one DMA access and returns the control word
// the guest is to find: 0, or DMAError.
func (f *FWCfg) transferLocked(a DMAAccess) (status uint32, written func()) {
	if a.Control&0xffff&^dmaDefinedBits != 0 {
		f.anomalies.Report("DMA control with undefined bits", "control", a.Control)
		return DMAError, nil
	}
	if a.Control&DMASelect != 0 {
		f.selectLocked(a.Key())
	}
	n := uint64(a.Length)
	switch {
	case n == 0:
		return 0, nil
	case a.Control&DMARead != 0:
		dst, err := f.mem.Slice(a.Address, n)
		if err != nil {
			f.anomalies.Report("DMA buffer outside guest RAM", "addr", a.Address, "len", n)
			return DMAError, nil
		}
		c := copy(dst, f.restLocked())
		clear(dst[c:])
		f.offset += uint64(c)
		return 0, nil
	case a.Control&DMAWrite != 0:
		return f.writeLocked(a.Address, n)
	case a.Control&DMASkip != 0:
		f.offset += min(n, uint64(len(f.restLocked()))) // no further than the end
		return 0, nil
	}
	return 0, nil // a select alone, or nothing at all
}

// writeLocked copies n bytes of guest memory at addr into the selected
// item at the current offset, if the item is writable and they fit.
func (f *FWCfg) writeLocked(addr, n uint64) (status uint32, written func()) {
	it := f.currentLocked()
	if it == nil || !it.writable {
		f.anomalies.Report("DMA write to a read-only item", "key", f.key)
		return DMAError, nil
	}
	if f.offset > uint64(len(it.data)) || n > uint64(len(it.data))-f.offset {
		f.anomalies.Report("DMA write past an item's end", "key", f.key, "offset", f.offset, "len", n, "size", len(it.data))
		return DMAError, nil
	}
	src, err := f.mem.Slice(addr, n)
	if err != nil {
		f.anomalies.Report("DMA buffer outside guest RAM", "addr", addr, "len", n)
		return DMAError, nil
	}
	copy(it.data[f.offset:], src)
	f.offset += n
	if it.written == nil {
		return 0, nil
	}
	cb, snapshot := it.written, append([]byte(nil), it.data...)
	return 0, func() { cb(snapshot) }
}
